"""What can go wrong talking to Nutshell, as types the engine can act on.

Messages carry the HTTP method, the path or JSON-RPC method, and Nutshell's own message; never payloads,
names or e-mails (patient data), never credentials.
"""

from __future__ import annotations


class NutshellError(Exception):
    """Any failure from the Nutshell client. `status` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        where: str = "",
        title: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.where = where  # "POST /contacts" or "rpc editActivity": for logs and reports
        self.title = title  # REST errors carry a short title beside the detail

    def __str__(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class AuthError(NutshellError):
    """The credentials were refused (HTTP 401)."""


class PermissionDenied(NutshellError):
    """The credentials are valid but may not do this (HTTP 403)."""


class NotFoundError(NutshellError):
    """The entity, path or method does not exist (HTTP 404, JSON-RPC -32601)."""


class ConflictError(NutshellError):
    """The entity changed since the rev we hold (HTTP 409 "rev key is out-of-date"). Never retried blindly."""


class NutshellValidationError(NutshellError):
    """Nutshell rejected the input (400/422, or a JSON-RPC error); `message` is Nutshell's own text."""


class CustomFieldCapError(NutshellValidationError):
    """A custom field definition was refused because the plan's custom-field cap is reached."""


class PayloadTooLargeError(NutshellValidationError):
    """A file upload over the account's size limit (HTTP 413)."""


class RateLimitedError(NutshellError):
    """Still answered 429 after every allowed retry."""


class ServiceError(NutshellError):
    """Nutshell failed (5xx, timeouts, dropped connections) on a request that is safe to repeat, every try."""


class OutcomeUnknownError(NutshellError):
    """A write that is not safe to repeat may or may not have happened (dropped connection, timeout, 5xx).

    The engine must look for the record in Nutshell before sending the write again.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.cause = cause


class ProtocolError(NutshellError):
    """Nutshell answered something we cannot read (not JSON, or not the documented shape)."""
