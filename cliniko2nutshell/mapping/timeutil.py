"""Timestamps as the transforms need them: always aware (Cliniko's are UTC; a naive one is read as UTC), and
converted to the clinic's zone without failing at the edges of the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def local(ts: datetime, tz: tzinfo) -> datetime:
    """`ts` in the clinic's zone; near year 1 or 9999 the shift can leave the calendar, then UTC it stays."""
    ts = aware(ts)
    try:
        return ts.astimezone(tz)
    except (OverflowError, ValueError):
        return ts


def unix(ts: datetime) -> int:
    return int(aware(ts).timestamp())


def plus_minutes(ts: datetime, minutes: int) -> datetime:
    try:
        return ts + timedelta(minutes=minutes)
    except OverflowError:
        return ts
