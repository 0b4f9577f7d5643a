"""One writer per project: an advisory lock on `<project>/.lock`, released when the process ends (even killed)."""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from cliniko2nutshell.project.private import FILE_MODE

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class ProjectLocked(RuntimeError):
    """Another process holds the project open for writing."""

    def __init__(self, path: Path, holder: dict[str, object]) -> None:
        self.path = path
        self.holder = holder
        who = (
            f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"({holder.get('command', '?')}), since {holder.get('since', '?')}"
        )
        super().__init__(
            f"The project at {path} is open for writing by {who}. "
            "Close that window or command first; two writers could duplicate records in Nutshell."
        )


class ProjectLock:
    def __init__(self, project_path: Path, command: str = "") -> None:
        self.path = project_path / ".lock"
        self.command = command or " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:2])
        self._fd: int | None = None

    def acquire(self) -> ProjectLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        if not _try_lock(fd):
            holder = self._read_holder(fd)
            os.close(fd)
            raise ProjectLocked(self.path.parent, holder)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def _read_holder(fd: int) -> dict[str, object]:
        try:
            data = os.pread(fd, 4096, 0)
            return json.loads(data) if data else {}
        except (OSError, ValueError):
            return {}

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
