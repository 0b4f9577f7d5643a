"""project.toml: name, endpoints and options. Never secrets: keys live in the keychain (see secrets.py)."""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cliniko2nutshell.project.private import write_private_text

FORMAT = 1  # bump when project.toml changes so that an older tool would misread it


class SettingsError(ValueError):
    """project.toml is unreadable or invalid. The message names the file, the key, and what to do."""


def validation_lines(exc: ValidationError) -> list[str]:
    """One line per problem, `  key.path: what is wrong`, for a file a person may have edited by hand."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling, or it was written by a newer cliniko2nutshell)"
        elif err["type"] == "missing":
            msg = "missing"
        lines.append(f"  {key}: {msg}")
    return lines


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
    format: int = FORMAT
    name: str
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    cliniko: ClinikoSettings = Field(default_factory=ClinikoSettings)
    nutshell: NutshellSettings = Field(default_factory=NutshellSettings)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value > FORMAT:
            raise ValueError(f"written by a newer cliniko2nutshell (format {value}, this one knows {FORMAT})")
        return value

    @classmethod
    def load(cls, path: Path) -> ProjectSettings:
        """Read project.toml; SettingsError says what is wrong with it and what to do."""
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"{path} is not valid TOML ({exc}); it may have been cut short or mistyped. Fix it by hand "
                "(it holds the project's name, endpoints and options, no secrets) or restore it from a backup."
            ) from exc
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{path} is not UTF-8 text; restore it from a backup.") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            newer = any("newer cliniko2nutshell" in str(e.get("msg")) for e in exc.errors())
            todo = (
                "Upgrade cliniko2nutshell to open it."
                if newer
                else "Fix the keys named above by hand, or restore the file from a backup."
            )
            raise SettingsError(f"{path} is not a valid project file:\n" + "\n".join(validation_lines(exc))
                                + f"\n{todo}") from exc  # fmt: skip

    def save(self, path: Path) -> None:
        write_private_text(path, tomli_w.dumps(self.model_dump(exclude_none=True)))
