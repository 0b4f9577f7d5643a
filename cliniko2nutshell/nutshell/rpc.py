"""The JSON-RPC transport (the legacy API, used only where REST has nothing): endpoint discovery with a cache,
the JSON-RPC 2.0 envelope with named params, and its error bodies."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    NutshellError,
    NutshellValidationError,
    PayloadTooLargeError,
    PermissionDenied,
    ProtocolError,
    ServiceError,
)
from cliniko2nutshell.nutshell.rest import AUTH_MESSAGE
from cliniko2nutshell.nutshell.sending import Safety, Sender

REAL_REST_HOST = "app.nutshell.com"
REAL_DISCOVERY_URL = "https://api.nutshell.com/v1/json"
# The docs advise caching the discovered endpoint for 10-90 minutes; we keep it an hour.
DISCOVERY_TTL = 60 * 60.0

_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def discovery_url_for(rest_url: str) -> str:
    """Where to ask for the JSON-RPC endpoint: Nutshell's discovery host for the real service, else the REST
    host's own `/v1/json` (the sandbox serves discovery beside REST)."""
    parts = urlsplit(rest_url if "://" in rest_url else f"https://{rest_url}")
    if parts.hostname == REAL_REST_HOST:
        return REAL_DISCOVERY_URL
    return f"{parts.scheme}://{parts.netloc}/v1/json"


class DiscoveryCache:
    """Discovered JSON-RPC endpoints per (discovery URL, username), each kept for `ttl` seconds."""

    def __init__(self, ttl: float = DISCOVERY_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, discovery_url: str, username: str) -> str | None:
        entry = self._entries.get((discovery_url, username.lower()))
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def put(self, discovery_url: str, username: str, endpoint: str) -> None:
        self._entries[(discovery_url, username.lower())] = (endpoint, self.clock() + self.ttl)

    def forget(self, discovery_url: str, username: str) -> None:
        self._entries.pop((discovery_url, username.lower()), None)


# Shared by every client in the process, so a new client for the same user does not rediscover.
DEFAULT_DISCOVERY_CACHE = DiscoveryCache()


class RpcTransport:
    def __init__(
        self,
        sender: Sender,
        auth: httpx.Auth,
        *,
        username: str,
        rest_url: str,
        rpc_url: str | None = None,
        discovery_url: str | None = None,
        cache: DiscoveryCache = DEFAULT_DISCOVERY_CACHE,
    ) -> None:
        self.sender = sender
        self.auth = auth
        self.username = username
        self.fixed_url = rpc_url
        self.discovery_url = discovery_url or discovery_url_for(rest_url)
        self.real_service = urlsplit(self.discovery_url).hostname == urlsplit(REAL_DISCOVERY_URL).hostname
        self.cache = cache
        self._ids = itertools.count(1)
        # Many calls start at once on a cold cache: one of them discovers, the others wait for its answer.
        self._discovering = asyncio.Lock()

    async def endpoint(self) -> str:
        """The JSON-RPC endpoint URL: the fixed one if given, else discovered (and cached) for the username."""
        if self.fixed_url:
            return self.fixed_url
        cached = self.cache.get(self.discovery_url, self.username)
        if cached:
            return cached
        async with self._discovering:
            cached = self.cache.get(self.discovery_url, self.username)
            if cached:
                return cached
            return await self._discover()

    async def _discover(self) -> str:
        try:
            result = await self._post(
                self.discovery_url, "getApiForUsername", {"username": self.username}, Safety.READ, auth=None
            )
        except (NutshellValidationError, PermissionDenied, NotFoundError) as exc:
            # Discovery refuses unknown or disabled users (reference §1.2): that is a credentials problem.
            raise AuthError(
                f"{AUTH_MESSAGE}: endpoint discovery refused the user ({exc.message})",
                status=exc.status,
                code=exc.code,
                where="rpc getApiForUsername",
            ) from exc
        host = result.get("api") if isinstance(result, dict) else None
        if not isinstance(host, str) or not _HOST.match(host):
            raise ProtocolError("endpoint discovery gave no usable `api` host", where="rpc getApiForUsername")
        if self.real_service and not (host == "nutshell.com" or host.endswith(".nutshell.com")):
            # Never send the API key to a host outside Nutshell, whatever discovery says.
            raise ProtocolError(f"endpoint discovery pointed outside nutshell.com ({host})")
        scheme = urlsplit(self.discovery_url).scheme
        endpoint = f"{scheme}://{host}/api/v1/json"
        self.cache.put(self.discovery_url, self.username, endpoint)
        return endpoint

    def origin(self) -> tuple[str, str] | None:
        """Scheme and host of the endpoint in use (None before discovery), to vet file URIs."""
        url = self.fixed_url or self.cache.get(self.discovery_url, self.username)
        if not url:
            return None
        parts = urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower()

    async def call(self, method: str, params: Mapping[str, Any], *, safety: Safety) -> Any:
        url = await self.endpoint()
        try:
            return await self._post(url, method, params, safety, auth=self.auth)
        except ServiceError:
            # The discovered host may have moved: rediscover next time.
            self.cache.forget(self.discovery_url, self.username)
            raise

    async def _post(
        self, url: str, method: str, params: Mapping[str, Any], safety: Safety, *, auth: httpx.Auth | None
    ) -> Any:
        request_id = str(next(self._ids))
        content = json.dumps(
            {"jsonrpc": "2.0", "method": method, "params": dict(params), "id": request_id}, ensure_ascii=False
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        def build() -> httpx.Request:
            return self.sender.http.build_request("POST", url, content=content, headers=headers)

        where = f"rpc {method}"
        _, body = await self.sender.send(
            build, safety=safety, where=where, read_error=read_rpc_error, auth=auth, parse=lambda r: r.json()
        )
        if not isinstance(body, dict) or "result" not in body:
            raise ProtocolError("a JSON-RPC answer without `result`", where=where)
        return body["result"]


def read_rpc_error(response: httpx.Response) -> NutshellError | None:
    """None for a success; else the typed error. HTTP status and `error.code` usually agree (401, 404, 409);
    a 200 carrying an `error` object counts as an error too."""
    method = _method_of(response.request)
    where = f"rpc {method}" if method else f"POST {response.request.url.path}"
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    status = response.status_code
    if not error:
        if status < 400:
            return None
        error = {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    data = error.get("data")
    if isinstance(data, str) and data and data not in message:
        message = f"{message}: {data}" if message else data
    kind = code if isinstance(code, int) and code > 0 else (status if status >= 400 else None)
    if code == -32601:
        return NotFoundError(message or "Method not found", status=status, code=code, where=where)
    if kind == 401:
        text = f"{AUTH_MESSAGE}: {message}" if message else AUTH_MESSAGE
        return AuthError(text, status=status, code=code, where=where)
    cls: type[NutshellError] = {
        403: PermissionDenied,
        404: NotFoundError,
        409: ConflictError,
        413: PayloadTooLargeError,
    }.get(kind or 0, NutshellValidationError if status < 500 else NutshellError)
    # Unconfirmed: Nutshell documents no codes for validation failures; every other error is taken as
    # the input being refused, with Nutshell's message.
    return cls(message or f"Nutshell answered HTTP {status}", status=status, code=code, where=where)


def _method_of(request: httpx.Request) -> str | None:
    try:
        body = json.loads(request.content)
    except (ValueError, httpx.RequestNotRead):
        return None
    method = body.get("method") if isinstance(body, dict) else None
    return method if isinstance(method, str) else None
