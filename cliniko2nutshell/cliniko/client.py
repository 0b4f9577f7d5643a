"""The async Cliniko API client: shard routing, headers, the rate limiter, retries, pages and attachment downloads.

    async with ClinikoClient(api_key) as client:             # https://api.<shard>.cliniko.com/v1
        user = await client.whoami()
        url = client.list_url("/patients", filters=["archived_at:*"])
        while url:
            page = await client.fetch_page(url, "patients")
            ...
            url = page.next_url

Every request goes through one rolling-window limiter (ratelimit.py) and the project's RetryPolicy (retry.py). The
Authorization header only ever goes to the API host: pages are followed through `links.next` only on that host,
and the attachment redirect is fetched by a second client that has no credentials at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from cliniko2nutshell import CONTACT_EMAIL_FALLBACK
from cliniko2nutshell.cliniko.errors import (
    ClinikoAuthError,
    ClinikoBadRequest,
    ClinikoError,
    ClinikoNotFound,
    ClinikoPermissionError,
    ClinikoRateLimited,
    ClinikoUnavailable,
    ClinikoValidationError,
    UnsafeRedirect,
)
from cliniko2nutshell.cliniko.events import RateLimited, RequestRetried
from cliniko2nutshell.cliniko.models import User
from cliniko2nutshell.cliniko.ratelimit import RollingWindowLimiter
from cliniko2nutshell.events import EventSink, ignore
from cliniko2nutshell.project.private import open_private_binary
from cliniko2nutshell.retry import TRANSIENT_ERRORS, RetryPolicy, is_retryable_status

APP_NAME = "cliniko2nutshell"
DEFAULT_SHARD = "au1"
DEFAULT_RATE_LIMIT = 200  # requests per rolling minute per user (Cliniko's documented limit since 2019)
PER_PAGE = 100  # the documented maximum
MAX_RATE_LIMIT_WAITS = 20  # consecutive 429s on one request before giving up

# The shard is the suffix after the last '-' of the key (reference §1); keys without one are old au1 keys.
_SHARD_RE = re.compile(r"-([a-zA-Z]{2}\d{1,2})$")
_EMAIL_RE = re.compile(r"^[^@\s()<>]+@[^@\s()<>]+\.[^@\s()<>]+$")


def shard_from_key(api_key: str) -> str:
    match = _SHARD_RE.search(api_key.strip())
    return match.group(1).lower() if match else DEFAULT_SHARD


def base_url_for_key(api_key: str) -> str:
    return f"https://api.{shard_from_key(api_key)}.cliniko.com/v1"


def user_agent(contact_email: str | None) -> str:
    """`cliniko2nutshell (<e-mail>)`: Cliniko requires a name and a valid contact e-mail, or may block us."""
    email = (contact_email or "").strip()
    if not _EMAIL_RE.match(email):
        email = CONTACT_EMAIL_FALLBACK
    return f"{APP_NAME} ({email})"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its records, `total_entries` when the server sent it, and the next page's URL."""

    url: str
    items: list[dict[str, Any]]
    total_entries: int | None
    next_url: str | None


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    path: Path
    size: int
    sha256: str
    content_type: str | None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _server_message(response: httpx.Response) -> str:
    """The server's own words, short: JSON `message`/`error`/`errors`, else the text body."""
    text = response.text.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "error") if body.get(k)]
        if isinstance(body.get("errors"), dict):
            parts.append("; ".join(f"{k} {v}" for k, v in body["errors"].items()))
        if parts:
            return " - ".join(parts)[:300]
    return text[:300] or response.reason_phrase


def _resource_of(url: httpx.URL) -> str:
    """The resource a URL addresses, for error messages: '/v1/patients/123' -> 'patients'."""
    parts = [p for p in url.path.split("/") if p]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    return parts[0] if parts else url.path


def _total_entries(value: Any) -> int | None:
    # Documented variations: absent, a number, or (in the practitioners example) a numeric string.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class ClinikoClient:
    """One API key, one limiter. Use as an async context manager (or call `aclose`)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        contact_email: str | None = None,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        retry: RetryPolicy | None = None,
        limiter: RollingWindowLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        blob_transport: httpx.AsyncBaseTransport | None = None,
        sink: EventSink = ignore,
        rng: random.Random | None = None,
        max_connections: int = 12,  # page chains plus attachment downloads (extract.ExtractOptions)
    ) -> None:
        if not api_key or not api_key.strip():
            raise ClinikoAuthError("No Cliniko API key was given.")
        self.base_url = (base_url or base_url_for_key(api_key)).rstrip("/")
        self._base = httpx.URL(self.base_url)
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ClinikoError(f"{self.base_url!r} is not an http(s) URL for the Cliniko API.")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RollingWindowLimiter(rate_limit)
        self.sink = sink
        self._rng = rng or random.Random()
        self._contact_email = contact_email
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            auth=httpx.BasicAuth(api_key.strip(), ""),
            headers={"Accept": "application/json", "User-Agent": user_agent(contact_email)},
            timeout=self.retry.timeout,
            follow_redirects=False,  # redirects are handled by hand so the key never leaves the API host
            transport=transport,
            limits=limits,
        )
        # The blob host (S3 in production) gets no credentials: this client has no auth and no key anywhere.
        self._blob_http = httpx.AsyncClient(
            headers={"User-Agent": APP_NAME},
            timeout=self.retry.timeout,
            follow_redirects=True,
            transport=blob_transport or transport,
            limits=limits,
        )
        # Counters for the summary.
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self._server_date: datetime | None = None
        self._server_date_mono = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def __aenter__(self) -> ClinikoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._blob_http.aclose()

    # -- identity ----------------------------------------------------------------------------------------------
    @property
    def user_agent(self) -> str:
        return str(self._http.headers["User-Agent"])

    def set_contact_email(self, email: str | None) -> None:
        """Use the account's e-mail (settings `account.email_from`) in the User-Agent from now on."""
        self._contact_email = email
        self._http.headers["User-Agent"] = user_agent(email)

    def server_now(self) -> datetime:
        """The server's clock (from the last `Date` header, advanced by local elapsed time), else local UTC."""
        if self._server_date is None:
            return datetime.now(UTC).replace(microsecond=0)
        elapsed = time.monotonic() - self._server_date_mono
        return (self._server_date + timedelta(seconds=elapsed)).replace(microsecond=0)

    # -- URLs --------------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def list_url(self, path: str, *, filters: list[str] | tuple[str, ...] = (), sort: str | None = None) -> str:
        """The first page of a list: per_page=100, one `q[]` per filter (ANDed by Cliniko), optional sort."""
        params: list[tuple[str, str]] = [("per_page", str(PER_PAGE))]
        params += [("q[]", f) for f in filters]
        if sort:
            params.append(("sort", sort))
        return str(httpx.URL(self.url(path), params=params))

    def check_same_host(self, url: str) -> httpx.URL:
        """Refuse any URL off the API host: it would receive the key."""
        target = httpx.URL(url)
        if _origin(target) != _origin(self._base):
            raise UnsafeRedirect(
                f"Refusing to send the Cliniko API key to {target.scheme}://{target.host}: the API is at "
                f"{self._base.scheme}://{self._base.host}.",
                resource=_resource_of(target),
            )
        return target

    # -- requests ----------------------------------------------------------------------------------------------
    def _note_date(self, response: httpx.Response) -> None:
        value = response.headers.get("Date")
        if not value:
            return
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        self._server_date = parsed.astimezone(UTC)
        self._server_date_mono = time.monotonic()

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        resource = _resource_of(response.request.url)
        message = _server_message(response)
        if status == 401:
            raise ClinikoAuthError(
                f"The Cliniko API key was refused (check the key and its shard suffix). Cliniko said: {message}",
                status=status,
                resource=resource,
            )
        if status == 403:
            raise ClinikoPermissionError(
                f"The Cliniko API key may not read {resource}: an administrator's key is needed for a full "
                f"export. Cliniko said: {message}",
                status=status,
                resource=resource,
            )
        kinds: dict[int, type[ClinikoError]] = {
            400: ClinikoBadRequest,
            404: ClinikoNotFound,
            422: ClinikoValidationError,
        }
        kind = kinds.get(status, ClinikoUnavailable if status >= 500 else ClinikoError)
        raise kind(f"Cliniko answered {status} for {resource}: {message}", status=status, resource=resource)

    async def _wait_retry(self, url: httpx.URL, attempt: int, reason: str) -> None:
        wait = self.retry.delay(attempt, self._rng)
        self.retries += 1
        self.sink(RequestRetried(url.path, attempt, reason, wait))
        await self.limiter.clock.sleep(wait)

    async def _rate_limited(self, url: httpx.URL, response: httpx.Response, attempt: int) -> None:
        self.rate_limited += 1
        reset = response.headers.get("X-RateLimit-Reset")
        try:
            reset_at = float(reset) if reset else None
        except ValueError:
            reset_at = None
        if reset_at is None:
            # Unconfirmed: Cliniko documents X-RateLimit-Reset on every 429. Without it we back off like a 5xx.
            reset_at = self.limiter.clock.wall() + max(1.0, self.retry.delay(attempt, self._rng))
        # Jitter so that several waiting requests do not all hit the very first second of the new window.
        wait = self.limiter.block_until_wall(reset_at + self._rng.uniform(0.05, 1.0))
        self.sink(RateLimited(url.path, wait))

    async def request(self, method: str, url: str, *, expect_redirect: bool = False) -> httpx.Response:
        """Send one API request with limiter, retries and error mapping. The body is read before returning."""
        target = self.check_same_host(url)
        attempt = 0
        waits = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            failure: Exception | None = None
            response: httpx.Response | None = None
            try:
                self.requests += 1
                response = await self._http.request(method, target)
            except TRANSIENT_ERRORS as exc:
                failure = exc
            finally:
                self.limiter.release()
            if response is not None:
                self._note_date(response)
                if response.status_code == 429:
                    waits += 1
                    if waits > MAX_RATE_LIMIT_WAITS:
                        raise ClinikoRateLimited(
                            f"Cliniko kept answering 429 for {_resource_of(target)} after {waits - 1} waits.",
                            status=429,
                            resource=_resource_of(target),
                        )
                    await self._rate_limited(target, response, attempt)
                    attempt -= 1  # a 429 is not a failure of the request: it does not use up a retry
                    continue
                if is_retryable_status(response.status_code):
                    failure = ClinikoUnavailable(
                        f"Cliniko answered {response.status_code}", status=response.status_code
                    )
                elif response.is_redirect:
                    if expect_redirect:
                        return response
                    # e.g. the legacy un-sharded host moving to a shard: following would carry the key along.
                    raise UnsafeRedirect(
                        f"Cliniko redirected {_resource_of(target)} to {response.headers.get('Location', '?')}; "
                        "not following it with the API key. Check the key's shard suffix or the Cliniko URL.",
                        status=response.status_code,
                        resource=_resource_of(target),
                    )
                else:
                    self._raise_for_status(response)
                    return response
            assert failure is not None
            if attempt >= self.retry.attempts:
                if isinstance(failure, ClinikoError):
                    raise ClinikoUnavailable(
                        f"Cliniko kept failing for {_resource_of(target)} after {attempt} attempts: {failure}",
                        status=failure.status,
                        resource=_resource_of(target),
                    )
                raise ClinikoUnavailable(
                    f"Could not reach Cliniko for {_resource_of(target)} after {attempt} attempts: "
                    f"{type(failure).__name__}: {failure}",
                    resource=_resource_of(target),
                ) from failure
            await self._wait_retry(target, attempt, f"{type(failure).__name__}: {failure}")

    async def get_json(self, url_or_path: str) -> Any:
        """GET a JSON document (a path under the base URL, or an absolute URL on the API host)."""
        url = url_or_path if "://" in url_or_path else self.url(url_or_path)
        attempt = 0
        while True:
            attempt += 1
            response = await self.request("GET", url)
            try:
                return response.json()
            except ValueError as exc:
                # A 200 with a body cut short: the same remedy as a dropped connection.
                if attempt >= self.retry.attempts:
                    raise ClinikoUnavailable(
                        f"Cliniko sent an unreadable body for {_resource_of(response.request.url)}: {exc}",
                        resource=_resource_of(response.request.url),
                    ) from exc
                await self._wait_retry(response.request.url, attempt, f"invalid JSON: {exc}")

    async def fetch_page(self, url: str, collection: str) -> Page:
        """One page of a list. `collection` is the key holding the records ('patients', 'practitioners', ...)."""
        body = await self.get_json(url)
        if not isinstance(body, dict):
            raise ClinikoError(f"Cliniko sent a list page that is not an object for {collection}.")
        items = body.get(collection)
        if items is None:
            # Tolerate a differently named key: the one list in the body that is not `links`.
            lists = [v for k, v in body.items() if isinstance(v, list) and k != "links"]
            items = lists[0] if len(lists) == 1 else None
        if not isinstance(items, list):
            raise ClinikoError(f"Cliniko sent a list page without a {collection!r} array.", resource=collection)
        links = body.get("links") if isinstance(body.get("links"), dict) else {}
        next_url = links.get("next") or None
        if next_url is not None:
            # Never build page URLs ourselves; but a next link may be relative in a proxy setup.
            next_url = urljoin(url, next_url)
            self.check_same_host(next_url)
        return Page(
            url=url,
            items=[i for i in items if isinstance(i, dict)],
            total_entries=_total_entries(body.get("total_entries")),
            next_url=next_url,
        )

    # -- single documents --------------------------------------------------------------------------------------
    async def whoami(self) -> User:
        """The key's own user (GET /user), with its `role` (an administrator key is needed for a full export)."""
        return User.model_validate(await self.get_json("/user"))

    async def settings(self) -> dict[str, Any]:
        """GET /settings; also adopts `account.email_from` as the User-Agent contact."""
        body = await self.get_json("/settings")
        if not isinstance(body, dict):
            raise ClinikoError("Cliniko sent settings that are not an object.", resource="settings")
        account = body.get("account")
        if isinstance(account, dict) and isinstance(account.get("email_from"), str):
            self.set_contact_email(account["email_from"])
        return body

    # -- attachments -------------------------------------------------------------------------------------------
    async def download(self, content_url: str, dest: Path) -> DownloadedFile:
        """Download an attachment's content to `dest` (mode 0600), streaming, with size and sha256.

        GET content_url on the API host answers 303 to a short-lived blob URL; that URL is fetched by the
        credential-free blob client. On a failure the whole dance restarts, since the blob URL may have expired.
        """
        content = self.check_same_host(content_url)
        attempt = 0
        while True:
            attempt += 1
            # request() has its own retries for the API call; this loop retries the blob fetch.
            response = await self.request("GET", str(content), expect_redirect=True)
            if not response.is_redirect:
                # Unconfirmed: the 303 rests on one third-party observation. A direct 200 is taken as the file.
                return _write_bytes(dest, response.content, response.headers.get("Content-Type"))
            location = response.headers.get("Location")
            if not location:
                raise ClinikoError("Cliniko redirected an attachment without a Location.", status=303)
            try:
                return await self._fetch_blob(urljoin(str(content), location), dest)
            except (*TRANSIENT_ERRORS, ClinikoUnavailable) as exc:
                if attempt >= self.retry.attempts:
                    raise ClinikoUnavailable(
                        f"Could not download an attachment after {attempt} attempts: {exc}",
                        resource="patient_attachments",
                    ) from exc
                await self._wait_retry(content, attempt, f"{type(exc).__name__}: {exc}")

    async def _fetch_blob(self, url: str, dest: Path) -> DownloadedFile:
        tmp = dest.with_name(f".{dest.name}.part")
        digest = hashlib.sha256()
        size = 0
        fd = open_private_binary(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                async with self._blob_http.stream("GET", url) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error_kind = ClinikoUnavailable if response.status_code >= 500 else ClinikoError
                        raise error_kind(
                            f"The attachment store answered {response.status_code}.",
                            status=response.status_code,
                            resource="patient_attachments",
                        )
                    expected = response.headers.get("Content-Length")
                    content_type = response.headers.get("Content-Type")
                    async for chunk in response.aiter_bytes(1 << 16):
                        fh.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                if expected is not None and expected.isdigit() and int(expected) != size:
                    raise ClinikoUnavailable(
                        f"The attachment arrived cut short ({size} of {expected} bytes).",
                        resource="patient_attachments",
                    )
            # No fsync: every extraction re-checks size and sha256 of the files it skips, so a file torn by a
            # power cut is downloaded again rather than trusted.
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return DownloadedFile(dest, size, digest.hexdigest(), content_type)


def _write_bytes(dest: Path, data: bytes, content_type: str | None) -> DownloadedFile:
    tmp = dest.with_name(f".{dest.name}.part")
    fd = open_private_binary(tmp)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, dest)
    return DownloadedFile(dest, len(data), hashlib.sha256(data).hexdigest(), content_type)
