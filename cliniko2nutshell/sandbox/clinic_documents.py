"""Documents and messages: treatment note templates and notes, communications (reminders, e-mails, memos) and
patient attachments (their blobs' sizes and seeds for the sandbox to serve)."""

from __future__ import annotations

import math
import random
from typing import Any

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    _B,
    BASE,
    DAY,
    _ApptType,
    _Business,
    _date,
    _encode,
    _GeneratorBase,
    _link,
    _n,
    _PatientState,
    _Practitioner,
    _s,
    _t,
    _ts,
)

_INSERT_BLOB = "INSERT INTO blobs (attachment_id, size, content_type, seed) VALUES (?, ?, ?, ?)"


class _Documents(_GeneratorBase):
    """Notes, communications and attachments."""

    def _treatment_note_templates(self, at: int) -> list[tuple[str, str, str, tuple[Any, ...]]]:
        out = []
        for k, (name, sections) in enumerate(data.TREATMENT_NOTE_TEMPLATES):
            tid = self.mint(at)
            archived = k == len(data.TREATMENT_NOTE_TEMPLATES) - 1  # the old form, kept for old notes
            updated = at + (400 * DAY if archived else 0)
            content = {
                "sections": [
                    {"name": sname, "questions": [_template_question(q, t, opts) for q, t, opts in questions]}
                    for sname, questions in sections
                ]
            }
            print_settings = {
                "include_patient_address": True,
                "include_patient_dob": True,
                "include_patient_medicare": False,
                "include_patient_occupation": k == 0,
                "include_patient_reference_number": False,
                "title": name,
            }
            body = (
                f'{{"id":"{tid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}",'
                f'"archived_at":{_t(updated if archived else None)},"deleted_at":null,"name":{_s(name)},'
                f'"content":{_encode(content)},"print_settings":{_encode(print_settings)},'
                f'"links":{{"self":"{BASE}/treatment_note_templates/{tid}"}}}}'
            )
            self.sink.record(
                "treatment_note_templates",
                tid,
                _ts(at),
                _ts(updated),
                _ts(updated) if archived else None,
                None,
                None,
                "{}",
                body,
            )
            out.append((tid, _link(f"treatment_note_templates/{tid}"), name, sections))
        return out

    def _treatment_note(
        self,
        st: _PatientState,
        atype: _ApptType,
        prac: _Practitioner,
        booking_id: str,
        attendee_id: str,
        end: int,
        k: int,
        long_note: bool,
        draft: bool,
    ) -> None:
        rng = self.rng
        created = min(self.ref - 60, end + rng.randint(60, 7200))
        nid = self.mint(created)
        template_idx = atype.templates[0 if k == 0 else 1]
        if created < self.open + 200 * DAY and template_idx == 1:
            template_idx = len(self.templates) - 1  # early notes used the form the clinic later archived
        tid, tlink, tname, sections = self.templates[template_idx]
        if long_note:
            content = _note_content(rng, sections, draft, 24_000)
        else:
            pool = self.note_pool[template_idx][draft]
            content = pool[int(rng.random() * len(pool))]
        finalized = None if draft else min(self.ref - 30, created + rng.randint(0, 3600))
        updated = finalized or created
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{nid}","created_at":"{c_ts}","updated_at":"{u_ts}","title":{_s(tname)},'
            f'"draft":{_B[draft]},"finalized_at":{_t(finalized)},"pinned_at":null,"author_name":{_s(prac.label)},'
            f'"archived_at":null,"deleted_at":null,"content":{content},"patient":{st.plink},'
            f'"practitioner":{prac.link},"treatment_note_template":{tlink},'
            f'"booking":{_link(f"bookings/{booking_id}")},"attendee":{_link(f"attendees/{attendee_id}")},'
            f'"links":{{"self":"{BASE}/treatment_notes/{nid}"}}}}'
        )
        fk = (
            f'{{"patient_id":"{st.pid}","practitioner_id":"{prac.id}","treatment_note_template_id":"{tid}",'
            f'"booking_id":"{booking_id}","attendee_id":"{attendee_id}"}}'
        )
        self.sink.record("treatment_notes", nid, c_ts, u_ts, None, None, None, fk, body)
        if long_note:
            st.long_note_id = nid
        if draft:
            st.draft_id = nid

    def _reminder(
        self, st: _PatientState, booking_id: str, attendee_id: str, business: _Business, start: int, email: bool
    ) -> None:
        at = start - DAY
        if at > self.ref:
            return
        use_sms = "SMS" in st.reminder and not (email and st.email)
        if use_sms and st.mobile:
            text = f"Hi, a reminder of your appointment at {business.name} tomorrow. Reply Y to confirm."
            self._communication(st, at, 1, "Appointment Reminder", 1, "SMS", 1, text, None, business.sms_from,
                                st.mobile, booking_id, attendee_id, None, None)  # fmt: skip
        elif st.email:
            text = f"This is a reminder of your appointment at {business.name} tomorrow."
            self._communication(st, at, 1, "Appointment Reminder", 2, "Email", 1, text, "Appointment reminder",
                                self.email_from, st.email, booking_id, attendee_id, None, None)  # fmt: skip

    def _email(
        self, st: _PatientState, at: int, code: int, category: str, subject: str, invoice_id: str, payment: str | None
    ) -> None:
        text = f"Please find attached your {subject.lower()}. Thank you for visiting {self.clinic_name}."
        self._communication(st, min(at, self.ref - 30), code, category, 2, "Email", 1, text, subject, self.email_from,
                            st.email, None, None, invoice_id, payment)  # fmt: skip

    def _communication(
        self,
        st: _PatientState,
        at: int,
        code: int,
        category: str,
        type_code: int,
        type_name: str,
        direction: int,
        content: str,
        subject: str | None,
        sender: str | None,
        to: str | None,
        booking_id: str | None,
        attendee_id: str | None,
        invoice_id: str | None,
        payment_id: str | None,
        confidential: bool | None = None,
    ) -> None:
        cid = self.mint(at)
        fk = f'{{"patient_id":"{st.pid}"'
        links = ""
        for rel, target, rid in (
            ("booking", "bookings", booking_id),
            ("attendee", "attendees", attendee_id),
            ("invoice", "invoices", invoice_id),
            ("payment", "payments", payment_id),
        ):
            if rid:
                fk += f',"{rel}_id":"{rid}"'
                links += f'"{rel}":{_link(f"{target}/{rid}")},'
        memo = code == 12
        extra = f'"confidential":{_B[confidential]},' if memo else ""
        if type_code == 2 and not memo:
            extra += f'"content_subject":{_s(subject)},'
        c_ts = _ts(at)
        body = (
            f'{{"id":"{cid}","created_at":"{c_ts}","updated_at":"{c_ts}","category":"{category}",'
            f'"category_code":{code},"type":"{type_name}","type_code":{type_code},"direction_code":{direction},'
            f'"direction_description":"{"Sent" if direction == 1 else "Received"}","content":{_s(content)},{extra}'
            f'"from":{_s(sender)},"to":{_s(to)},"archived_at":null,"patient":{st.plink},{links}'
            f'"links":{{"self":"{BASE}/communications/{cid}"}}}}'
        )
        self.sink.record("communications", cid, c_ts, c_ts, None, None, None, fk + "}", body)

    def _memos(self, st: _PatientState, created: int, showcase: bool) -> None:
        """What the front desk logged by hand: memos (category 12) typed as a phone call, e-mail, SMS or other.

        Unconfirmed: OAS23 gives no category code for patients' replies; we log received calls and messages
        as memos with direction 2 (Received), the only place the codes we know allow.
        """
        rng = self.rng
        kinds = (
            range(len(data.MEMOS)) if showcase else [rng.randrange(len(data.MEMOS)) for _ in range(_memo_count(rng))]
        )
        for m in kinds:
            type_name, type_code, text = data.MEMOS[m]
            at = rng.randint(created, max(created, min(self.ref - 60, st.last_activity)))
            direction = 2 if (type_code in (1, 3) and (rng.random() < 0.5 or (showcase and m == 0))) else 1
            self._communication(st, at, 12, "Memo", type_code, type_name, direction, text, None, None, None, None,
                                None, None, None, confidential=rng.random() < 0.1)  # fmt: skip

    def _attachments(self, st: _PatientState, created: int, large: bool, showcase: bool) -> None:
        rng = self.rng
        count = rng.choice((1, 1, 1, 2, 3)) if rng.random() < 0.18 else 0
        plan = [("normal", k) for k in range(count)]
        if large:
            plan.append(("large", 0))
        if showcase:
            plan += [("normal", 0), ("unprocessed", 0), ("export", 0)]
        elif rng.random() < 0.003:
            plan.append(("export", 0))
        elif count and rng.random() < 0.02:
            plan.append(("unprocessed", 0))
        uploaders = [*self.staff_user_ids[1:3], *(p.user_id for p in self.practitioners[:3])]
        for kind, _ in plan:
            if kind == "unprocessed":
                at = self.ref - rng.randint(60, 1800)  # just uploaded: Cliniko has not processed it yet
            else:
                at = rng.randint(created, max(created, min(self.ref - 3600, st.last_activity + 7 * DAY)))
            aid = self.mint(at)
            if kind == "export":
                desc, ctype, ext = "Full patient export", "application/zip", "zip"
            else:
                desc, ctype, ext = data.ATTACHMENT_KINDS[rng.randrange(len(data.ATTACHMENT_KINDS))]
                if kind == "large":
                    desc, ctype, ext = (
                        ("MRI images", "image/jpeg", "jpg") if rng.random() < 0.5 else data.ATTACHMENT_KINDS[2]
                    )
            if kind == "large":
                size = rng.randint(3 * 2**20, 6 * 2**20)
            else:
                size = int(math.exp(rng.uniform(math.log(2_000), math.log(900_000))))
            processed = kind != "unprocessed"
            processed_at = at + rng.randint(5, 120) if processed else None
            filename = f"{desc.lower().replace(' ', '-')}-{_date(at)}.{ext}"
            user = uploaders[rng.randrange(len(uploaders))]
            pinned = processed_at if processed_at and rng.random() < 0.03 else None
            # Unconfirmed: while processing, Cliniko's guide says the metadata stays null; we also keep the
            # content link null until then.
            content = f'{{"links":{{"self":"{BASE}/patient_attachments/{aid}/content"}}}}' if processed else "null"
            updated = processed_at or at
            c_ts, u_ts = _ts(at), _ts(updated)
            body = (
                f'{{"id":"{aid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
                f'"filename":{_s(filename if processed else None)},"content_type":{_s(ctype if processed else None)},'
                f'"size":{_n(size if processed else None)},"description":{_s(desc if kind != "export" else None)},'
                f'"processing_completed":{_B[processed]},"processed_at":{_t(processed_at)},"pinned_at":{_t(pinned)},'
                f'"archived_at":null,"content":{content},"patient":{st.plink},"user":{_link(f"users/{user}")},'
                f'"links":{{"self":"{BASE}/patient_attachments/{aid}"}}}}'
            )
            fk = f'{{"patient_id":"{st.pid}","user_id":"{user}"}}'
            self.sink.record("patient_attachments", aid, c_ts, u_ts, None, None, None, fk, body)
            self.sink.add(_INSERT_BLOB, (aid, size, ctype, rng.getrandbits(31)))
            if kind == "large":
                self.hard["large_files"].append(aid)
            elif kind == "unprocessed":
                self.hard["unprocessed_attachments"].append(aid)


def _memo_count(rng: random.Random) -> int:
    u = rng.random()
    return 0 if u < 0.8 else 1 if u < 0.95 else rng.randint(2, 3)


def _template_question(name: str, qtype: str, options: tuple[str, ...]) -> dict[str, Any]:
    q: dict[str, Any] = {"name": name, "type": qtype}
    if options:
        q["answers"] = [{"value": o} for o in options]
    if qtype == "checkboxes":
        q["other"] = {"enabled": True}
    if qtype == "paragraph" and name == "Plan":
        q["answer"] = "<p>Continue program</p>"
    return q


def _note_content(rng: random.Random, sections: tuple[Any, ...], draft: bool, long_chars: int) -> str:
    """A note filled in from its template: HTML paragraphs, selected options, a date, body chart ids."""
    out = []
    long_done = False
    for sname, questions in sections:
        qs = []
        for qname, qtype, options in questions:
            if draft and rng.random() < 0.5:
                continue  # a draft is half written
            q: dict[str, Any] = {"name": qname, "type": qtype}
            if qtype == "paragraph":
                if long_chars and not long_done:
                    q["answer"] = _long_text(rng, long_chars)
                    long_done = True
                else:
                    q["answer"] = (
                        f"<p>{rng.choice(data.COMPLAINTS).capitalize()}.</p>"
                        f"<ul><li>{rng.choice(data.FINDINGS)}</li><li>{rng.choice(data.PLANS)}</li></ul>"
                        + ("<p>Pain &lt; 3/10 at rest</p>" if rng.random() < 0.2 else "")
                    )
            elif qtype == "text":
                q["answer"] = str(rng.randint(1, 8))
            elif qtype == "date":
                q["answer"] = f"20{rng.randint(24, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            elif qtype == "radiobuttons":
                pick = rng.randrange(len(options))
                q["answers"] = [
                    {"value": o, "selected": True} if j == pick else {"value": o} for j, o in enumerate(options)
                ]
            elif qtype == "checkboxes":
                q["answers"] = [{"value": o, "selected": True} if rng.random() < 0.4 else {"value": o} for o in options]
                other = rng.random() < 0.1
                q["other"] = {"enabled": True, "selected": other, "value": "Driving" if other else ""}
            elif qtype == "bodycharts":
                q["body_chart_ids"] = [str(800_000_000_000_000_000 + rng.getrandbits(56))]
            qs.append(q)
        if qs:
            out.append({"name": sname, "questions": qs})
    return _encode({"sections": out}) if out else "null"


def _long_text(rng: random.Random, chars: int) -> str:
    """A very long clinical narrative (HTML paragraphs), at least `chars` characters."""
    parts: list[str] = []
    size = 0
    while size < chars:
        p = (
            f"<p>Session review: {rng.choice(data.COMPLAINTS)}. {rng.choice(data.FINDINGS)}. "
            f"{rng.choice(data.PLANS)}. Discussed goals, sleep, work ergonomics and load management in detail; "
            f"patient understands the plan and agrees to continue the home program twice daily.</p>"
        )
        parts.append(p)
        size += len(p)
    return "".join(parts)
