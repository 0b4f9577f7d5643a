"""Report files: CSV and one self-contained HTML page (inline CSS, no scripts, no external assets, every value
escaped), written privately under `<project>/reports/`. The pre-flight report uses them; the engine's reports can
reuse `html_page`, `html_table` and `write_csv`.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cliniko2nutshell.mapping.preflight import PreflightReport, Severity, nutshell_after_text
from cliniko2nutshell.project.private import make_private_dir, private_text_file, write_private_text

PERSONAL_NOTE = (
    "This report lists Cliniko ids and problem kinds. E-mail addresses appear only where you need them to act: "
    "invalid e-mails (to fix them in Cliniko), e-mails shared by several patients, and e-mails of people already "
    "in Nutshell. Keep it inside the project folder."
)
_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1b}"
    "h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;"
    "font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.blocker{color:#9b1c1c;font-weight:600}.warning{color:#8a5a00}.ok{color:#176b2c}"
    ".note{color:#555;font-size:.85rem;max-width:60rem}details{margin:.2rem 0}code{font-size:.85rem}"
)


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def csv_cell(value: object) -> object:
    """A value safe to open in a spreadsheet: text starting with =, +, -, @ (a formula to Excel and its kin), a
    tab or a carriage return gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv_file(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Stream `rows` into a private CSV at `path` (atomically, mode 0600); returns the number of rows."""
    count = 0
    with private_text_file(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([csv_cell(c) for c in row])
            count += 1
    return count


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A report's CSV under the project's (private) reports folder."""
    make_private_dir(path.parent)
    write_csv_file(path, header, rows)
    return path


def html_table(header: Sequence[str], rows: Iterable[Sequence[object]], classes: Sequence[str] | None = None) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *(f"<th>{e(str(h))}</th>" for h in header), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{e(classes[i])}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_page(title: str, body: str) -> str:
    e = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _personal_text(personal: dict[str, str], include: bool) -> str:
    if not personal:
        return ""
    if not include:
        return "(hidden)"
    return "; ".join(f"{k}: {v}" for k, v in personal.items())


def write_preflight_csv(report: PreflightReport, path: Path, *, include_personal: bool = True) -> Path:
    """One row per problem, then one per notice, per count and per limitation (column `section` tells which)."""
    header = ["section", "severity", "kind", "object", "id", "detail", "action", "personal"]
    rows: list[list[object]] = []
    for p in report.problems:
        rows.append(
            [
                "problem",
                p.severity.value,
                p.kind,
                p.object,
                p.id,
                p.detail,
                p.action,
                _personal_text(p.personal, include_personal),
            ]
        )
    for n in report.notices:
        rows.append(["notice", "info", n.kind, n.object, " ".join(n.ids), f"{n.count} record(s): {n.detail}", "", ""])
    for kind, c in report.counts.items():
        rows.append(["count", "", kind, "", "", ", ".join(f"{k} {v}" for k, v in c.items()), "", ""])
    if after := nutshell_after_text(report.nutshell_after):
        rows.append(["count", "", "nutshell_after", "", "", after, "", ""])
    for lim in report.limitations:
        rows.append(["limitation", "", lim.id, "", "", lim.title, lim.text, ""])
    return write_csv(path, header, rows)


def write_preflight_html(report: PreflightReport, path: Path, *, include_personal: bool = True) -> Path:
    e = html.escape
    status = (
        '<p class="ok">Ready: no blockers.</p>'
        if report.ready
        else f'<p class="blocker">{len(report.blockers)} blocker(s) must be resolved before the run.</p>'
    )
    parts = [
        "<h1>Pre-flight report</h1>",
        f"<p>Generated {e(report.generated_at)} from map version {report.map_version}; {report.patients} patients.</p>",
        status,
        f'<p class="note">{e(PERSONAL_NOTE)}</p>',
        "<h2>What will happen</h2>",
        html_table(
            ["Record", "Create", "Link", "Skip", "Cannot map"],
            [
                [k, c.get("create", 0), c.get("link", 0), c.get("skip", 0), c.get("unmappable", 0)]
                for k, c in report.counts.items()
            ],
        ),
        f"<p>{e(nutshell_after_text(report.nutshell_after) or '')}</p>",
        f"<h2>Problems ({len(report.problems)})</h2>",
        html_table(
            ["Severity", "Kind", "Object", "Id", "Detail", "What happens / what to do", "Personal data"],
            [
                [
                    p.severity.value,
                    p.kind,
                    p.object,
                    p.id,
                    p.detail,
                    p.action,
                    _personal_text(p.personal, include_personal),
                ]
                for p in report.problems
            ],
            classes=[p.severity.value if p.severity is not Severity.INFO else "" for p in report.problems],
        ),
        "<h2>How groups of records are handled</h2>",
        html_table(
            ["Kind", "Object", "Records", "Handling"], [[n.kind, n.object, n.count, n.detail] for n in report.notices]
        ),
    ]
    for n in report.notices:
        parts.append(
            f"<details><summary>{e(n.kind)}: {n.count} id(s)</summary><code>{e(' '.join(n.ids))}</code></details>"
        )
    parts.append("<h2>Known limitations</h2>")
    parts.append(html_table(["Limitation", "What it means"], [[lim.title, lim.text] for lim in report.limitations]))
    write = html_page("Pre-flight report", "\n".join(parts))
    make_private_dir(path.parent)
    write_private_text(path, write)
    return path


def write_preflight(report: PreflightReport, reports_dir: Path, *, include_personal: bool = True) -> tuple[Path, Path]:
    """`reports/preflight-<timestamp>.csv` and `.html`."""
    stem = f"preflight-{timestamp()}"
    return (
        write_preflight_csv(report, reports_dir / f"{stem}.csv", include_personal=include_personal),
        write_preflight_html(report, reports_dir / f"{stem}.html", include_personal=include_personal),
    )
