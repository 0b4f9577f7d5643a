"""The report of a migration run (full, retry, delta, sample): counts per object, duration, the failures with their
reasons, and what to do next. CSV and a self-contained HTML page under reports/, ids and reasons only."""

from __future__ import annotations

import html
from pathlib import Path

from cliniko2nutshell.engine.counts import RunSummary
from cliniko2nutshell.engine.estimate import duration_text, versus_actual
from cliniko2nutshell.engine.journal import Journal, Outcome, RunStatus
from cliniko2nutshell.mapping.report_writers import html_page, html_table, timestamp, write_csv
from cliniko2nutshell.project.private import make_private_dir, write_private_text

COUNT_FIELDS = ("planned", "created", "updated", "linked", "unchanged", "skipped", "failed", "conflicts")


def next_steps(summary: RunSummary) -> list[str]:
    """What the user does after this run, in plain words."""
    if summary.status is not RunStatus.FINISHED:
        return ["Resume the run: it carries on where it stopped, nothing is sent twice."]
    out = []
    if summary.quarantined:
        out.append(
            f"{summary.quarantined} record(s) could not be migrated: read their reasons, fix the data in Cliniko "
            "(then extract the changes) or the map, and retry the failed records."
        )
    if summary.conflicts:
        out.append(f"{summary.conflicts} record(s) edited in Nutshell since we wrote them were left as they are.")
    if summary.kind in ("full", "retry", "delta"):
        out.append("Reconcile: compare what Cliniko had with what Nutshell holds now.")
    if summary.kind == "full":
        out.append("At cutover, pick up Cliniko's latest changes with a delta.")
    return out or ["Nothing to do."]


def counts_rows(summary: RunSummary) -> list[list[object]]:
    rows = []
    for obj, c in sorted(summary.counts.items()):
        d = c.as_dict()
        rows.append([obj, *(d.get(f, 0) for f in COUNT_FIELDS)])
    return rows


def write_run_report(summary: RunSummary, journal: Journal, reports_dir: Path) -> tuple[Path, Path]:
    """Write reports/run-<id>-<time>.csv and .html; returns both paths (CSV, HTML)."""
    failures = [q for q in journal.quarantine_list() if q.run_id == summary.run_id]
    stem = reports_dir / f"run-{summary.run_id}-{summary.kind}-{timestamp()}"
    header = ["object", *COUNT_FIELDS]
    rows = counts_rows(summary)
    failure_header = ["object", "cliniko id", "category", "reason", "attempts"]
    failure_rows = [[q.object, q.source_id, q.category, q.reason, q.attempts] for q in failures]
    csv_path = write_csv(
        stem.with_suffix(".csv"),
        ["section", *header, "cliniko id", "category", "reason"],
        [["counts", *row, "", "", ""] for row in rows]
        + [["failure", q.object, *[""] * len(COUNT_FIELDS), q.source_id, q.category, q.reason] for q in failures],
    )
    outcome = summary.outcome.value if summary.outcome else summary.status.value
    minutes, seconds = divmod(round(summary.elapsed_seconds), 60)
    parts = [
        f"<h1>{html.escape(summary.kind.capitalize())} run {summary.run_id}: {html.escape(outcome)}</h1>",
        f"<p>Status {html.escape(summary.status.value)}; took {minutes} min {seconds:02d} s; "
        f"{summary.writes} write(s); {summary.quarantined} quarantined; {summary.conflicts} conflict(s); "
        f"{summary.recovered} write(s) of unknown outcome settled by looking in Nutshell.</p>",
    ]
    if summary.message:
        parts.append(f'<p class="note">{html.escape(summary.message)}</p>')
    parts += [
        "<h2>What next</h2>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in next_steps(summary)) + "</ul>",
        "<h2>Per object</h2>",
        html_table(header, rows),
        *duration_html(summary),
        f"<h2>Failures ({len(failures)})</h2>",
        html_table(failure_header, failure_rows, classes=["blocker"] * len(failure_rows))
        if failure_rows
        else "<p>None.</p>",
    ]
    make_private_dir(reports_dir)
    html_path = stem.with_suffix(".html")
    write_private_text(html_path, html_page(f"Run {summary.run_id}", "\n".join(parts)))
    return csv_path, html_path


def duration_html(summary: RunSummary) -> list[str]:
    """Expected (the estimate made as the run started) and actual duration, phase by phase."""
    rows = versus_actual(summary.estimate, summary.phase_seconds)
    if summary.estimate is None or not rows:
        return []
    body = [
        [name, duration_text(expected) if expected else "-", duration_text(actual)] for name, expected, actual in rows
    ]
    body.append(["whole run", duration_text(float(summary.estimate.get("seconds") or 0)),
                 duration_text(summary.elapsed_seconds)])  # fmt: skip
    note = f"Expected before the run: {summary.estimate.get('summary')}."
    return ["<h2>Duration</h2>", f"<p>{html.escape(note)}</p>", html_table(["phase", "expected", "actual"], body)]


def outcome_word(outcome: Outcome | None, status: RunStatus) -> str:
    if status is not RunStatus.FINISHED:
        return status.value
    return outcome.value if outcome else "finished"
