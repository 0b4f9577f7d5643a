"""Step 5, Map: the proposed field map per object, custom-field decisions, value maps and policies; confirm it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Label, OptionList, RadioButton, RadioSet, Static, Switch, TabbedContent, TabPane
from textual.widgets.option_list import Option

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.mapping.limitations import limitations_for
from cliniko2nutshell.mapping.model import (
    AppointmentStatus,
    CustomFieldAction,
    ExistingPerson,
    MigrationMap,
    StatusRecording,
    StatusRule,
)
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.screens.dialogs import ChoiceDialog, ConfirmDialog, PromptDialog
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.toggles import Choice

OBJECT_TITLES = {
    "patients": "Patients → people",
    "contacts": "Third parties → companies",
    "businesses": "Businesses → locations",
    "practitioners": "Practitioners → users",
    "individual_appointments": "Appointments → activities",
    "attendees": "Group attendees → activities",
    "communications": "Communications → activities",
    "treatment_notes": "Treatment notes → notes + files",
    "patient_attachments": "Attachments → files",
    "patient_notes": "Patient notes → notes",
    "appointment_notes": "Appointment notes → notes",
    "medical_alerts": "Medical alerts → notes",
    "invoices": "Invoices → person fields",
}

POLICY_SWITCHES = (
    ("future_appointments", "Future appointments as scheduled activities",
     "They appear in Nutshell agendas and can trigger Nutshell reminders. Off: future appointments are not moved."),
    ("draft_treatment_notes", "Draft treatment notes",
     "Finalised notes always move; drafts only when this is on."),
    ("confidential_memos", "Confidential memos", "Communications marked confidential in Cliniko."),
    ("archived_patients", "Archived patients", "Archiving is how Cliniko hides former patients: their history moves."),
    ("archived_appointments", "Archived appointments", "An archived appointment was deleted in Cliniko."),
)  # fmt: skip

EXISTING = {
    ExistingPerson.LINK_AND_FILL_EMPTY: "Link to the person and fill only their empty fields (recommended)",
    ExistingPerson.SKIP: "Leave that person alone and do not migrate the patient",
    ExistingPerson.CREATE: "Create a second person anyway",
}

RECORDINGS = {
    StatusRecording.LOGGED: "logged activity",
    StatusRecording.LABELLED: "logged activity, name starts with a label",
    StatusRecording.SCHEDULED: "scheduled activity (future only)",
    StatusRecording.SKIP: "not migrated",
}


@dataclass
class MapData:
    mapping: MigrationMap
    appointment_types: dict[str, str]  # Cliniko id -> name
    businesses: dict[str, str]
    custom_field_defs: dict[str, Any]  # token -> CustomFieldDef
    activity_types: list[str]  # Nutshell's
    nutshell_fields: dict[str, dict[str, str]]  # "Contacts"/"Accounts" -> {name: type}
    open_decisions: list[Any]


def load_map_data(session: Any) -> MapData:
    """The saved map (proposed first if there is none yet) and what the editors choose from. Worker thread."""
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.mapfile import load_map
    from cliniko2nutshell.mapping.proposer import open_decisions
    from cliniko2nutshell.mapping.workflow import propose_map
    from cliniko2nutshell.tui.screens.practitioners import read_snapshot

    snapshot = session.snapshot or read_snapshot(session)
    with session.view() as project:
        mapping = load_map(project.mapping_path) if project.mapping_path.exists() else propose_map(project, snapshot)
        catalog = Catalog.from_store(project.store)
    return MapData(
        mapping=mapping,
        appointment_types={k: v.name or k for k, v in catalog.appointment_types.items()},
        businesses={k: v.business_name or k for k, v in catalog.businesses.items()},
        custom_field_defs=catalog.custom_field_defs,
        activity_types=snapshot.activity_type_names,
        nutshell_fields={e: {f.name: f.type for f in fs} for e, fs in snapshot.custom_fields.items()},
        open_decisions=open_decisions(mapping, catalog),
    )


def refresh_open_decisions(session: Any, mapping: MigrationMap) -> list[Any]:
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.proposer import open_decisions

    with session.view() as project:
        return open_decisions(mapping, Catalog.from_store(project.store))


def confirm(session: Any, mapping: MigrationMap) -> tuple[MigrationMap, list[str], int | None]:
    """Confirm and save; returns the saved map, what changed since the last confirmed version, and its number."""
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.edits import describe_changes, last_confirmed_before
    from cliniko2nutshell.mapping.mapfile import save_map
    from cliniko2nutshell.mapping.proposer import confirm_map

    with session.view() as project:
        confirmed = confirm_map(mapping, Catalog.from_store(project.store))
        saved = save_map(confirmed, project.mapping_path, note="confirmed in the wizard")
        before = last_confirmed_before(project.mapping_path, saved.version)
    return saved, describe_changes(before, saved), before.version if before else None


async def create_fields(job: Any, session: Any) -> Any:
    """The job that creates the custom fields the map writes and Nutshell lacks (journaled: no API deletes them)."""
    from cliniko2nutshell.tui.engine_jobs import call_engine

    return await call_engine(job, session, lambda engine, client: engine.ensure_custom_fields(client))


RULE_COLUMNS = [("on", "On"), ("source", "Cliniko field"), ("target", "Nutshell"), ("transform", "Transform"),
                ("note", "Note")]  # fmt: skip
DECISION_COLUMNS = [("field", "Cliniko field"), ("action", "Decision"), ("target", "Into"), ("type", "Type"),
                    ("confidence", "Conf."), ("reason", "Reason")]  # fmt: skip
FIELD_COLUMNS = [("name", "Field"), ("type", "Type"), ("state", "In Nutshell"), ("about", "About")]
VALUE_COLUMNS = [("kind", "Value map"), ("cliniko", "Cliniko"), ("nutshell", "Nutshell")]


class MapScreen(StepScreen):
    STEP = Step.MAP
    INTRO = "What lands where in Nutshell. Nothing moves until you confirm it (and then run the sample)."
    HELP = """
The proposed map, object by object: each Cliniko field, where it goes in Nutshell, how its value is transformed,
and whether it moves (space switches a field or a whole object on or off; the fields the migration relies on
are locked). **Custom fields**: every Cliniko patient custom field needs a decision (map it to an existing
Nutshell field, create a new one, or skip it), proposed with a confidence and a reason; and the Nutshell custom
fields the map writes, with those missing (X creates them: Nutshell's API cannot delete them afterwards).
**Value maps**: appointment types to activity types, how each appointment status is recorded, service types,
locations. **Policies**: existing people, future appointments, drafts, archived records.

Every change is saved as a new version of `mapping.toml`; **Ctrl+S confirms** the map and shows what changed
since the last confirmed version. Limitations of the two APIs are shown on the objects they touch.
"""
    BINDINGS = [
        Binding("space", "toggle", "On/off"),
        Binding("enter", "edit", "Edit", show=False),
        Binding("a", "accept_all", "Accept proposals"),
        Binding("m", "decide('map')", "Map to field", show=False),
        Binding("n", "decide('create')", "New field", show=False),
        Binding("s", "decide('skip')", "Skip field", show=False),
        Binding("x", "create_fields", "Create missing fields"),
        Binding("ctrl+s", "confirm", "Confirm map"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: MapData | None = None
        self._object: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="map-status", markup=False)
        with TabbedContent(id="map-tabs"):
            with TabPane("Objects & fields", id="tab-objects"), Horizontal():
                yield OptionList(id="objects")
                with Vertical(id="object-detail"):
                    yield Static("", id="object-limits", markup=False)
                    yield DataTable(id="rules", cursor_type="row", zebra_stripes=True)
            with TabPane("Custom fields", id="tab-fields"), VerticalScroll():
                yield Static("Cliniko patient custom fields", classes="section-title")
                yield DataTable(id="decisions", cursor_type="row", zebra_stripes=True)
                yield Static(
                    "Enter accepts the proposal · M maps to an existing field · N creates a new one · S skips",
                    classes="muted",
                )
                yield Static("Nutshell custom fields the map writes", classes="section-title")
                yield DataTable(id="fields", cursor_type="row", zebra_stripes=True)
                yield Static("", id="fields-result", markup=False)
            with TabPane("Value maps", id="tab-values"):
                yield DataTable(id="values", cursor_type="row", zebra_stripes=True)
            with TabPane("Policies", id="tab-policies"), VerticalScroll(id="policies"):
                yield Label("A patient whose e-mail already belongs to a person in Nutshell:", classes="section-title")
                with RadioSet(id="existing"):
                    for value, text in EXISTING.items():
                        yield Choice(text, id=f"existing-{value.value}")
                for key, title, text in POLICY_SWITCHES:
                    with Horizontal(classes="policy"):
                        yield Switch(id=f"policy-{key}")
                        yield Static(
                            Content.assemble((title, "bold"), "\n", (text, "$text-muted")), classes="policy-text"
                        )

    def on_screen_resume(self) -> None:
        if self.data is None and self.ready:
            self.load()

    def journey_changed(self, journey: Journey) -> None:
        if self.data is None and journey[self.STEP].state is not State.NOT_READY and self.is_current:
            self.load()

    def load(self) -> None:
        self.query_one("#map-status", Static).update("Reading the map and Nutshell's fields…")
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: load_map_data(session), self.show, what="Reading the map", key="map")  # type: ignore[attr-defined]

    # -- showing -------------------------------------------------------------------------------------------
    def show(self, data: MapData) -> None:
        self.data = data
        m = data.mapping
        state = "confirmed" if m.confirmed else "not confirmed"
        opened = len(data.open_decisions)
        parts: list[str | tuple[str, str]] = [(f"Map version {m.version}", "bold"), f" · {state}"]
        if opened:
            parts += [" · ", (f"{opened} open decision{'s' if opened != 1 else ''}", "bold $text-warning")]
            first = data.open_decisions[0]
            parts += [f" (first: {first.label}: {first.proposal})"]
        elif not m.confirmed:
            parts += [" · ", ("nothing open: Ctrl+S confirms", "$text-success")]
        self.query_one("#map-status", Static).update(Content.assemble(*parts))
        self._show_objects()
        self._show_decisions()
        self._show_fields()
        self._show_values()
        self._show_policies()

    def _show_objects(self) -> None:
        assert self.data is not None
        options = self.query_one("#objects", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        for name, obj in self.data.mapping.objects.items():
            mark = ("✓ ", "$text-success") if obj.enabled else ("✗ ", "$text-muted")
            title = OBJECT_TITLES.get(name, name.replace("_", " "))
            options.add_option(
                Option(Content.assemble(mark, title if obj.enabled else (title, "$text-muted")), id=name)
            )
        if options.option_count:
            options.highlighted = min(highlighted or 0, options.option_count - 1)
            self._show_rules(options.get_option_at_index(options.highlighted).id)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "objects" and event.option.id:
            self._show_rules(event.option.id)

    def _show_rules(self, name: str | None) -> None:
        if self.data is None or name is None or name not in self.data.mapping.objects:
            return
        self._object = name
        obj = self.data.mapping.objects[name]
        limits = limitations_for(f"object:{name}")
        lines: list[str | tuple[str, str]] = [
            (OBJECT_TITLES.get(name, name), "bold"),
            f"  ({'moves' if obj.enabled else 'switched off: none of its records move'})",
        ]
        if obj.note:
            lines += ["\n", (obj.note, "$text-muted")]
        for lim in limits:
            lines += ["\n", ("! ", "bold $text-warning"), (lim.title, "bold"), (f": {lim.text}", "$text-muted")]
        self.query_one("#object-limits", Static).update(Content.assemble(*lines))
        rows = []
        for i, r in enumerate(obj.fields):
            on = "■ required" if r.locked else ("✓ on" if r.enabled else "✗ off")
            rows.append((str(i), (on, r.source, r.target, r.transform, r.note)))
        fill(self.query_one("#rules", DataTable), RULE_COLUMNS, rows)

    def _show_decisions(self) -> None:
        assert self.data is not None
        rows: list[tuple[str | None, tuple[Any, ...]]] = []
        m = self.data.mapping
        for token, d in sorted(self.data.custom_field_defs.items(), key=lambda kv: kv[1].label.lower()):
            decision = m.custom_field_decisions.get(token)
            if decision is None:
                rows.append((token, (d.label, "· no proposal", "", "", "", "")))
                continue
            mark = ("✓ ", "$text-success") if decision.confirmed else ("○ proposed ", "$text-warning")
            action = Content.assemble(mark, decision.action.value)
            label = d.label + (" (archived)" if d.archived else "")
            confidence = f"{decision.confidence * 100:.0f}%"
            rows.append(
                (token, (label, action, decision.target or "–", decision.type or "", confidence, decision.reason))
            )
        if not rows:
            rows.append((None, ("(this clinic has no patient custom fields)", "", "", "", "", "")))
        fill(self.query_one("#decisions", DataTable), DECISION_COLUMNS, rows)

    def _show_fields(self) -> None:
        assert self.data is not None
        rows = []
        for spec in self.data.mapping.custom_fields:
            have = self.data.nutshell_fields.get(spec.entity, {}).get(spec.name)
            if have is None:
                state = Content.assemble(("✗ ", "$text-error"), "missing")
            elif have != spec.type:
                state = Content.assemble(("! ", "$text-warning"), f"exists as {have}")
            else:
                state = Content.assemble(("✓ ", "$text-success"), "present")
            about = spec.description or ", ".join(lim.title for lim in limitations_for(f"field:{spec.name}"))
            rows.append((spec.name, (spec.name, spec.type, state, about)))
        fill(self.query_one("#fields", DataTable), FIELD_COLUMNS, rows)

    def _value_rows(self) -> list[tuple[str, str, str, str]]:
        """(key, kind, Cliniko, Nutshell) for every value-map entry."""
        assert self.data is not None
        vm = self.data.mapping.value_maps
        rows = [("default_activity_type", "Default activity type", "any other appointment", vm.default_activity_type)]
        for tid, activity in sorted(
            vm.appointment_types.items(), key=lambda kv: self.data.appointment_types.get(kv[0], kv[0])
        ):  # type: ignore[union-attr]
            rows.append((f"appointment:{tid}", "Appointment type", self.data.appointment_types.get(tid, tid), activity))
        for kind, activity in sorted(vm.communication_types.items()):
            rows.append((f"communication:{kind}", "Communication", kind, activity))
        rows.append(
            (
                "document_activity_type",
                "Notes & files ride on",
                "treatment notes, attachments",
                vm.document_activity_type,
            )
        )
        for status in AppointmentStatus:
            rule = vm.status_rule(status)
            shown = RECORDINGS[rule.record] + (f" ('{rule.label}: …')" if rule.label else "")
            rows.append((f"status:{status.value}", "Appointment status", status.value.replace("_", "-"), shown))
        for item, choice in sorted(vm.service_types.items()):
            rows.append((f"service:{item}", "Service type", item, choice))
        for bid, location in sorted(vm.locations.items()):
            rows.append((f"location:{bid}", "Location", self.data.businesses.get(bid, bid), location))
        return rows

    def _show_values(self) -> None:
        rows = [(key, (kind, cliniko, nutshell)) for key, kind, cliniko, nutshell in self._value_rows()]
        fill(self.query_one("#values", DataTable), VALUE_COLUMNS, rows)

    def _show_policies(self) -> None:
        assert self.data is not None
        p = self.data.mapping.policies
        with self.prevent(RadioSet.Changed, Switch.Changed):
            self.query_one(f"#existing-{p.existing_person.value}", RadioButton).value = True
            for key, _, _ in POLICY_SWITCHES:
                self.query_one(f"#policy-{key}", Switch).value = bool(getattr(p, key))

    # -- editing -------------------------------------------------------------------------------------------
    def _apply(self, mapping: MigrationMap, note: str) -> None:
        from cliniko2nutshell.mapping.edits import save_edit

        session = self.app.session  # type: ignore[attr-defined]
        data = self.data
        assert data is not None

        def work() -> tuple[MigrationMap, list[Any]]:
            saved = save_edit(mapping, session.project.mapping_path, note)
            return saved, refresh_open_decisions(session, saved)

        def saved(result: tuple[MigrationMap, list[Any]]) -> None:
            data.mapping, data.open_decisions = result
            self.show(data)
            self.app.refresh_journey()  # type: ignore[attr-defined]

        self.app.background(work, saved, what="Saving the map")  # type: ignore[attr-defined]

    def _active_table(self) -> str:
        return self.query_one("#map-tabs", TabbedContent).active

    def action_toggle(self) -> None:
        if self.data is None:
            return
        focused = self.focused
        m = self.data.mapping
        if focused is not None and focused.id == "objects" and self._object:
            obj = m.objects[self._object]
            objects = {**m.objects, self._object: obj.model_copy(update={"enabled": not obj.enabled})}
            self._apply(
                m.model_copy(update={"objects": objects}), f"switched {self._object} {'off' if obj.enabled else 'on'}"
            )
        elif focused is not None and focused.id == "rules" and self._object:
            table = self.query_one("#rules", DataTable)
            if table.cursor_row is None or not table.row_count:
                return
            obj = m.objects[self._object]
            rule = obj.fields[table.cursor_row]
            if rule.locked:
                self.notify(
                    f"{rule.source} → {rule.target} is required: the migration relies on it.", severity="warning"
                )
                return
            fields = list(obj.fields)
            fields[table.cursor_row] = rule.model_copy(update={"enabled": not rule.enabled})
            objects = {**m.objects, self._object: obj.model_copy(update={"fields": fields})}
            self._apply(
                m.model_copy(update={"objects": objects}),
                f"{self._object}.{rule.source} {'off' if rule.enabled else 'on'}",
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table_id = event.data_table.id
        if table_id == "rules":
            event.stop()
            self.action_toggle()
        elif table_id == "decisions":
            event.stop()
            self.action_decide("accept")
        elif table_id == "values":
            event.stop()
            self.action_edit()

    def _selected_token(self) -> str | None:
        table = self.query_one("#decisions", DataTable)
        if not table.row_count or table.cursor_row is None:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key and self.data and key in self.data.custom_field_defs else None

    def action_decide(self, how: str) -> None:
        from cliniko2nutshell.mapping.proposer import decide

        if self.data is None or self._active_table() != "tab-fields":
            return
        token = self._selected_token()
        if token is None:
            return
        m = self.data.mapping
        current = m.custom_field_decisions.get(token)
        definition = self.data.custom_field_defs[token]
        if how == "accept":
            if current is None:
                self.notify("No proposal for this field: choose M, N or S.")
                return
            self._apply(
                decide(m, token, current.action, current.target, current.type, current.choices), f"accepted {token}"
            )
        elif how == "skip":
            self._apply(decide(m, token, CustomFieldAction.SKIP), f"skipped {token}")
        elif how == "map":
            existing = sorted(self.data.nutshell_fields.get("Contacts", {}).items())
            choices = [(name, f"{name} ({kind})") for name, kind in existing]

            def mapped(name: str | None) -> None:
                if name and self.data is not None:
                    kind = self.data.nutshell_fields.get("Contacts", {}).get(name)
                    self._apply(decide(self.data.mapping, token, CustomFieldAction.MAP, name, kind), f"mapped {token}")  # type: ignore[arg-type]

            self.app.push_screen(ChoiceDialog(f"Nutshell field for '{definition.label}'", choices), mapped)
        elif how == "create":
            proposed = current.target if current and current.action is CustomFieldAction.CREATE else definition.name

            def named(name: str | None) -> None:
                if not name or self.data is None:
                    return
                kind = "Decision" if definition.options else (current.type if current and current.type else "Text")
                self._apply(
                    decide(self.data.mapping, token, CustomFieldAction.CREATE, name, kind, definition.options),  # type: ignore[arg-type]
                    f"new field for {token}",
                )

            self.app.push_screen(
                PromptDialog(
                    f"New Nutshell field for '{definition.label}'",
                    "Its name in Nutshell (created when you press X, or before the run):",
                    value=proposed or "",
                    action="Use this name",
                ),
                named,
            )

    def action_accept_all(self) -> None:
        from cliniko2nutshell.mapping.practitioners import accept_suggestions
        from cliniko2nutshell.mapping.proposer import accept_all

        if self.data is not None:
            self._apply(accept_all(accept_suggestions(self.data.mapping)), "accepted every proposal")

    def action_edit(self) -> None:
        if self.data is None or self._active_table() != "tab-values":
            return
        table = self.query_one("#values", DataTable)
        if not table.row_count or table.cursor_row is None:
            return
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        m = self.data.mapping
        vm = m.value_maps
        what, _, ident = key.partition(":")

        def set_value_maps(**update: Any) -> None:
            assert self.data is not None
            current = self.data.mapping
            self._apply(
                current.model_copy(update={"value_maps": current.value_maps.model_copy(update=update)}),
                f"value map {key}",
            )

        activity_choices = [(name, name) for name in self.data.activity_types]
        if what in ("appointment", "communication", "default_activity_type", "document_activity_type"):

            def picked(name: str | None) -> None:
                if not name:
                    return
                if what == "appointment":
                    set_value_maps(appointment_types={**vm.appointment_types, ident: name})
                elif what == "communication":
                    set_value_maps(communication_types={**vm.communication_types, ident: name})
                else:
                    set_value_maps(**{what: name})

            self.app.push_screen(ChoiceDialog("Nutshell activity type", activity_choices), picked)
        elif what == "status":
            status = AppointmentStatus(ident)
            options = [(r.value, text) for r, text in RECORDINGS.items()
                       if r is not StatusRecording.SCHEDULED or status is AppointmentStatus.FUTURE]  # fmt: skip

            def recorded(choice: str | None) -> None:
                if not choice:
                    return
                record = StatusRecording(choice)
                if record is StatusRecording.LABELLED:

                    def labelled(label: str | None) -> None:
                        if label:
                            rules = {**vm.appointment_status, status: StatusRule(record=record, label=label)}
                            set_value_maps(appointment_status=rules)

                    self.app.push_screen(
                        PromptDialog(
                            "Label",
                            "Activity names start with:",
                            value=vm.status_rule(status).label or status.value.replace("_", "-").capitalize(),
                        ),
                        labelled,
                    )
                else:
                    set_value_maps(appointment_status={**vm.appointment_status, status: StatusRule(record=record)})

            self.app.push_screen(
                ChoiceDialog(f"How a {status.value.replace('_', '-')} appointment is recorded", options), recorded
            )
        elif what in ("service", "location"):
            current = (vm.service_types if what == "service" else vm.locations).get(ident, "")

            def typed(value: str | None) -> None:
                if value is None:
                    return
                if what == "service":
                    set_value_maps(service_types={**vm.service_types, ident: value})
                else:
                    set_value_maps(locations={**vm.locations, ident: value})

            title = "Primary Service Type choice" if what == "service" else "Activity location"
            self.app.push_screen(PromptDialog(title, f"For {ident}:", value=current), typed)

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if self.data is None or event.radio_set.id != "existing" or event.pressed.id is None:
            return
        value = ExistingPerson(event.pressed.id.removeprefix("existing-"))
        m = self.data.mapping
        if value is not m.policies.existing_person:
            self._apply(
                m.model_copy(update={"policies": m.policies.model_copy(update={"existing_person": value})}),
                f"existing people: {value.value}",
            )

    def on_switch_changed(self, event: Switch.Changed) -> None:
        if self.data is None or not event.switch.id or not event.switch.id.startswith("policy-"):
            return
        key = event.switch.id.removeprefix("policy-")
        m = self.data.mapping
        if getattr(m.policies, key) != event.value:
            self._apply(
                m.model_copy(update={"policies": m.policies.model_copy(update={key: event.value})}),
                f"policy {key}: {event.value}",
            )

    # -- Nutshell's fields, confirming ---------------------------------------------------------------------
    def action_create_fields(self) -> None:
        if self.data is None:
            return
        missing = [
            s.name for s in self.data.mapping.custom_fields if s.name not in self.data.nutshell_fields.get(s.entity, {})
        ]
        if not missing:
            self.notify("Every custom field the map writes exists in Nutshell.", title="Custom fields")
            return
        session = self.app.session  # type: ignore[attr-defined]

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            from cliniko2nutshell.tui.progress import RunBoard

            job = self.app.start_job(
                "fields", "Creating custom fields", RunBoard(), lambda job: create_fields(job, session)
            )  # type: ignore[attr-defined]
            if job is not None:
                self._fields_job = job
                self.query_one("#fields-result", Static).update("Creating…")

        self.app.push_screen(
            ConfirmDialog(
                f"Create {len(missing)} custom field(s) in Nutshell?",
                ", ".join(missing) + "\n\nNutshell's API cannot delete custom fields: a rollback lists them for "
                "you to remove by hand in Nutshell's settings.",
                yes="Create them",
                no="Not now",
            ),
            answered,
        )

    def job_ended(self, job: Any) -> None:
        if job is not getattr(self, "_fields_job", None):
            return
        result = job.result
        box = self.query_one("#fields-result", Static)
        if job.error is not None:
            box.update(Content.assemble(("✗ ", "$text-error"), f"Not created: {job.error}"))
        else:
            created = [c.name for c in getattr(result, "created", [])]
            failures = [str(f) for f in getattr(result, "failures", [])]
            parts: list[str | tuple[str, str]] = [
                ("✓ ", "$text-success"),
                f"Created {len(created)}: {', '.join(created) or 'none'}",
            ]
            if failures:
                parts += ["\n", ("✗ ", "$text-error"), "Not created: " + "; ".join(failures)]
            box.update(Content.assemble(*parts))
        session = self.app.session  # type: ignore[attr-defined]
        session.snapshot = None  # Nutshell's fields changed: read them again
        self.load()

    def action_confirm(self) -> None:
        if self.data is None:
            return
        if self.data.open_decisions:
            lines = "\n".join(f"· {d.label}: {d.proposal}" for d in self.data.open_decisions[:12])
            self.app.push_screen(
                ConfirmDialog(
                    f"{len(self.data.open_decisions)} decision(s) still open",
                    f"{lines}\n\nDecide them first (A accepts every proposal as shown).",
                    yes="OK",
                    no="Close",
                )
            )
            return
        session = self.app.session  # type: ignore[attr-defined]
        mapping = self.data.mapping

        def done(result: tuple[MigrationMap, list[str], int | None]) -> None:
            saved, changes, before = result
            assert self.data is not None
            self.data.mapping = saved
            self.show(self.data)
            self.app.refresh_journey()  # type: ignore[attr-defined]
            since = f"since version {before}" if before else "(the first confirmed version)"
            body = "\n".join(f"· {c}" for c in changes[:30]) + (
                f"\n… and {len(changes) - 30} more" if len(changes) > 30 else ""
            )
            self.app.push_screen(
                ConfirmDialog(
                    f"Map version {saved.version} confirmed",
                    f"What changed {since}:\n{body}",
                    yes="Pre-flight next",
                    no="Stay here",
                ),
                lambda go: self.app.goto(Step.PREFLIGHT, force=True) if go else None,  # type: ignore[attr-defined]
            )

        self.app.background(lambda: confirm(session, mapping), done, what="Confirming the map")  # type: ignore[attr-defined]
