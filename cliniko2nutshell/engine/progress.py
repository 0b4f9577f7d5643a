"""Headless rendering of run events: a bar per object on a terminal, plain lines otherwise.

The CLI's consumer of engine/events.py (the wizard's dashboard is the other). Ids, counts and Nutshell's
messages only; never record contents. Extraction events (a delta extracts first) are shown as one line each.
"""

from __future__ import annotations

from cliniko2nutshell.cliniko.events import ObjectFinished as ExtractedObject
from cliniko2nutshell.console import ProgressSink
from cliniko2nutshell.engine.events import (
    Budgets,
    ConflictFound,
    ObjectProgress,
    PhaseStarted,
    RecordFailed,
    Recovered,
    RunFinished,
    RunPaused,
    RunStarted,
    Throughput,
)
from cliniko2nutshell.events import Event


class RunProgress(ProgressSink):
    """Run events as bars and lines."""

    _budget = ""

    def __call__(self, event: Event) -> None:
        match event:
            case RunStarted(run_id=run_id, kind=kind, map_version=version):
                self._say(f"Run {run_id} ({kind}) started with map version {version}.")
            case PhaseStarted(phase=phase, total=total):
                self._say(f"{phase}: {total} records")
            case ObjectProgress(object=name, done=done, total=total, failed=failed):
                if self.live:
                    note = (f"{failed} failed  " if failed else "") + self._budget
                    self._progress.update(self._task(name, total), completed=done, total=total, note=note)
            case Throughput(ops_per_second=rate, done=done, total=total, eta_seconds=eta):
                if not self.live and total and done % 500 == 0:
                    left = f", about {round(eta)} s left" if eta is not None else ""
                    self._say(f"  {done}/{total} records, {rate:.1f}/s{left}")
            case Budgets(nutshell_concurrency=conc, nutshell_throttled=throttled):
                self._budget = f"Nutshell concurrency {conc}" + (f", {throttled} throttled" if throttled else "")
            case RecordFailed(object=obj, source_id=sid, category=category, reason=reason):
                self._say(f"  quarantined {obj} {sid} ({category}): {reason}")
            case ConflictFound(object=obj, source_id=sid, nutshell_id=nid, decision=decision, fields=fields):
                what = f" ({', '.join(fields)})" if fields else ""
                self._say(f"  conflict: {obj} {sid} -> {nid} edited in Nutshell since we wrote it{what}: {decision}")
            case Recovered(object=obj, source_id=sid, found=found):
                self._say(f"  settled an unknown outcome: {obj} {sid} {'found in Nutshell' if found else 'not sent'}")
            case RunPaused(run_id=run_id, reason=reason):
                self._say(f"Run {run_id} paused: {reason}")
            case RunFinished(run_id=run_id, outcome=outcome, status=status, elapsed_seconds=elapsed):
                self._say(f"Run {run_id} {status} ({outcome}) in {elapsed:.1f} s.")
            case ExtractedObject(object=name, records=records):
                self._say(f"extracted {name}: {records} records")
            case _:
                pass
