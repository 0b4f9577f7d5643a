"""The engine's reports under `<project>/reports/`: sample diff, reconciliation, rollback (preview and result).

Each is a CSV and a self-contained HTML page, written privately with the pre-flight report's writers
(mapping/report_writers.py). The diff shows field values (the user needs them to judge the map); the others
list ids, counts and reasons only.
"""

from __future__ import annotations

import html
from pathlib import Path

from cliniko2nutshell.engine.counts import RunSummary
from cliniko2nutshell.engine.diff import DiffReport
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


def write_diff(report: DiffReport, reports_dir: Path) -> tuple[Path, Path]:
    stem = reports_dir / f"sample-diff-run{report.run_id}-{timestamp()}"
    header = ["status", "object", "cliniko id", "nutshell id", "field", "cliniko value", "expected", "stored", "note"]
    rows = [
        [r.status.value, r.object, r.source_id, r.nutshell_id, r.field, r.source, r.expected, r.stored, r.note]
        for r in report.rows
    ]
    csv_path = write_csv(stem.with_suffix(".csv"), header, rows)
    counts = report.counts()
    parts = [
        f"<h1>Sample diff (run {report.run_id})</h1>",
        f'<p class="note">{html.escape(DIFF_NOTE)}</p>',
        html_table(list(counts), [list(counts.values())]),
        "<h2>By object</h2>",
        html_table(
            ["object", *counts],
            [[obj, *(c.get(s, 0) for s in counts)] for obj, c in report.by_object().items()],
        ),
        "<h2>Fields (mismatches first)</h2>",
        html_table(header, rows, classes=[_css(r.status.value) for r in report.rows]),
    ]
    return csv_path, _write_html(stem.with_suffix(".html"), "Sample diff", parts)


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
