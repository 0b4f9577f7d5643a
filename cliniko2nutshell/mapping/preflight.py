"""The pre-flight report: before anything is written, what will be created, linked or skipped, and every problem.

`preflight(store, map, snapshot)` walks the extracted records through the same transforms the run uses, so the
counts are the run's counts. Problems are per record (blockers stop the run, warnings do not); notices describe
groups of records handled in a particular way (archived, merged, cancelled...). The report carries Cliniko ids and
problem kinds; personal data (an e-mail) only where the user needs it to act: invalid e-mails (to fix them in
Cliniko), duplicate e-mails and people already in Nutshell (to decide what happens). Nothing here logs.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cliniko2nutshell.mapping.activities import appointment_status, attendance_status
from cliniko2nutshell.mapping.catalog import Catalog, PatientBundle, iter_bundles
from cliniko2nutshell.mapping.limitations import LIMITATIONS, Limitation
from cliniko2nutshell.mapping.model import (
    AppointmentStatus,
    CustomFieldAction,
    ExistingPerson,
    MigrationMap,
    PractitionerDecision,
    StatusRecording,
)
from cliniko2nutshell.mapping.names import is_valid_email, normalize_email
from cliniko2nutshell.mapping.outputs import KINDS, USER, Context, Outcome, Planned, Skip, refs_in
from cliniko2nutshell.mapping.people import person_name
from cliniko2nutshell.mapping.practitioners import PractitionerInfo, match_practitioner
from cliniko2nutshell.mapping.proposer import open_decisions
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot
from cliniko2nutshell.mapping.timeutil import aware
from cliniko2nutshell.mapping.transforms import plan_companies, plan_patient
from cliniko2nutshell.mapping.value_maps import unknown_activity_types
from cliniko2nutshell.project.store import Store

LONG_TEXT = 20_000  # characters; Unconfirmed: Nutshell's note size limit is not documented
LARGE_FILE = 2 * 2**20  # bytes; worth knowing before the upload even when under the limit
_RTL = {"R", "AL"}


class Severity(StrEnum):
    BLOCKER = "blocker"  # the run cannot start until it is resolved
    WARNING = "warning"  # the run can start; the record is handled as described
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    severity: Severity
    object: str  # Cliniko object (patients, practitioners...) or "map" / "nutshell"
    id: str  # Cliniko id, custom field name, activity type...
    detail: str  # no personal data
    action: str  # what will happen, or what the user should do
    personal: dict[str, str] = field(default_factory=dict)  # only where the user needs it to act (see module doc)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    object: str
    detail: str
    ids: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass
class PreflightReport:
    generated_at: str
    map_version: int
    counts: dict[str, dict[str, int]]  # kind -> {"create": n, "link": n, "skip": n, "unmappable": n}
    problems: list[Problem]
    notices: list[Notice]
    limitations: list[Limitation]
    patients: int = 0
    # People and companies in Nutshell now and after the run, and the plan's contact limit (None: not known)
    nutshell_after: dict[str, int | None] | None = None

    @property
    def blockers(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.BLOCKER]

    @property
    def ready(self) -> bool:
        return not self.blockers

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def notice(self, kind: str) -> Notice | None:
        return next((n for n in self.notices if n.kind == kind), None)

    def summary(self) -> dict[str, Any]:
        by_kind = Counter(p.kind for p in self.problems)
        return {
            "generated_at": self.generated_at,
            "map_version": self.map_version,
            "ready": self.ready,
            "patients": self.patients,
            "counts": self.counts,
            "blockers": len(self.blockers),
            "warnings": sum(1 for p in self.problems if p.severity is Severity.WARNING),
            "problems_by_kind": dict(sorted(by_kind.items())),
            "notices": {n.kind: n.count for n in self.notices},
            "nutshell_after": self.nutshell_after,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "problems": [
                {
                    "kind": p.kind,
                    "severity": p.severity.value,
                    "object": p.object,
                    "id": p.id,
                    "detail": p.detail,
                    "action": p.action,
                    "personal": dict(p.personal),
                }
                for p in self.problems
            ],
            "notices": [
                {"kind": n.kind, "object": n.object, "detail": n.detail, "ids": list(n.ids)} for n in self.notices
            ],
            "limitations": [{"id": lim.id, "title": lim.title, "text": lim.text} for lim in self.limitations],
        }


def nutshell_after_text(after: dict[str, Any] | None) -> str | None:
    """One sentence: how many people and companies Nutshell will hold after the run (and the plan's limit)."""
    if not after:
        return None

    def now(key: str) -> str:
        return "unknown" if after.get(key) is None else str(after[key])

    text = (
        f"Nutshell after the run: {after['people']} people and {after['companies']} companies "
        f"({now('people_now')} and {now('companies_now')} there now)"
    )
    if after.get("contact_limit"):
        text += f"; your plan's contact limit: {after['contact_limit']}"
    return text


class _Collector:
    def __init__(self, ctx: Context, snapshot: NutshellSnapshot) -> None:
        self.ctx = ctx
        self.snapshot = snapshot
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.problems: list[Problem] = []
        self.notes: dict[str, list[str]] = defaultdict(list)
        self.emails: dict[str, list[tuple[str, str]]] = defaultdict(list)  # e-mail -> (patient id, survivor)
        self.email_shown: dict[str, str] = {}
        self.user_refs: Counter[str] = Counter()  # practitioner id -> records it would own
        self.patients = 0

    def problem(self, *args: Any, **kw: Any) -> None:
        self.problems.append(Problem(*args, **kw))

    # -- one patient ----------------------------------------------------------------------------------------------
    def patient(self, bundle: PatientBundle, outcomes: list[Outcome]) -> None:
        m = self.ctx.map
        p = bundle.patient
        self.patients += 1 + len(bundle.merged)
        head = outcomes[0]
        person_action = "create"
        email = (p.email or "").strip()
        if email and not is_valid_email(email):
            self.problem(
                "invalid_email",
                Severity.WARNING,
                "patients",
                p.id,
                "the patient's e-mail is not a valid address",
                "the person is created without an e-mail; the address is kept in its description; "
                "fix it in Cliniko and run a delta",
                {"email": email},
            )
        elif email:
            existing = self.snapshot.people_with_email(email)
            if existing and isinstance(head, Planned):
                policy = m.policies.existing_person
                action = {
                    ExistingPerson.LINK_AND_FILL_EMPTY: f"linked to Nutshell person {existing[0].id}; only its "
                    "empty fields are filled (the previous values are journaled)",
                    ExistingPerson.SKIP: f"not migrated: Nutshell person {existing[0].id} is left as it is",
                    ExistingPerson.CREATE: "a second person is created beside the existing one",
                }[policy]
                person_action = {"link-and-fill-empty": "link", "skip": "skip", "create": "create"}[policy.value]
                extra = f" ({len(existing)} people)" if len(existing) > 1 else ""
                self.problem(
                    "existing_person",
                    Severity.WARNING,
                    "patients",
                    p.id,
                    f"a person with this e-mail is already in Nutshell{extra}",
                    action,
                    {"email": email, "nutshell_ids": ", ".join(e.id for e in existing)},
                )
        self.notes["no_email"].extend(q.id for q in (p, *bundle.merged) if not (q.email or "").strip())
        if person_name(p) is None:
            self.problem(
                "no_usable_name",
                Severity.WARNING,
                "patients",
                p.id,
                "the patient has neither a first nor a last name",
                f"the person is named 'Cliniko patient {p.id}'; correct it in Cliniko and run a delta",
            )
        elif not (p.first_name or "").strip():
            self.notes["missing_first_name"].append(p.id)
        for q in (p, *bundle.merged):
            full = " ".join(x for x in (q.first_name, q.last_name, q.preferred_first_name) if x)
            if any(ord(c) > 127 for c in full):
                self.notes["non_ascii_name"].append(q.id)
            if any(unicodedata.bidirectional(c) in _RTL for c in full):
                self.notes["rtl_name"].append(q.id)
        for q in (p, *bundle.merged):
            if q.email and is_valid_email(q.email):
                self.emails[normalize_email(q.email)].append((q.id, p.id))
                self.email_shown.setdefault(normalize_email(q.email), q.email.strip())
        if p.is_archived:
            self.notes["archived_patient"].append(p.id)
        for merged in bundle.merged:
            self.notes["merged_patient"].append(merged.id)
        for q in (p, *bundle.merged):
            if len(q.notes or "") > LONG_TEXT or len(q.appointment_notes or "") > LONG_TEXT:
                self.notes["long_text"].append(q.id)
        self._records(bundle)
        for o in outcomes:
            action = person_action if o is head and isinstance(o, Planned) else None
            self.outcome(o, action)
        if person_action == "skip":
            for o in outcomes[1:]:
                if isinstance(o, Planned):
                    self.counts[o.kind]["create"] -= 1
                    self.counts[o.kind]["skip"] += 1

    def _records(self, bundle: PatientBundle) -> None:
        now = self.ctx.catalog.reference_time
        m = self.ctx.map
        for a in bundle.appointments:
            if a.is_archived:
                self.notes["archived_appointment"].append(a.id)
            status = appointment_status(a, now)
            if a.starts_at is not None and aware(a.starts_at) > now:
                self.notes["future_appointment"].append(a.id)
            if status is AppointmentStatus.CANCELLED:
                self.notes["cancelled_appointment"].append(a.id)
            elif status is AppointmentStatus.NO_SHOW:
                self.notes["no_show"].append(a.id)
        for att in bundle.attendees:
            group = self.ctx.catalog.group_appointments.get(att.booking.id or "") if att.booking else None
            if group is None:
                continue
            self.notes["group_session"].append(group.id)
            if attendance_status(att, group.starts_at, now) is AppointmentStatus.CANCELLED:
                self.notes["cancelled_attendance"].append(att.id)
        for n in bundle.treatment_notes:
            if n.draft and not n.is_archived:
                self.notes["draft_treatment_note"].append(n.id)
            text_size = sum(len(q.answer or "") for s in (n.content.sections if n.content else []) for q in s.questions)
            if text_size > LONG_TEXT:
                self.notes["long_text"].append(n.id)
        limit = self.snapshot.file_size_limit
        for att in bundle.attachments:
            if att.is_archived:
                continue
            size = bundle.files[att.id].size if att.id in bundle.files else (att.size or 0)
            if att.processing_completed is False:
                self.problem(
                    "attachment_not_ready",
                    Severity.WARNING,
                    "patient_attachments",
                    att.id,
                    "Cliniko had not finished processing this upload",
                    "skipped; re-extract after Cliniko finishes processing it",
                )
            elif limit is not None and size > limit:
                self.problem(
                    "file_too_large",
                    Severity.WARNING,
                    "patient_attachments",
                    att.id,
                    f"{size} bytes, over Nutshell's limit of {limit} bytes",
                    "skipped: the file stays in Cliniko; download it there if it is needed",
                )
            elif att.id not in bundle.files and m.object("patient_attachments") is not None:
                self.problem(
                    "file_not_downloaded",
                    Severity.WARNING,
                    "patient_attachments",
                    att.id,
                    "the file was not downloaded by the extraction",
                    "re-run the extraction",
                )
            elif size >= LARGE_FILE:
                self.notes["large_file"].append(att.id)
        for obj, ids in bundle.invalid:
            self.problem(
                "invalid_record",
                Severity.WARNING,
                obj,
                ids,
                "the record does not match the Cliniko schema",
                "skipped; reported for inspection",
            )

    def outcome(self, o: Outcome, action: str | None = None) -> None:
        if isinstance(o, Planned):
            self.counts[o.kind][action or "create"] += 1
            for ref in refs_in(o.payload):
                if ref.kind == USER:
                    self.user_refs[ref.cliniko_id] += 1
        else:
            self.counts[o.kind]["skip" if isinstance(o.why, Skip) else "unmappable"] += 1

    # -- the rest ---------------------------------------------------------------------------------------------------
    def duplicates(self) -> None:
        for key, pairs in self.emails.items():
            if len(pairs) < 2:
                continue
            survivors = {s for _, s in pairs}
            if len(survivors) == 1:
                # A patient merged into another with the same e-mail: one person, nothing to decide.
                self.notes["merged_same_email"].extend(pid for pid, _ in pairs)
                continue
            for pid, survivor in pairs:
                merged = f" (merged into {survivor})" if pid != survivor else ""
                self.problem(
                    "duplicate_email",
                    Severity.WARNING,
                    "patients",
                    pid,
                    f"{len(survivors)} people would share this e-mail{merged}",
                    "each becomes its own person with the same e-mail; merge them in Cliniko first "
                    "if they are one person",
                    {"email": self.email_shown[key]},
                )

    def practitioners(self) -> None:
        m = self.ctx.map
        cat = self.ctx.catalog
        for pid, prac in sorted(cat.practitioners.items()):
            label = cat.practitioner_name(pid) or pid
            if prac.active is False:
                self.notes["inactive_practitioner"].append(pid)
            choice = m.practitioners.get(pid)
            owned = self.user_refs.get(pid, 0)
            if choice is not None and choice.decision is PractitionerDecision.MATCHED:
                if choice.method != "email":
                    self.notes["practitioner_matched_by_name"].append(pid)
                continue
            if choice is not None and choice.decision is PractitionerDecision.FALLBACK and m.fallback_owner:
                self.notes["practitioner_fallback"].append(pid)
                continue
            user = cat.users.get(prac.user.id or "") if prac.user else None
            info = PractitionerInfo(
                pid,
                prac.first_name,
                prac.last_name,
                prac.title,
                prac.display_name,
                prac.label,
                user.email if user else None,
                prac.active is not False,
            )
            top = match_practitioner(info, self.snapshot.users).top
            hint = f"; best suggestion {top.user_id} ({top.score:.0f}: {top.reason})" if top else "; no similar user"
            self.problem(
                "practitioner_unresolved",
                Severity.BLOCKER if owned else Severity.WARNING,
                "practitioners",
                pid,
                f"'{label}' has no Nutshell user yet and would own {owned} records{hint}",
                "accept a suggestion, pick a user, send to the fallback owner, or invite them to Nutshell",
            )

    def custom_fields(self) -> None:
        m = self.ctx.map
        used: dict[str, str] = {}
        for obj in m.objects.values():
            if obj.enabled:
                for r in obj.rules():
                    if r.custom_field:
                        used[r.custom_field] = obj.target
        for d in m.custom_field_decisions.values():
            if d.action is not CustomFieldAction.SKIP and d.target:
                used[d.target] = "person"
        missing = 0
        for name in sorted(used):
            entity = "Accounts" if used[name] == "company" else "Contacts"
            spec = m.custom_field(name)
            have = self.snapshot.custom_field(name, entity)
            if have is None:
                missing += 1
                wanted = spec.type if spec else "Text"
                self.problem(
                    "custom_field_missing",
                    Severity.BLOCKER,
                    "nutshell",
                    name,
                    f"the {entity} custom field '{name}' ({wanted}) does not exist in Nutshell",
                    "create it from the Map step (custom fields cannot be deleted through the API later)",
                )
            elif spec is not None and have.type != spec.type:
                self.problem(
                    "custom_field_wrong_type",
                    Severity.BLOCKER,
                    "nutshell",
                    name,
                    f"'{name}' exists in Nutshell as {have.type}; the map needs {spec.type}",
                    "decide in the map: write into the existing field where its type holds the values, create a "
                    "field under another name, or skip it (`map --accept-suggestions` takes the proposal)",
                )
            elif (
                spec is not None and spec.type == "Decision" and (lack := sorted(set(spec.choices) - set(have.choices)))
            ):
                self.problem(
                    "custom_field_choices",
                    Severity.WARNING,
                    "nutshell",
                    name,
                    f"{len(lack)} choice(s) of '{name}' are missing in Nutshell",
                    "add the choices in Nutshell, or adjust the service-type value map",
                )
        cap = self.snapshot.custom_field_cap
        existing = len(self.snapshot.custom_fields.get("Contacts", []))
        if cap is not None and existing + missing > cap:
            self.problem(
                "custom_field_cap",
                Severity.BLOCKER,
                "nutshell",
                "Contacts",
                f"{missing} more custom field(s) would exceed the plan's cap of {cap} ({existing} exist)",
                "switch some fields off in the map, or map them into description lines",
            )

    def contacts(self) -> dict[str, int | None] | None:
        """How many people and companies Nutshell will hold after the run; beyond the plan's contact limit (when
        the user recorded one) it is a blocker. Unconfirmed: whether a plan's contact limit counts companies too;
        we count people and companies, the safer reading (a run stopped half-way by the limit is worse than a
        limit checked too strictly)."""
        snap = self.snapshot
        if snap.people_total is None and snap.companies_total is None and snap.contact_limit is None:
            return None
        created = {kind: c.get("create", 0) for kind, c in self.counts.items()}  # (reading must not add kinds)
        new_people = created.get("person", 0)
        new_companies = created.get("company", 0) + created.get("business_company", 0)
        people_now, companies_now = snap.people_total or 0, snap.companies_total or 0
        after = {
            "people_now": snap.people_total,
            "companies_now": snap.companies_total,
            "people": people_now + new_people,
            "companies": companies_now + new_companies,
            "contact_limit": snap.contact_limit,
        }
        total = people_now + new_people + companies_now + new_companies
        if snap.contact_limit is not None and total > snap.contact_limit:
            unknown = (
                " (Nutshell did not say how many it holds now: counted as none)" if snap.people_total is None else ""
            )
            self.problem(
                "contact_limit",
                Severity.BLOCKER,
                "nutshell",
                "contacts",
                f"Nutshell would hold {total} contacts after the run ({people_now + new_people} people, "
                f"{companies_now + new_companies} companies), over your plan's limit of {snap.contact_limit}{unknown}",
                "raise the limit of your Nutshell plan (then `connect --contact-limit N`), or migrate fewer records "
                "(archived patients or third-party companies can be switched off in the map)",
            )
        return after

    def activity_types(self) -> None:
        for name in unknown_activity_types(self.ctx.map.value_maps, self.snapshot.activity_type_names):
            self.problem(
                "activity_type_missing",
                Severity.BLOCKER,
                "nutshell",
                name,
                f"the map uses the activity type '{name}', which Nutshell does not have",
                "pick an existing activity type in the value maps (the API cannot create them)",
            )

    def decisions(self) -> None:
        for d in open_decisions(self.ctx.map, self.ctx.catalog):
            if d.kind == "currency":
                self.problem(
                    "currency_unknown",
                    Severity.BLOCKER,
                    "map",
                    "currency",
                    "the map writes amounts but names no currency (the Cliniko account's country gives none)",
                    "choose it: `map --currency AUD` (or NZD, GBP, USD, EUR...)",
                )
            if d.kind == "custom_field":
                self.problem(
                    "open_decision",
                    Severity.BLOCKER,
                    "map",
                    d.id,
                    f"custom field '{d.label}' has no confirmed decision (proposed: {d.proposal})",
                    "map it, create a new field, or skip it",
                )


def _notice_details(m: MigrationMap) -> dict[str, tuple[str, str]]:
    vm = m.value_maps

    def how(status: AppointmentStatus) -> str:
        rule = vm.status_rule(status)
        return {
            StatusRecording.LOGGED: "logged activities",
            StatusRecording.LABELLED: f"logged activities named '{rule.label}: ...'",
            StatusRecording.SCHEDULED: "scheduled activities",
            StatusRecording.SKIP: "not migrated",
        }[rule.record]

    future = (
        how(AppointmentStatus.FUTURE)
        if m.policies.future_appointments
        else ("not migrated (scheduled activities are off in the map)")
    )
    return {
        "archived_patient": (
            "patients",
            "archived in Cliniko: "
            + ("migrated like the others" if m.policies.archived_patients else "not migrated (policy)"),
        ),
        "merged_patient": ("patients", "merged into another patient in Cliniko: their history goes to the survivor"),
        "merged_same_email": ("patients", "a merged patient and its survivor share an e-mail: one person"),
        "non_ascii_name": ("patients", "names with accents or non-Latin scripts: kept exactly as written"),
        "rtl_name": ("patients", "right-to-left names (Arabic, Hebrew): kept as written; check them in the sample"),
        "missing_first_name": ("patients", "no first name: the person is named by the last name alone"),
        "no_email": ("patients", "no e-mail: cannot be matched to an existing Nutshell person by e-mail"),
        "long_text": (
            "patients/treatment_notes",
            f"notes longer than {LONG_TEXT} characters: sent whole; the sample shows whether Nutshell keeps them whole",
        ),
        "large_file": (
            "patient_attachments",
            f"files of {LARGE_FILE // 2**20} MB or more: under the limit, slow to upload",
        ),
        "archived_appointment": (
            "individual_appointments",
            "archived (deleted) in Cliniko: " + ("migrated" if m.policies.archived_appointments else "not migrated"),
        ),
        "cancelled_appointment": ("individual_appointments", "cancelled: " + how(AppointmentStatus.CANCELLED)),
        "no_show": ("individual_appointments", "did not arrive: " + how(AppointmentStatus.NO_SHOW)),
        "future_appointment": ("individual_appointments", "in the future: " + future),
        "group_session": ("group_appointments", "group sessions: one activity per attendee"),
        "cancelled_attendance": ("attendees", "cancelled group attendance: " + how(AppointmentStatus.CANCELLED)),
        "draft_treatment_note": (
            "treatment_notes",
            "drafts: "
            + (
                "migrated" if m.policies.draft_treatment_notes else "not migrated (drafts move only if the map says so)"
            ),
        ),
        "archived_contact": ("contacts", "archived third-party contacts: migrated, marked 'Archived in Cliniko'"),
        "inactive_practitioner": ("practitioners", "inactive practitioners: their history still needs an owner"),
        "practitioner_matched_by_name": (
            "practitioners",
            "matched to a user by name (their e-mails differ): accepted by the user",
        ),
        "practitioner_fallback": ("practitioners", "their records go to the fallback owner"),
    }


def preflight(
    store: Store,
    mapping: MigrationMap,
    snapshot: NutshellSnapshot,
    *,
    reference_time: datetime | None = None,
    catalog: Catalog | None = None,
) -> PreflightReport:
    store.ensure_statistics()
    catalog = catalog or Catalog.from_store(store, reference_time)
    ctx = Context(map=mapping, catalog=catalog, file_size_limit=snapshot.file_size_limit)
    col = _Collector(ctx, snapshot)
    for item in iter_bundles(store, catalog):
        if isinstance(item, tuple):
            col.problem(
                "invalid_record",
                Severity.WARNING,
                item[0],
                item[1],
                "the record does not match the Cliniko schema",
                "skipped; reported for inspection",
            )
            continue
        col.patient(item, plan_patient(item, ctx))
    for o in plan_companies(ctx):
        col.outcome(o)
    for cid, contact in sorted(catalog.contacts.items()):
        if contact.is_archived:
            col.notes["archived_contact"].append(cid)
    for obj, bad in catalog.invalid.items():
        for rid in bad:
            col.problem(
                "invalid_record",
                Severity.WARNING,
                obj,
                rid,
                "the record does not match the Cliniko schema",
                "left out; reported for inspection",
            )
    col.duplicates()
    col.practitioners()
    col.custom_fields()
    col.activity_types()
    col.decisions()
    after = col.contacts()

    details = _notice_details(mapping)
    notices = [
        Notice(kind, details[kind][0], details[kind][1], tuple(dict.fromkeys(ids)))
        for kind, ids in col.notes.items()
        if ids
    ]
    notices.sort(key=lambda n: list(details).index(n.kind))
    order = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}
    problems = sorted(col.problems, key=lambda p: (order[p.severity], p.kind, p.object, p.id))
    counts = {
        kind: {k: v for k, v in sorted(c.items()) if v}
        for kind, c in sorted(col.counts.items(), key=lambda kv: list(KINDS).index(kv[0]))
    }
    return PreflightReport(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        map_version=mapping.version,
        counts=counts,
        problems=problems,
        notices=notices,
        limitations=list(LIMITATIONS),
        patients=col.patients,
        nutshell_after=after,
    )
