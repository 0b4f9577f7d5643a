"""project.toml: name, endpoints and options. Never secrets: keys live in the keychain (see secrets.py)."""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field

from cliniko2nutshell.project.private import write_private_text


class ClinikoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # None: the real service, host taken from the key's shard. Set for the sandbox.
    base_url: str | None = None


class NutshellSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # None: the real REST API (https://app.nutshell.com/rest). Set for the sandbox.
    base_url: str | None = None
    username: str | None = None  # the Nutshell user e-mail is not a secret; the API key is


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    cliniko: ClinikoSettings = Field(default_factory=ClinikoSettings)
    nutshell: NutshellSettings = Field(default_factory=NutshellSettings)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ProjectSettings:
        with path.open("rb") as fh:
            return cls.model_validate(tomllib.load(fh))

    def save(self, path: Path) -> None:
        write_private_text(path, tomli_w.dumps(self.model_dump(exclude_none=True)))
