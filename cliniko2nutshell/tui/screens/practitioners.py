"""Step 4, Practitioners: each Cliniko practitioner beside the Nutshell user who will own their records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.mapping.model import MigrationMap, PractitionerDecision
from cliniko2nutshell.mapping.practitioners import NutshellUser, PractitionerInfo, PractitionerMatch
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.screens.dialogs import ChoiceDialog
from cliniko2nutshell.tui.widgets.tables import fill


@dataclass
class MatchData:
    mapping: MigrationMap
    infos: dict[str, PractitionerInfo]
    matches: dict[str, PractitionerMatch]
    users: list[NutshellUser]


def read_snapshot(session: Any, emails: list[str | None] | None = None) -> Any:
    """What Nutshell holds (users, activity types, custom fields; people by `emails` when given). Worker thread."""
    from cliniko2nutshell.connections import nutshell_client
    from cliniko2nutshell.connections import read_snapshot as read

    async def go() -> Any:
        async with nutshell_client(session.project, session.secrets) as client:
            return await read(client, emails or ())

    snapshot = asyncio.run(go())
    session.snapshot = snapshot
    return snapshot


def load_matches(session: Any, refresh: bool = False) -> MatchData:
    """The map with practitioner proposals refreshed against Nutshell's users (a worker thread)."""
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.practitioners import match_practitioners
    from cliniko2nutshell.mapping.workflow import practitioner_infos, propose_map

    snapshot = session.snapshot if session.snapshot is not None and not refresh else read_snapshot(session)
    with session.view() as project:
        mapping = propose_map(project, snapshot)
        infos = practitioner_infos(Catalog.from_store(project.store))
    matches = {m.practitioner.id: m for m in match_practitioners(infos, snapshot.users)}
    return MatchData(mapping, {i.id: i for i in infos}, matches, list(snapshot.users))


def save(session: Any, mapping: MigrationMap, note: str) -> MigrationMap:
    from cliniko2nutshell.mapping.edits import save_edit

    return save_edit(mapping, session.project.mapping_path, note)


COLUMNS = [
    ("name", "Practitioner"),
    ("decision", "Owner in Nutshell"),
    ("suggested", "Best suggestion (score)"),
    ("reason", "Why suggested"),
    ("email", "Cliniko e-mail"),
]


class PractitionersScreen(StepScreen):
    STEP = Step.PRACTITIONERS
    INTRO = "Who owns each practitioner's records in Nutshell. Users are matched, never created."
    HELP = """
Each Cliniko practitioner needs a Nutshell user to own their patients' records. An **exact e-mail match** is
accepted automatically; otherwise the best **name suggestions** are shown with a score (0-100) and the reason,
and you decide: accept the suggestion, choose another user from the list, send the practitioner to a **fallback
owner** (one user who takes the records of everyone without an account), or leave them unresolved.

Unresolved practitioners block the run. To give one an account, invite them in Nutshell (Setup → Users), then
press R to read Nutshell's users again. Every decision is saved in `mapping.toml` as a new version of the map.
"""
    BINDINGS = [
        Binding("a", "accept", "Accept suggestion"),
        Binding("c", "choose", "Choose user"),
        Binding("f", "fallback", "Fallback owner"),
        Binding("F", "fallback_all", "All to fallback", show=False),
        Binding("u", "unresolve", "Unresolve"),
        Binding("m", "accept_email", "All e-mail matches"),
        Binding("r", "refresh", "Refresh users"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: MatchData | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="practitioners-status", markup=False)
            yield DataTable(id="practitioners", cursor_type="row", zebra_stripes=True)
            yield Static("", id="unresolved", markup=False)

    def on_screen_resume(self) -> None:
        if self.data is None and self.ready:
            self.load()

    def journey_changed(self, journey: Journey) -> None:
        if self.data is None and journey[self.STEP].state is not State.NOT_READY and self.is_current:
            self.load()

    def load(self, refresh: bool = False) -> None:
        self.query_one("#practitioners-status", Static).update("Reading Nutshell's users…")
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(
            lambda: load_matches(session, refresh), self.show, what="Reading Nutshell's users", key="practitioners"
        )  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self.load(refresh=True)

    # -- showing -------------------------------------------------------------------------------------------
    def _user(self, user_id: str | None) -> str:
        if not user_id or self.data is None:
            return ""
        user = next((u for u in self.data.users if u.id == user_id), None)
        return user.name if user else user_id

    def show(self, data: MatchData) -> None:
        first = self.data is None
        self.data = data
        if first:
            self.app.refresh_journey()  # type: ignore[attr-defined]  # proposing may have saved the first map
        m = data.mapping
        rows = []
        unresolved: list[str] = []
        for pid, choice in sorted(m.practitioners.items(), key=lambda kv: (kv[1].label or kv[0]).lower()):
            info = data.infos.get(pid)
            name = choice.label or pid
            if info is not None and not info.active:
                name += " (inactive)"
            match = data.matches.get(pid)
            top = match.top if match else None
            suggested = self._user(choice.suggestion or (top.user_id if top else None))
            reason = top.reason if top else "no similar user"
            if choice.decision is PractitionerDecision.MATCHED:
                how = {"email": "e-mail", "name": "name", "manual": "chosen"}.get(choice.method, choice.method)
                decision = Content.assemble(("✓ ", "$text-success"), f"{self._user(choice.user)} ({how})")
            elif choice.decision is PractitionerDecision.FALLBACK and m.fallback_owner:
                decision = Content.assemble(("→ ", "$text-accent"), f"fallback: {self._user(m.fallback_owner)}")
            else:
                decision = Content.assemble(("· ", "$text-warning"), ("unresolved", "$text-warning"))
                unresolved.append(choice.label or pid)
            email = (info.email if info else None) or "–"
            suggested = f"{suggested} ({top.score:.0f})" if suggested and top else (suggested or "–")
            rows.append((pid, (name, decision, suggested, reason, email)))
        fill(self.query_one("#practitioners", DataTable), COLUMNS, rows)
        matched = sum(1 for c in m.practitioners.values() if c.decision is PractitionerDecision.MATCHED)
        self.query_one("#practitioners-status", Static).update(
            f"{len(m.practitioners)} practitioners: {matched} matched, {len(unresolved)} unresolved. "
            f"Map version {m.version}{' (confirmed)' if m.confirmed else ''}."
        )
        box = self.query_one("#unresolved", Static)
        if unresolved:
            box.update(
                Content.assemble(
                    (f"{len(unresolved)} unresolved: ", "bold $text-warning"),
                    ", ".join(unresolved),
                    "\nInvite them in Nutshell (Setup → Users), then press R; or send one (f) or all of them (F) to a "
                    "fallback owner.",
                )
            )
        else:
            box.update(Content.assemble(("✓ ", "$text-success"), "Every practitioner has an owner in Nutshell."))

    # -- deciding ------------------------------------------------------------------------------------------
    def _selected(self) -> str | None:
        table = self.query_one("#practitioners", DataTable)
        if self.data is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def _apply(self, mapping: MigrationMap, note: str) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        data = self.data
        assert data is not None

        def saved(m: MigrationMap) -> None:
            self.show(MatchData(m, data.infos, data.matches, data.users))
            self.app.refresh_journey()  # type: ignore[attr-defined]

        self.app.background(lambda: save(session, mapping, note), saved, what="Saving the decision")  # type: ignore[attr-defined]

    def action_accept(self) -> None:
        from cliniko2nutshell.mapping.practitioners import accept

        pid = self._selected()
        if pid is None or self.data is None:
            return
        choice = self.data.mapping.practitioners[pid]
        match = self.data.matches.get(pid)
        suggestion = choice.suggestion or (match.top.user_id if match and match.top else None)
        if not suggestion:
            self.notify("No suggestion for this practitioner: choose a user (C) or the fallback owner (F).")
            return
        self._apply(accept(self.data.mapping, pid, suggestion, method="name"), f"accepted a suggestion for {pid}")

    def _user_choices(self) -> list[tuple[str, str]]:
        assert self.data is not None
        return [
            (u.id, f"{u.name}  <{', '.join(u.emails) or 'no e-mail'}>" + ("" if u.enabled else "  (disabled)"))
            for u in sorted(self.data.users, key=lambda u: u.name.lower())
        ]

    def action_choose(self) -> None:
        from cliniko2nutshell.mapping.practitioners import accept

        pid = self._selected()
        if pid is None or self.data is None:
            return
        label = self.data.mapping.practitioners[pid].label or pid

        def chosen(user_id: str | None) -> None:
            if user_id and self.data is not None:
                self._apply(accept(self.data.mapping, pid, user_id, method="manual"), f"chose a user for {pid}")

        self.app.push_screen(ChoiceDialog(f"Nutshell user for {label}", self._user_choices()), chosen)

    def action_fallback(self) -> None:
        from cliniko2nutshell.mapping.practitioners import send_to_fallback

        pid = self._selected()
        if pid is None or self.data is None:
            return
        mapping = self.data.mapping
        if mapping.fallback_owner:
            self._apply(send_to_fallback(mapping, pid), f"sent {pid} to the fallback owner")
            return

        def chosen(user_id: str | None) -> None:
            if user_id and self.data is not None:
                self._apply(send_to_fallback(self.data.mapping, pid, user_id), f"fallback owner {user_id}")

        self.app.push_screen(
            ChoiceDialog(
                "Choose the fallback owner",
                self._user_choices(),
                hint="One Nutshell user who owns the records of practitioners without an account.",
            ),
            chosen,
        )

    def action_fallback_all(self) -> None:
        from cliniko2nutshell.mapping.practitioners import fallback_unresolved

        if self.data is None:
            return
        mapping = self.data.mapping

        def chosen(user_id: str | None) -> None:
            if user_id and self.data is not None:
                self._apply(fallback_unresolved(self.data.mapping, user_id), "every unresolved to the fallback owner")

        if mapping.fallback_owner:
            chosen(mapping.fallback_owner)
            return
        self.app.push_screen(
            ChoiceDialog(
                "Choose the fallback owner",
                self._user_choices(),
                hint="One Nutshell user who owns the records of every practitioner still unresolved.",
            ),
            chosen,
        )

    def action_unresolve(self) -> None:
        from cliniko2nutshell.mapping.edits import unresolve

        pid = self._selected()
        if pid is not None and self.data is not None:
            self._apply(unresolve(self.data.mapping, pid), f"left {pid} unresolved")

    def action_accept_email(self) -> None:
        from cliniko2nutshell.mapping.practitioners import accept

        if self.data is None:
            return
        m = self.data.mapping
        n = 0
        for pid, match in self.data.matches.items():
            if match.email_match and pid in m.practitioners:
                m = accept(m, pid, match.email_match, method="email")
                n += 1
        if n:
            self._apply(m, "accepted every e-mail match")
        self.notify(f"{n} e-mail match(es) accepted." if n else "No practitioner has an e-mail match in Nutshell.")
