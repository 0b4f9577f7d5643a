"""The planted hard cases: which patients carry which case (`_plan_hard_cases`), the lists of every planted
record (`meta.hard_cases`), the practitioners' future Nutshell users (matching and mismatching on purpose), and the
Nutshell account the other sandbox starts from (people whose e-mails collide with patients, a wrong-typed field)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    _GeneratorBase,
)
from cliniko2nutshell.sandbox.nutshell_seed import DEFAULT_ACTIVITY_TYPES

_EMAIL_FLAGS = ("missing_email", "invalid_emails", "duplicate_emails", "nutshell_email_collisions")

_NAME_FLAGS = ("unicode_names", "rtl_names", "missing_first_name")

_STATUS_FLAGS = ("archived_patients", "merged_patients")

_CONTENT_FLAGS = ("long_notes", "large_files", "draft_treatment_notes")


HARD_CASE_RESOURCES: dict[str, tuple[str, ...]] = {
    "archived_patients": ("patients",),
    "merged_patients": ("patients",),
    "unicode_names": ("patients",),
    "rtl_names": ("patients",),
    "missing_first_name": ("patients",),
    "missing_email": ("patients",),
    "invalid_emails": ("patients",),
    "duplicate_emails": ("patients",),
    "nutshell_email_collisions": ("patients",),
    "long_notes": ("patients", "treatment_notes"),
    "large_files": ("patient_attachments",),
    "inactive_practitioners": ("practitioners",),
    "practitioner_email_mismatch": ("practitioners",),
    "practitioner_no_user": ("practitioners",),
    "archived_appointments": ("individual_appointments",),
    "cancelled_appointments": ("individual_appointments",),
    "no_show_appointments": ("individual_appointments",),
    "future_appointments": ("individual_appointments",),
    "group_appointments": ("group_appointments",),
    "cancelled_attendees": ("attendees",),
    "draft_treatment_notes": ("treatment_notes",),
    "unprocessed_attachments": ("patient_attachments",),
    "archived_contacts": ("contacts",),
}


class _HardCases(_GeneratorBase):
    """Where the hard cases go, and the Nutshell account they collide with."""

    def _plan_hard_cases(self) -> None:
        """Which patients carry which hard case: a few always, plus ~0.1% of patients per case.

        Cases of one family exclude each other (a patient has at most one e-mail case, one name case, one
        status case); patient 0 is always ordinary, so merges and duplicates have an earlier patient to use.
        """
        rng = random.Random(f"hard-cases-{self.seed}")
        self.flags: dict[int, set[str]] = {}
        for family in (_EMAIL_FLAGS, _NAME_FLAGS, _STATUS_FLAGS, _CONTENT_FLAGS):
            counts = [self._planted(flag) for flag in family]
            exclusive = family is not _CONTENT_FLAGS
            if exclusive:
                picks = rng.sample(range(1, self.patients), sum(counts))
                for flag, count in zip(family, counts, strict=True):
                    for i in picks[:count]:
                        self.flags.setdefault(i, set()).add(flag)
                    picks = picks[count:]
            else:
                for flag, count in zip(family, counts, strict=True):
                    for i in rng.sample(range(1, self.patients), count):
                        self.flags.setdefault(i, set()).add(flag)

    def _planted(self, flag: str) -> int:
        fixed = 1 if flag == "large_files" else 2
        return fixed + round(self.patients * 0.001)

    def hard_cases(self) -> dict[str, list[str]]:
        cases = {k: list(v) for k, v in self.hard.items()}
        cases["duplicate_emails"] = [pid for ids in self.duplicates.values() if len(ids) > 1 for pid in ids]
        return cases

    def _nutshell_user_for(self, k: int, active: bool, pid: str, first: str, last: str, email: str) -> None:
        """The practitioner's future Nutshell user: the matching and mismatching cases the wizard must handle."""
        if not active:
            self.hard["inactive_practitioners"].append(pid)
            if len(self.hard["inactive_practitioners"]) == 1:
                self.hard["practitioner_no_user"].append(pid)  # left the clinic before the CRM arrived
                return
            user = {"first_name": first, "last_name": last, "emails": [email], "is_administrator": False}
            self.nutshell_users.append({**user, "is_enabled": False})
            return
        if k < len(data.NUTSHELL_ALIASES):
            n_first, n_last, local, kind = data.NUTSHELL_ALIASES[k]
            domain = "mail.example.com" if kind == "personal" else self.domain
            self.hard["practitioner_email_mismatch"].append(pid)
            self.nutshell_users.append(
                {
                    "first_name": n_first,
                    "last_name": n_last,
                    "emails": [f"{local}@{domain}"],
                    "is_administrator": False,
                    "is_enabled": True,
                }
            )
            return
        if k == len(data.NUTSHELL_ALIASES):
            self.hard["practitioner_no_user"].append(pid)  # not invited to Nutshell yet
            return
        # Exact matches, written the way people type them: some in another case, some with stray spaces.
        variant = (k - len(data.NUTSHELL_ALIASES) - 1) % 3
        shown = (
            f" {email} "
            if variant == 0
            else f"{first}.{last}@{self.domain}".replace("'", "")
            if variant == 1
            else email
        )
        self.nutshell_users.append(
            {
                "first_name": first,
                "last_name": last,
                "emails": [shown],
                "is_administrator": k == len(data.NUTSHELL_ALIASES) + 1,
                "is_enabled": True,
            }
        )

    def _nutshell_seed(self) -> dict[str, Any]:
        rng = random.Random(f"nutshell-{self.seed}")
        people = list(self.nutshell_people)
        for k, (name, _company) in enumerate(data.NUTSHELL_PEOPLE):
            local = name.lower().replace(" ", ".")
            people.append({"name": name, "emails": [f"{local}@crm.example.com"], "phones": [f"+6139{k:03d}1234"]})
        for k in range(self.patients // 200):
            first = rng.choice(data.FIRST_NAMES["Other"])
            last = rng.choice(data.LAST_NAMES)
            people.append(
                {"name": f"{first} {last}", "emails": [f"{first}.{last}.{k}@crm.example.com".lower()], "phones": []}
            )
        accounts = [{"name": company} for _, company in data.NUTSHELL_PEOPLE if company]
        accounts += [{"name": self.insurers[0].name}, {"name": self.insurers[1].name}]
        return {
            "company_domain": self.domain,
            "api_user": {
                "email": f"admin@{self.domain}",
                "api_key": hashlib.sha1(f"nutshell-api-key-{self.seed}".encode()).hexdigest(),
            },
            "users": self.nutshell_users,
            "activity_types": list(DEFAULT_ACTIVITY_TYPES),  # the Nutshell sandbox's own defaults
            "people": people,
            "accounts": accounts,
            "custom_fields": {
                "Contacts": [
                    {"name": "Cliniko Patient ID", "type": "Text"},
                    {"name": "Date of Birth", "type": "Date"},
                    {"name": "Total Invoiced", "type": "Text"},  # wrong on purpose: the map wants Currency
                ],
                "Accounts": [],
                "Leads": [],
            },
            "custom_field_cap": None,
        }
