"""Private files and folders: the project holds health data, so nothing in it is readable by other users."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

DIR_MODE = 0o700
FILE_MODE = 0o600


@contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside (SQLite's -wal and -shm too) get no group or other bits."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


@contextmanager
def private_text_file(path: Path) -> Iterator[TextIO]:
    """A text file to write that atomically replaces `path` once the block ends without error (mode 0600 from
    the first byte); on error `path` is left as it was."""
    # A name of this writer's own: two writers of the same file (two threads, two processes) must not share, and
    # truncate, one temporary file; the last os.replace wins whole.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private_text(path: Path, text: str) -> None:
    """Atomically replace `path` with `text`, mode 0600 from the first byte."""
    with private_text_file(path) as fh:
        fh.write(text)


def open_private_binary(path: Path) -> int:
    """A new or truncated file descriptor, mode 0600, for downloads."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.chmod(path, FILE_MODE)
    return fd


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (downloads are checked against it before use)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
