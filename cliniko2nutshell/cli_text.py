"""The headless commands' plain output: short readable summaries, a table per object where there are counts.

JSON is for `--json` only; everything here is text for a person at a terminal (or reading a support ticket).
Ids and counts only: no patient names or e-mails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cliniko2nutshell.engine.estimate import duration_text, versus_actual
from cliniko2nutshell.mapping.preflight import Problem, nutshell_after_text

PLAN_COUNT_COLUMNS = ("create", "link", "skip", "unmappable")
RUN_COUNT_COLUMNS = ("created", "updated", "linked", "unchanged", "skipped", "failed", "conflicts", "deleted",
                     "restored")  # fmt: skip
RECONCILE_COLUMNS = ("planned", "skipped", "unmappable", "journal", "nutshell", "missing", "duplicates", "orphans",
                     "quarantined")  # fmt: skip


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Aligned columns: the first left-aligned, numbers right-aligned; None shows as '-'."""
    body = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str], numeric: Sequence[bool]) -> str:
        parts = [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    # a column is numeric (right-aligned, its header too) when every cell but the placeholder is a number
    numeric = [i > 0 and all(_is_number(r[i]) for r in body if r[i] != "-") for i in range(len(header))]
    return [line(header, numeric), *(line(r, numeric) for r in body)]


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).lstrip("-").isdigit()


def counts_table(counts: Mapping[str, Mapping[str, int]], columns: Sequence[str], first: str = "object") -> list[str]:
    """One row per object, the given columns (only those that are non-zero somewhere), and a total row."""
    shown = [c for c in columns if any(v.get(c) for v in counts.values())] or list(columns[:1])
    rows = [[name, *(values.get(c, 0) for c in shown)] for name, values in counts.items()]
    if len(rows) > 1:
        rows.append(["total", *(sum(values.get(c, 0) for values in counts.values()) for c in shown)])
    return table([first, *shown], rows)


# -- plan ---------------------------------------------------------------------------------------------------------


def format_plan(summary: Mapping[str, Any], blockers: Sequence[Problem] = ()) -> str:
    ready = summary.get("ready")
    head = f"Pre-flight for map version {summary.get('map_version')}: " + (
        "ready to run." if ready else f"NOT ready: {summary.get('blockers')} blocker(s) to resolve first."
    )
    lines = [head, f"Patients: {summary.get('patients', 0)}", "", "What the run will do:"]
    lines += counts_table(summary.get("counts") or {}, PLAN_COUNT_COLUMNS, "record")
    after = nutshell_after_text(summary.get("nutshell_after"))
    if after:
        lines += ["", after]
    lines += estimate_lines(summary.get("estimate"))
    if blockers:
        lines += ["", "Blockers:", *format_blocker_lines(blockers)]
    problems = summary.get("problems_by_kind") or {}
    if problems:
        lines += ["", "Problems found (see the report for each record):"]
        lines += table(["kind", "records"], sorted(problems.items()))
    notices = summary.get("notices") or {}
    if notices:
        lines += ["", "Handled as described in the report:"]
        lines += table(["notice", "records"], sorted(notices.items()))
    for f in summary.get("files", []):
        lines.append(f"Report: {f}")
    return "\n".join(lines)


def estimate_lines(est: Mapping[str, Any] | None) -> list[str]:
    """The expected duration of the run (engine/estimate.py's Estimate.as_dict), phase by phase."""
    if not est:
        return []
    phases = ", ".join(f"{name} {duration_text(s)}" for name, s in (est.get("phases") or {}).items() if s)
    inputs = est.get("inputs") or {}
    basis = f"{inputs.get('latency_ms', 0):.0f} ms a request" + (
        " (measured by `connect`)" if inputs.get("latency_measured") else " (assumed: run `connect` to measure it)"
    )
    return ["", f"Expected duration: {est.get('summary')}" + (f" ({phases})" if phases else ""),
            f"  from {basis}, {inputs.get('workers')} writes in flight"]  # fmt: skip


def duration_lines(summary: Any) -> list[str]:
    """Each phase's expected and actual duration (a RunSummary with its estimate)."""
    expected = getattr(summary, "estimate", None)  # a rollback's summary has none
    rows = versus_actual(expected, getattr(summary, "phase_seconds", {}))
    if not expected or not rows:
        return []
    lines = [f"Expected {expected.get('summary')}; took {duration_text(summary.elapsed_seconds)}:"]
    for name, expected, actual in rows:
        lines.append(
            f"  {name:<11} expected {duration_text(expected) if expected else '-':>9}  took {duration_text(actual):>9}"
        )
    return lines


def format_blocker_lines(blockers: Sequence[Problem]) -> list[str]:
    """Each blocker and what to do about it (ids and counts; never patient data)."""
    out = []
    for b in blockers:
        out.append(f"  - [{b.kind}] {b.detail}")
        out.append(f"    what to do: {b.action}")
    return out


def format_refusal(command: str, blockers: Sequence[Problem]) -> str:
    lines = [f"{command} refused: the pre-flight found {len(blockers)} blocker(s). Nothing was written."]
    lines += format_blocker_lines(blockers)
    lines.append("Resolve them (`cliniko2nutshell map`, `fields --create`), check with `plan`, then run this again.")
    return "\n".join(lines)


# -- runs ---------------------------------------------------------------------------------------------------------


def format_run(summary: Any, extra: Sequence[str] = ()) -> str:
    """A run's summary (engine.counts.RunSummary): what happened per object, then the outcome."""
    counts = {name: {k: v for k, v in c.as_dict().items() if k != "done"} for name, c in sorted(summary.counts.items())}
    lines = [f"Run {summary.run_id} ({summary.kind}): {summary.status.value} in {summary.elapsed_seconds:.1f} s"]
    lines += counts_table(counts, RUN_COUNT_COLUMNS, "record") if counts else ["  nothing to do"]
    if summary.quarantined:
        lines.append(f"Quarantined: {summary.quarantined} record(s); `reconcile` lists them with their reasons")
    if summary.conflicts:
        lines.append(f"Conflicts (edited in Nutshell since we wrote them): {summary.conflicts}")
    if summary.recovered:
        lines.append(f"Settled by looking in Nutshell after an unknown outcome: {summary.recovered}")
    if summary.message:
        lines.append(summary.message)
    lines += duration_lines(summary)
    lines += list(extra)
    lines += [f"Report: {p}" for p in summary.reports]
    return "\n".join(lines)


def format_reconcile(rec: Any, reports: Sequence[str]) -> str:
    """engine.reconcile.Reconciliation: one row per object, then what is missing, duplicated or failed."""
    head = "Reconciliation: balanced." if rec.balanced else "Reconciliation: NOT balanced (see the rows below)."
    rows = {name: {c: getattr(line, c) for c in RECONCILE_COLUMNS} for name, line in sorted(rec.lines.items())}
    lines = [head, *counts_table(rows, RECONCILE_COLUMNS, "record")]
    lines.append("  planned: what Cliniko has to move; journal: what we wrote; nutshell: what Nutshell holds")
    for obj, source_id, nutshell_id in rec.missing[:20]:
        lines.append(f"Missing in Nutshell: {obj} {source_id} (was {nutshell_id})")
    for obj, source_id, ids in rec.duplicates[:20]:
        lines.append(f"Duplicated in Nutshell: {obj} {source_id} -> {', '.join(ids)}")
    for obj, source_id, nutshell_id in rec.orphans[:20]:
        lines.append(f"Ours but unknown to the journal: {obj} {source_id} -> {nutshell_id}")
    more = sum(max(0, len(x) - 20) for x in (rec.missing, rec.duplicates, rec.orphans))
    if more:
        lines.append(f"... and {more} more in the report")
    if rec.quarantine:
        lines.append(f"Failed records: {len(rec.quarantine)} (reasons in the report; `run --retry-failed` retries)")
        by_reason: dict[tuple[str, str], int] = {}
        for q in rec.quarantine:
            by_reason[(q.object, q.category)] = by_reason.get((q.object, q.category), 0) + 1
        lines += table(["record", "category", "count"], [[o, c, n] for (o, c), n in sorted(by_reason.items())])
    lines += [f"Report: {p}" for p in reports]
    return "\n".join(lines)


def format_rollback_preview(preview: Any, force: bool) -> str:
    lines = [f"Rollback preview ({preview.scope.describe()}):"]
    counts = preview.counts()
    steps = sorted({k for v in counts.values() for k in v})
    lines += counts_table(dict(sorted(counts.items())), steps, "record") if counts else ["  nothing to undo"]
    for line in preview.cannot_undo:
        lines.append(f"  left in place: {line}")
    if preview.edited_since and not force:
        lines.append(f"  {len(preview.edited_since)} record(s) edited in Nutshell since we wrote them are skipped.")
    return "\n".join(lines)


def format_status(data: Mapping[str, Any]) -> str:
    lines = ["Runs:"]
    if data["runs"]:
        lines += table(
            ["run", "kind", "status", "outcome", "map", "started"],
            [[r["id"], r["kind"], r["status"], r["outcome"], f"v{r['map_version']}", r["started_at"]]
             for r in data["runs"]],
        )  # fmt: skip
    else:
        lines.append("  none yet")
    source, mapped = data["source"], data["mapped"]
    lines += ["", "Extracted from Cliniko:"]
    lines += table(["object", "records"], sorted(source.items())) if source else ["  nothing yet"]
    lines += ["", "In Nutshell (per the journal):"]
    lines += table(["record", "count"], sorted(mapped.items())) if mapped else ["  nothing yet"]
    lines.append("")
    lines.append(
        f"Quarantined: {data['quarantined']}; outcome unknown (settled at the next run): {data['open_operations']}; "
        f"resumable runs: {', '.join(map(str, data['resumable'])) or 'none'}"
    )
    return "\n".join(lines)


def format_projects(summaries: Sequence[Any], root: Any) -> str:
    """journey.ProjectSummary rows: the clinic, the last step reached, the last run's outcome."""
    if not summaries:
        return f"No projects under {root} yet: `cliniko2nutshell init NAME` creates one."
    rows = []
    for s in summaries:
        step = f"{s.last_step.number}. {s.last_step.title}" if s.last_step else "-"
        rows.append([s.name, s.clinic or "-", step, s.interrupted or s.last_run or "-", str(s.path)])
    lines = table(["project", "clinic", "last step", "last run", "folder"], rows, indent="")
    lines += [f"{s.name}: {s.problem}" for s in summaries if s.problem]
    return "\n".join(lines)
