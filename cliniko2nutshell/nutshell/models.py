"""Typed views of what we read from Nutshell, built from either protocol with `Model.from_api(raw)`.

Both protocols describe the same entities with different shapes (see values.py); each `from_api` accepts
either, keeps the raw dict it was given in `raw` (for diffs and the journal), and ignores unknown fields.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cliniko2nutshell.nutshell.ids import RPC_TO_REST_KIND, NutshellId
from cliniko2nutshell.nutshell.values import multi_values, name_parts, parse_time, person_name, phone_text, to_unix


class Entity(StrEnum):
    """The entity families that carry custom fields (REST path names)."""

    CONTACTS = "contacts"
    ACCOUNTS = "accounts"
    LEADS = "leads"

    @property
    def rpc_key(self) -> str:
        return self.value.capitalize()


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Read(_Model):
    """An entity as read: the raw dict is kept but left out of repr (it may hold patient data)."""

    raw: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)


def _id(value: object, kind: str) -> NutshellId:
    return NutshellId.parse(value, kind)


def _opt_id(value: object, kind: str | None = None) -> NutshellId | None:
    """A relation id from a REST string, a JSON-RPC stub or an int; None when absent or unreadable."""
    if value in (None, "", 0, {}):
        return None
    if isinstance(value, dict):
        rpc_kind = value.get("entityType")
        own = RPC_TO_REST_KIND.get(rpc_kind) if isinstance(rpc_kind, str) else None
        value, kind = value.get("id"), own or kind
    try:
        return NutshellId.parse(value, kind)
    except ValueError:
        return None


def _ids(values: object, kind: str | None = None) -> tuple[NutshellId, ...]:
    if values is None:
        return ()
    if not isinstance(values, list | tuple):
        values = [values]
    found = (_opt_id(v, kind) for v in values)
    return tuple(i for i in found if i is not None)


def _links(raw: dict[str, Any]) -> dict[str, Any]:
    links = raw.get("links")
    return links if isinstance(links, dict) else {}


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("name", "value", "text"):
            if isinstance(value.get(key), str):
                return value[key]
    return str(value)


class ContactPoint(_Model):
    """One e-mail, phone or URL."""

    value: str
    label: str | None = None
    is_primary: bool = False


class Address(_Model):
    label: str | None = None
    is_primary: bool = False
    address_1: str | None = None
    address_2: str | None = None
    address_3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def _parts(self) -> dict[str, Any]:
        parts = {
            "address_1": self.address_1,
            "address_2": self.address_2,
            "address_3": self.address_3,
            "city": self.city,
            "state": self.state,
            "postalCode": self.postal_code,
            "country": self.country,
        }
        return {k: v for k, v in parts.items() if v}

    def to_payload(self) -> dict[str, Any]:
        """The element of a contact's `addresses` list (empty parts left out)."""
        return {"isPrimary": self.is_primary, "name": self.label, **self._parts()}

    def to_nested_payload(self) -> dict[str, Any]:
        """The element of an account's `addresses` list: the parts under `value`."""
        return {"isPrimary": self.is_primary, "name": self.label, "value": self._parts()}


def compact(out: dict[str, Any]) -> dict[str, Any]:
    """`out` without its empty values (absent and empty are the same field)."""
    return {k: v for k, v in out.items() if v not in (None, "", [], {})}


def _point_payload(points: tuple[ContactPoint, ...]) -> list[dict[str, Any]]:
    return [{"isPrimary": p.is_primary, "name": p.label, "value": p.value} for p in points]


def _points(raw: object, phone: bool = False) -> tuple[ContactPoint, ...]:
    out = []
    for label, value, primary in multi_values(raw):
        text = phone_text(value) if phone else ("" if value is None else _text(value) or "")
        if text:
            out.append(ContactPoint(value=text, label=label, is_primary=primary))
    return tuple(out)


def _addresses(raw: object) -> tuple[Address, ...]:
    out = []
    for label, value, primary in multi_values(raw):
        if not isinstance(value, dict):
            continue

        def field(key: str, value: dict[str, Any] = value) -> str | None:
            v = value.get(key)
            return v if isinstance(v, str) and v != "" else None

        out.append(
            Address(
                label=label,
                is_primary=primary,
                address_1=field("address_1"),
                address_2=field("address_2"),
                address_3=field("address_3"),
                city=field("city"),
                state=field("state"),
                postal_code=field("postalCode"),
                country=field("country"),
            )
        )
    return tuple(out)


def _custom_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Custom field values by name: a name-keyed object, or a list of `{name|title, value}`."""
    value = raw.get("customFields")
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                name = item.get("name") or item.get("title")
                if isinstance(name, str):
                    out[name] = item.get("value")
        return out
    return {}


def _rev(raw: dict[str, Any]) -> str | None:
    rev = raw.get("rev")
    return None if rev is None else str(rev)


class User(_Read):
    kind: ClassVar[str] = "users"
    id: NutshellId
    name: str
    first_name: str | None = None
    last_name: str | None = None
    emails: tuple[str, ...] = ()
    is_enabled: bool = True
    is_administrator: bool = False
    rev: str | None = None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        given, family = name_parts(raw.get("name"))
        emails = [value for _, value, _ in multi_values(raw.get("emails", raw.get("email")))]
        name = person_name(raw.get("name"))
        first = raw.get("firstName") or given
        last = raw.get("lastName") or family
        # Live REST users carry firstName and a full `name` string but no lastName (recorded): the rest of the
        # name after the first name is the last name (practitioner matching compares surnames).
        if not last and first and name and name.startswith(first) and name[len(first) :].strip():
            last = name[len(first) :].strip()
        return cls(
            raw=raw,
            id=_id(raw.get("id"), cls.kind),
            name=name,
            first_name=first,
            last_name=last,
            emails=tuple(str(e) for e in emails if isinstance(e, str) and e),
            is_enabled=bool(raw.get("isEnabled", True)),
            is_administrator=bool(raw.get("isAdministrator", False)),
            rev=_rev(raw),
        )


class ActivityType(_Read):
    kind: ClassVar[str] = "activityTypes"
    id: NutshellId
    name: str

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        return cls(raw=raw, id=_id(raw.get("id"), cls.kind), name=person_name(raw.get("name")))


class CustomFieldDefinition(_Read):
    """A custom field definition. `type` is as Nutshell names it ("Text", "Date", ...) or None if not given."""

    entity: Entity
    name: str
    type: str | None = None
    choices: tuple[str, ...] = ()
    is_multiple: bool = False
    id: str | None = None

    @classmethod
    def from_api(cls, raw: dict[str, Any], entity: Entity) -> Self:
        name = raw.get("name") if isinstance(raw.get("name"), str) else raw.get("title")
        if not isinstance(name, str) or not name:
            raise ValueError("a custom field definition without a name")
        kind = raw.get("type", raw.get("fieldType"))
        choices = raw.get("choices") or raw.get("options") or ()
        return cls(
            raw=raw,
            entity=entity,
            name=name,
            type=_text(kind),
            choices=tuple(c for c in (_text(c) for c in choices) if c) if isinstance(choices, list) else (),
            is_multiple=bool(raw.get("isMultiple", False)),
            id=None if raw.get("id") is None else str(raw.get("id")),
        )


class _Peep(_Read):
    """What people and companies share."""

    kind: ClassVar[str]
    id: NutshellId
    # Patient data stays out of repr, so a logged model shows ids only.
    name: str = Field(repr=False)
    description: str | None = Field(default=None, repr=False)
    emails: tuple[ContactPoint, ...] = Field(default=(), repr=False)
    phones: tuple[ContactPoint, ...] = Field(default=(), repr=False)
    urls: tuple[ContactPoint, ...] = Field(default=(), repr=False)
    addresses: tuple[Address, ...] = Field(default=(), repr=False)
    custom_fields: dict[str, Any] = Field(default_factory=dict, repr=False)
    owner: NutshellId | None = None
    tags: tuple[str, ...] = ()  # as the protocol gives them: names over JSON-RPC, "<n>-tags" ids over REST
    rev: str | None = None
    created_time: datetime | None = None
    modified_time: datetime | None = None
    deleted_time: datetime | None = None

    @property
    def primary_email(self) -> str | None:
        return next((e.value for e in self.emails if e.is_primary), self.emails[0].value if self.emails else None)

    def _payload(
        self, address: Callable[[Address], dict[str, Any]], accounts: tuple[NutshellId, ...] = ()
    ) -> dict[str, Any]:
        """What people and companies share, in the create element's shape; `address` shapes one address."""
        return compact(
            {
                "name": self.name,
                "description": self.description,
                "emails": _point_payload(self.emails),
                "phones": _point_payload(self.phones),
                "urls": _point_payload(self.urls),
                "addresses": [address(a) for a in self.addresses],
                "customFields": compact(dict(self.custom_fields)),
                "links": compact(
                    {
                        "owner": self.owner.rest if self.owner else None,
                        "accounts": [a.rest for a in accounts],
                    }
                ),
            }
        )

    @classmethod
    def _common(cls, raw: dict[str, Any]) -> dict[str, Any]:
        links = _links(raw)
        tags = raw.get("tags") if "tags" in raw else links.get("tags")
        return {
            "raw": raw,
            "id": _id(raw.get("id"), cls.kind),
            "name": person_name(raw.get("name")),
            "description": raw.get("description") if isinstance(raw.get("description"), str) else None,
            "emails": _points(raw.get("emails", raw.get("email"))),
            "phones": _points(raw.get("phones", raw.get("phone")), phone=True),
            "urls": _points(raw.get("urls", raw.get("url"))),
            "addresses": _addresses(raw.get("addresses", raw.get("address"))),
            "custom_fields": _custom_fields(raw),
            "owner": _opt_id(links.get("owner", raw.get("owner")), "users"),
            "tags": tuple(t for t in (_text(t) for t in tags or ()) if t) if isinstance(tags, list) else (),
            "rev": _rev(raw),
            "created_time": parse_time(raw.get("createdTime")),
            "modified_time": parse_time(raw.get("modifiedTime")),
            "deleted_time": parse_time(raw.get("deletedTime")),
        }


class Person(_Peep):
    """A Nutshell contact (a person)."""

    kind: ClassVar[str] = "contacts"
    first_name: str | None = Field(default=None, repr=False)
    last_name: str | None = Field(default=None, repr=False)
    accounts: tuple[NutshellId, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """This person as a contactPostInput element: the one shape the mapping layer produces and the engine
        compares (and fingerprints) what Nutshell holds in. Empty fields are left out."""
        return self._payload(Address.to_payload, self.accounts)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        given, family = name_parts(raw.get("name"))
        links = _links(raw)
        return cls(
            **cls._common(raw),
            first_name=raw.get("firstName") or given,
            last_name=raw.get("lastName") or family,
            accounts=_ids(links.get("accounts", raw.get("accounts")), "accounts"),
        )


class Company(_Peep):
    """A Nutshell account (a company)."""

    kind: ClassVar[str] = "accounts"
    contacts: tuple[NutshellId, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """This company as an accounts create element (its contacts are links of the people). The OpenAPI
        document nests an account address's parts under `value`, unlike a contact's."""
        return self._payload(Address.to_nested_payload)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        links = _links(raw)
        return cls(**cls._common(raw), contacts=_ids(links.get("contacts", raw.get("contacts")), "contacts"))


class FileInfo(_Read):
    """A file on a logged activity."""

    kind: ClassVar[str] = "files"
    id: NutshellId
    name: str = Field(repr=False)  # attachment names can name the patient
    uri: str | None = None
    size: int = 0
    mime: str | None = None
    rev: str | None = None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        size = raw.get("size")
        return cls(
            raw=raw,
            id=_id(raw.get("id"), cls.kind),
            name=str(raw.get("name") or ""),
            uri=raw.get("uri") if isinstance(raw.get("uri"), str) else None,
            size=int(size) if isinstance(size, int | str) and str(size).isdigit() else 0,
            mime=raw.get("mime") if isinstance(raw.get("mime"), str) else None,
            rev=_rev(raw),
        )


class ActivityStatus(StrEnum):
    SCHEDULED = "scheduled"
    LOGGED = "logged"
    CANCELLED = "cancelled"
    OVERDUE = "overdue"


# JSON-RPC `status` codes of an activity (reference §2.4).
_RPC_STATUS = {0: ActivityStatus.SCHEDULED, 1: ActivityStatus.LOGGED, 2: ActivityStatus.CANCELLED}


class Activity(_Read):
    kind: ClassVar[str] = "activities"
    id: NutshellId
    name: str = Field(repr=False)
    description: str | None = Field(default=None, repr=False)
    activity_type: NutshellId | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: ActivityStatus = ActivityStatus.SCHEDULED
    is_all_day: bool = False
    is_flagged: bool = False
    location: str | None = None
    participants: tuple[NutshellId, ...] = ()
    files: tuple[FileInfo, ...] = ()
    rev: str | None = None
    created_time: datetime | None = None
    modified_time: datetime | None = None
    deleted_time: datetime | None = None

    @property
    def is_logged(self) -> bool:
        return self.status is ActivityStatus.LOGGED

    def to_payload(self) -> dict[str, Any]:
        """This activity as an activityPostInput element (Unix times, REST ids), plus the files on its log note.
        Empty fields are left out; the three flags are always there, and `isCancelled` when it is cancelled (REST
        documents it on read only: an update sends it back so that a PUT does not un-cancel the activity)."""
        out = compact(
            {
                "name": self.name,
                "description": self.description,
                "activityType": self.activity_type.rest if self.activity_type else None,
                "startTime": to_unix(self.start_time) if self.start_time else None,
                "endTime": to_unix(self.end_time) if self.end_time else None,
                "location": self.location,
                "links": compact({"participants": [p.rest for p in self.participants]}),
                "files": [{"id": f.id.rest, "name": f.name, "size": f.size} for f in self.files],
            }
        )
        out |= {"isLogged": self.is_logged, "isAllDay": self.is_all_day, "isFlagged": self.is_flagged}
        if self.status is ActivityStatus.CANCELLED:
            out["isCancelled"] = True
        return out

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        links = _links(raw)
        log_note = raw.get("logNote") if isinstance(raw.get("logNote"), dict) else {}
        files_raw = log_note.get("files") or raw.get("files") or []
        files = tuple(FileInfo.from_api(f) for f in files_raw if isinstance(f, dict) and f.get("id") is not None)
        if "participants" in links or "participants" in raw:
            participants = _ids(links.get("participants", raw.get("participants")))
        else:
            # REST splits participants by type under links (contacts, users, accounts).
            participants = tuple(i for rel in ("contacts", "users", "accounts") for i in _ids(links.get(rel), rel))
        description = raw.get("description", raw.get("agenda"))  # REST reads back the description as `agenda`
        return cls(
            raw=raw,
            id=_id(raw.get("id"), cls.kind),
            name=person_name(raw.get("name")),
            description=description if isinstance(description, str) else None,
            activity_type=_opt_id(links.get("activityType", raw.get("activityType")), "activityTypes"),
            start_time=parse_time(raw.get("startTime")),
            end_time=parse_time(raw.get("endTime")),
            status=_activity_status(raw),
            is_all_day=bool(raw.get("isAllDay", False)),
            is_flagged=bool(raw.get("isFlagged", False)),
            location=raw.get("location") if isinstance(raw.get("location"), str) else None,
            participants=participants,
            files=files,
            rev=_rev(raw),
            created_time=parse_time(raw.get("createdTime")),
            modified_time=parse_time(raw.get("modifiedTime")),
            deleted_time=parse_time(raw.get("deletedTime")),
        )


def _activity_status(raw: dict[str, Any]) -> ActivityStatus:
    status = raw.get("status")
    if isinstance(status, int | str) and str(status).lstrip("-").isdigit():
        code = int(status)
        if code == -1:
            return ActivityStatus.OVERDUE
        return _RPC_STATUS.get(code, ActivityStatus.SCHEDULED)
    if raw.get("isCancelled"):
        return ActivityStatus.CANCELLED
    if raw.get("isLogged"):
        return ActivityStatus.LOGGED
    if raw.get("isOverdue"):
        return ActivityStatus.OVERDUE
    return ActivityStatus.SCHEDULED


class Note(_Read):
    kind: ClassVar[str] = "notes"
    id: NutshellId
    body: str = Field(default="", repr=False)
    parent: NutshellId | None = None
    rev: str | None = None
    created_time: datetime | None = None
    deleted_time: datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        """`{"body", "parent"}`: the note as the engine describes one (empty ones left out)."""
        return compact({"body": self.body, "parent": self.parent.rest if self.parent else None})

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        links = _links(raw)
        body = raw.get("body", raw.get("note"))
        parent = links.get("parent", raw.get("parent", raw.get("entity")))
        if parent is None and isinstance(raw.get("parentType"), str) and raw.get("parentId") is not None:
            parent = f"{raw['parentId']}-{raw['parentType']}"
        return cls(
            raw=raw,
            id=_id(raw.get("id"), cls.kind),
            body=body if isinstance(body, str) else "",
            parent=_opt_id(parent),
            rev=_rev(raw),
            created_time=parse_time(raw.get("createdTime")),
            deleted_time=parse_time(raw.get("deletedTime")),
        )


class ChangeEvent(_Read):
    """One entry of the REST events feed (`GET /events`)."""

    id: str
    created_time: datetime | None = None
    action: str | None = None
    payload_type: str | None = None
    actor: NutshellId | None = None
    payloads: tuple[NutshellId, ...] = ()

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Self:
        links = _links(raw)
        payload_type = raw.get("payloadType") if isinstance(raw.get("payloadType"), str) else None
        return cls(
            raw=raw,
            id=str(raw.get("id")),
            created_time=parse_time(raw.get("createdTime")),
            action=raw.get("action") if isinstance(raw.get("action"), str) else None,
            payload_type=payload_type,
            actor=_opt_id(links.get("actor")),
            payloads=_ids(links.get("payloads"), payload_type),
        )


class Revision(_Model):
    """An entity's concurrency state: JSON-RPC `rev` and modified time; `deleted` when it is in the trash."""

    id: NutshellId
    rev: str | None
    modified_time: datetime | None = None
    deleted: bool = False


class Identity(_Model):
    """Who the credentials belong to: the matching user, when the username is one user's e-mail."""

    username: str
    user: User | None = None
    users_visible: int = 0


T = TypeVar("T")


class Written(_Model, Generic[T]):
    """The outcome of a create or update: the id, its concurrency token, and the entity as read back."""

    id: NutshellId
    rev: str | None = None
    modified_time: datetime | None = None
    entity: T | None = None
