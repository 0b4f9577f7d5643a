"""Step 2, Connect: the Cliniko key and the Nutshell user and key, each tested live, then kept in the keychain."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Collapsible, Input, Label, RadioButton, RadioSet, Static

from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.widgets.toggles import Choice


def _ok(text: str) -> Content:
    return Content.assemble(("✓ ", "bold $text-success"), text)


def _bad(message: str, action: str = "") -> Content:
    return Content.assemble(("✗ ", "bold $text-error"), message, ("\n  " + action if action else "", "$text-muted"))


def _pending(text: str) -> Content:
    return Content.assemble(("⟳ ", "$text-accent"), (text, "$text-muted"))


def describe_cliniko(access: Any) -> str:
    role = access.role or "unknown role"
    return (
        f"{access.account_name or 'Cliniko account'} (shard {access.shard}, {access.currency or 'currency unknown'})"
        f"\n  key of {access.user_name}, {role} · {access.rate_limit_per_minute} requests/min · "
        f"{access.latency_ms:.0f} ms a request"
    )


def describe_nutshell(access: Any) -> str:
    admin = {True: "administrator", False: "not an administrator", None: "administrator: unknown"}[access.is_admin]
    who = f"{access.user_name} <{access.user_email}>" if access.user_id else access.username
    company = access.company_name or "Nutshell (company name not available)"
    return f"{company}\n  {who} · {admin} · {access.latency_ms:.0f} ms a request"


class ConnectScreen(StepScreen):
    STEP = Step.CONNECT
    INTRO = "Both keys are tested live, then kept in your OS keychain (never in the project folder)."
    HELP = """
Enter the **Cliniko API key** (Cliniko: My info → Manage API keys; the shard, e.g. `au1`, is the key's suffix)
and your **Nutshell user e-mail and API key** (Nutshell: Setup → API keys). *Test* checks each one live and
shows what it found. A full export needs a Cliniko key of an **administrator**: other roles cannot read users,
settings or appointment types.

Keys go into the OS keychain. Where this computer has no safe keychain, choose *this session only* (keys stay in
memory until you quit) or set `CLINIKO_API_KEY`, `NUTSHELL_USERNAME` and `NUTSHELL_API_KEY` in the environment.
The endpoints (advanced) are the real services unless you change them; the demo points them at the sandbox.
"""
    BINDINGS = [
        Binding("ctrl+t", "test_both", "Test both"),
        Binding("ctrl+r", "reveal", "Show keys"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cliniko_access: Any = None
        self.nutshell_access: Any = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="connect"):
            with Vertical(id="cliniko-box", classes="box"):
                with Horizontal(classes="field-row"):
                    yield Label("API key", classes="field-label")
                    yield Input(
                        password=True,
                        placeholder="the key ends with its shard, e.g. …-au1",
                        id="cliniko-key",
                        compact=True,
                    )
                    yield Button("Test", id="test-cliniko", classes="small", compact=True)
                yield Static(_pending("not tested yet"), id="cliniko-result")
            with Vertical(id="nutshell-box", classes="box"):
                with Horizontal(classes="field-row"):
                    yield Label("User e-mail", classes="field-label")
                    yield Input(placeholder="you@clinic.example", id="nutshell-user", compact=True)
                with Horizontal(classes="field-row"):
                    yield Label("API key", classes="field-label")
                    yield Input(password=True, id="nutshell-key", compact=True)
                    yield Button("Test", id="test-nutshell", classes="small", compact=True)
                yield Static(_pending("not tested yet"), id="nutshell-result")
            with Horizontal(classes="field-row"):
                yield Label("Contact limit", classes="field-label")
                yield Input(
                    placeholder="your Nutshell plan's contact limit, if it has one (optional)",
                    id="contact-limit",
                    type="integer",
                    compact=True,
                )
            with Horizontal(id="keep-row"):
                yield Label("Keep keys in", classes="field-label")
                with RadioSet(id="keep"):
                    yield Choice("the OS keychain", id="keep-keychain", value=True)
                    yield Choice("this session only (memory)", id="keep-session")
            yield Static("", id="keychain-note", classes="muted", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Test both", id="test-both", compact=True)
                yield Button("Save and continue", id="save", variant="primary", disabled=True, compact=True)
            with Collapsible(title="Endpoints (advanced)", id="endpoints"):
                with Horizontal(classes="field-row"):
                    yield Label("Cliniko URL", classes="field-label")
                    yield Input(
                        placeholder="from the key's shard: https://api.<shard>.cliniko.com/v1", id="cliniko-url"
                    )
                with Horizontal(classes="field-row"):
                    yield Label("Nutshell URL", classes="field-label")
                    yield Input(placeholder="https://app.nutshell.com/rest", id="nutshell-url", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cliniko-box").border_title = "Cliniko"
        self.query_one("#nutshell-box").border_title = "Nutshell"
        session = self.app.session  # type: ignore[attr-defined]
        settings = session.project.settings
        self.query_one("#cliniko-url", Input).value = settings.cliniko.base_url or ""
        self.query_one("#nutshell-url", Input).value = settings.nutshell.base_url or ""
        self.query_one("#nutshell-user", Input).value = settings.nutshell.username or ""
        limit = settings.options.get("contact_limit")
        if limit:
            self.query_one("#contact-limit", Input).value = str(limit)
        demo = session.demo
        if demo is not None:
            self.query_one("#cliniko-key", Input).value = demo.cliniko_key
            self.query_one("#nutshell-user", Input).value = demo.nutshell_username
            self.query_one("#nutshell-key", Input).value = demo.nutshell_key
            self.query_one("#keep-session", RadioButton).value = True
            self.query_one("#test-both", Button).focus()
        for field in self.query(Input):
            field.cursor_position = 0
        secrets = session.secrets
        note = self.query_one("#keychain-note", Static)
        if demo is not None:
            note.update("Demo: the sandbox's keys are kept in memory for this session only, never in your keychain.")
        elif secrets.keychain_problem:
            self.query_one("#keep-keychain", RadioButton).disabled = True
            self.query_one("#keep-session", RadioButton).value = True
            note.update(
                f"No safe keychain here ({secrets.keychain_problem}): keys stay in memory for this session, or set "
                "CLINIKO_API_KEY, NUTSHELL_USERNAME and NUTSHELL_API_KEY in the environment."
            )
        self.app.background(self._stored_keys, self._fill_stored, what="Reading the keychain")  # type: ignore[attr-defined]

    def _stored_keys(self) -> dict[str, str]:
        from cliniko2nutshell.project.secrets import Secret

        secrets = self.app.session.secrets  # type: ignore[attr-defined]
        return {s.value: v for s in Secret if (v := secrets.get(s))}

    def _fill_stored(self, stored: dict[str, str]) -> None:
        for secret, widget in (
            ("CLINIKO_API_KEY", "#cliniko-key"),
            ("NUTSHELL_USERNAME", "#nutshell-user"),
            ("NUTSHELL_API_KEY", "#nutshell-key"),
        ):
            field = self.query_one(widget, Input)
            if secret in stored and not field.value:
                field.value = stored[secret]
                field.cursor_position = 0

    # -- testing -------------------------------------------------------------------------------------------
    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    def action_test_both(self) -> None:
        self.test_cliniko()
        self.test_nutshell()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "test-cliniko":
            self.test_cliniko()
        elif event.button.id == "test-nutshell":
            self.test_nutshell()
        elif event.button.id == "test-both":
            self.action_test_both()
        elif event.button.id == "save":
            self.action_save()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "cliniko-key":
            self.test_cliniko()
        elif event.input.id in ("nutshell-user", "nutshell-key"):
            self.test_nutshell()

    def on_input_changed(self, event: Input.Changed) -> None:
        # A changed key must be tested again before it is saved.
        if event.input.id in ("cliniko-key", "cliniko-url") and self.cliniko_access is not None:
            self.cliniko_access = None
            self.query_one("#cliniko-result", Static).update(_pending("changed: test it again"))
        if event.input.id in ("nutshell-user", "nutshell-key", "nutshell-url") and self.nutshell_access is not None:
            self.nutshell_access = None
            self.query_one("#nutshell-result", Static).update(_pending("changed: test it again"))
        self._update_save()

    def test_cliniko(self) -> None:
        from cliniko2nutshell.connect import check_cliniko

        key, url = self._value("#cliniko-key"), self._value("#cliniko-url") or None
        result = self.query_one("#cliniko-result", Static)
        if not key:
            result.update(_bad("Enter the Cliniko API key first."))
            return
        result.update(_pending("testing…"))
        self.app.background(  # type: ignore[attr-defined]
            lambda: asyncio.run(check_cliniko(key, url)), self._cliniko_tested, self._cliniko_failed, what="Test"
        )

    def _cliniko_tested(self, access: Any) -> None:
        result = self.query_one("#cliniko-result", Static)
        problem = getattr(access, "problem", None)
        if problem is not None:
            self.cliniko_access = None
            result.update(Content.assemble(_bad(problem.message, problem.action), "\n  ", describe_cliniko(access)))
        else:
            self.cliniko_access = access
            result.update(_ok(describe_cliniko(access)))
        self._update_save()

    def _cliniko_failed(self, exc: BaseException) -> None:
        self.cliniko_access = None
        self.query_one("#cliniko-result", Static).update(
            _bad(getattr(exc, "message", str(exc)), getattr(exc, "action", ""))
        )
        self._update_save()

    def test_nutshell(self) -> None:
        from cliniko2nutshell.connect import check_nutshell

        user, key = self._value("#nutshell-user"), self._value("#nutshell-key")
        url = self._value("#nutshell-url") or None
        result = self.query_one("#nutshell-result", Static)
        if not user or not key:
            result.update(_bad("Enter your Nutshell user e-mail and API key first."))
            return
        result.update(_pending("testing…"))
        self.app.background(  # type: ignore[attr-defined]
            lambda: asyncio.run(check_nutshell(user, key, url)),
            self._nutshell_tested,
            self._nutshell_failed,
            what="Test",
        )

    def _nutshell_tested(self, access: Any) -> None:
        result = self.query_one("#nutshell-result", Static)
        problem = getattr(access, "problem", None)
        if problem is not None:
            self.nutshell_access = None
            result.update(Content.assemble(_bad(problem.message, problem.action), "\n  ", describe_nutshell(access)))
        else:
            self.nutshell_access = access
            result.update(_ok(describe_nutshell(access)))
        self._update_save()

    def _nutshell_failed(self, exc: BaseException) -> None:
        self.nutshell_access = None
        self.query_one("#nutshell-result", Static).update(
            _bad(getattr(exc, "message", str(exc)), getattr(exc, "action", ""))
        )
        self._update_save()

    def _update_save(self) -> None:
        self.query_one("#save", Button).disabled = not (self.cliniko_access and self.nutshell_access)

    def action_reveal(self) -> None:
        for selector in ("#cliniko-key", "#nutshell-key"):
            field = self.query_one(selector, Input)
            field.password = not field.password

    # -- saving --------------------------------------------------------------------------------------------
    def action_save(self) -> None:
        if not (self.cliniko_access and self.nutshell_access):
            self.notify("Test both keys first: only keys that work are saved.", severity="warning")
            return
        limit_text = self._value("#contact-limit")
        session_only = self.query_one("#keep-session", RadioButton).value
        values = {
            "cliniko_key": self._value("#cliniko-key"),
            "nutshell_username": self._value("#nutshell-user"),
            "nutshell_key": self._value("#nutshell-key"),
            "contact_limit": int(limit_text) if limit_text else None,
        }
        cliniko, nutshell = self.cliniko_access, self.nutshell_access
        self.app.background(  # type: ignore[attr-defined]
            lambda: save_connection(self.app.session, cliniko, nutshell, session_only=session_only, **values),  # type: ignore[attr-defined]
            self._saved,
            what="Saving the keys",
        )

    def _saved(self, where: str) -> None:
        self.notify(where, title="Connected")
        app = self.app
        app.refresh_journey()  # type: ignore[attr-defined]
        app.call_later(lambda: app.goto(Step.EXTRACT, force=True))  # type: ignore[attr-defined]


def save_connection(
    session: Any,
    cliniko: Any,
    nutshell: Any,
    *,
    cliniko_key: str,
    nutshell_username: str,
    nutshell_key: str,
    contact_limit: int | None,
    session_only: bool,
) -> str:
    """Keys to the keychain (or memory), the contact limit to project.toml, the facts found (and the endpoints
    tested) to the project. Runs on a worker thread."""
    from cliniko2nutshell.connect import record_connection, store_keys

    project = session.project
    where = store_keys(
        project,
        cliniko_key=cliniko_key,
        nutshell_username=nutshell_username,
        nutshell_key=nutshell_key,
        session_only=session_only,
        secrets=session.secrets,
    )
    if contact_limit is not None:
        project.settings.options["contact_limit"] = contact_limit
        project.save_settings()
    with session.view() as view:
        record_connection(view, cliniko, nutshell)
    session.shared["cliniko_rate_limit"] = cliniko.rate_limit_per_minute
    return where
