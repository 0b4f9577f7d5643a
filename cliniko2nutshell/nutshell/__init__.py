"""Destination side: the Nutshell client (REST + JSON-RPC), its models, errors and the schema check."""

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    CustomFieldCapError,
    NotFoundError,
    NutshellError,
    NutshellValidationError,
    OutcomeUnknownError,
    RateLimitedError,
    ServiceError,
)
from cliniko2nutshell.nutshell.ids import NutshellId

__all__ = [
    "AuthError",
    "ConflictError",
    "CustomFieldCapError",
    "NotFoundError",
    "NutshellClient",
    "NutshellError",
    "NutshellId",
    "NutshellValidationError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ServiceError",
]
