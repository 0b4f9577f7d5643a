"""The Cliniko client and its limiter, on httpx.MockTransport and a simulated clock (no network, no real waits)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import io
import itertools
import json
import random
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko2nutshell import CONTACT_EMAIL_FALLBACK
from cliniko2nutshell.cliniko.client import ClinikoClient, base_url_for_key, shard_from_key, user_agent
from cliniko2nutshell.cliniko.errors import (
    ClinikoAuthError,
    ClinikoBadRequest,
    ClinikoNotFound,
    ClinikoPermissionError,
    ClinikoUnavailable,
    UnsafeRedirect,
)
from cliniko2nutshell.cliniko.events import (
    AttachmentProgress,
    ExtractSummary,
    ObjectFinished,
    ObjectProgress,
    ObjectStarted,
    ObjectUnavailable,
    RateLimited,
    RequestRetried,
)
from cliniko2nutshell.cliniko.extract import plan_passes
from cliniko2nutshell.cliniko.progress import ExtractProgress, format_summary
from cliniko2nutshell.cliniko.ratelimit import RollingWindowLimiter
from cliniko2nutshell.cliniko.resources import BY_OBJECT
from cliniko2nutshell.events import Event
from cliniko2nutshell.project.store import Store, StoreError
from cliniko2nutshell.retry import RetryPolicy

KEY = "MS0xLTEyMzQ1Njc4OTAtYWJjZGVm-au2"
BASE = "https://api.au2.cliniko.com/v1"
WALL0 = 1_700_000_000.0


class StepClock:
    """A clock whose sleeps return at once and move time forward (one request at a time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class VirtualClock:
    """Discrete-event time for many concurrent tasks: time jumps to the next sleeper once everyone is waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    async def run(self, main: Coroutine[Any, Any, Any]) -> Any:
        task = asyncio.ensure_future(main)
        while not task.done():
            for _ in range(30):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            if task.done() or not self._sleepers:
                continue
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            future.set_result(None)
        return task.result()


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, *, clock: Any = None, sink: Any = None, **kwargs: Any) -> ClinikoClient:
    clock = clock or StepClock()
    return ClinikoClient(
        KEY,
        transport=httpx.MockTransport(handler),
        limiter=RollingWindowLimiter(kwargs.pop("rate_limit", 200), clock=clock),
        retry=RetryPolicy(attempts=4, base=0.5, cap=4.0),
        sink=sink or (lambda _e: None),
        rng=random.Random(1),
        **kwargs,
    )


def page(key: str, items: list[dict[str, Any]], next_url: str | None = None, total: Any = "absent") -> httpx.Response:
    body: dict[str, Any] = {key: items, "links": {"self": "x"}}
    if next_url:
        body["links"]["next"] = next_url
    if total != "absent":
        body["total_entries"] = total
    return httpx.Response(200, json=body)


# -- shard, base URL, headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shard"),
    [
        ("MS0xLTEyMzQ1-au2", "au2"),
        ("MS0xLTEyMzQ1-UK1", "uk1"),
        ("MS0xLTEyMzQ1-ca1", "ca1"),
        ("MS0xLTEyMzQ1-xy12", "xy12"),  # shards get added: a regex, not a list
        ("MS0xLTEyMzQ1", "au1"),  # old keys have no suffix
        ("MS0xLTEyMzQ1-abc", "au1"),
        ("MS0xLTEyMzQ1-au123", "au1"),
    ],
)
def test_shard_from_key(key: str, shard: str) -> None:
    assert shard_from_key(key) == shard
    assert base_url_for_key(key) == f"https://api.{shard}.cliniko.com/v1"


def test_user_agent_names_the_app_and_a_valid_contact() -> None:
    assert user_agent("clinic@example.com") == "cliniko2nutshell (clinic@example.com)"
    assert user_agent(None) == f"cliniko2nutshell ({CONTACT_EMAIL_FALLBACK})"
    assert user_agent("not an email") == f"cliniko2nutshell ({CONTACT_EMAIL_FALLBACK})"


async def test_headers_auth_and_the_contact_email_from_settings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/settings":
            return httpx.Response(200, json={"account": {"email_from": "front@clinic.example"}})
        return httpx.Response(200, json={"id": 1, "role": "administrator", "email": "a@b.c"})

    async with make_client(handler) as client:
        assert client.base_url == BASE
        await client.settings()
        user = await client.whoami()
    assert user.is_administrator
    first, second = seen
    assert first.url.host == "api.au2.cliniko.com"
    assert first.headers["Accept"] == "application/json"
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert first.headers["User-Agent"] == f"cliniko2nutshell ({CONTACT_EMAIL_FALLBACK})"
    assert second.headers["User-Agent"] == "cliniko2nutshell (front@clinic.example)"


async def test_server_time_comes_from_the_date_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"Date": "Tue, 02 Jan 2024 03:04:05 GMT"})

    async with make_client(handler) as client:
        await client.get_json("/settings")
        assert client.server_now().isoformat().startswith("2024-01-02T03:04:0")


# -- pages ----------------------------------------------------------------------------------------------------------


async def test_pages_follow_links_next_with_per_page_100_and_filters() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        n = int(request.url.params.get("page", "1"))
        nxt = f"{BASE}/patients?per_page=100&q%5B%5D=archived_at%3A%2A&page={n + 1}" if n < 3 else None
        # total_entries absent on page 2, a numeric string on page 3: both documented variations
        total = {1: 250, 2: "absent", 3: "250"}[n]
        return page("patients", [{"id": f"{n}{i}"} for i in range(2)], nxt, total)

    async with make_client(handler) as client:
        url: str | None = client.list_url("/patients", filters=["archived_at:*", "updated_at:>=2024-01-01T00:00:00Z"])
        pages = []
        while url:
            p = await client.fetch_page(url, "patients")
            pages.append(p)
            url = p.next_url
    assert [p.total_entries for p in pages] == [250, None, 250]
    assert sum(len(p.items) for p in pages) == 6
    assert seen[0].params["per_page"] == "100"
    assert seen[0].params.get_list("q[]") == ["archived_at:*", "updated_at:>=2024-01-01T00:00:00Z"]
    assert [u.params.get("page") for u in seen] == [None, "2", "3"]


async def test_a_next_link_to_another_host_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return page("patients", [{"id": "1"}], "https://evil.example/v1/patients?page=2")

    async with make_client(handler) as client:
        with pytest.raises(UnsafeRedirect, match=r"evil\.example"):
            await client.fetch_page(client.list_url("/patients"), "patients")
        with pytest.raises(UnsafeRedirect):
            await client.get_json("http://api.au2.cliniko.com/v1/patients")  # same host, other scheme


async def test_an_api_redirect_is_not_followed_with_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": "https://api.au3.cliniko.com/v1/patients"})

    async with make_client(handler) as client:
        with pytest.raises(UnsafeRedirect, match="shard suffix"):
            await client.get_json("/patients")
        assert client.requests == 1


async def test_a_page_with_an_unexpected_key_is_tolerated_when_unambiguous() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"practitioners": [{"id": 1}], "links": {}})

    async with make_client(handler) as client:
        p = await client.fetch_page(client.list_url("/practitioners/inactive"), "inactive_practitioners")
    assert p.items == [{"id": 1}] and p.next_url is None and p.total_entries is None


# -- errors, retries, 429 --------------------------------------------------------------------------------------------


async def test_401_and_403_raise_clear_typed_errors_without_retry() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if request.url.path == "/v1/users":
            return httpx.Response(403, json={"message": "Forbidden"})
        return httpx.Response(401, text="HTTP Basic: Access denied.\n")

    async with make_client(handler) as client:
        with pytest.raises(ClinikoAuthError, match="shard suffix") as auth:
            await client.get_json("/patients")
        assert "Access denied" in str(auth.value)
        with pytest.raises(ClinikoPermissionError, match=r"users.*administrator") as perm:
            await client.get_json("/users")
        assert perm.value.resource == "users" and perm.value.status == 403
    assert calls["n"] == 2


@pytest.mark.parametrize(("status", "kind"), [(400, ClinikoBadRequest), (404, ClinikoNotFound)])
async def test_other_4xx_are_not_retried(status: int, kind: type[Exception]) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(
            status, json={"message": "Bad Request", "errors": {"q[]": "filtering on 'x' is not allowed"}}
        )

    async with make_client(handler) as client:
        with pytest.raises(kind, match="not allowed" if status == 400 else "404"):
            await client.get_json("/patients?q[]=x:=1")
    assert calls["n"] == 1


class BrokenStream(httpx.AsyncByteStream):
    """A body that stops half-way: the connection dropped mid-answer."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"patients": [{"id"'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "drop", "timeout", "connect", "truncated"])
async def test_transient_failures_are_retried_with_backoff(fault: str) -> None:
    calls = {"n": 0}
    events: list[Event] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            if fault == "drop":
                return httpx.Response(200, stream=BrokenStream())
            if fault == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            if fault == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if fault == "truncated":
                return httpx.Response(200, content=b'{"patients": [')
            return httpx.Response(int(fault), json={"error": "boom"})
        return page("patients", [{"id": "1"}])

    clock = StepClock()
    async with make_client(handler, clock=clock, sink=events.append) as client:
        p = await client.fetch_page(client.list_url("/patients"), "patients")
        assert client.retries == 2
    assert p.items == [{"id": "1"}]
    assert calls["n"] == 3
    retried = [e for e in events if isinstance(e, RequestRetried)]
    assert [e.attempt for e in retried] == [1, 2]
    # Full jitter under a capped exponential: first wait <= 0.5 s, second <= 1 s.
    assert 0 <= clock.slept[0] <= 0.5 and 0 <= clock.slept[1] <= 1.0


async def test_retries_give_up_with_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "down"})

    clock = StepClock()
    async with make_client(handler, clock=clock) as client:
        with pytest.raises(ClinikoUnavailable, match="after 4 attempts"):
            await client.get_json("/patients")
        assert client.requests == 4
    assert all(wait <= 4.0 for wait in clock.slept)  # the cap


async def test_429_waits_until_x_ratelimit_reset_then_retries() -> None:
    clock = StepClock()
    calls: list[float] = []
    events: list[Event] = []
    reset = int(WALL0) + 37

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.wall())
        if len(calls) == 1:
            return httpx.Response(429, json={"message": "Too Many Requests"}, headers={"X-RateLimit-Reset": str(reset)})
        return httpx.Response(200, json={"ok": True})

    async with make_client(handler, clock=clock, sink=events.append) as client:
        assert await client.get_json("/patients") == {"ok": True}
        assert client.rate_limited == 1 and client.retries == 0
    assert calls[1] >= reset  # never before the reset second
    assert calls[1] <= reset + 1.0  # and not much after: jitter of at most a second
    assert any(isinstance(e, RateLimited) for e in events)


# -- attachments -----------------------------------------------------------------------------------------------------

BLOB = b"%PDF-1.4\n" + bytes(range(256)) * 300


def attachment_handler(requests: list[httpx.Request], *, location: str, fail_blob: int = 0) -> Handler:
    state = {"blob_calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/v1/patient_attachments/7/content":
            return httpx.Response(303, headers={"Location": location})
        if request.url.host == "bucket.s3.example" or request.url.path.startswith("/blobs/"):
            state["blob_calls"] += 1
            if state["blob_calls"] <= fail_blob:
                # Content-Length promises more than arrives: a cut-short download.
                return httpx.Response(200, content=BLOB[:100], headers={"Content-Length": str(len(BLOB))})
            return httpx.Response(200, content=BLOB, headers={"Content-Type": "application/pdf"})
        return httpx.Response(404)

    return handler


async def test_attachment_redirect_is_fetched_without_credentials(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []
    handler = attachment_handler(requests, location="https://bucket.s3.example/blobs/abc?X-Amz-Expires=300")
    async with make_client(handler) as client:
        got = await client.download(f"{BASE}/patient_attachments/7/content", tmp_path / "7")
    api, blob = requests
    assert "Authorization" in api.headers
    assert "Authorization" not in blob.headers
    assert KEY not in str(blob.headers) and KEY not in str(blob.url)
    assert blob.url.host == "bucket.s3.example"
    assert got.size == len(BLOB) and got.sha256 == hashlib.sha256(BLOB).hexdigest()
    assert (tmp_path / "7").read_bytes() == BLOB
    assert stat.S_IMODE((tmp_path / "7").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*part"))


async def test_attachment_on_a_relative_location_and_a_cut_short_blob_is_retried(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []
    handler = attachment_handler(requests, location="/blobs/token1", fail_blob=1)
    async with make_client(handler) as client:
        got = await client.download(f"{BASE}/patient_attachments/7/content", tmp_path / "7")
    # content, blob (cut short), content again (the presigned URL may have expired), blob
    assert [r.url.path for r in requests] == ["/v1/patient_attachments/7/content", "/blobs/token1"] * 2
    assert all("Authorization" not in r.headers for r in requests if r.url.path.startswith("/blobs/"))
    assert got.size == len(BLOB)


async def test_attachment_content_url_off_the_api_host_is_refused(tmp_path: Path) -> None:
    async with make_client(lambda r: httpx.Response(200)) as client:
        with pytest.raises(UnsafeRedirect):
            await client.download("https://elsewhere.example/v1/patient_attachments/7/content", tmp_path / "7")


# -- the limiter -------------------------------------------------------------------------------------------------------


def _max_in_any_window(times: list[float], window: float) -> int:
    """The most hits a server with a rolling window (evicting hits <= now - window) ever counts."""
    times = sorted(times)
    worst, start = 0, 0
    for i, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        worst = max(worst, i - start + 1)
    return worst


@pytest.mark.parametrize(("limit", "workers", "seed"), [(50, 20, 1), (10, 3, 2), (200, 40, 3), (5, 12, 4)])
async def test_limiter_never_exceeds_the_limit_in_any_window_and_uses_it_fully(
    limit: int, workers: int, seed: int
) -> None:
    clock = VirtualClock()
    limiter = RollingWindowLimiter(limit, clock=clock)
    rng = random.Random(seed)
    total = limit * 3
    server_hits: list[float] = []
    sent = {"n": 0}

    async def worker() -> None:
        while sent["n"] < total:
            sent["n"] += 1
            async with limiter.slot():
                # The server stamps the request somewhere between our send and its answer.
                await clock.sleep(rng.uniform(0.0, 0.8))
                server_hits.append(clock.now)
                await clock.sleep(rng.uniform(0.0, 0.8))

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    await clock.run(main())
    assert len(server_hits) >= total
    assert _max_in_any_window(server_hits, 60.0) <= limit
    # Three windows' worth of requests cannot finish before two windows have passed, and should not take
    # much longer: the budget is used, not wasted. Slack: the workers' own time to send the last window's share
    # (each round trip is at most 1.6 s), plus a few round trips.
    assert 120.0 <= clock.now <= 120.0 + (limit / workers + 4) * 1.6


async def test_limiter_blocks_everyone_after_a_429() -> None:
    clock = VirtualClock()
    limiter = RollingWindowLimiter(100, clock=clock)
    times: list[float] = []

    async def main() -> None:
        limiter.block_until_wall(WALL0 + 30)
        async with limiter.slot():
            times.append(clock.now)

    await clock.run(main())
    assert times == [30.0]
    assert limiter.remaining == 99 and limiter.used == 1


def test_limiter_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        RollingWindowLimiter(0)


def test_json_helper_page_shape() -> None:
    # Guards the helper used above: total_entries left out when asked.
    body = json.loads(page("x", [], total="absent").content)
    assert "total_entries" not in body


# -- headless progress rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("live", [True, False])
def test_progress_renders_every_event_kind(live: bool) -> None:
    stream = io.StringIO()
    with ExtractProgress(stream, live=live) as sink:
        sink(ObjectStarted("patients", "full", True, None))
        sink(ObjectProgress("patients", 100, 250, 3, 197, 200))
        sink(ObjectFinished("patients", 250, 3))
        sink(ObjectUnavailable("taxes", "Cliniko answered 404 for taxes: Not Found"))
        sink(AttachmentProgress(2, 2, 1, 1, 2048))
        sink(RateLimited("/v1/patients", 12.5))
        sink(RequestRetried("/v1/patients", 1, "ReadTimeout: timed out", 0.4))
    text = stream.getvalue()
    assert "patients" in text and "taxes" in text and "12.5" in text and "attempt 2" in text
    summary = ExtractSummary(
        incremental=True,
        records={"patients": 250},
        stored={"patients": 260},
        requests=4,
        attachments_failed={"7": "ClinikoUnavailable: gone"},
    )
    report = format_summary(summary)
    assert "Incremental extraction" in report and "260" in report and "attachment 7" in report


# -- extraction bookkeeping: the queries asked, and the page + cursor commit --------------------------------------


def _filters(url: str) -> list[str]:
    return httpx.URL(url).params.get_list("q[]")


async def test_full_passes_lift_every_hiding_scope_the_resource_can_filter_on() -> None:
    async with make_client(lambda r: httpx.Response(200)) as client:
        (appts,) = plan_passes(BY_OBJECT["individual_appointments"], client, None)
        assert appts[0] == "all /individual_appointments"
        assert _filters(appts[1]) == ["archived_at:*", "cancelled_at:*", "deleted_at:*"]
        assert httpx.URL(appts[1]).params["sort"] == "created_at:asc"
        assert httpx.URL(appts[1]).params["per_page"] == "100"
        (patients,) = plan_passes(BY_OBJECT["patients"], client, None)
        assert _filters(patients[1]) == ["archived_at:*"]  # patients cannot filter on deleted_at (OAS23)
        active, inactive = plan_passes(BY_OBJECT["practitioners"], client, None)
        assert httpx.URL(active[1]).path.endswith("/practitioners") and _filters(active[1]) == []
        assert httpx.URL(inactive[1]).path.endswith("/practitioners/inactive")


async def test_incremental_passes_also_ask_archived_and_cancelled_since_the_watermark() -> None:
    wm = "2026-01-02T03:04:05Z"
    async with make_client(lambda r: httpx.Response(200)) as client:
        passes = dict(plan_passes(BY_OBJECT["attendees"], client, wm))
        assert set(passes) == {"updated /attendees", "archived /attendees", "cancelled /attendees"}
        assert _filters(passes["updated /attendees"]) == [
            f"updated_at:>={wm}",
            "archived_at:*",
            "cancelled_at:*",
            "deleted_at:*",
        ]
        assert _filters(passes["archived /attendees"]) == [f"archived_at:>={wm}", "cancelled_at:*", "deleted_at:*"]
        assert _filters(passes["cancelled /attendees"]) == [f"cancelled_at:>={wm}", "archived_at:*", "deleted_at:*"]
        # No hiding column: updated_at alone.
        assert [name for name, _ in plan_passes(BY_OBJECT["users"], client, wm)] == ["updated /users"]


def test_a_page_and_its_cursor_commit_together_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    store.begin_extract_run(
        "patients", mode="full", run_started_at="2026-01-01T00:00:00Z", watermark=None, passes=[("all", "u1")]
    )
    spec = BY_OBJECT["patients"]
    store.commit_extract_page("patients", "all", [spec.row({"id": 1})], "u2", 3)
    with pytest.raises(StoreError):
        store.commit_extract_page("patients", "no such pass", [spec.row({"id": 2})], None, 3)
    assert store.count_records() == {"patients": 1}  # the failed page left nothing behind
    store.commit_extract_page("patients", "all", [spec.row({"id": 2}), spec.row({"id": 3})], None, 3)
    (p,) = store.extract_passes("patients")
    assert (p.pages, p.records, p.total, p.next_url) == (2, 3, 3, None) and p.completed_at
    with pytest.raises(StoreError):
        store.commit_extract_page("patients", "all", [spec.row({"id": 4})], None, 3)  # a finished pass is closed
    store.finish_extract_run("patients")
    state = store.extract_state("patients")
    assert state is not None and state.last_watermark == "2026-01-01T00:00:00Z" and state.next_url is None


def test_an_unfinished_extraction_is_resumed_only_in_the_same_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    first, resumed = store.begin_extraction("full")
    assert not resumed
    assert store.begin_extraction("full") == (first, True)
    second, resumed = store.begin_extraction("incremental")
    assert second != first and not resumed
    store.finish_extraction(second)
    third, resumed = store.begin_extraction("incremental")
    assert third not in (first, second) and not resumed
