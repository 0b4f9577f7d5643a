"""How long a migration takes: the floor the two APIs allow, and the estimate shown before a run.

A migration's speed is bounded by the services, not the laptop. Cliniko allows a fixed number of requests per
rolling minute; Nutshell publishes no limit (it answers 429 when pushed), and every request costs a round trip.
So the least time N requests can take is the larger of what the rate limit allows and what the round trips allow
at the chosen concurrency (`floor_seconds`). The estimate (`estimate`) is that floor for the requests each planned
write takes at least (`MINIMUM_REQUESTS`), with a small per-request cost of our own on top: pure arithmetic that
the wizard and `plan` can call at any time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cliniko2nutshell.engine.ops import OBJECTS, PHASES, entity_of, phase_of

# The requests one journaled write takes at the least, by Nutshell record type and action: what the API makes
# necessary, nothing read back.
# - A create is one request, with custom fields, links and participants in it.
# - A file is three: the documented upload reserves the file on the activity with `editActivity`, which replaces
#   the activity's file list and is guarded by its rev, so the activity is read first (REST creates return no
#   rev); then the bytes are POSTed to the reserved uri. Skipping the read (REV_IGNORE) could drop a file someone
#   else attached.
# - An update or a link is two: the record is read (the conflict check: who changed what since we wrote it;
#   a link fills only fields that are empty), then one PATCH or PUT. REST PATCH takes no rev, so the read cannot
#   ride on the write.
# - A delete during a run (a merged patient's person) is a read (edited since?) and the delete.
MINIMUM_REQUESTS: dict[tuple[str, str], int] = {
    ("accounts", "create"): 1,
    ("contacts", "create"): 1,
    ("activities", "create"): 1,
    ("notes", "create"): 1,
    ("files", "upload"): 3,
    ("contacts", "link"): 2,
    ("accounts", "update"): 2,
    ("contacts", "update"): 2,
    ("activities", "update"): 2,
    ("notes", "update"): 2,  # notes cannot be edited: a new one, then the old one deleted (no read)
    ("contacts", "delete"): 2,
}

# What a write costs us besides the round trip (journal commits, building and parsing the request), measured on
# the sandbox at 50 ms latency (`cliniko2nutshell bench`): ~4 ms a request, spread over the workers.
DEFAULT_SERVICE_MS = 4.0
# Round trip to use when none was measured while connecting. Unconfirmed: the live services' latency from where
# a clinic is; we choose 250 ms, a long intercontinental round trip (the Nutshell API is served from the US).
DEFAULT_LATENCY_MS = 250.0
DEFAULT_CLINIKO_RATE = 200  # Cliniko's documented limit per user per minute
PAGE = 100  # Cliniko's largest page


def minimum_requests(entity: str, action: str) -> int:
    """Requests one write takes at the least (see MINIMUM_REQUESTS); 1 for anything unlisted."""
    return MINIMUM_REQUESTS.get((entity, action), 1)


def floor_seconds(
    requests: int, *, rate_per_min: float | None, latency_ms: float, concurrency: int, window: float = 60.0
) -> float:
    """The least time `requests` requests can take: a rolling-window limit lets `rate_per_min` through per
    `window` (the first burst at once), and `concurrency` requests in flight each take `latency_ms`."""
    if requests <= 0:
        return 0.0
    latency = latency_ms / 1000
    by_latency = math.ceil(requests / max(1, concurrency)) * latency
    if not rate_per_min:
        return by_latency
    by_rate = (math.ceil(requests / rate_per_min) - 1) * window + latency
    return max(by_latency, by_rate)


# Words for the objects, as a clinic would name what takes the time.
_WORDS = {
    "company": "third-party contacts",
    "business_company": "businesses",
    "person": "people",
    "appointment": "appointments",
    "attendance": "group appointments",
    "communication": "communications",
    "treatment_note_activity": "treatment notes",
    "treatment_note": "treatment notes",
    "treatment_note_file": "treatment notes",
    "attachment_activity": "attachments",
    "attachment_file": "attachments",
    "patient_note": "patient notes",
    "appointment_note": "appointment notes",
    "medical_alert": "medical alerts",
    "extraction": "reading Cliniko",
}


@dataclass
class Estimate:
    """Expected seconds per run phase (companies, people, activities, notes, files; `extraction` when Cliniko
    records were counted) and per object, with the requests they take and the inputs used."""

    phases: dict[str, float] = field(default_factory=dict)
    objects: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)  # per phase
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())

    def __str__(self) -> str:
        return self.summary

    @property
    def summary(self) -> str:
        """One line: "about 3 h 20 min, most of it appointments"."""
        if self.seconds <= 0:
            return "nothing to move"
        text = f"about {duration_text(self.seconds)}"
        by_word: dict[str, float] = {}
        for obj, seconds in self.objects.items():
            word = _WORDS.get(obj, obj)
            by_word[word] = by_word.get(word, 0.0) + seconds
        if by_word:
            word, most = max(by_word.items(), key=lambda kv: kv[1])
            if most >= 0.5 * self.seconds:
                text += f", most of it {word}"
            else:
                text += f", {word} the longest part"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "summary": self.summary,
            "phases": {k: round(v, 1) for k, v in self.phases.items()},
            "objects": {k: round(v, 1) for k, v in self.objects.items()},
            "requests": dict(self.requests),
            "inputs": dict(self.inputs),
        }


def duration_text(seconds: float) -> str:
    """A duration as people say it: "40 s", "12 min", "3 h 20 min" (minutes rounded to tens past 2 h)."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours >= 2:
        rest = int(round(rest / 10) * 10)
        if rest == 60:
            hours, rest = hours + 1, 0
    return f"{hours} h" + (f" {rest} min" if rest else "")


def estimate(
    counts: Mapping[str, Mapping[str, int] | int],
    *,
    cliniko_rate_per_min: float | None = DEFAULT_CLINIKO_RATE,
    nutshell_rate_per_min: float | None = None,
    latency_ms: float | None = None,
    workers: int = 8,
    cliniko_latency_ms: float | None = None,
    cliniko_records: Mapping[str, int] | None = None,
    cliniko_files: int = 0,
    extraction_concurrency: int = 6,
    service_ms: float = DEFAULT_SERVICE_MS,
) -> Estimate:
    """Expected duration of each phase of a run that writes `counts` (object -> planned writes, as a number of
    creates or as {"create": n, "link": m, "update": u}, e.g. a pre-flight report's counts; "skip", "unmappable"
    and "unchanged" cost nothing). `nutshell_rate_per_min` None: Nutshell's limit is unknown, the concurrency
    (`workers`) sets the pace. `latency_ms`: the Nutshell round trip measured while connecting (None: 250 ms).
    With `cliniko_records` (Cliniko object -> records) and `cliniko_files`, an `extraction` phase is estimated too.
    Pure arithmetic: no I/O."""
    latency = DEFAULT_LATENCY_MS if latency_ms is None else float(latency_ms)
    per_request = latency + service_ms
    result = Estimate(
        inputs={
            "nutshell_rate_per_min": nutshell_rate_per_min,
            "cliniko_rate_per_min": cliniko_rate_per_min,
            "latency_ms": latency,
            "latency_measured": latency_ms is not None,
            "workers": workers,
        }
    )
    if cliniko_records is not None:
        c_latency = DEFAULT_LATENCY_MS if cliniko_latency_ms is None else float(cliniko_latency_ms)
        pages = sum(max(1, math.ceil(n / PAGE)) for n in cliniko_records.values())
        requests = 1 + pages + cliniko_files
        result.requests["extraction"] = requests
        result.phases["extraction"] = result.objects["extraction"] = floor_seconds(
            requests,
            rate_per_min=cliniko_rate_per_min,
            latency_ms=c_latency + service_ms,
            concurrency=extraction_concurrency,
        )
    by_phase: dict[str, dict[str, int]] = {}
    for obj, count in counts.items():
        if obj not in OBJECTS:
            continue
        actions = {"create": count} if isinstance(count, int) else dict(count)
        entity = entity_of(obj).value
        requests = sum(
            n * minimum_requests(entity, "upload" if entity == "files" and a == "create" else a)
            for a, n in actions.items()
            if a not in ("skip", "unmappable", "unchanged") and n
        )
        if requests:
            by_phase.setdefault(phase_of(obj).value, {})[obj] = requests
    # The phases run one after the other, and a rolling window carries over between them: the floor is taken
    # over the whole run and shared out by requests.
    total = sum(sum(objects.values()) for objects in by_phase.values())
    run_seconds = floor_seconds(total, rate_per_min=nutshell_rate_per_min, latency_ms=per_request, concurrency=workers)
    for phase in PHASES:
        objects = by_phase.get(phase.value)
        if not objects:
            continue
        requests = sum(objects.values())
        result.phases[phase.value] = run_seconds * requests / total
        result.requests[phase.value] = requests
        for obj, n in objects.items():
            result.objects[obj] = run_seconds * n / total
    return result


def estimate_for_project(project: Any, counts: Mapping[str, Mapping[str, int] | int], *, workers: int = 8) -> Estimate:
    """`estimate` for a project's next run: the latencies measured while connecting (the `connected` milestone;
    absent, e.g. keys given by environment variables and never tested: DEFAULT_LATENCY_MS, and
    `inputs["latency_measured"]` is False), Cliniko's documented limit, Nutshell's unknown one (None). Reads one
    store row; `project` is a project.folder.Project."""
    connected = project.store.milestone("connected")
    detail = connected.detail if connected is not None else {}

    def measured(key: str) -> float | None:
        value = detail.get(key)
        return float(value) if isinstance(value, int | float) and value > 0 else None

    return estimate(
        counts,
        latency_ms=measured("nutshell_latency_ms"),
        cliniko_latency_ms=measured("cliniko_latency_ms"),
        workers=workers,
    )


def versus_actual(
    expected: Mapping[str, Any] | None, actual: Mapping[str, float]
) -> list[tuple[str, float | None, float]]:
    """(phase, expected seconds, actual seconds) for each phase a run report shows, in run order; `expected` is
    an `Estimate.as_dict()` (None: no estimate was made)."""
    phases = (expected or {}).get("phases") or {}
    names = [p.value for p in PHASES if p.value in phases or p.value in actual]
    return [(n, phases.get(n), float(actual.get(n, 0.0))) for n in names]
