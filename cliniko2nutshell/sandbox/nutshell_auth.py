"""Who is calling, and whether they may: HTTP Basic with a user's e-mail (or the company domain) and the API key,
then the optional rate limit. Shared by REST, JSON-RPC and the file endpoints; each renders the errors its way.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import time
from dataclasses import dataclass

from cliniko2nutshell.sandbox.knobs import Knobs, RollingWindowLimiter
from cliniko2nutshell.sandbox.nutshell_state import NutshellError, NutshellState


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    user_id: int  # the user changes are attributed to


class Guard:
    def __init__(self, state: NutshellState, knobs: Knobs) -> None:
        self.state = state
        self.knobs = knobs
        self.limiter = RollingWindowLimiter()

    def check(self, authorization: str | None) -> Principal:
        """The caller, or NutshellError 401 (bad credentials) / 429 (over the rate limit, with Retry-After)."""
        principal = None if self.knobs.revoked else self.authenticate(authorization)
        if principal is None:
            raise NutshellError(
                401, "Unauthorized", "API key not found", headers={"WWW-Authenticate": 'Basic realm="Nutshell"'}
            )
        limit = self.knobs.rate_limit
        if limit:
            # Nutshell publishes no rate limit; this knob (off by default) lets tests exercise a client's backoff.
            allowed, _, reset = self.limiter.hit(principal.username.lower(), limit)
            if not allowed:
                retry = max(1, math.ceil(reset - time.time()))
                raise NutshellError(
                    429,
                    "Too Many Requests",
                    f"More than {limit} requests in a minute; retry in {retry} s.",
                    headers={"Retry-After": str(retry)},
                )
        return principal

    def authenticate(self, authorization: str | None) -> Principal | None:
        """Username: the company domain (acts as the API user) or an enabled user's e-mail, any case; password:
        the API key. Unconfirmed: which e-mails a key accepts depends on its permission (reference §1.3); we accept
        every enabled user of the company, and attribute changes to that user."""
        if not authorization or authorization[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, key = decoded.partition(":")
        if not sep or not hmac.compare_digest(key.encode(), self.state.api_key.encode()):
            return None
        if username.strip().lower() == self.state.company_domain:
            return Principal(username, self.state.api_user_id)
        user = self.state.user_by_login(username)
        return None if user is None else Principal(username, user.id)

    def reset(self) -> None:
        self.limiter.reset()
