"""The engine's reports under `<project>/reports/`: sample diff, reconciliation, rollback (preview and result).

Each is a CSV and a self-contained HTML page, written privately with the pre-flight report's writers
(mapping/report_writers.py). The diff shows field values (the user needs them to judge the map); the others
list ids, counts and reasons only.
"""

from __future__ import annotations

import html
from pathlib import Path

from cliniko2nutshell.engine.counts import RunSummary
from cliniko2nutshell.engine.diff import DiffReport, DiffRow, RecordDiff, Status
from cliniko2nutshell.engine.readable import object_label
from cliniko2nutshell.engine.reconcile import Reconciliation
from cliniko2nutshell.engine.rollback import Preview, Verification
from cliniko2nutshell.mapping.report_writers import html_page, html_table, timestamp, write_csv
from cliniko2nutshell.project.private import make_private_dir, write_private_text

DIFF_NOTE = (
    "This report shows field values of the sampled patients (names, e-mails, dates of birth) so you can judge "
    "the map. Keep it inside the project folder."
)


def _write_html(path: Path, title: str, parts: list[str]) -> Path:
    make_private_dir(path.parent)
    write_private_text(path, html_page(title, "\n".join(parts)))
    return path


DIFF_HEADER = ["status", "object", "cliniko id", "nutshell id", "patient id", "field", "cliniko value", "expected",
               "in nutshell", "why", "same, shown differently"]  # fmt: skip
_FIELD_HEADER = ["Field", "Cliniko", "Expected (through the map)", "In Nutshell", "Status", "Why"]
_STATUS_TEXT = {"mismatch": "✗ mismatch", "missing": "✗ missing", "truncated": "! truncated",
                "transformed": "→ transformed", "match": "✓ match"}  # fmt: skip


def write_diff(report: DiffReport, reports_dir: Path) -> tuple[Path, Path]:
    """The sample diff per record, records with problems first, each record's problems first (CSV: one row a
    field, in that order; HTML: a section a record, what matches folded away)."""
    stem = reports_dir / f"sample-diff-run{report.run_id}-{timestamp()}"
    records = report.records()
    rows = [
        [r.status.value, r.object, r.source_id, r.nutshell_id, r.patient_id, r.label or r.field, r.source,
         r.expected, r.stored, r.note, "yes" if r.reformatted else ""]
        for rec in records for r in rec.fields
    ]  # fmt: skip
    csv_path = write_csv(stem.with_suffix(".csv"), DIFF_HEADER, rows)
    return csv_path, _write_html(stem.with_suffix(".html"), "Sample diff", _diff_html(report, records))


def _diff_html(report: DiffReport, records: list[RecordDiff]) -> list[str]:
    e = html.escape
    counts = report.counts()
    with_problems = [r for r in records if r.problems]
    transformed = [r for r in records if not r.problems and r.transformed]
    clean = [r for r in records if not r.problems and not r.transformed]
    version = f", map version {report.map_version}" if report.map_version is not None else ""
    parts = [
        f"<h1>Sample diff (run {report.run_id}{version})</h1>",
        f'<p class="note">{e(DIFF_NOTE)}</p>',
        f"<p>{len(records)} records: <strong>{len(with_problems)} with problems</strong> "
        f"({counts['mismatch']} mismatched, {counts['missing']} missing, {counts['truncated']} truncated fields), "
        f"{len(transformed)} changed by the map as it says ({counts['transformed']} fields, each with its reason), "
        f"{len(clean)} identical. {report.reformatted} fields hold the same value in a different notation "
        "(e.g. a time as UTC text in Cliniko and Unix seconds in Nutshell): they count as matches.</p>",
        "<h2>How the map changed values</h2>",
        html_table(
            ["object", "field", "fields changed", "why"],
            [[object_label(o), f, n, why] for o, f, why, n in report.transformations()],
        ),
        "<h2>By object</h2>",
        html_table(
            ["object", *counts],
            [[object_label(obj), *(c.get(s, 0) for s in counts)] for obj, c in report.by_object().items()],
        ),
        f"<h2>Records with problems ({len(with_problems)})</h2>",
    ]
    parts += [_record_html(r, open_=True) for r in with_problems] or ["<p>None.</p>"]
    parts.append(f"<h2>Records the map changed ({len(transformed)})</h2>")
    parts += [_record_html(r, open_=False) for r in transformed] or ["<p>None.</p>"]
    parts.append(f"<h2>Records identical in Nutshell ({len(clean)})</h2>")
    if clean:
        parts.append(
            f"<details><summary>{len(clean)} records</summary>"
            + html_table(["record", "title", "cliniko id", "nutshell id", "fields"],
                         [[r.label, r.title, r.source_id, r.nutshell_id, len(r.fields)] for r in clean])
            + "</details>"
        )  # fmt: skip
    return parts


def _record_html(rec: RecordDiff, *, open_: bool) -> str:
    e = html.escape
    shown = [r for r in rec.fields if r.status is not Status.MATCH]
    matches = [r for r in rec.fields if r.status is Status.MATCH]
    summary = f"{len(rec.problems)} problem(s), " if rec.problems else ""
    summary += f"{rec.transformed} transformed, {len(matches)} matching"
    head = (f"<summary><strong>{e(rec.label)}: {e(rec.title)}</strong> · Cliniko {e(rec.source_id)} · "
            f"Nutshell {e(rec.nutshell_id or '–')} · {e(summary)}</summary>")  # fmt: skip

    def table(rows: list[DiffRow]) -> str:
        return html_table(
            _FIELD_HEADER,
            [[r.label or r.field, r.source, r.expected, r.stored, _STATUS_TEXT[r.status.value], r.note] for r in rows],
            classes=[_css(r.status.value) for r in rows],
        )

    body = table(shown) if shown else ""
    if matches:
        body += f"<details><summary>{len(matches)} matching field(s)</summary>{table(matches)}</details>"
    return f"<details{' open' if open_ else ''}>{head}{body}</details>"


def _css(status: str) -> str:
    return {"mismatch": "blocker", "missing": "blocker", "truncated": "warning", "match": "ok"}.get(status, "")


def write_reconciliation(rec: Reconciliation, reports_dir: Path) -> tuple[Path, Path]:
    stem = reports_dir / f"reconcile-{timestamp()}"
    fields = ["planned", "skipped", "unmappable", "journal", "nutshell", "missing", "duplicates", "orphans",
              "quarantined"]  # fmt: skip
    header = ["object", *fields, "balanced"]
    rows = [[k, *(getattr(v, f) for f in fields), "yes" if v.balanced else "no"] for k, v in sorted(rec.lines.items())]
    detail_header = ["section", "object", "cliniko id", "detail"]
    detail = [["quarantine", q.object, q.source_id, f"{q.category}: {q.reason}"] for q in rec.quarantine]
    detail += [["missing in Nutshell", o, s, n] for o, s, n in rec.missing]
    detail += [["duplicate in Nutshell", o, s, ", ".join(ids)] for o, s, ids in rec.duplicates]
    detail += [["unknown to the journal", o, s, n] for o, s, n in rec.orphans]
    csv_rows = [["count", r[0], "", "", *r[1:]] for r in rows] + [[*d, *[""] * (len(header) - 1)] for d in detail]
    csv_path = write_csv(stem.with_suffix(".csv"), [*detail_header, *header[1:]], csv_rows)
    parts = [
        "<h1>Reconciliation</h1>",
        f'<p class="{"ok" if rec.balanced else "blocker"}">'
        f"{'Balanced: Nutshell holds every record.' if rec.balanced else 'Not balanced: see below.'}</p>",
        html_table(header, rows, classes=["" if v.balanced else "warning" for _, v in sorted(rec.lines.items())]),
        f"<h2>Failed, missing and unexpected records ({len(detail)})</h2>",
        html_table(detail_header, detail),
    ]
    return csv_path, _write_html(stem.with_suffix(".html"), "Reconciliation", parts)


def write_rollback(
    preview: Preview, reports_dir: Path, summary: RunSummary | None = None, verification: Verification | None = None
) -> tuple[Path, Path]:
    kind = "rollback" if summary is not None else "rollback-preview"
    stem = reports_dir / f"{kind}-{timestamp()}"
    header = ["action", "object", "cliniko id", "nutshell id", "reason", "edited in Nutshell since"]
    rows = [
        ["skip (edited since)" if i.edited else i.step.value, i.object, i.source_id, i.nutshell_id, i.reason,
         ", ".join(i.edited)]
        for i in preview.items
    ]  # fmt: skip
    rows += [["cannot undo", "", "", "", c, ""] for c in preview.custom_fields]
    csv_path = write_csv(stem.with_suffix(".csv"), header, rows)
    counts = preview.counts()
    steps = sorted({s for c in counts.values() for s in c})
    parts = [
        f"<h1>{'Rollback' if summary else 'Rollback preview'}: {html.escape(preview.scope.describe())}</h1>",
        html_table(["object", *steps], [[o, *(c.get(s, 0) for s in steps)] for o, c in sorted(counts.items())]),
    ]
    if preview.cannot_undo:
        parts += ["<h2>What the API cannot undo (remove by hand in Nutshell)</h2>",
                  html_table(["item"], [[c] for c in preview.cannot_undo])]  # fmt: skip
    if summary is not None and verification is not None:
        parts += [
            "<h2>Result</h2>",
            html_table(["outcome", "status", "checked", "gone", "left and reported", "still there"],
                       [[summary.outcome.value, summary.status.value, verification.checked, verification.gone,
                         verification.reported, len(verification.still_there)]]),
        ]  # fmt: skip
        if verification.still_there:
            parts.append(html_table(["object", "cliniko id", "nutshell id"], verification.still_there))
    parts += ["<h2>Records</h2>", html_table(header, rows)]
    return csv_path, _write_html(stem.with_suffix(".html"), "Rollback", parts)
