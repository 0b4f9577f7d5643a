"""Step 9, Delta: during the cutover, fetch what changed in Cliniko since the full run and apply it; records edited
in Nutshell since we wrote them are never overwritten without the user's choice."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, RadioSet, Static

from cliniko2nutshell.engine.readable import sensitivity
from cliniko2nutshell.engine.runner import ConflictInfo, ConflictPolicy
from cliniko2nutshell.journey import State, Step
from cliniko2nutshell.tui.format import count, kind_label
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.progress import ExtractBoard, RunBoard, RunView
from cliniko2nutshell.tui.screens.base import DashboardStepScreen
from cliniko2nutshell.tui.widgets.dashboard import RunDashboard
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.toggles import Choice, Tick
from cliniko2nutshell.tui.work import Job, JobStatus

POLICIES = {
    "ask": (ConflictPolicy.ASK, "Ask me for each record edited in Nutshell"),
    "skip": (ConflictPolicy.SKIP, "Keep Nutshell's edits (skip those records)"),
    "overwrite": (ConflictPolicy.OVERWRITE, "Overwrite them with Cliniko's values"),
}


class DeltaBoard:
    """A delta extracts first, then runs: one board for the dashboard, one for the extraction line."""

    def __init__(self) -> None:
        self.run = RunBoard()
        self.extraction = ExtractBoard(incremental=True)

    def __call__(self, event: Any) -> None:
        if type(event).__module__.startswith("cliniko2nutshell.cliniko"):
            self.extraction(event)
        else:
            self.run(event)

    def snapshot(self) -> RunView:
        return self.run.snapshot()


def shown_value(value: Any, masker: Any, kind: str = "text") -> str:
    """A field value as the conflict dialog shows it (lists of e-mails or phones joined). In screen-share mode
    it is masked by the field's sensitivity (engine/readable.py), so a name shows as initials."""
    if value is None or value == "" or value == [] or value == {}:
        return "(empty)"

    def shown(text: Any) -> str:
        return str(text) if kind == "plain" else masker(text, Kind(kind))

    if isinstance(value, list):
        return ", ".join(shown(v.get("value", v) if isinstance(v, dict) else v) for v in value)
    if isinstance(value, dict):
        if "amount" in value:
            return f"{value.get('amount')} {value.get('currency', '')}".strip()
        return shown(", ".join(f"{k}: {v}" for k, v in value.items() if v))
    return shown(value)


class ConflictDialog(ModalScreen[tuple[ConflictPolicy, bool] | None]):
    """A record edited in Nutshell since we wrote it: Nutshell's edit beside what this delta would write."""

    BINDINGS = [
        Binding("k", "decide('skip')", "Keep Nutshell's"),
        Binding("o", "decide('overwrite')", "Overwrite"),
        Binding("escape", "decide('skip')", "Keep (skip)"),
    ]
    DEFAULT_CSS = """
    ConflictDialog { align: center middle; }
    ConflictDialog > Vertical { width: 96; max-width: 96%; height: auto; max-height: 90%; border: thick $warning;
                                background: $surface; padding: 1 2; }
    ConflictDialog .title { text-style: bold; }
    ConflictDialog DataTable { height: auto; max-height: 14; margin: 1 0; }
    ConflictDialog .buttons { height: auto; align-horizontal: right; }
    ConflictDialog .buttons Button { margin-left: 2; }
    """

    def __init__(self, info: ConflictInfo, masker: Any) -> None:
        super().__init__()
        self.info = info
        self.masker = masker

    def compose(self) -> ComposeResult:
        info = self.info
        with Vertical():
            what = f"{kind_label(info.object)}: Cliniko {info.source_id} → Nutshell {info.nutshell_id}"
            yield Static(Content.assemble(("! Edited in Nutshell since we wrote it", "bold $text-warning")))
            yield Static(what, classes="title", markup=False)
            if info.deleted:
                yield Static("Someone deleted this record in Nutshell. Overwrite creates it again; keep leaves it "
                             "deleted.", markup=False)  # fmt: skip
            yield DataTable(id="conflict-fields", cursor_type="none", zebra_stripes=True)
            yield Tick("Apply this choice to the rest of this delta's conflicts", id="rest")
            with Horizontal(classes="buttons"):
                yield Button("Keep Nutshell's edit", id="skip", variant="primary")
                yield Button("Overwrite with Cliniko's", id="overwrite", variant="warning")

    def on_mount(self) -> None:
        rows = [
            (
                name,
                (
                    name.removeprefix("customFields."),
                    shown_value(self.info.theirs.get(name), self.masker, sensitivity(self.info.object, name)),
                    shown_value(self.info.ours.get(name), self.masker, sensitivity(self.info.object, name)),
                ),
            )
            for name in self.info.fields
        ]
        columns = [("field", "Field"), ("theirs", "In Nutshell now (their edit)"), ("ours", "This delta would write")]
        fill(self.query_one("#conflict-fields", DataTable), columns, rows)
        self.query_one("#skip", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_decide(event.button.id or "skip")

    def action_decide(self, choice: str) -> None:
        policy = ConflictPolicy.OVERWRITE if choice == "overwrite" else ConflictPolicy.SKIP
        self.dismiss((policy, self.query_one("#rest", Checkbox).value))


def asker(app: Any, job: Job) -> Any:
    """The delta's `ask` callback: runs on the job's loop, shows the dialog on the UI and waits for the answer.
    'Apply to the rest' answers every later conflict of this delta the same way. Stopping the job withdraws an
    open question (nothing of that record is journaled before the answer, so it is asked again next time)."""
    remembered: list[ConflictPolicy] = []

    async def ask(info: ConflictInfo) -> ConflictPolicy:
        if remembered:
            return remembered[0]
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[ConflictPolicy, bool] | None] = loop.create_future()

        def answered(result: tuple[ConflictPolicy, bool] | None) -> None:
            loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(result))

        app.call_from_thread(lambda: app.push_screen(ConflictDialog(info, app.masker), answered))
        result = await job.question(answer)
        if result is None:
            return ConflictPolicy.SKIP
        policy, rest = result
        if rest:
            remembered.append(policy)
        return policy

    return ask


async def delta(job: Job, session: Any, policy: ConflictPolicy, ask: Any) -> Any:
    """The job: extract Cliniko's changes, then apply them (engine.delta), conflicts decided by `policy`."""
    from cliniko2nutshell.connections import cliniko_client
    from cliniko2nutshell.engine.api import RunOptions
    from cliniko2nutshell.tui.engine_jobs import call_engine
    from cliniko2nutshell.tui.screens.extract import rate_limit_of

    client = cliniko_client(session.project, session.secrets, rate_limit=rate_limit_of(session), sink=job.board)

    async def go(engine: Any, _nutshell: Any) -> Any:
        async with client:
            return await engine.delta(client, RunOptions(conflicts=policy, ask=ask))

    return await call_engine(job, session, go)


class DeltaScreen(DashboardStepScreen):
    STEP = Step.DELTA
    INTRO = "At cutover: fetch what changed in Cliniko since the full run and apply it. Repeat as often as needed."
    HELP = """
During the cutover window the clinic keeps working in Cliniko. A delta reads only what changed since the last
extraction (with a small overlap, so nothing at the boundary is missed), then creates what is new and updates what
changed. It can be repeated until the clinic switches over.

A record someone edited **in Nutshell** since we wrote it is a conflict: it is never overwritten without your
choice. Choose the policy before you start: ask for each (a dialog shows Nutshell's edit beside what the delta
would write, field by field: keep Nutshell's or overwrite, and optionally the same for the rest), keep
Nutshell's edits, or overwrite them. Every conflict and its decision is in the journal and the audit log.
"""
    BINDINGS = [
        Binding("d", "start", "Extract and apply"),
        Binding("x", "stop", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="delta"):
            with RadioSet(id="policy"):
                for key, (_, text) in POLICIES.items():
                    yield Choice(text, id=f"policy-{key}", value=key == "ask")
            with Horizontal(classes="buttons left"):
                yield Button("Extract changes and apply them", id="start", variant="primary", compact=True)
                yield Button("Stop", id="stop", compact=True)
            yield Static("", id="delta-state", markup=False)
            yield RunDashboard(id="delta-dashboard")

    def _policy(self) -> ConflictPolicy:
        pressed = self.query_one("#policy", RadioSet).pressed_button
        key = (pressed.id or "policy-ask").removeprefix("policy-") if pressed else "ask"
        return POLICIES[key][0]

    def show_state(self) -> None:
        job = self.job
        running = job is not None and job.active
        self.query_one("#start", Button).display = not running
        self.query_one("#stop", Button).display = running
        self.query_one(RunDashboard).display = job is not None
        journey = self.app.journey  # type: ignore[attr-defined]
        parts: list[str | tuple[str, str]] = []
        if job is not None:
            ex = job.board.extraction.snapshot()
            changed = {k: r.done for k, r in ex.objects.items() if r.done}
            if running and not ex.finished:
                parts += [("⟳ ", "$text-accent"), "Reading Cliniko's changes: "]
                parts += [", ".join(f"{k.replace('_', ' ')} {count(n)}" for k, n in changed.items()) or "starting…"]
            elif running:
                parts += [("⟳ ", "$text-accent"), "Applying the changes to Nutshell (the dashboard below)."]
            elif job.status is JobStatus.FAILED:
                parts += [("✗ ", "$text-error"), f"The delta stopped: {job.error}. Nothing is lost; start it again."]
            elif job.result is not None:
                result = job.result
                s = result.summary
                totals: dict[str, int] = {}
                for c in s.counts.values():
                    for k, v in c.as_dict().items():
                        totals[k] = totals.get(k, 0) + v
                mark = ("✓ ", "$text-success") if s.outcome.value == "success" else ("! ", "$text-warning")
                parts += [mark, (f"Delta run {s.run_id}: {s.outcome.value}", "bold")]
                parts += [f"\n  From Cliniko: {count(result.patients)} patient(s) and {count(result.companies)} "
                          f"compan{'y' if result.companies == 1 else 'ies'} with changes"]  # fmt: skip
                parts += [f"\n  Into Nutshell: {count(totals.get('created', 0))} created, "
                          f"{count(totals.get('updated', 0))} updated, {count(totals.get('unchanged', 0))} unchanged, "
                          f"{count(totals.get('failed', 0))} failed"]  # fmt: skip
                view = job.board.snapshot()
                overwritten = sum(1 for c in view.conflicts if c.decision == "overwrite")
                kept = len(view.conflicts) - overwritten
                parts += [f"\n  Edited in Nutshell since we wrote them: {len(view.conflicts)} "]
                parts += [f"({overwritten} overwritten, {kept} kept as edited)"]
                parts += ["\n  Repeat the delta as often as the cutover needs; then reconcile."]
        elif journey is not None and journey[self.STEP].state is State.NOT_READY:
            parts += [("· ", "$text-warning"), f"Not ready: {journey[self.STEP].reason}."]
        else:
            parts += ["Choose what happens to records edited in Nutshell, then D extracts and applies the changes."]
        self.query_one("#delta-state", Static).update(Content.assemble(*parts))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        elif event.button.id == "stop":
            self.action_stop()

    def action_start(self) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        session = self.app.session  # type: ignore[attr-defined]
        policy = self._policy()
        app = self.app

        def body(job: Job) -> Any:
            return delta(job, session, policy, asker(app, job) if policy is ConflictPolicy.ASK else None)

        job = app.start_job("delta", "Delta", DeltaBoard(), body)  # type: ignore[attr-defined]
        if job is not None:
            self.job = job
            self.query_one(RunDashboard).follow(job)
            self.show_state()

    def action_stop(self) -> None:
        if self.job is not None and self.job.active:
            self.job.stop()
            self.notify("Stopping; start the delta again to carry on.", title="Delta")
