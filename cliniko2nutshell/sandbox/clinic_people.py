"""People: the account's users and practitioners, third-party contacts (insurers, doctors, others), and each
patient with their chart's small records (medical alerts, referral source, patient case, custom field values)."""

from __future__ import annotations

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    _B,
    BASE,
    DAY,
    HISTORY_DAYS,
    LEGACY_ID_CUTOFF,
    _ascii,
    _Contact,
    _date,
    _encode,
    _GeneratorBase,
    _link,
    _PatientState,
    _Practitioner,
    _Rng,
    _s,
    _t,
    _ts,
)
from cliniko2nutshell.sandbox.clinic_documents import _long_text


class _People(_GeneratorBase):
    """Users, practitioners, contacts and patients."""

    def _user(
        self, title: str, first: str, last: str, email: str, role: str, active: bool, at: int, updated: int
    ) -> str:
        uid = self.mint(at)
        label, iana = data.BUSINESSES[0][1], data.BUSINESSES[0][2]
        phone = f"04{self.rng.randint(10, 99)} {self.rng.randint(100, 999)} {self.rng.randint(100, 999)}"
        phones = f'[{{"number":"{phone}","normalized_number":"+61{phone[1:].replace(" ", "")}","phone_type":"Mobile"}}]'
        body = (
            f'{{"id":"{uid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title)},'
            f'"first_name":{_s(first)},"last_name":{_s(last)},"email":{_s(email)},"phone_numbers":{phones},'
            f'"role":"{role}","active":{_B[active]},"user_active":{_B[active]},"time_zone":"{label}",'
            f'"time_zone_identifier":"{iana}","new_ui_enabled":true,"privacy_policy_accepted":null,'
            f'"links":{{"self":"{BASE}/users/{uid}"}}}}'
        )
        self.sink.record("users", uid, _ts(at), _ts(updated), None, None, None, "{}", body)
        return uid

    def _users_and_practitioners(self, n_active: int, n_inactive: int, setup: int) -> None:
        rng = self.rng
        domain = self.domain
        self.admin_user_id = ""
        self.staff_user_ids: list[str] = []
        for title, first, last, role, local in data.STAFF:
            uid = self._user(title, first, last, f"{local}@{domain}", role, True, setup, setup + 90 * DAY)
            self.staff_user_ids.append(uid)
            if role == "administrator":
                self.admin_user_id = uid
                self.admin_name = (first, last)
        self.nutshell_users.append(
            {
                "first_name": self.admin_name[0],
                "last_name": self.admin_name[1],
                "emails": [f"admin@{domain}"],
                "is_administrator": True,
                "is_enabled": True,
            }
        )

        self.practitioners: list[_Practitioner] = []
        specs = [(spec, True) for spec in data.PRACTITIONERS[:n_active]]
        specs += [(spec, False) for spec in data.INACTIVE_PRACTITIONERS[:n_inactive]]
        for k, ((title, first, last, discipline), active) in enumerate(specs):
            # Most started when the clinic opened; a few joined later; the inactive ones left a while ago.
            start = self.open if k < 4 or not active else self.open + rng.randint(200, 1200) * DAY
            end = None if active else self.ref - rng.randint(200, 500) * DAY
            at = start - 14 * DAY
            email = f"{_ascii(first)}.{_ascii(last)}@{domain}".lower().replace("'", "")
            user_updated = end if end is not None else at + 30 * DAY
            uid = self._user(title, first, last, email, "practitioner", active, at, user_updated)
            pid = self.mint(at)
            categories = data.DISCIPLINES[discipline]
            own_types = [t for t in self.types if t.category in categories and t.max_attendees == 1]
            default_type = own_types[0] if own_types else self.types[0]
            label = f"{title} {first} {last}".strip()
            businesses = (k % len(self.businesses),) if k % 3 else (0, min(1, len(self.businesses) - 1))
            updated = user_updated
            body = (
                f'{{"id":"{pid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title or None)},'
                f'"first_name":{_s(first)},"last_name":{_s(last)},"display_name":null,"label":{_s(label)},'
                f'"designation":{_s(discipline)},"description":null,"show_in_online_bookings":{_B[active]},'
                f'"active":{_B[active]},"user":{_link(f"users/{uid}")},'
                f'"default_appointment_type":{default_type.link},'
                f'"practitioner_reference_numbers":{{"links":{{"self":"{BASE}/practitioners/{pid}/practitioner_reference_numbers"}}}},'
                f'"appointment_types":{{"links":{{"self":"{BASE}/practitioners/{pid}/appointment_types"}}}},'
                f'"appointments":{{"links":{{"self":"{BASE}/practitioners/{pid}/appointments"}}}},'
                f'"invoices":{{"links":{{"self":"{BASE}/practitioners/{pid}/invoices"}}}},'
                f'"links":{{"self":"{BASE}/practitioners/{pid}"}}}}'
            )
            fk = f'{{"user_id":"{uid}","default_appointment_type_id":"{default_type.id}"}}'
            self.sink.record("practitioners", pid, _ts(at), _ts(updated), None, None, None, fk, body)
            self.practitioners.append(
                _Practitioner(
                    pid,
                    _link(f"practitioners/{pid}"),
                    label,
                    categories,
                    businesses,
                    start // DAY,
                    None if end is None else end // DAY,
                    uid,
                )
            )
            self._nutshell_user_for(k, active, pid, first, last, email)
        for first, last, local in data.NUTSHELL_ONLY_USERS:
            self.nutshell_users.append(
                {
                    "first_name": first,
                    "last_name": last,
                    "emails": [f"{local}@{domain}"],
                    "is_administrator": False,
                    "is_enabled": True,
                }
            )

    def _contacts(self, setup: int) -> None:
        rng = self.rng
        self.insurers: list[_Contact] = []
        self.doctors: list[_Contact] = []
        self.others: list[_Contact] = []
        # Unconfirmed (reference §5.10): type_code 2 = "3rd Party Payer" is inferred by elimination; we use it.
        for company, local in data.INSURERS:
            slug = "".join(ch for ch in company.lower() if ch.isalnum())[:16]
            email = f"{local}@{slug}.example.com"
            c = self._contact(setup, 2, "", "", company, email, None, "3rd Party Payer")
            self.insurers.append(c)
        n_doctors = 8 + self.patients // 300
        for k in range(n_doctors):
            sex = "Female" if k % 2 else "Male"
            first = rng.choice(data.FIRST_NAMES[sex])
            last = rng.choice(data.LAST_NAMES)
            centre = data.MEDICAL_CENTRES[k % len(data.MEDICAL_CENTRES)]
            email = f"dr.{first}.{last}{k}@{centre.split()[0].lower()}medical.example.com".lower()
            kind = "specialist" if k % 5 == 4 else "general_practitioner"
            at = self.open + rng.randint(-30, HISTORY_DAYS - 60) * DAY
            archived = k == 7  # a retired GP: archived, yet older patients still point at them
            c = self._contact(at, 1, first, last, centre, email, kind, "Doctor", archived=archived)
            if archived:
                self.hard["archived_contacts"].append(c.id)
            self.doctors.append(c)
        for k in range(3 + self.patients // 2000):
            first = rng.choice(data.FIRST_NAMES["Other"])
            last = rng.choice(data.LAST_NAMES)
            role = data.STANDARD_CONTACT_ROLES[k % len(data.STANDARD_CONTACT_ROLES)]
            email = f"{first}.{last}{k}@services.example.org".lower()
            at = self.open + rng.randint(0, HISTORY_DAYS - 30) * DAY
            self.others.append(self._contact(at, 0, first, last, None, email, None, "Standard", occupation=role))

    def _contact(
        self,
        at: int,
        type_code: int,
        first: str,
        last: str,
        company: str | None,
        email: str,
        doctor_type: str | None,
        type_name: str,
        *,
        archived: bool = False,
        occupation: str | None = None,
    ) -> _Contact:
        rng = self.rng
        cid = self.mint(at)
        updated = min(self.ref, at + rng.randint(0, 300) * DAY)
        archived_at = updated if archived else None
        suburb, post_code = rng.choice(data.SUBURBS)
        number = f"03 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        phones = (
            f'[{{"number":"{number}","normalized_number":"+613{number[3:].replace(" ", "")}","phone_type":"Work"}}]'
        )
        title = "Dr" if type_code == 1 else None
        provider = f"{rng.randint(100000, 999999)}{rng.choice('ABCDEFHJKLTWXY')}" if type_code == 1 else ""
        body = (
            f'{{"id":"{cid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title)},'
            f'"first_name":{_s(first)},"last_name":{_s(last)},"preferred_name":"","company_name":{_s(company or "")},'
            f'"occupation":{_s(occupation or "")},"email":{_s(email)},"phone_numbers":{phones},'
            f'"address_1":"{rng.randint(1, 400)} {rng.choice(data.STREETS)}","address_2":"","address_3":"",'
            f'"city":{_s(suburb)},"state":"Victoria","post_code":"{post_code}","country":"Australia","country_code":"AU",'
            f'"notes":"","provider_number":{_s(provider)},"doctor_type":{_s(doctor_type)},"type":{_s(type_name)},'
            f'"type_code":{type_code},"archived_at":{_t(archived_at)},"deleted_at":null,'
            f'"links":{{"self":"{BASE}/contacts/{cid}"}}}}'
        )
        self.sink.record(
            "contacts", cid, _ts(at), _ts(updated), _ts(archived_at) if archived_at else None, None, None, "{}", body
        )
        name = company if type_code == 2 else f"{first} {last}".strip()
        return _Contact(cid, _link(f"contacts/{cid}"), name or "", email)

    def _patient(self, i: int, showcase: bool | None = None) -> None:
        rng = self.rng
        ref = self.ref
        flags = self.flags.get(i, ())
        if showcase is None:
            showcase = i == 0  # patient 0 carries one of everything, so every kind exists at any size
        created = self.open + int((ref - 2 * DAY - self.open) * rng.random() ** 0.7)
        if showcase:
            created = ref - 80 * DAY - rng.randint(0, DAY)  # ten visits behind, a few ahead
        elif flags:
            created = min(created, ref - 60 * DAY)  # room for the past visits a planted case needs
        pid = self.mint(created)
        plink = _link(f"patients/{pid}")

        # who they are
        sex = rng.choice(data.SEXES)
        first = rng.choice(data.FIRST_NAMES[sex])
        last = rng.choice(data.LAST_NAMES)
        stem = f"{first}.{last}".lower()
        if "unicode_names" in flags:
            first, last, stem = data.UNICODE_NAMES[len(self.hard["unicode_names"]) % len(data.UNICODE_NAMES)]
            self.hard["unicode_names"].append(pid)
        elif "rtl_names" in flags:
            first, last, stem = data.RTL_NAMES[len(self.hard["rtl_names"]) % len(data.RTL_NAMES)]
            self.hard["rtl_names"].append(pid)
        elif "missing_first_name" in flags:
            first = ""
            self.hard["missing_first_name"].append(pid)
        label = f"{first} {last}".strip()
        email: str | None = f"{stem}{i}@{data.PATIENT_EMAIL_DOMAINS[i % len(data.PATIENT_EMAIL_DOMAINS)]}"
        if "missing_email" in flags:
            email = None
            self.hard["missing_email"].append(pid)
        elif "invalid_emails" in flags:
            email = data.INVALID_EMAILS[len(self.hard["invalid_emails"]) % len(data.INVALID_EMAILS)].format(n=i)
            self.hard["invalid_emails"].append(pid)
        elif "duplicate_emails" in flags and self.last_plain is not None:
            other_id, email = self.last_plain  # a family sharing one address
            self.duplicates.setdefault(email, [other_id]).append(pid)
        elif "nutshell_email_collisions" in flags:
            self.hard["nutshell_email_collisions"].append(pid)
            shown = email if len(self.hard["nutshell_email_collisions"]) % 3 else email.capitalize()
            number = f"+614{rng.randint(10_000_000, 99_999_999)}"
            self.nutshell_people.append({"name": label or last, "emails": [shown], "phones": [number]})
        else:
            self.last_plain = (pid, email)

        x = int(rng.random() * 90_000_000) + 10_000_000
        mobile = f"04{x // 1_000_000:02d} {x // 1000 % 1000:03d} {x % 1000:03d}"
        phones = [("Mobile", mobile, "+61" + mobile[1:].replace(" ", ""))] if rng.random() < 0.92 or showcase else []
        if rng.random() < 0.25 or showcase:
            home = f"(03) 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Home", home, "+613" + home[5:].replace(" ", "")))
        if rng.random() < 0.08 or showcase:
            work = f"03 8{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Work", work, "+613" + work[3:].replace(" ", "")))
        if rng.random() < 0.015 or showcase:
            fax = f"03 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Fax", fax, "+613" + fax[3:].replace(" ", "")))
        if rng.random() < 0.01 or showcase:
            other = f"+44 7700 900{rng.randint(100, 999)}"
            phones.append(("Other", other, other.replace(" ", "")))
        sms_ok = bool(phones) and phones[0][0] == "Mobile"
        u = rng.random()
        reminder = "SMS & Email" if showcase or u < 0.5 else "SMS" if u < 0.75 else "Email" if u < 0.9 else "None"
        if email is None and "Email" in reminder:
            reminder = "SMS" if sms_ok else "None"
        if not sms_ok and "SMS" in reminder:
            reminder = "Email" if email else "None"

        # the practice relationship
        concession = self.concessions[rng.randrange(len(self.concessions))] if rng.random() < 0.1 else None
        doctor = self.doctors[rng.randrange(len(self.doctors))] if rng.random() < 0.25 or showcase else None
        insured = rng.random() < 0.4 or showcase
        insurer = self.insurers[rng.randrange(len(self.insurers))] if insured else None
        third_party = insurer is not None and (rng.random() < 0.3 or showcase)
        case_id: str | None = None
        if rng.random() < 0.02 or showcase:
            case_id = self.mint(created + 600)
        day0 = created // DAY
        prac_idx = self._pick_practitioner(day0, None)
        classes = (rng.random() < 0.12 or showcase) and bool(self.group_slots)

        # the appointments
        status = "merged" if "merged_patients" in flags else "archived" if "archived_patients" in flags else None
        visits = self._plan_visits(rng, created, prac_idx, classes, showcase, past_only=status is not None)
        long_tn = "long_notes" in flags and len(self.hard["long_notes"]) % 2 == 1
        long_pn = "long_notes" in flags and not long_tn
        draft_wanted = "draft_treatment_notes" in flags
        state = _PatientState(pid, plink, label, email, reminder, mobile if sms_ok else None, concession, case_id)
        state.insurer = insurer if third_party else None
        state.created_floor = created
        long_k = draft_k = None
        if long_tn or draft_wanted:
            past = [k for k, v in enumerate(visits) if v.start + self.types[v.type].minutes * 60 < ref]
            long_k = past[0] if long_tn and past else None
            draft_k = past[-1] if draft_wanted and past else None
        for k, visit in enumerate(visits):
            self._visit(state, visit, k, showcase, k == long_k, k == draft_k)
        if long_tn and state.long_note_id:
            self.hard["long_notes"].append(state.long_note_id)
        if draft_wanted and state.draft_id:
            self.hard["draft_treatment_notes"].append(state.draft_id)

        last_activity = max(state.last_activity, created)
        archived_at = merged_at = None
        merged_with = None
        if status == "merged" and self.last_active is not None:
            merged_at = min(ref - DAY, last_activity + rng.randint(1, 120) * DAY)
            archived_at = merged_at
            merged_with = self.last_active
            self.hard["merged_patients"].append(pid)
        elif status is not None:
            archived_at = min(ref - DAY, last_activity + rng.randint(30, 400) * DAY)
            self.hard["archived_patients"].append(pid)
        else:
            self.last_active = pid
        updated = archived_at or min(ref - 60, max(created, last_activity - rng.randint(0, 5) * DAY))

        # the rest of the chart
        self._medical_alerts(state, created, showcase)
        self._memos(state, created, showcase)
        self._attachments(state, created, "large_files" in flags, showcase)
        if rng.random() < 0.3 or showcase:
            self._referral_source(state, created, doctor)
        if case_id is not None:
            self._patient_case(state, case_id, created, doctor)

        # the patient record itself
        dob = None if rng.random() < 0.03 else _date(created - rng.randint(6 * 365, 90 * 365) * DAY)
        title = rng.choice(data.TITLES_BY_SEX[sex])
        has_address = rng.random() < 0.85 or showcase
        suburb, post_code = rng.choice(data.SUBURBS)
        notes = _long_text(rng, 21_000) if long_pn else rng.choice(("", "", "", "Prefers morning appointments."))
        if long_pn:
            self.hard["long_notes"].append(pid)
        pronouns = "null"
        if rng.random() < 0.1 or showcase:
            pronouns = _encode(data.PRONOUNS["they" if sex == "Other" else "she" if sex == "Female" else "he"])
        custom = self._custom_fields(rng, insurer, showcase)
        phones_json = (
            "["
            + ",".join(
                f'{{"phone_type":"{kind}","number":"{num}","normalized_number":"{norm}"}}' for kind, num, norm in phones
            )
            + "]"
        )
        invoice_to = insurer.name if third_party and insurer else None
        medicare = f"{rng.randint(2000, 6999)} {rng.randint(10000, 99999)} {rng.randint(1, 9)}"
        # ids carried over from the system the clinic used before Cliniko
        old_ref = str(rng.randint(1000, 99999)) if created < LEGACY_ID_CUTOFF and rng.random() < 0.3 else ""
        fk = [f'"latest_booking_id":"{state.latest_id}"'] if state.latest_id else []
        links = []
        if concession:
            fk.append(f'"concession_type_id":"{concession[0]}"')
            links.append(f'"concession_type":{concession[1]},')
        if doctor:
            fk.append(f'"referring_doctor_id":"{doctor.id}"')
            links.append(f'"referring_doctor":{doctor.link},')
        if merged_with:
            fk.append(f'"merged_with_patient_id":"{merged_with}"')
            links.append(f'"merged_with_patient":{_link(f"patients/{merged_with}")},')
        if state.latest_id:
            links.append(f'"latest_booking":{_link(f"bookings/{state.latest_id}")},')
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{pid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
            f'"archived_at":{_t(archived_at)},"deleted_at":null,"title":{_s(title)},"first_name":{_s(first)},'
            f'"last_name":{_s(last)},"preferred_first_name":{_s("")},"label":{_s(label)},'
            f'"date_of_birth":{_s(dob)},"email":{_s(email)},"sex":"{sex}","gender_identity":"{data.GENDER_IDENTITY[sex]}",'
            f'"gender":"{sex}","pronouns":{pronouns},"patient_phone_numbers":{phones_json},'
            f'"address_1":{_s(f"{rng.randint(1, 250)} {rng.choice(data.STREETS)}" if has_address else "")},'
            f'"address_2":"","address_3":"","city":{_s(suburb if has_address else "")},'
            f'"state":{_s("Victoria" if has_address else "")},"post_code":{_s(post_code if has_address else "")},'
            f'"country":{_s("Australia" if has_address else "")},'
            f'"occupation":{_s(rng.choice(data.OCCUPATIONS))},"emergency_contact":"","notes":{_s(notes)},'
            f'"appointment_notes":{_s(rng.choice(data.APPOINTMENT_NOTES) if rng.random() < 0.05 else "")},'
            f'"medicare":{_s(medicare if rng.random() < 0.5 else "")},"medicare_reference_number":"",'
            f'"dva_card_number":{_s("VX" + str(rng.randint(10000, 99999)) if rng.random() < 0.01 else None)},'
            f'"invoice_default_to":{_s(invoice_to or "")},'
            f'"invoice_email":{_s(insurer.email if third_party and insurer else None)},'
            f'"invoice_extra_information":{_s(f"Claim {rng.randint(100000, 999999)}" if third_party else "")},'
            f'"referral_source":"","old_reference_id":{_s(old_ref)},'
            f'"reminder_type":"{reminder}","receives_confirmation_emails":{_B[email is not None]},'
            f'"accepted_privacy_policy":{_B[rng.choice((True, True, None))]},'
            f'"accepted_email_marketing":{_B[rng.random() < 0.3]},"accepted_sms_marketing":{_B[rng.random() < 0.2]},'
            f'"time_zone":null,"merged_at":{_t(merged_at)},"custom_fields":{custom},'
            + "".join(links)
            + f'"appointments":{{"links":{{"self":"{BASE}/patients/{pid}/appointments"}}}},'
            f'"attendees":{{"links":{{"self":"{BASE}/patients/{pid}/attendees"}}}},'
            f'"invoices":{{"links":{{"self":"{BASE}/patients/{pid}/invoices"}}}},'
            f'"medical_alerts":{{"links":{{"self":"{BASE}/patients/{pid}/medical_alerts"}}}},'
            f'"patient_attachments":{{"links":{{"self":"{BASE}/patients/{pid}/patient_attachments"}}}},'
            f'"links":{{"self":"{BASE}/patients/{pid}"}}}}'
        )
        self.sink.record(
            "patients",
            pid,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            None,
            None,
            "{" + ",".join(fk) + "}",
            body,
        )

    def _custom_fields(self, rng: _Rng, insurer: _Contact | None, showcase: bool) -> str:
        """The patient's custom field values, keyed by the settings' tokens; null when they have none.

        Built from text fragments prepared once per field (json.dumps per patient was a hot spot).
        """
        fields: tuple[list[str], list[str]] = ([], [])
        for f in self.fields:
            head = self.field_heads[f.token]
            if f.section == 0:
                if insurer is None or (f.name == "Group number" and rng.random() < 0.5 and not showcase):
                    continue
                value = insurer.name if f.name == "Insurer" else f"{rng.choice('ABCHMN')}{rng.randint(100000, 9999999)}"
                fields[0].append(f'{head},"value":{_s(value)}}}')
            elif f.archived:
                if rng.random() < 0.03 or showcase:
                    fields[1].append(f'{head},"archived":true,"value":"Old clinic"}}')
            elif rng.random() < 0.6 or showcase:
                if f.type == "radiobuttons":
                    pick = int(rng.random() * len(f.options))
                    opts = ",".join(self.option_text[t][j == pick] for j, (_, t) in enumerate(f.options))
                    fields[1].append(f'{head},"options":[{opts}]}}')
                elif f.type == "checkboxes":
                    opts = ",".join(self.option_text[t][rng.random() < 0.4] for _, t in f.options)
                    fields[1].append(f'{head},"options":[{opts}]}}')
                elif f.type == "date":
                    fields[1].append(f'{head},"value":"{_date(self.ref - rng.randint(10, 2000) * DAY)}"}}')
                else:
                    fields[1].append(f'{head},"value":"Return to running; sleep without pain"}}')
        parts = [
            f'{{"name":{_s(name)},"token":"{token}","fields":[{",".join(section)}]}}'
            for (name, token), section in zip(self.sections, fields, strict=True)
            if section
        ]
        return f'{{"sections":[{",".join(parts)}]}}' if parts else "null"

    def _medical_alerts(self, st: _PatientState, created: int, showcase: bool) -> None:
        rng = self.rng
        if not (rng.random() < 0.12 or showcase):
            return
        for _ in range(2 if showcase else rng.choice((1, 1, 2))):
            at = min(self.ref - 60, created + rng.randint(0, 30) * DAY)
            aid = self.mint(at)
            archived = at + 90 * DAY if rng.random() < 0.05 and at + 90 * DAY < self.ref else None
            updated = archived or at
            body = (
                f'{{"id":"{aid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}",'
                f'"name":{_s(data.MEDICAL_ALERTS[rng.randrange(len(data.MEDICAL_ALERTS))])},'
                f'"archived_at":{_t(archived)},"deleted_at":null,"patient":{st.plink},'
                f'"links":{{"self":"{BASE}/medical_alerts/{aid}"}}}}'
            )
            self.sink.record(
                "medical_alerts",
                aid,
                _ts(at),
                _ts(updated),
                _ts(archived) if archived else None,
                None,
                None,
                f'{{"patient_id":"{st.pid}"}}',
                body,
            )

    def _referral_source(self, st: _PatientState, created: int, doctor: _Contact | None) -> None:
        rng = self.rng
        type_idx = 1 if doctor is not None and rng.random() < 0.7 else rng.choice((0, 0, 2, 3, 4))
        # The referral source types are linked but not written: /referral_source_types is not among the
        # resources the sandbox serves (so `referral_source_type_id` in fk names no stored record).
        type_id, type_name, referrer_type = self.referral_types[type_idx]
        referrer = "null"
        fk = f'{{"patient_id":"{st.pid}","referral_source_type_id":"{type_id}"'
        if referrer_type == "Contact" and doctor is not None:
            referrer = doctor.link
            fk += f',"referrer_id":"{doctor.id}"'
        elif referrer_type == "Patient" and self.last_active is not None:
            referrer = _link(f"patients/{self.last_active}")
            fk += f',"referrer_id":"{self.last_active}"'
        else:
            referrer_type = None
        rid = self.mint(created)
        subs = data.REFERRAL_SUBCATEGORIES.get(type_name)
        c_ts = _ts(created)
        body = (
            f'{{"id":"{rid}","created_at":"{c_ts}","updated_at":"{c_ts}",'
            f'"referrer_type":{_s(referrer_type)},"referrer":{referrer},'
            f'"subcategory":{_s(subs[rng.randrange(len(subs))] if subs else None)},"notes":null,'
            f'"patient":{st.plink},"referral_source_type":{_link(f"referral_source_types/{type_id}")},'
            f'"links":{{"self":"{BASE}/patients/{st.pid}/referral_source"}}}}'
        )
        self.sink.record("referral_sources", rid, c_ts, c_ts, None, None, None, fk + "}", body)

    def _patient_case(self, st: _PatientState, case_id: str, created: int, doctor: _Contact | None) -> None:
        rng = self.rng
        at = created + 600
        kind = rng.choice((("Workers compensation claim", None), ("EPC referral", "medicare"), ("DVA referral", "dva")))
        issue = _date(at)
        expiry = _date(at + 365 * DAY)
        updated = min(self.ref - 60, max(at, st.last_activity))
        contact = f'"contact":{doctor.link},' if doctor else ""
        fk = f'{{"patient_id":"{st.pid}"' + (f',"contact_id":"{doctor.id}"' if doctor else "")
        fk += ',"attendee_ids":[' + ",".join(f'"{a}"' for a in st.case_attendees) + "]}"
        body = (
            f'{{"id":"{case_id}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","name":{_s(kind[0])},'
            f'"notes":null,"closed":{_B[updated < self.ref - 180 * DAY]},'
            f'"issue_date":"{issue}","expiry_date":"{expiry}",'
            f'"max_sessions":{5 if kind[1] == "medicare" else 12},"max_invoiceable_amount":null,'
            f'"include_cancelled_attendees":false,"include_dna_attendees":true,"referral":{_B[kind[1] is not None]},'
            f'"referral_type":{_s(kind[1])},"attendee_ids":[' + ",".join(f'"{a}"' for a in st.case_attendees) + "],"
            f'"archived_at":null,"patient":{st.plink},{contact}'
            f'"attendees":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/attendees"}}}},'
            f'"bookings":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/bookings"}}}},'
            f'"invoices":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/invoices"}}}},'
            f'"patient_attachments":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/patient_attachments"}}}},'
            f'"links":{{"self":"{BASE}/patient_cases/{case_id}"}}}}'
        )
        self.sink.record("patient_cases", case_id, _ts(at), _ts(updated), None, None, None, fk, body)
