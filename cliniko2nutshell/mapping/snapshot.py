"""The Nutshell side as the map and the pre-flight need it, taken as plain data.

The engine (or the CLI) fills a `NutshellSnapshot` from the Nutshell client; the tests and the demo can build one
from a sandbox seed (`from_seed`). Nothing here talks to Nutshell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cliniko2nutshell.mapping.names import normalize_email
from cliniko2nutshell.mapping.practitioners import NutshellUser

DEFAULT_FILE_SIZE_LIMIT = 25 * 2**20  # the sandbox's default; Nutshell documents none (reference §11.10)


@dataclass(frozen=True, slots=True)
class CustomFieldInfo:
    name: str
    type: str  # Text | LongText | Date | Currency | Number | Decision | ...
    entity: str = "Contacts"
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActivityTypeInfo:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ExistingPerson:
    id: str
    name: str
    emails: tuple[str, ...] = ()


@dataclass
class NutshellSnapshot:
    users: list[NutshellUser] = field(default_factory=list)
    activity_types: list[ActivityTypeInfo] = field(default_factory=list)
    custom_fields: dict[str, list[CustomFieldInfo]] = field(default_factory=dict)  # "Contacts", "Accounts"
    # People already in Nutshell, keyed by normalised e-mail (only those e-mails the patients use are needed).
    people_by_email: dict[str, list[ExistingPerson]] = field(default_factory=dict)
    file_size_limit: int | None = DEFAULT_FILE_SIZE_LIMIT
    custom_field_cap: int | None = None  # None: unknown or unlimited
    # How many people and companies Nutshell holds now (None: not read), and the plan's contact limit as the user
    # recorded it (a project setting; None: no limit recorded).
    people_total: int | None = None
    companies_total: int | None = None
    contact_limit: int | None = None

    @property
    def activity_type_names(self) -> list[str]:
        return [a.name for a in self.activity_types]

    def custom_field(self, name: str, entity: str = "Contacts") -> CustomFieldInfo | None:
        return next((f for f in self.custom_fields.get(entity, []) if f.name == name), None)

    def people_with_email(self, email: str | None) -> list[ExistingPerson]:
        return self.people_by_email.get(normalize_email(email), [])

    @classmethod
    def from_seed(
        cls,
        seed: dict[str, Any],
        *,
        file_size_limit: int | None = DEFAULT_FILE_SIZE_LIMIT,
        emails: Iterable[str] | None = None,
    ) -> NutshellSnapshot:
        """A snapshot of a sandbox seeded with `seed` (the clinic generator's `nutshell_seed`). Ids follow the
        seed's order, as the sandbox numbers them; `emails` limits people_by_email to those addresses."""
        users = [
            NutshellUser(
                id=f"{i}-users",
                name=" ".join(x for x in (u.get("first_name"), u.get("last_name")) if x),
                emails=tuple(u.get("emails", [])),
                first_name=u.get("first_name"),
                last_name=u.get("last_name"),
                enabled=bool(u.get("is_enabled", True)),
            )
            for i, u in enumerate(seed.get("users", []), start=2)  # 1-users is the API user
        ]
        api = seed.get("api_user") or {}
        if api.get("email"):
            users.insert(0, NutshellUser(id="1-users", name="API user", emails=(api["email"],)))
        wanted = {normalize_email(e) for e in emails} if emails is not None else None
        people: dict[str, list[ExistingPerson]] = {}
        for i, p in enumerate(seed.get("people", []), start=1):
            person = ExistingPerson(f"{i}-contacts", p.get("name", ""), tuple(p.get("emails", [])))
            for e in person.emails:
                key = normalize_email(e)
                if wanted is None or key in wanted:
                    people.setdefault(key, []).append(person)
        custom = {
            entity: [CustomFieldInfo(f["name"], f["type"], entity, tuple(f.get("choices", []))) for f in defs]
            for entity, defs in (seed.get("custom_fields") or {}).items()
        }
        return cls(
            users=users,
            activity_types=[
                ActivityTypeInfo(f"{i}-activityTypes", n) for i, n in enumerate(seed.get("activity_types", []), 1)
            ],
            custom_fields=custom,
            people_by_email=people,
            file_size_limit=file_size_limit,
            custom_field_cap=seed.get("custom_field_cap"),
        )
