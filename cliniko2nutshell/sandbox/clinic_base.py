"""What every part of the clinic generator shares: the text of the bodies (timestamps, strings, links, money),
ids, time zones, the cheap random numbers, the practice's record types and the generator's shared state.

Bodies are built as JSON text from templates (json.dumps of a dict costs ten times more and we write millions);
the helpers here are the hot path, which is why they are small and cached.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from cliniko2nutshell.sandbox import cliniko_db

if TYPE_CHECKING:
    from cliniko2nutshell.sandbox.clinic import _Sink

DAY = 86_400


LEGACY_ID_CUTOFF = int(datetime(2022, 2, 15, tzinfo=UTC).timestamp())


HISTORY_DAYS = 6 * 365  # how far back the clinic's records go from the reference time


FUTURE_DAYS = 90  # how far ahead appointments are booked


BASE = cliniko_db.BASE


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


_B = {True: "true", False: "false", None: "null"}


class _Days(dict[int, str]):
    """'YYYY-MM-DD' per day number (days since 1970), made on first use."""

    def __missing__(self, day: int) -> str:
        text = self[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        return text


_DAYS = _Days()


_CLOCK = [f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]


def _date(sec: int) -> str:
    return _DAYS[sec // DAY]


def _ts(sec: int) -> str:
    # the two tables turn the hottest formatting of the generator into two look-ups
    return _DAYS[sec // DAY] + _CLOCK[sec % DAY]


def _t(sec: int | None) -> str:
    """A nullable timestamp as JSON."""
    return "null" if sec is None else f'"{_ts(sec)}"'


def _s(text: str | None) -> str:
    """A nullable string as JSON."""
    return "null" if text is None else encode_basestring(text)


def _n(value: int | None) -> str:
    return "null" if value is None else str(value)


def _link(path: str) -> str:
    return f'{{"links":{{"self":"{BASE}/{path}"}}}}'


_money_text: dict[int, str] = {}


def _money(cents: int) -> str:
    """Cents as Cliniko prints decimals: "50.0", "45.5", "81.82". Prices repeat, so the text is cached."""
    text = _money_text.get(cents)
    if text is None:
        sign = "-" if cents < 0 else ""
        whole, frac = divmod(abs(cents), 100)
        if frac == 0:
            text = f"{sign}{whole}.0"
        elif frac % 10 == 0:
            text = f"{sign}{whole}.{frac // 10}"
        else:
            text = f"{sign}{whole}.{frac:02d}"
        _money_text[cents] = text
    return text


def _percent(pct: int) -> str:
    return f"{pct}.0"


class _Zone:
    """A business's time zone: the UTC second of local midnight per local day, cached."""

    def __init__(self, iana: str) -> None:
        self._tz = ZoneInfo(iana)
        self._offsets: dict[int, int] = {}

    def offset(self, day: int) -> int:
        off = self._offsets.get(day)
        if off is None:
            local = datetime.fromtimestamp(day * DAY + DAY // 2, UTC).astimezone(self._tz)
            off = self._offsets[day] = int(local.utcoffset().total_seconds())  # type: ignore[union-attr]
        return off

    def at(self, day: int, minute: int) -> int:
        """UTC seconds of local `day` (days since 1970 in local calendar) at `minute` past local midnight."""
        return day * DAY - self.offset(day) + minute * 60

    def local_date(self, sec: int) -> str:
        return _date(sec + self.offset(sec // DAY))


class _Rng(random.Random):
    """random.Random with cheaper integer draws: one float each (the generator makes millions of them)."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        if stop is None:
            return int(self.random() * start)
        return start + step * int(self.random() * ((stop - start + step - 1) // step))

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]


# --- ids -------------------------------------------------------------------------------------------------------


class _IdMint:
    """Deterministic, unique, unordered ids: a bijective scramble of one counter (salted by the seed)."""

    _M26 = (1 << 26) - 1
    _M56 = (1 << 56) - 1

    def __init__(self, seed: int) -> None:
        salt = random.Random(f"ids-{seed}").getrandbits(64)
        self._salt26 = salt & self._M26
        self._salt56 = (salt >> 8) & self._M56
        self._n = 0

    def __call__(self, created: int) -> str:
        self._n += 1
        if created < LEGACY_ID_CUTOFF:
            x = self._n ^ self._salt26
            x = (x * 0x2C1B3C6D) & self._M26
            x ^= x >> 13
            x = (x * 0x297A2D39) & self._M26
            x ^= x >> 11
            return str(1_000_000 + x)  # < 1e8, like the accounts that predate 2022
        x = (self._n * 0x9E3779B97F4A7C15 + self._salt56) & self._M56
        x ^= x >> 29
        x = (x * 0xBF58476D1CE4E5B9) & self._M56
        return str(800_000_000_000_000_000 + (x ^ (x >> 32)))


# --- the practice: what every patient refers to ----------------------------------------------------------------


class _Business(NamedTuple):
    id: str
    link: str
    name: str
    zone: _Zone
    sms_from: str


class _Practitioner(NamedTuple):
    id: str
    link: str
    label: str
    categories: tuple[str, ...]
    businesses: tuple[int, ...]
    start: int  # first day they see patients
    end: int | None  # last day (inactive practitioners)
    user_id: str


class _ApptType(NamedTuple):
    id: str
    link: str
    name: str
    category: str
    minutes: int
    max_attendees: int
    price: int
    item_id: str
    item_link: str
    code: str
    telehealth: bool
    templates: tuple[int, int]


class _Product(NamedTuple):
    id: str
    link: str
    name: str
    price_ex: int
    code: str


class _Contact(NamedTuple):
    id: str
    link: str
    name: str
    email: str


class _Field(NamedTuple):
    section: int
    name: str
    type: str
    token: str
    options: tuple[tuple[str, str], ...]  # (name, token)
    archived: bool


class _GroupSlot(NamedTuple):
    type: int  # index into the appointment types
    business: int
    weekday: int  # 0 = Monday
    minute: int  # local minute of the day


class _Session:
    """A group class, aggregated while its attendees are generated; written at the end."""

    __slots__ = ("booked", "created", "end", "id", "patient_ids", "practitioner", "slot", "start", "updated")

    def __init__(self, sid: str, slot: int, start: int, end: int, practitioner: int, created: int) -> None:
        self.id = sid
        self.slot = slot
        self.start = start
        self.end = end
        self.practitioner = practitioner
        self.created = created
        self.updated = created
        self.booked = 0
        self.patient_ids: list[str] = []


class _Visit(NamedTuple):
    """One planned appointment of a patient."""

    start: int
    type: int
    practitioner: int
    business: int
    session: _Session | None


class _PatientState:
    """What the records of one patient share while they are written."""

    __slots__ = (
        "case_attendees",
        "case_id",
        "concession",
        "created_floor",
        "draft_id",
        "email",
        "insurer",
        "label",
        "last_activity",
        "latest_id",
        "latest_start",
        "long_note_id",
        "mobile",
        "pid",
        "plink",
        "reminder",
        "series_head",
        "series_left",
        "series_rule",
        "showcase_invoices",
    )

    def __init__(
        self,
        pid: str,
        plink: str,
        label: str,
        email: str | None,
        reminder: str,
        mobile: str | None,
        concession: tuple[str, str, str, int] | None,
        case_id: str | None,
    ) -> None:
        self.pid = pid
        self.plink = plink
        self.label = label
        self.email = email
        self.reminder = reminder
        self.mobile = mobile
        self.concession = concession
        self.case_id = case_id
        self.case_attendees: list[str] = []
        self.insurer: _Contact | None = None
        self.created_floor = 0
        self.last_activity = 0
        self.latest_id: str | None = None
        self.latest_start = 0
        self.long_note_id: str | None = None
        self.draft_id: str | None = None
        self.series_head: str | None = None
        self.series_left = 0
        self.series_rule = "null"
        self.showcase_invoices = 0


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class _GeneratorBase:
    """The state the generator's parts share (set in clinic._Generator.__init__ and by `_build_practice`).

    The generator is one object assembled from one mixin per module (clinic.py): each part writes its records
    through `sink`, draws from the one `rng` and mints ids from the one `mint`, in the order `run` calls them,
    which is what keeps the output byte-for-byte deterministic.
    """

    sink: _Sink
    patients: int
    seed: int
    shard: str
    ref: int  # the reference time (UTC seconds): "now" for the clinic
    rng: _Rng
    mint: _IdMint
    open: int  # when the first patient arrived
    clinic_name: str
    subdomain: str
    domain: str
    email_from: str
    sms_sender: str
    api_key: str
    hard: dict[str, list[str]]
    flags: dict[int, set[str]]
    duplicates: dict[str, list[str]]
    nutshell_people: list[dict[str, Any]]
    nutshell_users: list[dict[str, Any]]
    invoice_number: int
    sessions: dict[tuple[int, int], list[_Session]]
    last_active: str | None
    last_plain: tuple[str, str] | None
    # the practice (clinic_practice.py and the parts it calls)
    gst: tuple[str, str, str, int]
    gst_free: tuple[str, str, str, int]
    concessions: list[tuple[str, str, str, int]]
    templates: list[tuple[str, str, str, tuple[Any, ...]]]
    note_pool: list[tuple[list[str], list[str]]]
    types: list[_ApptType]
    other_items: list[tuple[str, str, str, int, str]]
    products: list[_Product]
    businesses: list[_Business]
    practitioners: list[_Practitioner]
    admin_user_id: str
    admin_name: tuple[str, str]
    staff_user_ids: list[str]
    insurers: list[_Contact]
    doctors: list[_Contact]
    others: list[_Contact]
    referral_types: list[tuple[str, str, str]]
    own_types: list[list[int]]
    group_slots: list[_GroupSlot]
    sections: list[tuple[str, str]]
    fields: list[_Field]
    field_heads: dict[str, str]
    option_text: dict[str, tuple[str, str]]
    _working: dict[tuple[int, str | None], list[int]]
    _tokens_rng: random.Random
