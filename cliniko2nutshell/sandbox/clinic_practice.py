"""The practice a clinic's patients refer to: its size-dependent catalogue (assembled here from the billing,
documents, appointments and people parts), its businesses, the patient custom-field definitions, and the account
settings (written last)."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    BASE,
    DAY,
    _ApptType,
    _Business,
    _encode,
    _Field,
    _GeneratorBase,
    _GroupSlot,
    _link,
    _s,
    _ts,
    _Zone,
)
from cliniko2nutshell.sandbox.clinic_documents import _note_content


class _Practice(_GeneratorBase):
    """The practice, built before the first patient."""

    def _build_practice(self) -> None:
        rng = self.rng
        scale = self.patients
        n_business = 2 if scale < 1000 else 3 if scale < 10_000 else 4
        n_types = 6 if scale < 1000 else 8 if scale < 10_000 else 12
        n_active = min(12, 6 + round(2 * math.log10(max(scale, 100) / 100)))
        n_inactive = 1 if scale < 1000 else 2
        setup = self.open - 30 * DAY  # the account was set up a month before the first patient

        # taxes, concession types, billable items, products
        self.gst = self._tax("GST", 10, setup)
        self.gst_free = self._tax("GST-Free", 0, setup)
        self.concessions = self._concession_types(setup)
        self.templates = self._treatment_note_templates(setup)
        # Notes are drawn from a pool of filled-in variants per template: writing each one afresh costs more
        # than everything else a visit writes, and nothing downstream needs every note to differ.
        self.note_pool = [
            (
                [_note_content(rng, sections, False, 0) for _ in range(48)],
                [_note_content(rng, sections, True, 0) for _ in range(8)],
            )
            for _, _, _, sections in self.templates
        ]
        self.types: list[_ApptType] = []
        for spec in data.APPOINTMENT_TYPES[:n_types]:
            self.types.append(self._appointment_type(spec, setup))
        self.other_items = [
            self._billable_item(n, kind, price, code, setup) for n, kind, price, code in data.OTHER_SERVICES
        ]
        self.products = [self._product(spec, setup) for spec in data.PRODUCTS]

        # businesses and people
        self.businesses: list[_Business] = []
        for spec in data.BUSINESSES[:n_business]:
            self.businesses.append(self._business(spec, setup))
        self._users_and_practitioners(n_active, n_inactive, setup)
        self._contacts(setup)
        self._unavailable_blocks()
        self._custom_field_definitions()
        self.referral_types = [(self.mint(setup), name, kind) for name, kind in data.REFERRAL_SOURCE_TYPES]

        self._working: dict[tuple[int, str | None], list[int]] = {}  # practitioners at work, per day and category
        individual = [t for t, at in enumerate(self.types) if at.max_attendees == 1]
        self.own_types = [
            [t for t in individual if self.types[t].category in p.categories] or individual for p in self.practitioners
        ]

        # group classes: weekly slots per group type, more of them in bigger clinics
        per_type = 1 + scale // 8000
        self.group_slots: list[_GroupSlot] = []
        for t, atype in enumerate(self.types):
            if atype.max_attendees <= 1:
                continue
            for k in range(per_type):
                self.group_slots.append(
                    _GroupSlot(t, k % len(self.businesses), (t + 2 * k) % 6, 7 * 60 + ((t * 5 + k * 3) % 11) * 60)
                )

    def _business(self, spec: tuple[str, ...], at: int) -> _Business:
        _, label, iana, state, city, post_code, country, cc, address = spec
        name = self.clinic_name if not self.businesses else f"{self.clinic_name} {city}"
        bid = self.mint(at)
        created = _ts(at)
        updated = _ts(at + 200 * DAY)
        type_ids = "[" + ",".join(f'"{t.id}"' for t in self.types) + "]"
        abn = self.rng.randint(10**10, 10**11 - 1)
        phone = f"(0{3 + len(self.businesses)}) 9{self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}"
        body = (
            f'{{"id":"{bid}","created_at":"{created}","updated_at":"{updated}","archived_at":null,"deleted_at":null,'
            f'"business_name":{_s(name)},"display_name":null,"label":{_s(name)},"address_1":{_s(address)},'
            f'"address_2":null,"city":{_s(city)},"state":{_s(state)},"post_code":"{post_code}",'
            f'"country":{_s(country)},"country_code":"{cc}","contact_information":{_s("Phone: " + phone)},'
            f'"email_reply_to":"{self.email_from}","website_address":"https://{self.domain}",'
            f'"business_registration_name":"ABN","business_registration_value":"{abn}",'
            f'"additional_information":null,"additional_invoice_information":"Payment due within 14 days",'
            f'"show_in_online_bookings":true,"appointment_reminders_enabled":true,"appointment_type_ids":{type_ids},'
            f'"time_zone":"{label}","time_zone_identifier":"{iana}",'
            f'"practitioners":{{"links":{{"self":"{BASE}/businesses/{bid}/practitioners"}}}},'
            f'"appointments":{{"links":{{"self":"{BASE}/businesses/{bid}/appointments"}}}},'
            f'"links":{{"self":"{BASE}/businesses/{bid}"}}}}'
        )
        fk = f'{{"appointment_type_ids":{type_ids}}}'
        self.sink.record("businesses", bid, created, updated, None, None, None, fk, body)
        return _Business(bid, _link(f"businesses/{bid}"), name, _Zone(iana), self.sms_sender)

    def _token(self) -> str:
        return str(uuid.UUID(int=self._tokens_rng.getrandbits(128), version=4))

    def _custom_field_definitions(self) -> None:
        """Settings' patient custom fields: "Insurance" (text fields) and "Intake" (one of each other type)."""
        sections = [("Insurance", self._token()), ("Intake", self._token())]
        specs: list[tuple[int, str, str, tuple[str, ...], bool]] = [
            (0, "Policy number", "text", (), False),
            (0, "Group number", "text", (), False),
            (0, "Insurer", "text", (), False),
            (1, "How did you hear about us?", "radiobuttons", ("Google", "Friend", "Doctor", "Walked past"), False),
            (1, "Areas of concern", "checkboxes", ("Neck", "Back", "Shoulder", "Knee", "Ankle"), False),
            (1, "Date of injury", "date", (), False),
            (1, "Goals", "paragraph", (), False),
            (1, "Previous clinic", "text", (), True),
        ]
        self.sections = sections
        self.fields = [
            _Field(sec, name, ftype, self._token(), tuple((o, self._token()) for o in opts), archived)
            for sec, name, ftype, opts, archived in specs
        ]
        self.field_heads = {
            f.token: f'{{"name":{_s(f.name)},"type":"{f.type}","token":"{f.token}"' for f in self.fields
        }
        self.option_text = {
            t: (f'{{"name":{_s(n)},"token":"{t}"}}', f'{{"name":{_s(n)},"token":"{t}","selected":true}}')
            for f in self.fields
            for n, t in f.options
        }

    def _write_singletons(self) -> None:
        settings = self._settings()
        public = {k: v for k, v in settings.items() if k not in ("account",)}
        public["account"] = {
            k: v
            for k, v in settings["account"].items()
            if k not in ("email_from", "first_name", "last_name", "compliance")
        }
        public["integrations"] = {k: v for k, v in settings["integrations"].items() if k != "medipass"}
        for name, body in (
            ("settings", _encode(settings)),
            ("public_settings", _encode(public)),
            ("current_user_id", json.dumps(self.admin_user_id)),
        ):
            self.sink.add("INSERT INTO singletons (name, body) VALUES (?, ?)", (name, body))

    def _settings(self) -> dict[str, Any]:
        definition = {
            "sections": [
                {
                    "name": name,
                    "token": token,
                    "archived": False,
                    "fields": [
                        {
                            "name": f.name,
                            "token": f.token,
                            "type": f.type,
                            "archived": f.archived,
                            **({"options": [{"name": n, "token": t, "archived": False} for n, t in f.options]}
                               if f.options else {}),
                            **({"other": {"enabled": False, "archived": False}} if f.type == "checkboxes" else {}),
                        }
                        for f in self.fields
                        if f.section == s
                    ],
                }
                for s, (name, token) in enumerate(self.sections)
            ]
        }  # fmt: skip
        return {
            "account": {
                "id": self.mint(self.open - 30 * DAY),
                "name": self.clinic_name,
                "country": "Australia",
                "country_code": "AU",
                "currency_symbol": "$",
                "subdomain": self.subdomain,
                "has_time_travelers": False,
                "time_zone_support": True,
                "time_zone": data.BUSINESSES[0][1],  # in the reference (§5.19), absent from OAS23
                "email_from": self.email_from,
                "first_name": self.admin_name[0],
                "last_name": self.admin_name[1],
                "compliance": {"has_hipaa_compliance_conflicts": False, "hipaa_compliance-conflict_messages": []},
            },
            "calendar": {
                "start_hour": 7,
                "end_hour": 20,
                "timeslot_height_in_pixels": 24,
                "timeslot_size_in_minutes": 15,
                "show_current_time_indicator": True,
                "multiple_appointments_gap": False,
            },
            "documents_and_printing": {"logo_url": None, "logo_height": 80},
            "email": {"patient_accept_email_marketing_by_default": False},
            "integrations": {
                "mail_chimp": {"enabled": False},
                "xero": {"enabled": True},
                "medipass": {"enabled": False},
            },
            "online_bookings": {
                "allow_bookings_days_in_advance": 90,
                "allow_online_bookings_time_zone_choice": False,
                "booking_reservation_minutes": 10,
                "calendar_info": None,
                "daily_bookings_limit": 0,
                "disabled_text": None,
                "disabled_title": None,
                "enabled": True,
                "logo_url": None,
                "max_appointments_per_day_segment": 0,
                "min_hours_advance_required_to_book": 2,
                "min_hours_notice_for_patient_cancellation": 24,
                "notice_enabled": False,
                "notice_text": None,
                "notice_title": None,
                "notify_practitioner_by_email": True,
                "notify_practitioner_by_sms": False,
                "policy": "Please give 24 hours notice of cancellation.",
                "practitioner_order": [p.id for p in self.practitioners if p.end is None],
                "privacy_policy_url": f"https://{self.domain}/privacy",
                "require_patient_address": False,
                "show_appointment_duration": True,
                "show_prices": True,
            },
            "online_payments": {"activated": False},
            "patient_custom_fields_definition": definition,
            "patient_privacy": {
                "browser_title_name_format": "initials",
                "ical_patient_name_option": "initials",
                "prevent_sending_financial_data_by_email": False,
                "requires_hipaa_compliance": False,
                "anonymise_appointments_on_deletion": False,
                "anonymise_booking_notifications": False,
                "anonymise_invoices_and_payments_on_deletion": False,
                "baa_requested": False,
            },
            "reminders": {"default_reminder_type": "SMS & Email"},
            "sms": {
                "alphanumeric_source_number_required": False,
                "default_alphanumeric_source_number": self.sms_sender,
                "max_message_length": 459,
                "number_of_usable_characters_per_message": 153,
                "patient_accept_sms_marketing_by_default": False,
                "replies_supported": True,
            },
            "terminology": {"patient": "patient", "titles": ["Mr", "Mrs", "Ms", "Miss", "Mx", "Dr"]},
            "wait_list": {"default_wait_list_expiry_period": 30},
        }
