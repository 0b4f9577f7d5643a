"""Typed errors of the Cliniko client. Messages name the resource and say what to do; they carry no patient data."""

from __future__ import annotations


class ClinikoError(RuntimeError):
    """Anything the Cliniko side could not do. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, resource: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.resource = resource


class ClinikoAuthError(ClinikoError):
    """401: the key is wrong, revoked, or sent to the wrong shard."""


class ClinikoPermissionError(ClinikoError):
    """403: the key's user role may not read this resource."""


class ClinikoNotFound(ClinikoError):
    """404: no such record or endpoint (archived records also answer 404 unless asked for)."""


class ClinikoBadRequest(ClinikoError):
    """400: a filter or parameter the server refused."""


class ClinikoValidationError(ClinikoError):
    """422: the documented validation failure."""


class ClinikoUnavailable(ClinikoError):
    """5xx, timeouts or dropped connections that outlasted every retry."""


class ClinikoRateLimited(ClinikoError):
    """429s that kept coming after waiting for X-RateLimit-Reset as many times as the policy allows."""


class UnsafeRedirect(ClinikoError):
    """A link or redirect that would send the API key to another host."""
