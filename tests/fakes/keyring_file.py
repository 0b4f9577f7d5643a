"""A keyring for tests that run the CLI in several processes: it stands in for the OS keychain, keeping secrets in
a JSON file named by C2N_TEST_KEYRING (a pytest tmp path, never a project folder). Chosen only by name:
PYTHON_KEYRING_BACKEND=fakes.keyring_file.FileKeyring, with tests/ on PYTHONPATH."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring.backend
import keyring.errors


class FileKeyring(keyring.backend.KeyringBackend):
    priority = -1  # type: ignore[assignment]  # never picked on its own

    @property
    def _path(self) -> Path:
        return Path(os.environ["C2N_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        return json.loads(self._path.read_text()) if self._path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}|{username}"] = password
        self._path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}|{username}", None) is None:
            raise keyring.errors.PasswordDeleteError(username)
        self._path.write_text(json.dumps(data))
