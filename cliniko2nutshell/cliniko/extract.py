"""Full and incremental extraction of a Cliniko account into the project store, resumable page by page.

    async with ClinikoClient(key, base_url=...) as client:
        summary = await extract(project, client, ExtractOptions(incremental=True), sink=print)

How a run goes, per object (resources.py lists them):
- A *run* of an object is one or more *passes*, each a list query followed through `links.next`. Each page is
  committed together with its pass's cursor in one transaction, so a crash loses at most the page in flight, and
  the next run of an object whose run has no `completed_at` resumes every pass from its stored `next_url`.
- Full mode reads everything, hidden records included (`archived_at:*`, `cancelled_at:*`, `deleted_at:*`).
- Incremental mode starts from the last completed run's start time minus an overlap (timestamps have second
  precision and clocks drift), asks `updated_at:>=`, and ALSO `archived_at:>=` and `cancelled_at:>=` where the
  resource can filter on them: whether archiving or cancelling bumps `updated_at` is unconfirmed (reference
  §10), and an archived or cancelled record missed here would stay "live" in Nutshell. Upserts by id merge the
  passes. A resource that cannot filter on the hiding columns relies on `updated_at` alone.
- Every pass sorts by `created_at`: unlike `updated_at`, it never changes, so records edited while we page
  through do not shift the offsets under us (a record moving to the end could push another one into a page we
  already read). Our filters only let records enter the result set, which can duplicate a row, never skip one.
- The run's start (the server's clock, from the `Date` header) becomes the next watermark once all passes end.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.cliniko.errors import ClinikoError, ClinikoNotFound
from cliniko2nutshell.cliniko.events import (
    AttachmentProgress,
    ExtractStarted,
    ExtractSummary,
    ObjectFinished,
    ObjectProgress,
    ObjectStarted,
    ObjectUnavailable,
)
from cliniko2nutshell.cliniko.models import PatientAttachment
from cliniko2nutshell.cliniko.resources import (
    ATTACHMENTS_OBJECT,
    BY_OBJECT,
    RESOURCES,
    SETTINGS_ID,
    SETTINGS_OBJECT,
    ResourceSpec,
)
from cliniko2nutshell.events import EventSink, ignore
from cliniko2nutshell.project.folder import Project
from cliniko2nutshell.project.private import file_sha256, make_private_dir
from cliniko2nutshell.project.store import AttachmentFile, ExtractPass, RecordRow, utcnow

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_OVERLAP = timedelta(minutes=2)
SORT = "created_at:asc"
ATTACHMENTS_DIR = Path("files") / "attachments"
_SAFE_NAME = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


@dataclass(frozen=True)
class ExtractOptions:
    incremental: bool = False
    overlap: timedelta = DEFAULT_OVERLAP
    # Objects read at the same time (pages within an object are sequential: links.next). Enough for every large
    # object's page chain to start at once; the limiter, not this number, keeps the rate within the budget.
    concurrency: int = 6
    objects: Sequence[str] | None = None  # a subset of resources.RESOURCES by object name; None: all
    download_attachments: bool = True
    attachment_concurrency: int = 4


@dataclass
class _Tally:
    records: Counter[str] = field(default_factory=Counter)
    unavailable: dict[str, str] = field(default_factory=dict)
    downloaded: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    bytes: int = 0


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def plan_passes(spec: ResourceSpec, client: ClinikoClient, watermark: str | None) -> list[tuple[str, str]]:
    """The list queries of one run of `spec`: `(name, first page URL)`. `watermark` None means a full run."""
    passes: list[tuple[str, str]] = []
    for path in spec.paths:
        if watermark is None:
            passes.append((f"all {path}", client.list_url(path, filters=spec.lift_scope(), sort=SORT)))
            continue
        updated = [f"updated_at:>={watermark}", *spec.lift_scope()]
        passes.append((f"updated {path}", client.list_url(path, filters=updated, sort=SORT)))
        for column, name in (("archived_at", "archived"), ("cancelled_at", "cancelled")):
            if column in spec.scope:
                filters = [f"{column}:>={watermark}", *spec.lift_scope(except_column=column)]
                passes.append((f"{name} {path}", client.list_url(path, filters=filters, sort=SORT)))
    return passes


class Extraction:
    """One extraction of one project (use `extract()`); holds the counters of the run."""

    def __init__(self, project: Project, client: ClinikoClient, options: ExtractOptions, sink: EventSink) -> None:
        self.project = project
        self.store = project.store
        self.client = client
        self.options = options
        self.sink = sink
        self.tally = _Tally()
        self.run_id = 0  # set by run(): the extraction's row in extract_runs
        if options.objects is None:
            self.specs = list(RESOURCES)
        else:
            unknown = sorted(set(options.objects) - set(BY_OBJECT))
            if unknown:
                raise ValueError(f"unknown Cliniko objects: {', '.join(unknown)}")
            self.specs = [BY_OBJECT[o] for o in options.objects]
        # Biggest first: the long sequential page chains start early and the small objects fill the gaps.
        self.specs.sort(key=lambda s: -s.weight)

    async def run(self) -> ExtractSummary:
        started = time.monotonic()
        self.run_id, _ = self.store.begin_extraction("incremental" if self.options.incremental else "full")
        self.sink(ExtractStarted(tuple(s.object for s in self.specs), self.options.incremental))
        await self._settings()
        gate = asyncio.Semaphore(max(1, self.options.concurrency))
        try:
            async with asyncio.TaskGroup() as group:
                for spec in self.specs:
                    group.create_task(self._object(spec, gate))
        except BaseExceptionGroup as group_error:
            # The first failure is the story; the rest are the other objects being stopped because of it.
            raise _first_error(group_error) from None
        self.store.gather_statistics()
        self.store.finish_extraction(self.run_id)
        summary = ExtractSummary(
            incremental=self.options.incremental,
            records=dict(self.tally.records),
            stored=self.store.count_records(),
            unavailable=dict(self.tally.unavailable),
            requests=self.client.requests,
            rate_limited=self.client.rate_limited,
            retries=self.client.retries,
            attachments_downloaded=self.tally.downloaded,
            attachments_skipped=self.tally.skipped,
            attachments_failed=dict(self.tally.failed),
            attachment_bytes=self.tally.bytes,
            elapsed=time.monotonic() - started,
        )
        self.sink(summary)
        return summary

    # -- settings ----------------------------------------------------------------------------------------------
    async def _settings(self) -> None:
        body = await self.client.settings()
        row = RecordRow(object=SETTINGS_OBJECT, id=SETTINGS_ID, raw=body)
        with self.store.transaction() as conn:
            self.store.upsert_records([row], conn)
        self.tally.records[SETTINGS_OBJECT] += 1

    # -- one object --------------------------------------------------------------------------------------------
    async def _object(self, spec: ResourceSpec, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                plan = self._prepare_run(spec)
                if plan is None:
                    self.sink(ObjectFinished(spec.object, 0, 0))  # completed by this extraction before a crash
                else:
                    await self._read_object(spec, *plan)
            except ClinikoNotFound as exc:
                if not spec.optional:
                    raise
                self.tally.unavailable[spec.object] = str(exc)
                self.sink(ObjectUnavailable(spec.object, str(exc)))
                return
        # Outside the gate: downloads are independent requests that soak up whatever rate budget the sequential
        # page chains of the other objects leave unused.
        if spec.object == ATTACHMENTS_OBJECT and self.options.download_attachments:
            await self._download_attachments()

    def _prepare_run(self, spec: ResourceSpec) -> tuple[list[ExtractPass], str, bool, str | None] | None:
        """(passes to read, mode, resumed, watermark); None when this extraction already completed the object.

        Within a resumed extraction (same run id), an object's interrupted run continues from its cursors.
        """
        state = self.store.extract_state(spec.object)
        if state is not None and state.run_id == self.run_id:
            if state.completed_at is not None:
                return None
            passes = self.store.extract_passes(spec.object)
            pending = [p.next_url for p in passes if p.completed_at is None and p.next_url]
            # A cursor from another endpoint (the user changed --cliniko-url) is not ours to follow: start over.
            try:
                for url in pending:
                    self.client.check_same_host(url)
            except ClinikoError:
                passes = []
            if passes:
                return passes, state.mode, True, state.watermark
        last = state.last_watermark if state else None
        mode = "incremental" if self.options.incremental and last else "full"
        watermark = None
        if mode == "incremental" and last is not None:
            watermark = format_ts(parse_ts(last) - self.options.overlap)
        self.store.begin_extract_run(
            spec.object,
            mode=mode,
            run_started_at=format_ts(self.client.server_now()),
            watermark=watermark,
            passes=plan_passes(spec, self.client, watermark),
            run_id=self.run_id,
        )
        return self.store.extract_passes(spec.object), mode, False, watermark

    async def _read_object(
        self, spec: ResourceSpec, passes: list[ExtractPass], mode: str, resumed: bool, watermark: str | None
    ) -> None:
        self.sink(ObjectStarted(spec.object, mode, resumed, watermark))
        done = sum(p.records for p in passes)
        totals = {p.name: p.total for p in passes}
        pages = 0
        for p in passes:
            url = p.next_url if p.completed_at is None else None
            while url:
                page = await self.client.fetch_page(url, spec.object)
                next_url = page.next_url
                if next_url == url or (not page.items and next_url):
                    # A server that keeps offering pages without records would have us loop for ever.
                    next_url = None
                rows = [spec.row(raw) for raw in page.items]
                self.store.commit_extract_page(spec.object, p.name, rows, next_url, page.total_entries)
                pages += 1
                done += len(rows)
                self.tally.records[spec.object] += len(rows)
                if page.total_entries is not None:
                    totals[p.name] = page.total_entries
                known = [t for t in totals.values() if t is not None]
                self.sink(
                    ObjectProgress(
                        spec.object,
                        done,
                        sum(known) if len(known) == len(totals) else None,
                        self.client.requests,
                        self.client.limiter.remaining,
                        self.client.limiter.limit,
                    )
                )
                url = next_url
        self.store.finish_extract_run(spec.object)
        self.sink(ObjectFinished(spec.object, self.tally.records[spec.object], pages))

    # -- attachments -------------------------------------------------------------------------------------------
    async def _download_attachments(self) -> None:
        todo: list[PatientAttachment] = []
        for raw in self.store.iter_records(ATTACHMENTS_OBJECT):
            attachment = PatientAttachment.model_validate(raw)
            # Metadata and content only exist once Cliniko has processed the upload.
            if attachment.processing_completed:
                todo.append(attachment)
        folder = make_private_dir(self.project.path / ATTACHMENTS_DIR)
        queue: asyncio.Queue[PatientAttachment] = asyncio.Queue()
        for attachment in todo:
            queue.put_nowait(attachment)
        progress = {"done": 0}

        async def worker() -> None:
            while not queue.empty():
                attachment = queue.get_nowait()
                await self._download_one(attachment, folder)
                progress["done"] += 1
                self.sink(
                    AttachmentProgress(
                        progress["done"], len(todo), self.tally.downloaded, self.tally.skipped, self.tally.bytes
                    )
                )

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(self.options.attachment_concurrency, len(todo)))):
                group.create_task(worker())

    async def _download_one(self, attachment: PatientAttachment, folder: Path) -> None:
        name = attachment.id if _SAFE_NAME.match(attachment.id) else hashlib.sha256(attachment.id.encode()).hexdigest()
        dest = folder / name
        known = self.store.attachment_file(attachment.id)
        if known is not None and await asyncio.to_thread(_file_matches, dest, known, attachment.size):
            self.tally.skipped += 1
            return
        if attachment.content is not None:
            content_url = attachment.content.url
        else:
            content_url = self.client.url(f"/patient_attachments/{attachment.id}/content")
        if attachment.is_archived:
            # Unconfirmed: whether /content of an archived attachment is hidden like GET by id (404 unless the
            # scope is lifted). We choose to lift it for archived ones only, leaving the documented link as is.
            content_url = str(httpx.URL(content_url).copy_add_param("q[]", "archived_at:*"))
        try:
            got = await self.client.download(content_url, dest)
        except (ClinikoError, httpx.HTTPError) as exc:
            # One unreadable file must not sink the extraction: it is reported, and the next run tries again.
            self.tally.failed[attachment.id] = f"{type(exc).__name__}: {exc}"
            return
        self.store.record_attachment_file(
            AttachmentFile(
                attachment_id=attachment.id,
                path=str(ATTACHMENTS_DIR / name),
                size=got.size,
                sha256=got.sha256,
                content_type=got.content_type or attachment.content_type,
                downloaded_at=utcnow(),
            )
        )
        self.tally.downloaded += 1
        self.tally.bytes += got.size


def _first_error(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _file_matches(path: Path, known: AttachmentFile, listed_size: int | None) -> bool:
    """The file on disk is the one we recorded, and Cliniko still lists the same size."""
    if listed_size is not None and listed_size != known.size:
        return False
    try:
        return path.stat().st_size == known.size and file_sha256(path) == known.sha256
    except OSError:
        return False


async def extract(
    project: Project, client: ClinikoClient, options: ExtractOptions | None = None, sink: EventSink = ignore
) -> ExtractSummary:
    """Extract every object of resources.RESOURCES (and the settings) into `project`'s store."""
    return await Extraction(project, client, options or ExtractOptions(), sink).run()
