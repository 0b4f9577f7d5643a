"""The operational log of a project (`logs/`): ids and counts only, never patient data or secrets.

Callers log ids (Cliniko and Nutshell), object kinds, counts and error classes. Messages pass through a
redactor as a second line of defence: anything shaped like an e-mail address or an HTTP Basic credential is
masked before it reaches the file.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from cliniko2nutshell.project.private import FILE_MODE

LOGGER_NAME = "cliniko2nutshell"
_EMAIL = re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+\.[A-Za-z]{2,}")
_BASIC = re.compile(r"(?i)(authorization:\s*basic\s+)\S+")


def redact(text: str) -> str:
    return _BASIC.sub(r"\1[redacted]", _EMAIL.sub("[e-mail]", text))


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redacting_formatter(fmt: str) -> logging.Formatter:
    """A formatter that masks e-mails and credentials (for any handler of the package's log, the terminal too)."""
    return _RedactingFormatter(fmt)


class _PrivateFileHandler(logging.FileHandler):
    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.chmod(self.baseFilename, FILE_MODE)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8")


def attach_project_log(logs_dir: Path, level: int = logging.INFO) -> logging.Handler:
    """Send the package's log records to `<logs_dir>/cliniko2nutshell.log` (0600); returns the handler."""
    handler = _PrivateFileHandler(logs_dir / "cliniko2nutshell.log", encoding="utf-8")
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.level or level))
    return handler


def detach_project_log(handler: logging.Handler) -> None:
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()
