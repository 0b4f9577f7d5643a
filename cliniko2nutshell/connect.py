"""Connecting a project to both services: test each key live, say what it can reach, keep the keys safe.

For `cliniko2nutshell connect` and the wizard's Connect screen:

    cliniko = await check_cliniko(key)                      # ClinikoAccess, or ConnectError
    nutshell = await check_nutshell(email, key)             # NutshellAccess, or ConnectError
    if cliniko.problem or nutshell.problem: ...             # the key works but is not an administrator's
    where = store_keys(project, cliniko_key=..., nutshell_username=..., nutshell_key=...)
    record_connection(project, cliniko, nutshell)           # the non-secret facts, for the steps that follow

A key never goes into a file: `store_keys` puts keys in the OS keychain (or memory, for this session only), and
`record_connection` saves only what the later steps need to know (account, role, shard, currency, latencies).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from cliniko2nutshell.cliniko.client import ClinikoClient, base_url_for_key, shard_from_key
from cliniko2nutshell.cliniko.errors import (
    ClinikoAuthError,
    ClinikoError,
    ClinikoNotFound,
    ClinikoPermissionError,
    ClinikoUnavailable,
    UnsafeRedirect,
)
from cliniko2nutshell.connections import project_secrets
from cliniko2nutshell.mapping.currency import currency_for_country
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    NotFoundError,
    NutshellError,
    PermissionDenied,
    ProtocolError,
    RateLimitedError,
    ServiceError,
)
from cliniko2nutshell.nutshell.rest import DEFAULT_REST_URL
from cliniko2nutshell.nutshell.sending import Safety
from cliniko2nutshell.project import Project
from cliniko2nutshell.project.secrets import Secret, Secrets, Where
from cliniko2nutshell.retry import RetryPolicy

# The project's retry policy with a person waiting at the screen: three tries and shorter timeouts, so an
# unreachable service is reported in about twenty seconds rather than minutes.
CONNECT_POLICY = RetryPolicy(attempts=3, base=0.5, cap=4.0, timeout=httpx.Timeout(15.0, connect=5.0))

CLINIKO_KEY_HELP = "In Cliniko: your name (top right) > My info > Manage API keys > Add an API key."
NUTSHELL_KEY_HELP = "In Nutshell: Settings > API keys > Add API key, with the permission 'API access'."

_CLINIKO_HOST = re.compile(r"^api\.([a-z]{2}\d{1,2})\.cliniko\.com$", re.I)

T = TypeVar("T")


class ConnectProblem(StrEnum):
    """What went wrong, for a UI to choose its wording and help (`ConnectError.kind`)."""

    NO_KEY = "no_key"  # nothing was entered
    WRONG_KEY = "wrong_key"  # the service refused the key
    WRONG_SHARD = "wrong_shard"  # a Cliniko key sent to another shard than its own
    KEY_NOT_FOUND = "key_not_found"  # Nutshell: "API key not found"
    UNKNOWN_USER = "unknown_user"  # Nutshell: the user e-mail is not a user of the company (or is disabled)
    NOT_ADMIN = "not_admin"  # the key works but its user is not an administrator
    NO_ACCESS = "no_access"  # the key may not read what the test reads
    WRONG_URL = "wrong_url"  # the address answers, but not as the service's API does
    UNREACHABLE = "unreachable"  # no connection (offline, DNS, firewall, the service down)
    TIMEOUT = "timeout"  # connected, but no answer in time
    RATE_LIMITED = "rate_limited"  # the service asks us to slow down
    SERVICE_ERROR = "service_error"  # the service failed (5xx) on every try
    NO_KEYCHAIN = "no_keychain"  # store_keys: no safe keychain on this machine


class ConnectError(Exception):
    """A failed connection test or key storage, in plain words: `message` says what happened, `action` what to
    do. `service` is "Cliniko", "Nutshell" or "keychain"."""

    def __init__(self, kind: ConnectProblem, message: str, action: str, *, service: str) -> None:
        super().__init__(f"{message} {action}")
        self.kind = kind
        self.message = message
        self.action = action
        self.service = service


@dataclass(frozen=True)
class ClinikoAccess:
    """What a working Cliniko key reaches. `problem` is set when the key works but cannot do a full export."""

    account_name: str | None
    country_code: str | None
    currency: str | None  # from the country (None when we do not know the country's currency)
    time_zone: str | None  # the account's time zone (Cliniko's label, e.g. "Melbourne")
    user_id: str
    user_name: str
    role: str | None
    is_admin: bool
    shard: str
    base_url: str
    rate_limit_per_minute: int  # Cliniko's documented per-user limit (no header states it)
    latency_ms: float  # the mean round trip of the test's requests
    problem: ConnectError | None = None

    def describe(self) -> list[str]:
        return [
            f"Cliniko account: {self.account_name or '(no name)'} ({self.country_code or 'country unknown'}, "
            f"currency {self.currency or 'unknown'}, time zone {self.time_zone or 'unknown'})",
            f"  key of {self.user_name} (user {self.user_id}), role {self.role or 'unknown'}"
            + ("" if self.is_admin else ": NOT an administrator"),
            f"  shard {self.shard}, {self.base_url}, {self.rate_limit_per_minute} requests/minute, "
            f"{self.latency_ms:.0f} ms per request",
        ]


@dataclass(frozen=True)
class NutshellAccess:
    """What a working Nutshell user e-mail and key reach. `problem` is set when the user is not an administrator."""

    username: str  # what was entered: a user's e-mail, or the company domain
    user_id: str | None  # "12-users"; None when the username is the company domain
    user_name: str | None
    user_email: str | None
    company_name: str | None
    is_admin: bool | None  # None: unknown (the username is the company domain, not a user)
    rest_url: str
    rpc_url: str
    latency_ms: float  # the mean round trip of the test's requests
    problem: ConnectError | None = None

    def describe(self) -> list[str]:
        who = f"{self.user_name} <{self.user_email}> (user {self.user_id})" if self.user_id else self.username
        admin = {True: "administrator", False: "NOT an administrator", None: "administrator: unknown"}[self.is_admin]
        return [
            f"Nutshell company: {self.company_name or '(name not available)'}",
            f"  user {who}, {admin}",
            f"  REST {self.rest_url}, JSON-RPC {self.rpc_url}, {self.latency_ms:.0f} ms per request",
        ]


# --- Cliniko ---------------------------------------------------------------------------------------------------


async def check_cliniko(
    api_key: str,
    base_url: str | None = None,
    *,
    policy: RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ClinikoAccess:
    """Test a Cliniko key live: whose key it is and its role (GET /user), the account (GET /settings/public, which
    every role may read). Raises ConnectError when the key does not work."""
    key = (api_key or "").strip()
    if not key:
        raise ConnectError(ConnectProblem.NO_KEY, "No Cliniko API key was given.", CLINIKO_KEY_HELP, service="Cliniko")
    shard = shard_from_key(key)
    url = (base_url or base_url_for_key(key)).rstrip("/")
    try:
        client = ClinikoClient(key, base_url=url, retry=policy or CONNECT_POLICY, transport=transport)
    except ClinikoError as exc:
        raise ConnectError(
            ConnectProblem.WRONG_URL,
            f"{url} is not a Cliniko API address.",
            "Check the Cliniko URL.",
            service="Cliniko",
        ) from exc
    async with client:
        try:
            started = time.perf_counter()
            user = await client.whoami()
            account = _account(await client.get_json("/settings/public"))
            if user.is_administrator and not account.get("country_code"):
                # Unconfirmed: which account keys /settings/public carries (the reference lists those of
                # /settings); when the country is missing there, an administrator's key reads /settings.
                account = {**_account(await client.get_json("/settings")), **account}
            latency = (time.perf_counter() - started) * 1000 / max(1, client.requests)
        except ClinikoError as exc:
            raise _cliniko_problem(exc, key, url) from exc
    country = _text(account.get("country_code"))
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.email or f"user {user.id}"
    access = ClinikoAccess(
        account_name=_text(account.get("name")),
        country_code=country.upper() if country else None,
        currency=currency_for_country(country),
        time_zone=_text(account.get("time_zone")) or user.time_zone_identifier or user.time_zone,
        user_id=str(user.id),
        user_name=name,
        role=user.role,
        is_admin=user.is_administrator,
        shard=shard,
        base_url=url,
        rate_limit_per_minute=client.limiter.limit,
        latency_ms=round(latency, 1),
    )
    if not access.is_admin:
        problem = ConnectError(
            ConnectProblem.NOT_ADMIN,
            f"This Cliniko key belongs to {name}, whose role is {user.role or 'unknown'}. Only an administrator's "
            "key can read everything a full export needs (all users, settings, appointments and notes).",
            "Ask a Cliniko administrator to create an API key (My info > Manage API keys) and connect with that one.",
            service="Cliniko",
        )
        access = ClinikoAccess(**{**access.__dict__, "problem": problem})
    return access


def _account(settings: Any) -> dict[str, Any]:
    account = settings.get("account") if isinstance(settings, dict) else None
    return {k: v for k, v in account.items() if v not in (None, "")} if isinstance(account, dict) else {}


def _cliniko_problem(exc: ClinikoError, key: str, url: str) -> ConnectError:
    host = httpx.URL(url).host
    url_shard = m.group(1).lower() if (m := _CLINIKO_HOST.match(host)) else None
    key_shard = shard_from_key(key)
    if isinstance(exc, ClinikoAuthError | UnsafeRedirect):
        has_suffix = key_shard != "au1" or key.lower().endswith("-au1")
        if url_shard and url_shard != key_shard:
            return ConnectError(
                ConnectProblem.WRONG_SHARD,
                f"The key belongs to Cliniko's {key_shard} shard but was sent to {host} ({url_shard}).",
                f"Leave the Cliniko URL out (it follows the key), or use https://api.{key_shard}.cliniko.com/v1.",
                service="Cliniko",
            )
        if not has_suffix or isinstance(exc, UnsafeRedirect):
            return ConnectError(
                ConnectProblem.WRONG_SHARD,
                "Cliniko refused the key on its au1 shard. A key without its shard ending (such as -au2 or -uk1) "
                "is tried on au1, so the ending may have been cut off when it was copied.",
                f"Copy the whole key, including the part after the last dash. {CLINIKO_KEY_HELP}",
                service="Cliniko",
            )
        return ConnectError(
            ConnectProblem.WRONG_KEY,
            f"Cliniko refused the API key (on the {key_shard} shard, {host}).",
            "Check that the whole key was copied and that it has not been revoked; make a new one if in doubt. "
            + CLINIKO_KEY_HELP,
            service="Cliniko",
        )
    if isinstance(exc, ClinikoPermissionError):
        return ConnectError(
            ConnectProblem.NO_ACCESS,
            "Cliniko accepted the key but would not let it read the account.",
            "Connect with an administrator's key.",
            service="Cliniko",
        )
    if isinstance(exc, ClinikoNotFound):
        return ConnectError(
            ConnectProblem.WRONG_URL,
            f"{url} answers, but not as Cliniko's API does (no /user there).",
            "Check the Cliniko URL (it ends in /v1), or leave it out to use the key's shard.",
            service="Cliniko",
        )
    return _network_problem(exc, exc.__cause__, "Cliniko", host, exc.status)


# --- Nutshell --------------------------------------------------------------------------------------------------


async def check_nutshell(
    username: str,
    api_key: str,
    base_url: str | None = None,
    *,
    policy: RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> NutshellAccess:
    """Test a Nutshell user e-mail and key live on both protocols: REST (the users) and JSON-RPC (endpoint
    discovery, the authenticated user, the company). Raises ConnectError when they do not work."""
    user = (username or "").strip()
    key = (api_key or "").strip()
    if not user or not key:
        missing = "user e-mail" if not user else "API key"
        raise ConnectError(
            ConnectProblem.NO_KEY,
            f"No Nutshell {missing} was given.",
            f"Enter the e-mail you sign in to Nutshell with and an API key. {NUTSHELL_KEY_HELP}",
            service="Nutshell",
        )
    rest_url = (base_url or DEFAULT_REST_URL).rstrip("/")
    client = NutshellClient(user, key, rest_url, policy=policy or CONNECT_POLICY, transport=transport)
    async with client:
        started = time.perf_counter()
        identity = await _nutshell_call(client.check_credentials, user, rest_url)
        company = await _nutshell_call(lambda: _company_name(client), user, rest_url)
        rpc_url = await client.rpc.endpoint()
        latency = (time.perf_counter() - started) * 1000 / max(1, client.stats.requests)
    me = identity.user
    access = NutshellAccess(
        username=user,
        user_id=me.id.rest if me else None,
        user_name=me.name if me else None,
        user_email=(me.emails[0] if me.emails else None) if me else None,
        company_name=company,
        is_admin=me.is_administrator if me else None,
        rest_url=rest_url,
        rpc_url=rpc_url,
        latency_ms=round(latency, 1),
    )
    if access.is_admin is False:
        problem = ConnectError(
            ConnectProblem.NOT_ADMIN,
            f"The Nutshell user {me.name if me else user} is not an administrator. A migration creates custom "
            "fields and must see every existing person to avoid duplicates, which needs an administrator.",
            "Connect with an administrator's e-mail and API key (Settings > Users shows who is one).",
            service="Nutshell",
        )
        access = NutshellAccess(**{**access.__dict__, "problem": problem})
    return access


async def _nutshell_call(call: Callable[[], Awaitable[T]], username: str, rest_url: str) -> T:
    try:
        return await call()
    except NutshellError as exc:
        raise _nutshell_problem(exc, username, rest_url) from exc


async def _company_name(client: NutshellClient) -> str | None:
    """The company's name from JSON-RPC `instanceData`. Unconfirmed: its answer is undocumented; we read `name`
    (or `companyName`, or a `company` object's `name`) and accept that it may be absent."""
    try:
        data = await client.rpc.call("instanceData", {}, safety=Safety.READ)
    except NotFoundError:
        return None
    if not isinstance(data, dict):
        return None
    company = data.get("company")
    for value in (
        data.get("name"),
        data.get("companyName"),
        company.get("name") if isinstance(company, dict) else company,
    ):
        if text := _text(value):
            return text
    return None


def _nutshell_problem(exc: NutshellError, username: str, rest_url: str) -> ConnectError:
    host = httpx.URL(rest_url).host
    if isinstance(exc, AuthError):
        if "discovery refused" in exc.message:
            return ConnectError(
                ConnectProblem.UNKNOWN_USER,
                f"Nutshell does not know the user {username}, or the user is disabled.",
                "Use the e-mail you sign in to Nutshell with (or your company's Nutshell domain).",
                service="Nutshell",
            )
        if "api key not found" in exc.message.lower():
            return ConnectError(
                ConnectProblem.KEY_NOT_FOUND,
                "Nutshell answered 'API key not found': it does not know this API key for this user.",
                "Check that the whole key was copied and belongs to your company, and that it is an 'API access' "
                f"key (web-form keys cannot be used). {NUTSHELL_KEY_HELP}",
                service="Nutshell",
            )
        return ConnectError(
            ConnectProblem.WRONG_KEY,
            f"Nutshell refused the user e-mail and API key ({exc.message}).",
            f"Check both, and that the key allows API access for this user. {NUTSHELL_KEY_HELP}",
            service="Nutshell",
        )
    if isinstance(exc, PermissionDenied):
        return ConnectError(
            ConnectProblem.NO_ACCESS,
            "Nutshell accepted the key but would not let it read the users.",
            "Use a key with the permission 'API access' of an administrator.",
            service="Nutshell",
        )
    if isinstance(exc, NotFoundError | ProtocolError):
        return ConnectError(
            ConnectProblem.WRONG_URL,
            f"{rest_url} answers, but not as Nutshell's API does.",
            f"Check the Nutshell URL, or leave it out to use {DEFAULT_REST_URL}.",
            service="Nutshell",
        )
    if isinstance(exc, RateLimitedError):
        return ConnectError(
            ConnectProblem.RATE_LIMITED,
            "Nutshell asks us to slow down (too many requests).",
            "Wait a minute and test again.",
            service="Nutshell",
        )
    return _network_problem(exc, exc.__cause__, "Nutshell", host, exc.status if isinstance(exc, ServiceError) else None)


# --- both ------------------------------------------------------------------------------------------------------


def _network_problem(
    exc: Exception, cause: BaseException | None, service: str, host: str, status: int | None
) -> ConnectError:
    if isinstance(cause, httpx.TimeoutException) and not isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectError(
            ConnectProblem.TIMEOUT,
            f"{service} ({host}) did not answer in time, on every try.",
            f"Test again in a few minutes; if it keeps happening, check {service}'s status page or your network.",
            service=service,
        )
    if isinstance(cause, httpx.TransportError):
        return ConnectError(
            ConnectProblem.UNREACHABLE,
            f"Could not reach {service} at {host} ({type(cause).__name__}).",
            "Check the internet connection (and any proxy or firewall), and the address if you typed one.",
            service=service,
        )
    if isinstance(exc, ClinikoUnavailable | ServiceError) or (status is not None and status >= 500):
        return ConnectError(
            ConnectProblem.SERVICE_ERROR,
            f"{service} failed on every try ({exc}).",
            f"Test again in a few minutes; {service} may be having trouble.",
            service=service,
        )
    return ConnectError(
        ConnectProblem.SERVICE_ERROR,
        f"{service} answered something unexpected: {exc}",
        "Test again; if it persists, note this message for support.",
        service=service,
    )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


# --- keeping the keys, recording the connection -----------------------------------------------------------------


def store_keys(
    project: Project,
    *,
    cliniko_key: str,
    nutshell_username: str,
    nutshell_key: str,
    session_only: bool = False,
    secrets: Secrets | None = None,
) -> str:
    """Keep the keys in the OS keychain (per project), or in memory for this session only; returns a sentence
    saying where they went. Raises ConnectError (kind no_keychain) when there is no safe keychain and
    `session_only` was not asked for: nothing is stored then. `secrets`: the caller's (the wizard's, whose
    keychain a test or the demo replaces with an in-memory one); by default the project's."""
    secrets = secrets or project_secrets(project)
    values = {
        Secret.CLINIKO_API_KEY: cliniko_key.strip(),
        Secret.NUTSHELL_USERNAME: nutshell_username.strip(),
        Secret.NUTSHELL_API_KEY: nutshell_key.strip(),
    }
    if not all(values.values()):
        raise ValueError("store_keys needs the Cliniko key, the Nutshell user e-mail and the Nutshell key")
    if session_only:
        for secret, value in values.items():
            secrets.set(secret, value, remember=False)
        return "Keys kept for this session only (in memory): they are gone when this program ends."
    if secrets.keychain_problem is not None:
        raise ConnectError(
            ConnectProblem.NO_KEYCHAIN,
            f"The keys cannot be saved safely: {secrets.keychain_problem}.",
            "Keep them for this session only (the wizard offers it), or set "
            f"{', '.join(s.value for s in Secret)} in the environment of each command (`connect --from-env` tests "
            "them).",
            service="keychain",
        )
    stored: list[Secret] = []
    for secret, value in values.items():
        if secrets.set(secret, value) is not Where.KEYCHAIN:
            for done in stored:  # all or nothing: no half-saved set of keys
                secrets.forget(done)
            secrets.forget(secret)
            raise ConnectError(
                ConnectProblem.NO_KEYCHAIN,
                f"The keychain ({secrets.backend_name}) refused to save the keys.",
                "Unlock the keychain and try again, or keep the keys for this session only.",
                service="keychain",
            )
        stored.append(secret)
    return f"Keys saved in the OS keychain ({secrets.backend_name}) under {secrets.service!r}."


def record_connection(project: Project, cliniko: ClinikoAccess, nutshell: NutshellAccess) -> None:
    """Save what the later steps need from a successful test (never a key): the `connected` milestone, the
    endpoints when they are not the real services', and the Nutshell username in project.toml."""
    project.store.set_milestone(
        "connected",
        {
            "cliniko_account": cliniko.account_name,
            "cliniko_role": cliniko.role,
            "shard": cliniko.shard,
            "currency": cliniko.currency,
            "time_zone": cliniko.time_zone,
            "nutshell_user_id": nutshell.user_id,
            "nutshell_company": nutshell.company_name,
            "cliniko_latency_ms": cliniko.latency_ms,
            "nutshell_latency_ms": nutshell.latency_ms,
        },
    )
    settings = project.settings
    settings.cliniko.base_url = (
        None if cliniko.base_url == f"https://api.{cliniko.shard}.cliniko.com/v1" else cliniko.base_url
    )
    settings.nutshell.base_url = None if nutshell.rest_url == DEFAULT_REST_URL else nutshell.rest_url
    settings.nutshell.username = nutshell.username
    project.save_settings()
