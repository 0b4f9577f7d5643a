"""Hostile records: a corpus planted in the synthetic clinic when the generator is asked for it (`hostile=True`),
so the tool can be shown to migrate each one faithfully or quarantine it with a reason, never crash, never leak.

The corpus is made of ordinary generated patients (the generator's own `_patient`, so every chart is complete and
consistent) whose records are caught before they reach the file and bent into one hostile case each: the patient's
own fields (names, e-mails, phones, birth dates, unknown fields, wrong types), or, on a few "host" patients with a
full chart, their appointments, invoices, treatment notes and attachments. Each case is listed in the summary's
`hard_cases` under `hostile_<case>` with the id of the record that carries it; `HOSTILE_CASES` says which resource
that is and what was planted.

It runs after every ordinary patient and draws from its own random stream, so the clinic without the switch stays
byte for byte what it was (tests/test_clinic.py pins it), and with it the ordinary patients are unchanged too.

What is not planted, because the real Cliniko could not hold it:
- U+0000 (NUL) in any text: Cliniko keeps text in PostgreSQL, whose text type refuses it. Unconfirmed (the API
  documents no limit), we choose to leave NUL to the files' contents, which are bytes. Other control characters,
  the bidi overrides, U+2028 and the BOM are planted.
- a first and last name that are both empty or plain whitespace: Cliniko requires both (reference §5.1) and a Rails
  presence check treats whitespace as blank. We plant what passes such a check and still looks empty: zero-width
  spaces, padded names, punctuation only, an empty first name beside a last name.
- invalid dates (2023-02-30): a date column refuses them. Dates before 1900 and far in the future are valid dates.

Unconfirmed, planted anyway because the reference does not rule them out and a tool must survive them:
- attachment names with slashes, drive letters or Windows reserved names (an API upload names the file itself);
- an appointment that ends before it starts or at its start (the API documents no such validation);
- an appointment whose practitioner no longer exists (the link names an id the API does not serve);
- unknown fields and fields of the wrong JSON type (Cliniko adds fields without notice, and OAS23 and the GH
  examples already disagree on whether some amounts are numbers or strings).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

from cliniko2nutshell.sandbox.clinic_base import BASE, DAY, _encode, _GeneratorBase, _link, _money, _ts

# The Nutshell sandbox's default file size limit is 25 MiB (Nutshell documents none: reference §11).
OVERSIZED_FILE = 26 * 2**20

# case -> (the resource of the record listed for it, what it is)
HOSTILE_CASES: dict[str, tuple[str, str]] = {
    # names
    "name_zero_width": ("patients", "first and last name only zero-width spaces (looks empty)"),
    "name_empty_first": ("patients", "empty first name, last name with leading and trailing spaces"),
    "name_padded": ("patients", "names padded with spaces, tabs, no-break and ideographic spaces"),
    "name_punctuation": ("patients", "names that are only punctuation"),
    "name_500_chars": ("patients", "first and last name of 500 characters each"),
    "name_emoji": ("patients", "emoji, skin tones and ZWJ sequences in the names"),
    "name_rtl_override": ("patients", "right-to-left text with bidi override and isolate marks"),
    "name_combining": ("patients", "stacked combining marks and a decomposed (NFD) accent"),
    "name_control_chars": ("patients", "bell, backspace, ANSI escape sequences, U+2028 and a BOM in the names"),
    "name_formula_equals": ("patients", "names starting with = (a spreadsheet formula)"),
    "name_formula_plus_minus": ("patients", "names starting with + and -"),
    "name_formula_at_tab_cr": ("patients", "names starting with @, a tab and a carriage return"),
    "name_html": ("patients", "names holding <script> and an <img onerror>"),
    "name_quotes": ("patients", "quotes, backslashes and an SQL fragment in the names"),
    "name_homoglyph": ("patients", "Cyrillic letters that look Latin"),
    # e-mails
    "email_padded": ("patients", "e-mail with spaces around it"),
    "email_no_at": ("patients", "e-mail without @"),
    "email_double_at": ("patients", "e-mail with two @"),
    "email_display_name": ("patients", "e-mail written with a display name: Name <address>"),
    "email_two_addresses": ("patients", "two addresses in one e-mail field"),
    "email_too_long": ("patients", "e-mail of 300 characters"),
    "email_script": ("patients", "quoted local part holding <script>"),
    "email_unicode": ("patients", "internationalised address (non-ASCII local part and domain)"),
    "email_duplicate_case": ("patients", "the same address as another patient, in other letter case"),
    # phones
    "phones_formats": ("patients", "five numbers in five national and international formats"),
    "phones_words": ("patients", "numbers that are words: 1300 CLINIC, n/a, call after 5pm"),
    "phones_unicode_digits": ("patients", "Arabic-Indic and full-width digits"),
    "phones_junk": ("patients", "+++, 0, 40 digits, a formula"),
    # birth dates
    "dob_future": ("patients", "date of birth after today"),
    "dob_far_future": ("patients", "date of birth 9999-12-31"),
    "dob_before_1900": ("patients", "date of birth 1899-12-31"),
    "dob_year_one": ("patients", "date of birth 0001-01-01"),
    # the JSON itself
    "unknown_fields": ("patients", "fields the API does not document, nested"),
    "wrong_types_patient": ("patients", "booleans as strings, pronouns as a string, a phone number as a number"),
    "wrong_types_invoice": ("invoices", "amounts as JSON numbers instead of decimal strings"),
    "wrong_types_attachment": ("patient_attachments", "size as a string"),
    # appointments
    "appt_ends_before_start": ("individual_appointments", "ends an hour before it starts"),
    "appt_zero_length": ("individual_appointments", "ends when it starts"),
    "appt_deleted_practitioner": ("individual_appointments", "its practitioner is not in Cliniko any more"),
    "appt_archived_type": ("individual_appointments", "its appointment type is archived"),
    "appt_hostile_notes": ("individual_appointments", "notes holding <script> and a formula"),
    # invoices
    "invoice_negative": ("invoices", "total of -120.00 (a refund)"),
    "invoice_huge": ("invoices", "total of 99,999,999.99"),
    "invoice_zero": ("invoices", "total of 0.00"),
    # treatment notes
    "note_script": ("treatment_notes", "<script> blocks, one split across a closing tag"),
    "note_event_handlers": ("treatment_notes", "onerror, onload and javascript: links"),
    "note_iframe_style": ("treatment_notes", "<iframe>, <style>, <object>, a comment closing a textarea"),
    "note_broken_html": ("treatment_notes", "unclosed and stray tags, double-escaped entities"),
    "note_control_chars": ("treatment_notes", "control characters, U+2028, a BOM and a non-character"),
    # attachments
    "file_traversal": ("patient_attachments", "name ../../x"),
    "file_traversal_backslash": ("patient_attachments", "name ..\\..\\evil.pdf"),
    "file_absolute_posix": ("patient_attachments", "name /etc/passwd"),
    "file_absolute_windows": ("patient_attachments", "name C:\\Windows\\System32\\drivers\\etc\\hosts"),
    "file_reserved_con": ("patient_attachments", "name CON"),
    "file_reserved_nul_txt": ("patient_attachments", "name NUL.txt"),
    "file_reserved_com_aux": ("patient_attachments", "name aux.COM1.pdf"),
    "file_forbidden_chars": ("patient_attachments", 'name with < > : " | ? * and a trailing dot and space'),
    "file_long_name": ("patient_attachments", "name of 300 characters"),
    "file_empty_name": ("patient_attachments", "empty name"),
    "file_html_name": ("patient_attachments", "name <script>alert(1)</script>.html, content type text/html"),
    "file_zero_bytes": ("patient_attachments", "a file of 0 bytes"),
    "file_oversized": ("patient_attachments", f"a file of {OVERSIZED_FILE} bytes, over Nutshell's 25 MiB"),
}

HOSTILE_RESOURCES: dict[str, tuple[str, ...]] = {f"hostile_{k}": (v[0],) for k, v in HOSTILE_CASES.items()}

_LONG = "Wolfeschlegelsteinhausenbergerdorff-"
_SCRIPT = "<script>alert('hostile')</script>"

Mutation = Callable[[dict[str, Any]], None]


def _names(first: str, last: str) -> Mutation:
    def apply(p: dict[str, Any]) -> None:
        p["first_name"], p["last_name"] = first, last

    return apply


def _field(**values: Any) -> Mutation:
    def apply(p: dict[str, Any]) -> None:
        p.update(values)

    return apply


def _phones(*numbers: str) -> Mutation:
    kinds = ("Mobile", "Home", "Work", "Other", "Fax")

    def apply(p: dict[str, Any]) -> None:
        p["patient_phone_numbers"] = [
            {"phone_type": kinds[k % len(kinds)], "number": n, "normalized_number": _normalized(n)}
            for k, n in enumerate(numbers)
        ]

    return apply


def _normalized(number: str) -> str:
    """Cliniko's read-only normalized_number: E.164 when it can make one of the digits (an international
    number's "(0)" and an extension dropped, as phone libraries do), else empty.
    Unconfirmed: what Cliniko normalises junk to; we choose an empty string."""
    number = re.split(r"\s*(?:ext\.?|x)\s*\d+\s*$", number.replace("(0)", ""), maxsplit=1)[0]
    digits = "".join(ch for ch in number if ch.isascii() and ch.isdigit())
    if number.strip().startswith(("+", "tel:+")) and 8 <= len(digits) <= 15:
        return "+" + digits
    if digits.startswith("0") and len(digits) == 10:
        return "+61" + digits[1:]
    return ""


def _unknown_fields(p: dict[str, Any]) -> None:
    p["loyalty_tier"] = {"name": "Gold", "since": "2024-01-01", "history": [1, 2, {"x": None}]}
    p["x_experimental_flag"] = True
    p["future_field_2031"] = None


def _wrong_types(p: dict[str, Any]) -> None:
    p["accepted_email_marketing"] = "true"
    p["receives_confirmation_emails"] = 1
    p["pronouns"] = "she/her"
    phones = p.get("patient_phone_numbers") or []
    if phones:
        phones[0]["number"] = 61412345678


# Cases carried by a patient of their own: (case, what is done to the patient body).
_PATIENT_CASES: list[tuple[str, Mutation]] = [
    ("name_zero_width", _names("\u200b", "\u200b\u200b")),
    ("name_empty_first", _names("", "  Okafor  ")),
    ("name_padded", _names(" \tAna\u00a0", "Silva\u3000 ")),
    ("name_punctuation", _names("-", ".")),
    ("name_500_chars", _names((_LONG * 14)[:500], ("Ngāti-" * 84)[:500])),
    ("name_emoji", _names("Zoë 🌸", "O'Brien 👩🏽\u200d⚕️")),
    ("name_rtl_override", _names("\u202egnp.exe\u202c Yusuf", "\u2067العلي\u2069 \u200fSmith")),
    ("name_combining", _names("Z\u0334\u0321\u0322a\u0336l\u0337g\u0338o\u0335", "Jose\u0301 Pe\u0301rez")),
    ("name_control_chars", _names("Bell\x07Back\x08space", "\x1b[31mRed\x1b[0m\u2028Line\ufeff")),
    ("name_formula_equals", _names('=HYPERLINK("http://evil.example","click")', "=1+1")),
    ("name_formula_plus_minus", _names("+SUM(1,2)", "-2+3")),
    ("name_formula_at_tab_cr", _names("@cmd", "\tTabbed\rReturn")),
    ("name_html", _names(_SCRIPT, '<img src=x onerror="alert(2)">')),
    ("name_quotes", _names("Robert'); DROP TABLE patients;--", 'O"Quote\\Back`tick')),
    ("name_homoglyph", _names("\u0410nn\u0430", "\u0421\u043e\u0440\u0435r")),
    ("email_padded", _field(email="  padded.hostile@example.com \t")),
    ("email_no_at", _field(email="not-an-email.example.com")),
    ("email_double_at", _field(email="two@@example.com")),
    ("email_display_name", _field(email="Jane Doe <jane.display@example.com>")),
    ("email_two_addresses", _field(email="first.addr@example.com; second.addr@example.com")),
    ("email_too_long", _field(email="l" * 280 + "@example.com" + ".au" * 3)),
    ("email_script", _field(email='"<script>alert(1)</script>"@example.com')),
    ("email_unicode", _field(email="josé.müller@exämple.com")),
    ("email_duplicate_case", _field(email="SHARED.CASE@EXAMPLE.COM")),
    (
        "phones_formats",
        _phones("+61 (0)412 345 678", "0412-345-678", "(03) 9123.4567", "tel:+61412345679", "+1 555 123 4567 ext. 89"),
    ),
    ("phones_words", _phones("1300 CLINIC", "n/a", "call after 5pm")),
    ("phones_unicode_digits", _phones("٠٤١٢٣٤٥٦٧٨", "０４１２ ３４５ ６７８")),
    ("phones_junk", _phones("+++", "0", "1" * 40, "=1+2")),
    ("dob_future", _field(date_of_birth="2031-05-04")),
    ("dob_far_future", _field(date_of_birth="9999-12-31")),
    ("dob_before_1900", _field(date_of_birth="1899-12-31")),
    ("dob_year_one", _field(date_of_birth="0001-01-01")),
    ("unknown_fields", _unknown_fields),
    ("wrong_types_patient", _wrong_types),
]

_NOTE_TEXT = {
    "note_script": f"<p>Before</p>{_SCRIPT}<scr<script>ipt>alert(2)</scr</script>ipt><p>After</p>",
    "note_event_handlers": (
        '<p>See <a href="javascript:alert(3)">this</a></p><img src=x onerror=alert(4)>'
        '<svg onload="alert(5)"><circle r="1"/></svg><p onmouseover="alert(6)">hover</p>'
    ),
    "note_iframe_style": (
        '<iframe src="http://evil.example/"></iframe><style>body{display:none}</style>'
        '<object data="x.swf"></object><!-- </textarea><script>alert(7)</script> -->'
    ),
    "note_broken_html": "<p><b>unclosed <i>tags</p></div></td>&amp;lt;script&amp;gt; &lt;b&gt; <p <p>>",
    "note_control_chars": "Line\x01one\x08\x0b\x0c\x1b[2J\u2028two\u2029three\ufeff\uffff end\r\n",
}

_FILE_NAMES = {
    "file_traversal": "../../x",
    "file_traversal_backslash": "..\\..\\evil.pdf",
    "file_absolute_posix": "/etc/passwd",
    "file_absolute_windows": "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "file_reserved_con": "CON",
    "file_reserved_nul_txt": "NUL.txt",
    "file_reserved_com_aux": "aux.COM1.pdf",
    "file_forbidden_chars": 'scan<1>:"a|b"?*. ',
    "file_long_name": ("very-long-name-" * 20)[:296] + ".pdf",
    "file_empty_name": "",
    "file_html_name": f"{_SCRIPT}.html",
    "file_zero_bytes": "empty-referral.pdf",
    "file_oversized": "whole-spine-mri.jpg",
    "wrong_types_attachment": "size-as-text.pdf",
}


class _Capture:
    """Stands in for the sink while a hostile patient is generated: keeps the rows so they can be bent."""

    def __init__(self) -> None:
        self.records: list[list[Any]] = []
        self.adds: list[tuple[str, list[Any]]] = []

    def record(self, *row: Any) -> None:
        self.records.append(list(row))

    def add(self, sql: str, row: tuple[Any, ...]) -> None:
        self.adds.append((sql, list(row)))

    def of(self, resource: str) -> list[list[Any]]:
        return [r for r in self.records if r[0] == resource]


def _body(row: list[Any]) -> dict[str, Any]:
    return json.loads(row[8])


def _put(row: list[Any], body: dict[str, Any], **fk: str) -> None:
    row[8] = _encode(body)
    if fk:
        row[7] = _encode({**json.loads(row[7]), **fk})


class _Hostile(_GeneratorBase):
    """Plants the corpus (called by `_Generator.run` only when the switch is on)."""

    hostile: dict[str, list[str]]

    def _plant_hostile(self) -> None:
        n = self.patients
        for case, mutate in _PATIENT_CASES:
            cap = self._capture(n, showcase=False)
            n += 1
            row = cap.of("patients")[0]
            body = _body(row)
            old_label = body["label"]
            mutate(body)
            body["label"] = f"{body['first_name']} {body['last_name']}".strip()
            _put(row, body)
            self._relabel(cap, old_label, body["label"])
            self.hostile[f"hostile_{case}"] = [body["id"]]
            if case == "email_duplicate_case":  # the other patient of the pair, in lower case
                twin = self._capture(n, showcase=False)
                n += 1
                trow = twin.of("patients")[0]
                tbody = _body(trow)
                tbody["email"] = "shared.case@example.com"
                _put(trow, tbody)
                self.hostile[f"hostile_{case}"].append(tbody["id"])
                self._emit(twin)
            self._emit(cap)
        n = self._host_appointments_and_invoices(n)
        n = self._host_notes(n)
        self._host_files(n)

    def _capture(self, i: int, *, showcase: bool) -> _Capture:
        real = self.sink
        cap = _Capture()
        self.sink = cap  # type: ignore[assignment]
        try:
            self._patient(i, showcase=showcase)  # type: ignore[attr-defined]
        finally:
            self.sink = real
        return cap

    def _emit(self, cap: _Capture) -> None:
        for row in cap.records:
            self.sink.record(*row)
        for sql, row in cap.adds:
            self.sink.add(sql, tuple(row))

    @staticmethod
    def _relabel(cap: _Capture, old: str, new: str) -> None:
        """What Cliniko copies of the patient's name into other records follows the new name."""
        for row in cap.records:
            if row[0] == "patients":
                continue
            body = _body(row)
            changed = False
            for key in ("patient_name", "invoice_to"):
                if isinstance(body.get(key), str) and old in body[key]:
                    body[key] = body[key].replace(old, new)
                    changed = True
            if changed:
                _put(row, body)

    def _host_appointments_and_invoices(self, n: int) -> int:
        cap = self._capture(n, showcase=True)
        appts = [r for r in cap.of("individual_appointments") if _ordinary(_body(r))]
        invoices = cap.of("invoices")
        if len(appts) < 5 or len(invoices) < 4:
            raise RuntimeError("the hostile host patient has too few appointments or invoices")
        cases = ("appt_ends_before_start", "appt_zero_length", "appt_deleted_practitioner", "appt_archived_type",
                 "appt_hostile_notes")  # fmt: skip
        for case, row in zip(cases, appts, strict=False):
            body = _body(row)
            if case == "appt_ends_before_start":
                body["ends_at"] = body["starts_at"]
                body["starts_at"] = _shift(body["starts_at"], 3600)
            elif case == "appt_zero_length":
                body["ends_at"] = body["starts_at"]
            elif case == "appt_deleted_practitioner":
                gone = self.mint(self.open)  # an id no practitioner has
                body["practitioner"] = {"links": {"self": f"{BASE}/practitioners/{gone}"}}
                _put(row, body, practitioner_id=gone)
            elif case == "appt_archived_type":
                tid = self._archived_type()
                body["appointment_type"] = json.loads(_link(f"appointment_types/{tid}"))
                _put(row, body, appointment_type_id=tid)
            else:
                body["notes"] = f'{_SCRIPT}\n=HYPERLINK("http://evil.example")\n+61 bring <b>x-rays</b>'
                body["x_unknown"] = {"nested": [1, "two"]}
            if case not in ("appt_deleted_practitioner", "appt_archived_type"):
                _put(row, body)
            self.hostile[f"hostile_{case}"] = [body["id"]]
        totals = {"invoice_negative": -12_000, "invoice_huge": 9_999_999_999, "invoice_zero": 0}
        for (case, cents), row in zip(totals.items(), invoices, strict=False):
            self._set_invoice_total(cap, row, cents)
            self.hostile[f"hostile_{case}"] = [row[1]]
        row = invoices[3]
        body = _body(row)
        for key in ("total_amount", "net_amount", "tax_amount", "discounted_amount"):
            body[key] = float(body[key])
        body["number"] = str(body["number"])
        _put(row, body)
        self.hostile["hostile_wrong_types_invoice"] = [row[1]]
        self._emit(cap)
        return n + 1

    def _archived_type(self) -> str:
        spec = self.types[0]
        at = self.open + 30 * DAY
        cap = _Capture()
        real = self.sink
        self.sink = cap  # type: ignore[assignment]
        try:
            made = self._appointment_type(  # type: ignore[attr-defined]
                ("Retired assessment", spec.category, spec.minutes, 1, "#999999", spec.price, "RA1", False), at
            )
        finally:
            self.sink = real
        row = next(r for r in cap.records if r[0] == "appointment_types")
        body = _body(row)
        archived = _ts(self.open + 400 * DAY)
        body["archived_at"] = body["updated_at"] = archived
        row[3] = row[4] = archived
        _put(row, body)
        self._emit(cap)
        return made.id

    @staticmethod
    def _set_invoice_total(cap: _Capture, invoice: list[Any], cents: int) -> None:
        """The invoice and its items agree: the first item carries the whole amount, tax free; others are 0."""
        items = [r for r in cap.of("invoice_items") if json.loads(r[7]).get("invoice_id") == invoice[1]]
        for k, row in enumerate(items):
            body = _body(row)
            amount = cents if k == 0 else 0
            body.update(quantity=1, unit_price=_money(amount), net_price=_money(amount), discounted_amount="0.0",
                        discount_percentage=0.0, tax_rate=0.0, tax_amount=0.0,
                        total_including_tax=float(_money(amount)))  # fmt: skip
            _put(row, body)
        body = _body(invoice)
        body.update(total_amount=_money(cents), net_amount=_money(cents), tax_amount="0.0", discounted_amount="0.0")
        _put(invoice, body)

    def _host_notes(self, n: int) -> int:
        cap = self._capture(n, showcase=True)
        notes = [r for r in cap.of("treatment_notes") if _body(r)["content"]]
        if len(notes) < len(_NOTE_TEXT):
            raise RuntimeError("the hostile host patient has too few treatment notes")
        for (case, text), row in zip(_NOTE_TEXT.items(), notes, strict=False):
            body = _body(row)
            question = {"name": "Hostile", "type": "paragraph", "answer": text}
            body["content"]["sections"].insert(0, {"name": f"Section {_SCRIPT}", "questions": [question]})
            _put(row, body)
            self.hostile[f"hostile_{case}"] = [row[1]]
        self._emit(cap)
        return n + 1

    def _host_files(self, n: int) -> None:
        cap = self._capture(n, showcase=True)
        model = next(r for r in cap.of("patient_attachments") if _body(r)["processing_completed"])
        blob = next(a for a in cap.adds if a[1][0] == model[1])
        rng = random.Random(f"hostile-files-{self.seed}")
        for case, name in _FILE_NAMES.items():
            body = _body(model)
            at = _seconds(body["created_at"]) + rng.randint(60, 86_400)
            aid = self.mint(at)
            ctype = "text/html" if case == "file_html_name" else "application/pdf"
            size = (
                0
                if case == "file_zero_bytes"
                else OVERSIZED_FILE
                if case == "file_oversized"
                else 1_000 + _size_of(case)
            )
            if case == "file_oversized":
                ctype = "image/jpeg"
            body.update(
                id=aid, created_at=_ts(at), updated_at=_ts(at + 30), processed_at=_ts(at + 30), pinned_at=None,
                filename=name, content_type=ctype, size=str(size) if case == "wrong_types_attachment" else size,
                description=f"Hostile {case}",
                content={"links": {"self": f"{BASE}/patient_attachments/{aid}/content"}},
                links={"self": f"{BASE}/patient_attachments/{aid}"},
            )  # fmt: skip
            row = ["patient_attachments", aid, _ts(at), _ts(at + 30), None, None, None, model[7], _encode(body)]
            cap.records.append(row)
            cap.adds.append((blob[0], [aid, size, ctype, rng.getrandbits(31)]))
            self.hostile[f"hostile_{case}"] = [aid]
        self._emit(cap)


def _ordinary(appointment: dict[str, Any]) -> bool:
    """An appointment that would migrate as it is: what happens to it is the planted case's doing."""
    return not (appointment["cancelled_at"] or appointment["archived_at"] or appointment["did_not_arrive"])


def _size_of(case: str) -> int:
    """A size per case, so the files differ."""
    return sum(map(ord, case))


def _seconds(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


def _shift(ts: str, seconds: int) -> str:
    return _ts(_seconds(ts) + seconds)
