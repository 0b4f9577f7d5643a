"""API keys: the OS keychain per project and service, else an environment variable, else memory for the session.

Nothing here ever writes a secret to a file. Keyring backends that store in plain files are refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import keyring
import keyring.backend
import keyring.errors

SERVICE_PREFIX = "cliniko2nutshell"

# Keys kept "for this session only", per project: shared by every Secrets of the project in this process, so a key
# entered on one screen (or by `store_keys`) is there for the next client, and gone when the process ends.
_SESSION: dict[str, dict[str, str]] = {}


class Secret(StrEnum):
    """Each secret and the environment variable that may hold it."""

    CLINIKO_API_KEY = "CLINIKO_API_KEY"
    NUTSHELL_USERNAME = "NUTSHELL_USERNAME"
    NUTSHELL_API_KEY = "NUTSHELL_API_KEY"


class Where(StrEnum):
    KEYCHAIN = "keychain"
    ENVIRONMENT = "environment"
    MEMORY = "memory"


def backend_refusal(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why a keyring backend is unfit for health-data credentials, or None when it is fine."""
    backends = getattr(backend, "backends", None)
    if backends is not None:  # the chainer: fit if any of its members is fit
        reasons = [backend_refusal(b) for b in backends]
        return None if any(r is None for r in reasons) else (reasons[0] if reasons else "no keyring backend")
    module = type(backend).__module__
    name = type(backend).__name__
    if module.startswith("keyring.backends.fail") or module.startswith("keyring.backends.null"):
        return "no OS keychain is available on this machine"
    if "plaintext" in name.lower() or module.startswith("keyrings.alt.file"):
        return f"the keyring backend {module}.{name} stores keys in a plain file"
    return None


@dataclass
class Secrets:
    """Secrets of one project. `keyring_backend` defaults to the OS keychain; tests pass an in-memory one."""

    project_id: str
    keyring_backend: keyring.backend.KeyringBackend | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def __post_init__(self) -> None:
        self._backend = self.keyring_backend or keyring.get_keyring()
        self.keychain_problem = backend_refusal(self._backend)
        self._memory = _SESSION.setdefault(self.project_id, {})

    @property
    def backend_name(self) -> str:
        """The keychain in use, as people know it ("macOS Keyring", "SecretService Keyring", ...)."""
        backends = getattr(self._backend, "backends", None)
        chosen = next((b for b in backends if backend_refusal(b) is None), self._backend) if backends else self._backend
        name = getattr(chosen, "name", "") or type(chosen).__name__
        return str(name)

    @property
    def service(self) -> str:
        return f"{SERVICE_PREFIX}:{self.project_id}"

    def get(self, secret: Secret) -> str | None:
        return self.locate(secret)[0]

    def locate(self, secret: Secret) -> tuple[str | None, Where | None]:
        """The value and where it was found: keychain first, then the environment, then memory."""
        if self.keychain_problem is None:
            try:
                value = self._backend.get_password(self.service, secret.value)
            except keyring.errors.KeyringError:
                value = None
            if value:
                return value, Where.KEYCHAIN
        if value := self.env.get(secret.value):
            return value, Where.ENVIRONMENT
        if value := self._memory.get(secret.value):
            return value, Where.MEMORY
        return None, None

    def set(self, secret: Secret, value: str, remember: bool = True) -> Where:
        """Store a secret: in the keychain when `remember` and one is fit, else in memory for this session."""
        if remember and self.keychain_problem is None:
            try:
                self._backend.set_password(self.service, secret.value, value)
                self._memory.pop(secret.value, None)
                return Where.KEYCHAIN
            except keyring.errors.KeyringError:
                pass
        self._memory[secret.value] = value
        return Where.MEMORY

    def forget(self, secret: Secret) -> None:
        self._memory.pop(secret.value, None)
        if self.keychain_problem is None:
            with contextlib.suppress(keyring.errors.KeyringError):
                self._backend.delete_password(self.service, secret.value)

    def explain(self) -> str:
        """One line for the UI: where keys will be kept, and why when not in the keychain."""
        if self.keychain_problem is None:
            return "Keys are kept in the OS keychain."
        return (
            f"Keys are not saved: {self.keychain_problem}. Set {', '.join(s.value for s in Secret)} "
            "in the environment, or enter them each session (kept in memory only)."
        )


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-process keyring (tests, and a stand-in where the caller wants nothing persisted)."""

    # Below the "no keychain" backend (0): never chosen on its own, only when named (tests, PYTHON_KEYRING_BACKEND),
    # so a machine without a keychain is told so instead of "saving" keys into process memory.
    priority = -1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self._store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
