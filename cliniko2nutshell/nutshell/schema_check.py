"""Does the Nutshell account hold what the map needs? Custom fields (with types), activity types and users.

`check_schema` reads the account and returns a `SchemaReport` (pure data); `evaluate` is the same judgement
without I/O. `create_missing` defines the missing custom fields on request and returns each creation with its
time, so the engine can journal them (the API offers no delete for definitions: a rollback can only report them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from cliniko2nutshell.nutshell.errors import (
    CustomFieldCapError,
    NotFoundError,
    NutshellError,
    OutcomeUnknownError,
    PermissionDenied,
)
from cliniko2nutshell.nutshell.ids import NutshellId
from cliniko2nutshell.nutshell.models import ActivityType, CustomFieldDefinition, Entity, User

if TYPE_CHECKING:
    from cliniko2nutshell.nutshell.client import NutshellClient

# Types that hold the same values (free text): a field of one where the map asks for the other still works.
_INTERCHANGEABLE = ({"text", "longtext"},)


class FieldState(StrEnum):
    PRESENT = "present"
    MISSING = "missing"
    WRONG_TYPE = "wrong type"
    NAME_CASE_DIFFERS = "name differs in case"  # values are keyed by exact name: the map must use Nutshell's


@dataclass(frozen=True, slots=True)
class RequiredField:
    entity: Entity
    name: str
    type: str  # Nutshell's type name: Text, LongText, Currency, Date, Decision, Number...
    choices: tuple[str, ...] = ()  # for Decision fields


@dataclass(frozen=True, slots=True)
class SchemaNeeds:
    """What the map needs. `users` are e-mails or Nutshell user ids ("5-users") we will own records with."""

    custom_fields: Sequence[RequiredField] = ()
    activity_types: Sequence[str] = ()
    users: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class FieldCheck:
    required: RequiredField
    state: FieldState
    existing: CustomFieldDefinition | None = None
    compatible: bool = False  # for WRONG_TYPE: the existing type still accepts the values (Text vs LongText)
    missing_choices: tuple[str, ...] = ()  # Decision choices the map uses that the field does not offer


@dataclass(frozen=True, slots=True)
class ActivityTypeCheck:
    name: str
    found: ActivityType | None  # matched ignoring case and surrounding spaces

    @property
    def present(self) -> bool:
        return self.found is not None


class UserState(StrEnum):
    FOUND = "found"
    MISSING = "missing"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class UserCheck:
    wanted: str
    state: UserState
    user: User | None = None


@dataclass(frozen=True, slots=True)
class CapCheck:
    """The plan's custom-field cap against what exists and what would be created. `cap` None: unknown."""

    cap: int | None
    existing: int
    to_create: int

    @property
    def remaining(self) -> int | None:
        return None if self.cap is None else max(0, self.cap - self.existing)

    @property
    def allows(self) -> bool | None:
        """True or False when the cap is known, None when it is not (the real service does not publish it)."""
        return None if self.cap is None else self.existing + self.to_create <= self.cap


@dataclass(frozen=True, slots=True)
class SchemaReport:
    fields: tuple[FieldCheck, ...]
    activity_types: tuple[ActivityTypeCheck, ...]
    users: tuple[UserCheck, ...]
    cap: CapCheck
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def fields_in(self, *states: FieldState) -> tuple[FieldCheck, ...]:
        return tuple(f for f in self.fields if f.state in states)

    @property
    def missing_fields(self) -> tuple[FieldCheck, ...]:
        return self.fields_in(FieldState.MISSING)

    @property
    def missing_activity_types(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.activity_types if not a.present)

    @property
    def unusable_users(self) -> tuple[UserCheck, ...]:
        return tuple(u for u in self.users if u.state is not UserState.FOUND)

    @property
    def ready(self) -> bool:
        """Nothing missing or mistyped: the map can run as it is (a compatible type counts as fine)."""
        usable = (FieldState.PRESENT, FieldState.WRONG_TYPE)
        return (
            all(f.state in usable and (f.compatible or f.state is FieldState.PRESENT) for f in self.fields)
            and not any(f.missing_choices for f in self.fields)
            and not self.missing_activity_types
            and not self.unusable_users
        )


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _same_type(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def _compatible(a: str, b: str) -> bool:
    pair = {a.casefold(), b.casefold()}
    return any(pair <= group for group in _INTERCHANGEABLE)


def evaluate(
    needs: SchemaNeeds,
    definitions: Mapping[Entity, Sequence[CustomFieldDefinition]],
    activity_types: Sequence[ActivityType],
    users: Sequence[User],
    *,
    custom_field_cap: int | None = None,
) -> SchemaReport:
    """The report for `needs` against what the account holds (no I/O)."""
    checks = []
    for required in needs.custom_fields:
        defined = list(definitions.get(required.entity, ()))
        exact = next((d for d in defined if d.name == required.name), None)
        loose = exact or next((d for d in defined if _norm(d.name) == _norm(required.name)), None)
        if loose is None:
            checks.append(FieldCheck(required, FieldState.MISSING))
            continue
        missing_choices = tuple(c for c in required.choices if c not in loose.choices) if loose.choices else ()
        if exact is None:
            checks.append(FieldCheck(required, FieldState.NAME_CASE_DIFFERS, loose, missing_choices=missing_choices))
        elif loose.type is not None and not _same_type(loose.type, required.type):
            checks.append(
                FieldCheck(
                    required,
                    FieldState.WRONG_TYPE,
                    loose,
                    compatible=_compatible(loose.type, required.type),
                    missing_choices=missing_choices,
                )
            )
        else:
            # Unconfirmed: a definition that reports no type is taken as matching.
            checks.append(FieldCheck(required, FieldState.PRESENT, loose, missing_choices=missing_choices))

    by_name = {_norm(t.name): t for t in activity_types}
    type_checks = tuple(ActivityTypeCheck(name, by_name.get(_norm(name))) for name in needs.activity_types)

    user_checks = tuple(_check_user(wanted, users) for wanted in needs.users)

    # Unconfirmed: whether the plan cap counts custom fields of every entity or per entity; we count all the
    # definitions read (contacts, accounts, and leads when readable), the stricter reading.
    existing = sum(len(v) for v in definitions.values())
    to_create = sum(1 for c in checks if c.state is FieldState.MISSING)
    return SchemaReport(
        fields=tuple(checks),
        activity_types=type_checks,
        users=user_checks,
        cap=CapCheck(cap=custom_field_cap, existing=existing, to_create=to_create),
    )


def _check_user(wanted: str, users: Sequence[User]) -> UserCheck:
    try:
        uid: NutshellId | None = NutshellId.parse(wanted, "users")
    except ValueError:
        uid = None
    if uid is not None:
        found = next((u for u in users if u.id == uid), None)
    else:
        key = wanted.strip().casefold()
        found = next((u for u in users if key in (e.strip().casefold() for e in u.emails)), None)
    if found is None:
        return UserCheck(wanted, UserState.MISSING)
    return UserCheck(wanted, UserState.FOUND if found.is_enabled else UserState.DISABLED, found)


async def check_schema(
    client: NutshellClient, needs: SchemaNeeds, *, custom_field_cap: int | None = None
) -> SchemaReport:
    """Read the account and judge it against `needs`."""
    definitions: dict[Entity, list[CustomFieldDefinition]] = {}
    for entity in (Entity.CONTACTS, Entity.ACCOUNTS, Entity.LEADS):
        try:
            definitions[entity] = await client.custom_field_definitions(entity)
        except (NotFoundError, PermissionDenied):
            if entity is not Entity.LEADS:
                raise
            # Leads are not ours; their fields only count towards the cap when we can read them.
    activity_types = await client.list_activity_types() if needs.activity_types else []
    users = await client.list_users() if needs.users else []
    return evaluate(needs, definitions, activity_types, users, custom_field_cap=custom_field_cap)


@dataclass(frozen=True, slots=True)
class CreatedDefinition:
    """A custom field definition we created: journal it (the API cannot delete it on rollback)."""

    entity: Entity
    name: str
    type: str
    created_at: datetime
    id: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CreationFailure:
    required: RequiredField
    reason: str  # Nutshell's message, or why we did not try
    cap_reached: bool = False
    outcome_unknown: bool = False  # it may exist now: check again before retrying


@dataclass(frozen=True, slots=True)
class CreationResult:
    created: tuple[CreatedDefinition, ...]
    failures: tuple[CreationFailure, ...]

    @property
    def cap_reached(self) -> bool:
        return any(f.cap_reached for f in self.failures)


async def create_missing(
    client: NutshellClient,
    report: SchemaReport,
    *,
    only: Iterable[str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CreationResult:
    """Create the custom fields the report found missing (all, or those named in `only`), in map order.

    When the cap is known and too small for all of them, none is created: a half-created set would leave the
    map unrunnable anyway. When Nutshell refuses one for its cap, the rest are not tried.
    """
    names = None if only is None else set(only)
    todo = [c.required for c in report.missing_fields if names is None or c.required.name in names]
    remaining = report.cap.remaining
    if remaining is not None and len(todo) > remaining:
        reason = (
            f"the plan allows {report.cap.cap} custom fields, {report.cap.existing} exist and "
            f"{len(todo)} more are needed"
        )
        return CreationResult((), tuple(CreationFailure(r, reason, cap_reached=True) for r in todo))

    created: list[CreatedDefinition] = []
    failures: list[CreationFailure] = []
    for index, required in enumerate(todo):
        try:
            definition = await client.create_custom_field(
                required.entity, required.name, required.type, choices=list(required.choices) or None
            )
        except CustomFieldCapError as exc:
            failures.append(CreationFailure(required, exc.message, cap_reached=True))
            failures.extend(
                CreationFailure(r, "not tried: the custom-field cap was reached", cap_reached=True)
                for r in todo[index + 1 :]
            )
            break
        except OutcomeUnknownError as exc:
            failures.append(CreationFailure(required, exc.message, outcome_unknown=True))
        except NutshellError as exc:
            failures.append(CreationFailure(required, exc.message))
        else:
            created.append(
                CreatedDefinition(
                    entity=required.entity,
                    name=definition.name,
                    type=definition.type or required.type,
                    created_at=clock(),
                    id=definition.id,
                    choices=definition.choices or required.choices,
                )
            )
    return CreationResult(tuple(created), tuple(failures))
