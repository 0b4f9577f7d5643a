"""What stands before every Cliniko API request: the port split, User-Agent, Basic auth with the shard, rate limit.

One app listens on two ports: the API port (`/v1/...`) and a "blob" port standing in for S3 (`/blobs/...`).
Blob requests skip auth and the rate limit; everything else under `/v1` passes, in this order:
1. User-Agent present. Unconfirmed: the status Cliniko uses. We choose 400, text `Requires a user agent`
   (the text seen in ISS#177).
2. Basic auth: the key as username, any password; the key's shard suffix (none means au1) must be the server's
   shard. Otherwise 401, plain text `HTTP Basic: Access denied.`, `WWW-Authenticate: Basic realm="Application"`.
   Keys are per user (reference §1): the clinic's key is its administrator's; every other user of the clinic has
   a key too (`staff_key`), so a receptionist's key can be tried. The key's user id goes to the app in
   `scope["state"]["cliniko_user_id"]`.
3. Accept: JSON, `*/*` or absent. Unconfirmed: what Cliniko does otherwise. We choose 406.
4. The rate limit per key (rolling 60 s window). Over it: 429 with `X-RateLimit-Reset` (epoch seconds) only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Callable
from typing import Any

from cliniko2nutshell.sandbox.knobs import CONTROL_PREFIX, RollingWindowLimiter

API_PREFIX = "/v1"
BLOB_PREFIX = "/blobs/"
SHARD_SUFFIX = re.compile(r"-([a-zA-Z]{2}\d{1,2})$")
DEFAULT_SHARD = "au1"  # keys without a suffix are older keys of au1 (reference §1)

Send = Callable[[dict[str, Any]], Any]


def staff_key(api_key: str, user_id: str) -> str:
    """The sandbox's key of another user of the clinic: derived from the clinic's key, on the same shard."""
    base, shard = split_key(api_key)
    digest = hashlib.sha256(f"staff:{base}:{user_id}".encode()).digest()
    return f"{base64.b64encode(digest[:24]).decode().rstrip('=')}-{shard}"


def split_key(key: str) -> tuple[str, str]:
    """(the key without its suffix, its shard): how real clients read a key (reference §1)."""
    m = SHARD_SUFFIX.search(key)
    if m is None:
        return key, DEFAULT_SHARD
    return key[: m.start()], m.group(1).lower()


class ClinikoGate:
    """ASGI middleware in front of the Cliniko app (inside FaultMiddleware, so injected faults cost no budget)."""

    def __init__(
        self,
        app: Any,
        *,
        api_key: str,
        shard: str,
        limiter: RollingWindowLimiter,
        limit: Callable[[], int | None],
        blob_port: Callable[[], int | None],
        staff: dict[str, str] | None = None,
        revoked: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.revoked = revoked  # the sandbox's `revoked` knob: every key refused, as after a revocation
        self.key_base, _ = split_key(api_key)
        # key base -> user id of the other users' keys (the clinic's own key maps to None: its administrator)
        self.staff = {split_key(staff_key(api_key, uid))[0]: uid for uid in (staff or {}).values()}
        self.shard = shard.lower()
        self.limiter = limiter
        self.limit = limit
        self.blob_port = blob_port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        blob_port = self.blob_port()
        server = scope.get("server") or ("", None)
        on_blob_port = blob_port is not None and server[1] == blob_port
        if path.startswith(BLOB_PREFIX) or on_blob_port:
            # The blob port serves blobs only, and blobs are served on the blob port only (when it is known).
            if path.startswith(BLOB_PREFIX) and (on_blob_port or blob_port is None):
                await self.app(scope, receive, send)
            else:
                await _send(send, 404, b'{"message":"Not Found"}', "application/json")
            return
        if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
            await self.app(scope, receive, send)  # unknown route: the app's JSON 404
            return
        headers = _headers(scope)
        if not headers.get("user-agent", "").strip():
            await _send(send, 400, b"Requires a user agent", "text/plain; charset=utf-8")
            return
        key, user_id = (None, None) if self.revoked() else self._authenticate(headers.get("authorization", ""))
        if key is None:
            await _send(
                send,
                401,
                b"HTTP Basic: Access denied.\n",
                "text/plain; charset=utf-8",
                [(b"www-authenticate", b'Basic realm="Application"')],
            )
            return
        if not _accepts_json(headers.get("accept")):
            await _send(send, 406, b'{"message":"Not Acceptable"}', "application/json")
            return
        limit = self.limit()
        if limit is not None:
            allowed, _remaining, reset = self.limiter.hit(key, limit)
            if not allowed:
                # Cliniko documents X-RateLimit-Reset only: no Retry-After, no Limit/Remaining headers.
                await _send(
                    send,
                    429,
                    b'{"message":"Too Many Requests"}',
                    "application/json",
                    [(b"x-ratelimit-reset", str(math.ceil(reset)).encode())],
                )
                return
        scope.setdefault("state", {})["cliniko_user_id"] = user_id
        await self.app(scope, receive, send)

    def _authenticate(self, header: str) -> tuple[str | None, str | None]:
        """(the key's base, its user id) when the key is accepted: the base is the rate-limit key (one budget per
        user, suffix or not); the user id is None for the clinic's own key (its administrator)."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return None, None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        username, _, _password = decoded.partition(":")
        base, shard = split_key(username)
        if shard != self.shard:
            return None, None
        if hmac.compare_digest(base.encode(), self.key_base.encode()):
            return base, None
        user_id = next((uid for b, uid in self.staff.items() if hmac.compare_digest(base.encode(), b.encode())), None)
        return (base, user_id) if user_id is not None else (None, None)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _accepts_json(accept: str | None) -> bool:
    if accept is None or not accept.strip():
        return True
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & {"application/json", "*/*", "application/*"})


async def _send(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
