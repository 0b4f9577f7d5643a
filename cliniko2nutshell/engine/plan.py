"""What to write, in dependency order: the store's records through the map's transforms, as engine Ops.

The mapping layer's transforms (mapping/transforms.py) are pure; this module feeds them from the store and turns
their outcomes into Ops: practitioners become user ids and activity types their Nutshell ids here (both known
before the run, so they are part of the payload hash), references to records the run writes become RecordRefs
(resolved through the id map when the op runs), notes and files get the engine's shape.

Each phase walks the patients again rather than holding every payload in memory: a large clinic's treatment
notes alone would not fit. Scoped plans (a sample, a delta) are small and are built once.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from cliniko2nutshell.cliniko.models import Patient, TreatmentNote
from cliniko2nutshell.engine.destination import FileSpec
from cliniko2nutshell.engine.journal import Journal
from cliniko2nutshell.engine.ops import OBJECTS, Op, Phase, RecordRef, phase_of
from cliniko2nutshell.mapping.catalog import (
    Catalog,
    PatientBundle,
    invalid_fields,
    iter_bundles,
    load_bundle,
    parse_or_none,
)
from cliniko2nutshell.mapping.documents import ensure_rendered
from cliniko2nutshell.mapping.model import MigrationMap
from cliniko2nutshell.mapping.outputs import USER, Context, NutshellName, Outcome, Planned, Ref, Skipped, Unmappable
from cliniko2nutshell.mapping.transforms import plan_companies, plan_patient
from cliniko2nutshell.project.folder import Project
from cliniko2nutshell.project.private import file_sha256

log = logging.getLogger(__name__)

# Store object -> the engine object its records mostly become (for totals estimated from counts).
_ESTIMATES = {
    "person": "patients",
    "company": "contacts",
    "appointment": "individual_appointments",
    "attendance": "attendees",
    "communication": "communications",
    "medical_alert": "medical_alerts",
    "treatment_note": "treatment_notes",
    "treatment_note_activity": "treatment_notes",
    "treatment_note_file": "treatment_notes",
    "attachment_activity": "patient_attachments",
    "attachment_file": "patient_attachments",
}


_LATER = (Phase.ACTIVITIES, Phase.NOTES, Phase.FILES)


class PlanError(ValueError):
    """The plan cannot be built (e.g. an activity type the map names does not exist in Nutshell)."""


@dataclass(frozen=True, slots=True)
class PlanScope:
    """Which records a plan covers. `patients`: surviving patient ids (None: all); `companies`: contact ids
    beyond those the scoped patients link to."""

    patients: frozenset[str] | None = None
    companies: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return self.patients is None


class Plan:
    """The PlanSource of sample, full, delta and retry runs."""

    def __init__(
        self,
        project: Project,
        mapping: MigrationMap,
        activity_types: dict[str, str],
        *,
        journal: Journal | None = None,
        scope: PlanScope | None = None,
        file_size_limit: int | None = None,
        reference_time: datetime | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.project = project
        self.store = project.store
        self.mapping = mapping
        self.activity_types = activity_types
        self.journal = journal
        self.scope = scope or PlanScope()
        self.store.ensure_statistics()
        self.catalog = catalog or Catalog.from_store(self.store, reference_time)
        self.ctx = Context(mapping, self.catalog, file_size_limit)
        self._cached: list[Op] | None = None
        # Ops of the phases after people, written during the people phase's walk (anonymous files in the
        # project folder: they hold patient data).
        self._spools: dict[Phase, IO[bytes]] | None = None

    # -- PlanSource ----------------------------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        if not self.scope.everything:
            out: dict[str, int] = {}
            for op in self._scoped():
                out[op.object] = out.get(op.object, 0) + 1
            return out
        counts = self.store.count_records()
        merged = len(self.catalog.merged_into)
        out = {obj: counts.get(src, 0) for obj, src in _ESTIMATES.items()}
        out["person"] = max(0, out["person"] - merged)
        # Attendee rows of individual appointments move with the appointment: only group ones count.
        out["attendance"] = self.store.conn.execute(
            "SELECT COUNT(*) FROM cliniko_records a JOIN cliniko_records g ON g.object = 'group_appointments' "
            "AND g.id = a.booking_id WHERE a.object = 'attendees'"
        ).fetchone()[0]
        return {k: v for k, v in out.items() if v}

    def ops(self, phase: Phase) -> Iterator[Op]:
        if not self.scope.everything:
            yield from (op for op in self._scoped() if op.phase is phase and op.retire is None)
            if phase is Phase.FILES:
                yield from (op for op in self._scoped() if op.retire is not None)
            return
        if phase is Phase.COMPANIES:
            yield from self._company_ops(None)
            return
        if phase is Phase.PEOPLE or self._spools is None:
            # One walk over the patients: people go to the run now, the later phases' ops to spools.
            self._close_spools()
            spools = {ph: tempfile.TemporaryFile(dir=self.project.files_dir) for ph in _LATER}  # noqa: SIM115
            for bundle in self._bundles(None):
                for outcome in self._patient_outcomes(bundle):
                    op = self.op(outcome)
                    if op.phase is Phase.PEOPLE:
                        if phase is Phase.PEOPLE:
                            yield op
                    else:
                        pickle.dump(op, spools[op.phase], protocol=pickle.HIGHEST_PROTOCOL)
            for op in self._retirements(None):
                pickle.dump(op, spools[Phase.FILES], protocol=pickle.HIGHEST_PROTOCOL)
            self._spools = spools
            if phase is Phase.PEOPLE:
                return
        spool = self._spools.pop(phase)
        try:
            spool.seek(0)
            while True:
                try:
                    yield pickle.load(spool)
                except EOFError:
                    break
        finally:
            spool.close()

    def person_emails(self) -> set[str]:
        """E-mails of the patients whose person is not in Nutshell yet (raw, as Cliniko holds them: a superset of
        what the people ops carry, which the runner compares normalised)."""
        if not self.scope.everything:
            return {op.email for op in self._scoped() if op.object == "person" and op.email and not self._mapped(op)}
        rows = self.store.conn.execute(
            "SELECT DISTINCT json_extract(raw, '$.email') FROM cliniko_records WHERE object = 'patients' "
            "AND id NOT IN (SELECT source_id FROM id_map WHERE object = 'person')"
        )
        return {r[0] for r in rows if isinstance(r[0], str) and r[0].strip()}

    def _mapped(self, op: Op) -> bool:
        return self.journal is not None and self.journal.mapped(*op.key) is not None

    def _close_spools(self) -> None:
        for spool in (self._spools or {}).values():
            spool.close()
        self._spools = None

    # -- building ------------------------------------------------------------------------------------------
    def _scoped(self) -> list[Op]:
        """A scoped plan, built once: its companies are those its people link to, plus any named."""
        if self._cached is None:
            patient_ops = [self.op(o) for b in self._bundles(self.scope.patients) for o in self._patient_outcomes(b)]
            linked = set(self.scope.companies)
            for op in patient_ops:
                if op.object == "person" and op.payload:
                    linked |= {r.source_id for r in _record_refs(op.payload) if r.object == "company"}
                    linked |= {r.source_id for r in _record_refs(op.payload) if r.object == "business_company"}
            self._cached = [*self._company_ops(linked), *patient_ops, *self._retirements(self.scope.patients)]
        return self._cached

    def _company_ops(self, only: set[str] | None) -> Iterator[Op]:
        for outcome in plan_companies(self.ctx):
            if only is None or outcome.cliniko_id in only:
                yield self.op(outcome)

    def _bundles(self, patients: Iterable[str] | None) -> Iterator[PatientBundle | Skipped]:
        """Each patient's bundle; a patient record that does not parse comes as its quarantine (the run then
        reports it in its quarantine and reconcile counts it, instead of it vanishing from the plan)."""
        if patients is None:
            for item in iter_bundles(self.store, self.catalog):
                if isinstance(item, PatientBundle):
                    yield item
                else:
                    log.warning("patient %s does not parse; quarantined", item[1])
                    yield self._unreadable(item[1])
            return
        merged_from = self.catalog.merged_from()
        for pid in sorted({self.catalog.survivor(p) for p in patients}):
            raw = self.store.get_record("patients", pid)
            patient = parse_or_none(Patient, raw) if raw is not None else None
            if patient is None:
                if raw is not None:
                    yield self._unreadable(pid)
                continue
            merged = []
            for m in merged_from.get(pid, []):
                mraw = self.store.get_record("patients", m)
                mp = parse_or_none(Patient, mraw) if mraw is not None else None
                if mp is not None:
                    merged.append(mp)
            yield load_bundle(self.store, patient, merged)

    def _patient_outcomes(self, bundle: PatientBundle | Skipped) -> list[Outcome]:
        return [bundle] if isinstance(bundle, Skipped) else plan_patient(bundle, self.ctx)

    def _unreadable(self, pid: str) -> Skipped:
        raw = self.store.get_record("patients", pid) or {}
        fields = ", ".join(invalid_fields(Patient, raw)) or "the record"
        reason = (f"Cliniko sent this patient with values the tool cannot read ({fields}); correct them in Cliniko, "
                  "then extract and run again")  # fmt: skip
        return Skipped("person", pid, Unmappable(reason), pid)

    def _retirements(self, patients: Iterable[str] | None) -> Iterator[Op]:
        """People we created for patients since merged into another: their history moved to the survivor.

        Unconfirmed what a clinic wants here; we choose to delete the merged patient's person (after its
        activities, notes and files moved: retire ops run last), since Cliniko itself says it is a duplicate.
        The delete goes to Nutshell's trash, is skipped and reported when someone edited that person in Nutshell,
        and a rollback of the delta takes it back out."""
        if self.journal is None:
            return
        wanted = set(patients) if patients is not None else None
        for loser, _ in sorted(self.catalog.merged_into.items()):
            survivor = self.catalog.survivor(loser)
            if wanted is not None and loser not in wanted and survivor not in wanted:
                continue
            if self.journal.mapped("person", loser) is not None:
                yield Op("person", loser, patient_id=loser, retire=f"merged into patient {survivor} in Cliniko")

    # -- one outcome -> one op -----------------------------------------------------------------------------
    def op(self, outcome: Outcome) -> Op:
        kind, cid, pid = outcome.kind, outcome.cliniko_id, outcome.patient_id
        if kind not in OBJECTS:
            raise PlanError(f"the mapping produced an unknown kind {kind!r}")
        if isinstance(outcome, Skipped):
            if isinstance(outcome.why, Unmappable):
                return Op(kind, cid, patient_id=pid, unmappable=outcome.why.reason)
            return Op(kind, cid, patient_id=pid, skip=outcome.why.reason)
        assert isinstance(outcome, Planned)
        try:
            payload = self._resolve(outcome.payload)
        except PlanError as exc:
            return Op(kind, cid, patient_id=pid, unmappable=str(exc))
        if kind.endswith("_file"):
            return self._file_op(outcome, payload)
        if phase_of(kind) is Phase.NOTES:
            links = payload.get("links") or {}
            parent = links.get("parent")
            body = {"body": payload.get("body", "")}
            if isinstance(parent, RecordRef):
                return Op(kind, cid, patient_id=pid, payload=body, parent=parent)
            return Op(kind, cid, patient_id=pid, unmappable="the note has no parent record")
        email = None
        if kind == "person":
            emails = payload.get("emails") or []
            email = next((e.get("value") for e in emails if isinstance(e, dict) and e.get("value")), None)
        return Op(kind, cid, patient_id=pid, payload=payload, email=email)

    def _file_op(self, outcome: Planned, payload: dict[str, Any]) -> Op:
        host = payload.get("activity")
        if not isinstance(host, RecordRef):
            return Op(outcome.kind, outcome.cliniko_id, patient_id=outcome.patient_id, unmappable="no activity")
        path = self.project.path / str(payload["path"])
        spec = FileSpec(
            path=Path(path),
            name=str(payload["filename"]),
            size=int(payload["size"]),
            sha256=str(payload["sha256"]),
            content_type=payload.get("content_type"),
        )
        return Op(outcome.kind, outcome.cliniko_id, patient_id=outcome.patient_id, file=spec, host=host)

    def _resolve(self, value: Any) -> Any:
        """Users and activity types to ids now (they exist before the run); records to RecordRefs."""
        if isinstance(value, Ref):
            if value.kind == USER:
                owner = self.mapping.owner_for(value.cliniko_id)
                return owner  # None (unresolved practitioner) drops the link; the run refuses to start on those
            return RecordRef(value.kind, value.cliniko_id)
        if isinstance(value, NutshellName):
            found = self.activity_types.get(value.name) or self.activity_types.get(value.name.casefold())
            if found is None:
                raise PlanError(f"the activity type {value.name!r} does not exist in Nutshell")
            return found
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                r = self._resolve(v)
                if r is not None or not isinstance(v, Ref):
                    out[k] = r
            return out
        if isinstance(value, list):
            items = [(self._resolve(v), v) for v in value]
            return [r for r, v in items if r is not None or not isinstance(v, Ref)]
        return value

    def prepare_file(self, op: Op) -> None:
        """Make sure the local file of a file op is there, as planned (size and sha256), before it is uploaded.
        Rendered treatment notes are written only now, for the ones actually sent (the plan itself writes
        nothing); downloads are checked against their sha256 (PlanError when they changed)."""
        spec = op.file
        if spec is None:
            return
        if spec.path.exists() and file_sha256(spec.path) == spec.sha256:
            return
        if op.object != "treatment_note_file":
            # A download is only sent as it arrived: a copy changed or damaged on disk since is not uploaded.
            state = "does not match the sha256 of its download" if spec.path.exists() else "is missing"
            raise PlanError(
                f"the downloaded copy of {op.object} {op.source_id} ({spec.path.relative_to(self.project.path)}) "
                f"{state}: run `extract` again to download it anew"
            )
        raw = self.store.get_record("treatment_notes", op.source_id)
        note = parse_or_none(TreatmentNote, raw) if raw is not None else None
        if note is None:
            raise PlanError(f"treatment note {op.source_id} is no longer in the store")
        ensure_rendered(self.project.path, note, self.ctx)

    def expected(self, object_: str, source_id: str) -> Op | None:
        """The op a record plans to (the sample diff's "expected"); scoped plans only."""
        return next((op for op in self._scoped() if op.key == (object_, source_id)), None)


def _record_refs(value: Any) -> list[RecordRef]:
    if isinstance(value, RecordRef):
        return [value]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _record_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _record_refs(v)]
    return []


def activity_type_ids(types: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Name -> id, also under the case-folded name (value maps are typed by people)."""
    out: dict[str, str] = {}
    for name, id_ in types:
        out.setdefault(name, id_)
        out.setdefault(name.casefold(), id_)
    return out
