"""One id type for both Nutshell protocols: JSON-RPC speaks integers, REST speaks "<n>-<type>" strings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

# JSON-RPC `entityType` values and the REST type suffix of the same entity.
RPC_TO_REST_KIND: dict[str, str] = {
    "Contacts": "contacts",
    "Accounts": "accounts",
    "Activities": "activities",
    "Notes": "notes",
    "Users": "users",
    "Teams": "teams",
    "Activity_Types": "activityTypes",
    "Files": "files",
    "Leads": "leads",
    "Tags": "tags",
    "Territories": "territories",
}
REST_TO_RPC_KIND: dict[str, str] = {v: k for k, v in RPC_TO_REST_KIND.items()}

_REST_ID = re.compile(r"^(\d+)-([A-Za-z_]+)$")


@dataclass(frozen=True, slots=True, order=True)
class NutshellId:
    """An entity id: `.number` for JSON-RPC, `.rest` ("3-contacts") for REST. `kind` is the REST type name."""

    kind: str
    number: int

    @property
    def rest(self) -> str:
        return f"{self.number}-{self.kind}"

    @property
    def rpc_type(self) -> str:
        """The JSON-RPC `entityType` ("Contacts") of this id's kind."""
        try:
            return REST_TO_RPC_KIND[self.kind]
        except KeyError:
            raise ValueError(f"no JSON-RPC entity type is known for {self.kind!r}") from None

    def rpc_ref(self) -> dict[str, Any]:
        """The `{"entityType", "id"}` reference JSON-RPC uses for relations."""
        return {"entityType": self.rpc_type, "id": self.number}

    def __str__(self) -> str:
        return self.rest

    @classmethod
    def parse(cls, value: object, kind: str | None = None) -> NutshellId:
        """Read an id in any form the APIs use: 3, "3", "3-contacts", {"id": 3, "entityType": "Contacts"}.

        `kind` (a REST type name) is required for bare numbers and is checked against a REST string's own type.
        """
        if isinstance(value, NutshellId):
            if kind is not None and value.kind != kind:
                raise ValueError(f"expected a {kind} id, got {value.rest}")
            return value
        if isinstance(value, dict):
            rpc_kind = value.get("entityType")
            own = RPC_TO_REST_KIND.get(rpc_kind) if isinstance(rpc_kind, str) else None
            if own is not None and kind is not None and own != kind:
                raise ValueError(f"expected a {kind} id, got a {own} one")
            return cls.parse(value.get("id"), own or kind)
        if isinstance(value, bool):
            raise ValueError(f"not a Nutshell id: {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            text = value.strip()
            match = _REST_ID.match(text)
            if match:
                found = match.group(2)
                if kind is not None and found != kind:
                    raise ValueError(f"expected a {kind} id, got {text!r}")
                return cls(found, int(match.group(1)))
            if not text.isdigit():
                raise ValueError(f"not a Nutshell id: {value!r}")
            number = int(text)
        else:
            raise ValueError(f"not a Nutshell id: {value!r}")
        if kind is None:
            raise ValueError(f"the id {value!r} carries no type; say which kind of entity it names")
        if number <= 0:
            raise ValueError(f"not a Nutshell id: {value!r}")
        return cls(kind, number)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Models carry NutshellId fields; they validate from REST strings or from already-built ids. Bare
        # integers need a kind, so the models convert those in their own validators.
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.rest)
        )
