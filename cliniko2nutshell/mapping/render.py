"""Treatment notes made readable: plain text for the Nutshell note, a self-contained HTML document for the file.

Paragraph answers are HTML (div, p, br, lists, headings, b/i/u, a, blockquote); `html_to_text` turns them into
text that keeps the paragraphs and list items. Everything placed in the HTML document is escaped.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from cliniko2nutshell.cliniko.models import NoteQuestion, TreatmentNote
from cliniko2nutshell.mapping.timeutil import local

_BLOCK = {"p", "div", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr", "section"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.lists: list[list[int]] = []  # a counter per open list: [-1] for bullets, [n] for ordered
        self.href: str | None = None

    def _newline(self) -> None:
        if self.out and not self.out[-1].endswith("\n"):
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("\n")
        elif tag in ("ul", "ol"):
            self._newline()
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._newline()
            indent = "  " * max(0, len(self.lists) - 1)
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                self.out.append(f"{indent}{self.lists[-1][0]}. ")
            else:
                self.out.append(f"{indent}- ")
        elif tag in _BLOCK:
            self._newline()
        elif tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline()
        elif tag in _BLOCK or tag == "li":
            self._newline()
        elif tag == "a" and self.href:
            text_so_far = "".join(self.out)
            if not text_so_far.rstrip().endswith(self.href):
                self.out.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        # Cliniko strips \n\r\t from paragraph answers; whatever whitespace remains is layout, not content.
        self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(fragment: str | None) -> str:
    """Readable text of a paragraph answer (or any small HTML fragment)."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return fragment.strip()
    parser = _TextParser()
    parser.feed(fragment)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def answer_text(q: NoteQuestion) -> str:
    """One question's answer as text ("" when unanswered). Body charts are only ids in the API."""
    kind = (q.type or "").lower()
    if kind in ("checkboxes", "radiobuttons"):
        chosen = [a.value for a in q.answers if a.selected and a.value]
        if q.other is not None and q.other.selected and q.other.value:
            chosen.append(f"Other: {q.other.value}")
        return ", ".join(chosen)
    if kind == "bodycharts":
        return (
            f"(body chart: {len(q.body_chart_ids)} image(s) in Cliniko, not available through the API)"
            if (q.body_chart_ids)
            else ""
        )
    if kind == "paragraph":
        return html_to_text(q.answer)
    return (q.answer or "").strip()


Answers = list[tuple[str, str, list[tuple[str, str]]]]  # (section name, description, [(question, answer)])


def note_answers(note: TreatmentNote) -> Answers:
    """Each section's answered questions, computed once for both renderings."""
    out: Answers = []
    for section in note.content.sections if note.content else []:
        answered = [((q.name or "Question").strip(), a) for q in section.questions if (a := answer_text(q))]
        out.append(((section.name or "").strip(), (section.description or "").strip(), answered))
    return out


def note_when(note: TreatmentNote) -> datetime | None:
    return note.finalized_at or note.created_at


def _local(ts: datetime | None, tz: ZoneInfo) -> str:
    return local(ts, tz).strftime("%Y-%m-%d %H:%M %Z") if ts else "unknown date"


def note_header(note: TreatmentNote, tz: ZoneInfo, author: str | None = None) -> list[tuple[str, str]]:
    status = "Draft" if note.draft else "Final"
    return [
        ("Title", (note.title or "Treatment note").strip()),
        ("Date", _local(note_when(note), tz)),
        ("Author", (author or note.author_name or "unknown").strip()),
        ("Status", status),
    ]


def treatment_note_text(
    note: TreatmentNote, tz: ZoneInfo, author: str | None = None, answers: Answers | None = None
) -> str:
    """The note as plain text: a header (title, original date, author) then each section's answers."""
    lines = [f"{k}: {v}" for k, v in note_header(note, tz, author)]
    for name_, _, answered in note_answers(note) if answers is None else answers:
        lines.append("")
        if name_:
            lines.append(f"## {name_}")
        for name, answer in answered:
            lines.append(f"{name}:\n{answer}" if "\n" in answer or len(answer) > 80 else f"{name}: {answer}")
    return "\n".join(lines).strip() + "\n"


_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:46rem;margin:2rem auto;"
    "padding:0 1rem;color:#1b1b1b;line-height:1.5}h1{font-size:1.4rem;margin-bottom:.25rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;color:#444}dt{font-weight:600}"
    "h2{font-size:1.1rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:1.6rem}"
    ".q{font-weight:600;margin-top:.8rem}.a{white-space:pre-wrap;margin:.2rem 0 0 0}"
    "footer{margin-top:2rem;font-size:.8rem;color:#777}"
)


def treatment_note_html(
    note: TreatmentNote, tz: ZoneInfo, author: str | None = None, answers: Answers | None = None
) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external assets); every value escaped."""
    e = html.escape
    header = note_header(note, tz, author)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(header[0][1])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(header[0][1])}</h1><dl>",
        *(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in header[1:]),
        "</dl>",
    ]
    for name_, description, answered in note_answers(note) if answers is None else answers:
        if name_:
            parts.append(f"<h2>{e(name_)}</h2>")
        if description:
            parts.append(f'<p class="a">{e(description)}</p>')
        for name, answer in answered:
            parts.append(f'<p class="q">{e(name)}</p><p class="a">{e(answer)}</p>')
    parts.append(f"<footer>Migrated from Cliniko treatment note {e(note.id)}.</footer></body></html>")
    return "\n".join(parts) + "\n"
