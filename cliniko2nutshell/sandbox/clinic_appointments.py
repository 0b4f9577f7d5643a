"""Appointments: appointment types, unavailable blocks, each patient's course of visits (individual
appointments, group classes and their attendee rows), and the group classes written once every attendee is known."""

from __future__ import annotations

import random
from typing import Any

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    _B,
    BASE,
    DAY,
    FUTURE_DAYS,
    _ApptType,
    _Business,
    _GeneratorBase,
    _link,
    _n,
    _PatientState,
    _Practitioner,
    _s,
    _Session,
    _t,
    _ts,
    _Visit,
)


class _Appointments(_GeneratorBase):
    """The calendar: types, blocks, visits, classes."""

    def _appointment_type(self, spec: tuple[Any, ...], at: int) -> _ApptType:
        name, category, minutes, max_att, color, price, code, telehealth = spec
        item_id, item_link, *_ = self._billable_item(name, "Service", price, code, at)
        tid = self.mint(at)
        first, later = data.TEMPLATE_FOR_CATEGORY[category]
        template_id, template_link = self.templates[first][0], self.templates[first][1]
        ts = _ts(at)
        online = max_att == 1 and not telehealth
        body = (
            f'{{"id":"{tid}","created_at":"{ts}","updated_at":"{ts}","archived_at":null,"name":{_s(name)},'
            f'"description":null,"category":{_s(category)},"color":"{color}","duration_in_minutes":{minutes},'
            f'"max_attendees":{max_att},"show_in_online_bookings":{_B[online]},"telehealth_enabled":{_B[telehealth]},'
            f'"online_payments_enabled":false,"online_payments_mode":null,"deposit_price":null,'
            f'"add_deposit_to_account_credit":null,"online_bookings_lead_time_hours":{2 if online else "null"},'
            f'"appointment_confirmation_template_ids":[],"appointment_reminder_template_ids":[],'
            f'"billable_item":{item_link},"treatment_note_template":{template_link},'
            f'"practitioners":{{"links":{{"self":"{BASE}/appointment_types/{tid}/practitioners"}}}},'
            f'"links":{{"self":"{BASE}/appointment_types/{tid}"}}}}'
        )
        fk = f'{{"billable_item_id":"{item_id}","treatment_note_template_id":"{template_id}"}}'
        self.sink.record("appointment_types", tid, ts, ts, None, None, None, fk, body)
        return _ApptType(
            tid,
            _link(f"appointment_types/{tid}"),
            name,
            category,
            minutes,
            max_att,
            price,
            item_id,
            item_link,
            code,
            telehealth,
            (first, later),
        )

    def _unavailable_blocks(self) -> None:
        """Leave and meetings; a few weekly series (repeated_from) and one deleted block (deleted_at)."""
        rng = self.rng
        n = 4 + self.patients // 500
        deleted_done = False
        for k in range(n):
            prac = self.practitioners[k % len(self.practitioners)]
            b = self.businesses[prac.businesses[0]]
            last_day = prac.end if prac.end is not None else self.ref // DAY + 60
            day = rng.randint(prac.start + 10, last_day - 1)
            series = k % 4 == 1
            repeats = rng.randint(2, 4) if series else 1
            minutes = rng.choice((60, 120, 240, 480))
            minute = 8 * 60 if minutes == 480 else rng.randint(8, 15) * 60
            notes = rng.choice(("Annual leave", "Team meeting", "Professional development", "Admin time"))
            rule = (
                f'{{"repeat_type":"Weekly","number_of_repeats":{repeats},"repeating_interval":1}}' if series else "null"
            )
            head: str | None = None
            for r in range(repeats):
                start = b.zone.at(day + 7 * r, minute)
                created = start - rng.randint(7, 60) * DAY
                if created > self.ref:
                    break
                bid = self.mint(created)
                deleted = None
                if not deleted_done and not series and start < self.ref:
                    deleted = created + DAY
                    deleted_done = True
                updated = deleted or created
                repeats_link = (
                    f'{{"links":{{"self":"{BASE}/unavailable_blocks?q%5B%5D=repeated_from_id%3A%3D{bid}"}}}}'
                    if series and r == 0
                    else "null"
                )
                rf = f'"repeated_from":{_link(f"unavailable_blocks/{head}")},' if head else ""
                body = (
                    f'{{"id":"{bid}","created_at":"{_ts(created)}","updated_at":"{_ts(updated)}",'
                    f'"starts_at":"{_ts(start)}","ends_at":"{_ts(start + minutes * 60)}","notes":{_s(notes)},'
                    f'"repeat_rule":{rule},"archived_at":null,"deleted_at":{_t(deleted)},'
                    f'"business":{b.link},"practitioner":{prac.link},{rf}"repeats":{repeats_link},'
                    f'"conflicts":{{"links":{{"self":"{BASE}/unavailable_blocks/{bid}/conflicts"}}}},'
                    f'"links":{{"self":"{BASE}/unavailable_blocks/{bid}"}}}}'
                )
                fk = f'{{"business_id":"{b.id}","practitioner_id":"{prac.id}"'
                fk += f',"repeated_from_id":"{head}"}}' if head else "}"
                self.sink.record(
                    "unavailable_blocks",
                    bid,
                    _ts(created),
                    _ts(updated),
                    None,
                    None,
                    _ts(deleted) if deleted else None,
                    fk,
                    body,
                )
                if series and head is None:
                    head = bid

    def _pick_practitioner(self, day: int, category: str | None) -> int:
        """A practitioner working on `day` (and treating `category`, when given); the first one otherwise."""
        candidates = self._working.get((day, category))
        if candidates is None:
            candidates = self._working[day, category] = [
                k
                for k, p in enumerate(self.practitioners)
                if p.start <= day and (p.end is None or day <= p.end) and (category is None or category in p.categories)
            ] or [0]
        return candidates[int(self.rng.random() * len(candidates))]

    def _plan_visits(
        self, rng: random.Random, created: int, prac_idx: int, classes: bool, showcase: bool, past_only: bool
    ) -> list[_Visit]:
        """A course of care: a first visit soon after the patient was created, then weekly to monthly ones."""
        u = rng.random()
        if showcase:
            n = 14
        elif u < 0.64:
            n = 1 + (rng.random() < 0.28)
        elif u < 0.95:
            n = rng.randint(3, 5)
        else:
            n = min(30, 6 + int(rng.expovariate(1 / 4.5)))
        horizon = (self.ref - 2 * DAY) if past_only else (self.ref + FUTURE_DAYS * DAY)
        prac = self.practitioners[prac_idx]
        own = self.own_types[prac_idx]
        business = prac.businesses[rng.randrange(len(prac.businesses))]
        visits: list[_Visit] = []
        day = created // DAY + rng.randint(1, 14)
        for k in range(n):
            if showcase and k:
                day += 7
            elif k:
                day += rng.choice((7, 7, 7, 14, 14, 21, 28)) if rng.random() > 0.06 else rng.randint(60, 300)
            if day * DAY > horizon:
                break
            group = k in (6, 7) if showcase else classes and k > 0 and rng.random() < 0.6
            if group:
                session = self._join_class(day)
                if session is not None:
                    slot = self.group_slots[session.slot]
                    visits.append(_Visit(session.start, slot.type, session.practitioner, slot.business, session))
                    continue
            p = prac_idx
            if self.practitioners[p].end is not None and day > self.practitioners[p].end:  # type: ignore[operator]
                p = prac_idx = self._pick_practitioner(day, self.types[own[0]].category)
                business = self.practitioners[p].businesses[0]
            if k == 0:
                t = own[0]  # the initial consultation
            elif len(own) > 1 and rng.random() < 0.8:
                t = own[1]  # the usual follow-up
            else:
                t = own[rng.randrange(len(own))]
            minute = rng.randint(32, 71) * 15
            visits.append(_Visit(self.businesses[business].zone.at(day, minute), t, p, business, None))
        return visits

    def _join_class(self, day: int) -> _Session | None:
        """A place in a group class in the week of `day` (or a later one); None when no class can take them."""
        rng = self.rng
        week = (day + 3) // 7  # weeks starting on Monday (1970-01-01 was a Thursday)
        for w in range(week, week + 4):
            order = list(range(len(self.group_slots)))
            rng.shuffle(order)
            for s in order:
                slot = self.group_slots[s]
                atype = self.types[slot.type]
                sessions = self.sessions.setdefault((s, w), [])
                if sessions and sessions[-1].booked < atype.max_attendees:
                    session = sessions[-1]
                elif not sessions:
                    local_day = w * 7 - 3 + slot.weekday
                    start = self.businesses[slot.business].zone.at(local_day, slot.minute)
                    created = start - 28 * DAY
                    if created > self.ref:
                        return None
                    prac = self._pick_practitioner(local_day, "Classes")
                    session = _Session(self.mint(created), s, start, start + atype.minutes * 60, prac, created)
                    sessions.append(session)
                    self.hard["group_appointments"].append(session.id)
                else:
                    continue
                session.booked += 1
                return session
        return None

    def _visit(self, st: _PatientState, v: _Visit, k: int, showcase: bool, long_note: bool, draft_note: bool) -> None:
        """One appointment: the booking, its attendee row, and what followed (invoice, note, reminder)."""
        rng = self.rng
        ref = self.ref
        atype = self.types[v.type]
        prac = self.practitioners[v.practitioner]
        business = self.businesses[v.business]
        start = v.start
        end = start + atype.minutes * 60
        group = v.session is not None
        past = end < ref
        # booked at the end of the previous visit, or a few days ahead
        created = max(st.created_floor, start - rng.randint(1, 21) * DAY - rng.randint(0, 36_000))
        if k == 0:
            created = st.created_floor + rng.randint(0, 900)  # the patient was created when first booked
        created = min(created, ref - rng.randint(60, 3600))
        if group:
            created = max(created, v.session.created)  # type: ignore[union-attr]
        st.created_floor = created

        # what happened: showcase visits cycle through every outcome
        outcome = "attended" if past else "booked"
        if showcase and not group and k < 6:
            outcome = ("attended", "cancelled", "no_show", "archived", "attended", "cancelled")[k] if past else outcome
        elif showcase and group:
            outcome = "cancelled" if k == 7 else outcome
        elif long_note or draft_note:
            pass  # the planted note needs an attended visit
        else:
            u = rng.random()
            if u < 0.07:
                outcome = "cancelled"
            elif past and u < 0.1:
                outcome = "no_show"
            elif not group and u < 0.106:
                outcome = "archived"
        cancelled_at = archived_at = None
        reason = None
        if outcome == "cancelled":
            cancelled_at = min(ref - 60, max(created + 600, start - rng.randint(1, 72) * 3600))
            reason = data.CANCELLATION_REASONS[rng.randrange(len(data.CANCELLATION_REASONS))]
        elif outcome == "archived":
            archived_at = min(ref - 60, created + rng.randint(1, 48) * 3600)
        arrived = outcome == "attended"
        dna = outcome == "no_show"
        updated = cancelled_at or archived_at or (min(ref - 30, end + rng.randint(60, 7200)) if past else created)

        invoice_status: int | None = None
        invoice = None
        if arrived and (rng.random() < 0.88 or showcase or st.insurer is not None):
            invoice_status = self._invoice_status(rng, end, showcase, st)
            invoice = (invoice_status, [(atype.item_id, atype.item_link, atype.name, atype.code, atype.price, True)])
        elif (dna and rng.random() < 0.3) or (outcome == "cancelled" and past and rng.random() < 0.1):
            fee = self.other_items[2 if dna else 0]
            invoice_status = self._invoice_status(rng, end, False, st)
            invoice = (invoice_status, [(fee[0], fee[1], fee[2], fee[4], fee[3], True)])
        note_wanted = arrived and (rng.random() < 0.55 or showcase or long_note or draft_note)
        note_status = None if not note_wanted else 10 if draft_note else 90

        booking_id = v.session.id if group else self.mint(created)  # type: ignore[union-attr]
        attendee_id = self.mint(created)
        case = st.case_id if st.case_id and k >= 1 else None
        if group:
            session = v.session
            assert session is not None
            session.updated = max(session.updated, updated)
            # Unconfirmed: whether a group's `patient_ids` keeps patients whose attendance was cancelled; we
            # choose to list only those still attending (their attendee rows keep the cancellation).
            if outcome != "cancelled":
                session.patient_ids.append(st.pid)
        else:
            self._individual_appointment(
                st, booking_id, atype, prac, business, start, end, created, updated, outcome, cancelled_at,
                archived_at, reason, invoice_status, note_status, case, k,
            )  # fmt: skip
        self._attendee(
            st, attendee_id, booking_id, group, created, updated, outcome, cancelled_at, archived_at, reason,
            invoice_status, note_status, case, showcase,
        )  # fmt: skip
        if archived_at is None and (start > st.latest_start or st.latest_id is None):
            st.latest_start = start
            st.latest_id = booking_id
        st.last_activity = max(st.last_activity, min(updated, ref - DAY))

        if invoice is not None:
            self._invoice(st, invoice[0], invoice[1], booking_id, prac, business, end, rng.random() < 0.1)
        if note_wanted:
            self._treatment_note(st, atype, prac, booking_id, attendee_id, end, k, long_note, draft_note)
        if st.reminder != "None" and archived_at is None and (rng.random() < 0.12 or showcase):
            self._reminder(st, booking_id, attendee_id, business, start, showcase and k % 2 == 1)

    def _individual_appointment(
        self,
        st: _PatientState,
        aid: str,
        atype: _ApptType,
        prac: _Practitioner,
        business: _Business,
        start: int,
        end: int,
        created: int,
        updated: int,
        outcome: str,
        cancelled_at: int | None,
        archived_at: int | None,
        reason: tuple[int, str] | None,
        invoice_status: int | None,
        note_status: int | None,
        case: str | None,
        k: int,
    ) -> None:
        rng = self.rng
        online = rng.random() < 0.25
        ip = f'"203.0.113.{rng.randint(1, 254)}"' if online else "null"
        telehealth = (
            f'"https://{self.subdomain}.cliniko.com/appointments/{aid}/connect"' if atype.telehealth else "null"
        )
        # A weekly series booked in one go: the first carries `repeats`, the others `repeated_from`.
        # Unconfirmed: whether the later ones repeat the series' repeat_rule; we choose to copy it.
        series_head = None
        repeat_rule = "null"
        repeats = "null"
        if st.series_head is not None and st.series_left > 0:
            series_head = st.series_head
            st.series_left -= 1
            repeat_rule = st.series_rule
        elif st.series_head is None and k == 1 and outcome != "archived" and rng.random() < 0.1:
            st.series_head = aid
            st.series_left = rng.randint(2, 5)
            st.series_rule = (
                f'{{"repeat_type":"Weekly","number_of_repeats":{st.series_left + 1},"repeating_interval":1}}'
            )
            repeat_rule = st.series_rule
            repeats = f'{{"links":{{"self":"{BASE}/individual_appointments?q%5B%5D=repeated_from_id%3A%3D{aid}"}}}}'
        reminded = st.reminder != "None" and outcome != "archived" and start - DAY < self.ref
        fk = (
            f'{{"appointment_type_id":"{atype.id}","business_id":"{business.id}","practitioner_id":"{prac.id}",'
            f'"patient_id":"{st.pid}"'
        )
        extra = ""
        if case:
            fk += f',"patient_case_id":"{case}"'
            extra += f'"patient_case":{_link(f"patient_cases/{case}")},'
        if series_head:
            fk += f',"repeated_from_id":"{series_head}"'
            extra += f'"repeated_from":{_link(f"individual_appointments/{series_head}")},'
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{aid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
            f'"starts_at":"{_ts(start)}","ends_at":"{_ts(end)}","patient_name":{_s(st.label)},'
            f'"notes":{_s(rng.choice(data.APPOINTMENT_NOTES) if rng.random() < 0.05 else None)},'
            f'"did_not_arrive":{_B[outcome == "no_show"]},"patient_arrived":{_B[outcome == "attended"]},'
            f'"cancelled_at":{_t(cancelled_at)},"cancellation_reason":{_n(reason[0] if reason else None)},'
            f'"cancellation_reason_description":{_s(reason[1] if reason else None)},'
            f'"cancellation_note":{_s(rng.choice(data.CANCELLATION_NOTES) if reason else None)},'
            f'"invoice_status":{_n(invoice_status)},"treatment_note_status":{_n(note_status)},'
            f'"email_reminder_sent":{_B[reminded and "Email" in st.reminder]},'
            f'"sms_reminder_sent":{_B[reminded and "SMS" in st.reminder]},'
            f'"online_booking_policy_accepted":{_B[True if online else None]},"booking_ip_address":{ip},'
            f'"has_patient_appointment_notes":false,"telehealth_url":{telehealth},'
            f'"repeat_rule":{repeat_rule},"repeats":{repeats},"archived_at":{_t(archived_at)},"deleted_at":null,'
            f'"appointment_type":{atype.link},"business":{business.link},"practitioner":{prac.link},'
            f'"patient":{st.plink},{extra}'
            f'"attendees":{{"links":{{"self":"{BASE}/individual_appointments/{aid}/attendees"}}}},'
            f'"conflicts":{{"links":{{"self":"{BASE}/individual_appointments/{aid}/conflicts"}}}},'
            f'"links":{{"self":"{BASE}/individual_appointments/{aid}"}}}}'
        )
        self.sink.record(
            "individual_appointments",
            aid,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            _ts(cancelled_at) if cancelled_at else None,
            None,
            fk + "}",
            body,
        )
        if outcome == "archived":
            self.hard["archived_appointments"].append(aid)
        elif outcome == "cancelled":
            self.hard["cancelled_appointments"].append(aid)
        elif outcome == "no_show":
            self.hard["no_show_appointments"].append(aid)
        if start > self.ref:
            self.hard["future_appointments"].append(aid)

    def _attendee(
        self,
        st: _PatientState,
        att_id: str,
        booking_id: str,
        group: bool,
        created: int,
        updated: int,
        outcome: str,
        cancelled_at: int | None,
        archived_at: int | None,
        reason: tuple[int, str] | None,
        invoice_status: int | None,
        note_status: int | None,
        case: str | None,
        showcase: bool,
    ) -> None:
        """Per-patient state of a booking, for individual and group appointments alike (reference §5.3).

        Unconfirmed: the attendee of an individual appointment mirrors the appointment's cancellation and
        archiving; we choose to copy them (the appointment is the booking of that one attendee).
        """
        cancel_url = (
            f'"https://{self.subdomain}.cliniko.com/bookings/{att_id}/cancel"'
            if group and cancelled_at is None
            else "null"
        )
        arrived = True if outcome == "attended" else False if outcome in ("no_show", "cancelled") else None
        fk = f'{{"booking_id":"{booking_id}","appointment_id":"{booking_id}","patient_id":"{st.pid}"'
        case_link = ""
        if case:
            fk += f',"patient_case_id":"{case}"'
            case_link = f'"patient_case":{_link(f"patient_cases/{case}")},'
            st.case_attendees.append(att_id)
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{att_id}","created_at":"{c_ts}","updated_at":"{u_ts}","arrived":{_B[arrived]},'
            f'"notes":null,"cancelled_at":{_t(cancelled_at)},"cancellation_reason":{_n(reason[0] if reason else None)},'
            f'"cancellation_reason_description":{_s(reason[1] if reason else "")},'
            f'"cancellation_note":null,"cancellation_url":{cancel_url},"invoice_status":{_n(invoice_status)},'
            f'"treatment_note_status":{_n(note_status)},"email_reminder_sent":false,"sms_reminder_sent":false,'
            f'"booking_ip_address":null,"online_booking_policy_accepted":null,"telehealth_url":null,'
            f'"archived_at":{_t(archived_at)},"deleted_at":null,"booking":{_link(f"bookings/{booking_id}")},'
            f'"patient":{st.plink},{case_link}'
            f'"invoices":{{"links":{{"self":"{BASE}/attendees/{att_id}/invoices"}}}},'
            f'"patient_forms":{{"links":{{"self":"{BASE}/attendees/{att_id}/patient_forms"}}}},'
            f'"links":{{"self":"{BASE}/attendees/{att_id}"}}}}'
        )
        self.sink.record(
            "attendees",
            att_id,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            _ts(cancelled_at) if cancelled_at else None,
            None,
            fk + "}",
            body,
        )
        if group and cancelled_at is not None:
            self.hard["cancelled_attendees"].append(att_id)

    def _write_sessions(self) -> None:
        """The group classes, now that every attendee is known."""
        for sessions in self.sessions.values():
            for s in sessions:
                slot = self.group_slots[s.slot]
                atype = self.types[slot.type]
                business = self.businesses[slot.business]
                prac = self.practitioners[s.practitioner]
                ids = "[" + ",".join(f'"{p}"' for p in s.patient_ids) + "]"
                updated = max(s.created, min(s.updated, self.ref - 60))
                body = (
                    f'{{"id":"{s.id}","created_at":"{_ts(s.created)}","updated_at":"{_ts(updated)}",'
                    f'"starts_at":"{_ts(s.start)}","ends_at":"{_ts(s.end)}","max_attendees":{atype.max_attendees},'
                    f'"notes":null,"patient_ids":{ids},"repeat_rule":null,"repeats":null,"telehealth_url":null,'
                    f'"archived_at":null,"deleted_at":null,"appointment_type":{atype.link},"business":{business.link},'
                    f'"practitioner":{prac.link},'
                    f'"attendees":{{"links":{{"self":"{BASE}/group_appointments/{s.id}/attendees"}}}},'
                    f'"conflicts":{{"links":{{"self":"{BASE}/group_appointments/{s.id}/conflicts"}}}},'
                    f'"links":{{"self":"{BASE}/group_appointments/{s.id}"}}}}'
                )
                fk = (
                    f'{{"appointment_type_id":"{atype.id}","business_id":"{business.id}",'
                    f'"practitioner_id":"{prac.id}","patient_ids":{ids}}}'
                )
                self.sink.record("group_appointments", s.id, _ts(s.created), _ts(updated), None, None, None, fk, body)
