"""The map: validation with errors naming the key, mapping.toml round trips, versions and history."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.limitations import LIMITATIONS, limitation, limitations_for
from cliniko2nutshell.mapping.mapfile import (
    MapError,
    dump_map,
    history_dir,
    list_versions,
    load_map,
    load_map_version,
    save_map,
)
from cliniko2nutshell.mapping.model import (
    PATIENT_ID_FIELD,
    TRANSFORM_NAMES,
    AppointmentStatus,
    FieldRule,
    MigrationMap,
    PractitionerChoice,
    PractitionerDecision,
    StatusRecording,
    StatusRule,
    ValueMaps,
)
from cliniko2nutshell.mapping.values import TRANSFORMS
from cliniko2nutshell.project import Project


def test_default_map_round_trips_through_toml(project: Project) -> None:
    m = default_map()
    saved = save_map(m, project.mapping_path, note="first")
    assert saved.version == 1 and saved.change_note == "first"
    loaded = load_map(project.mapping_path)
    assert loaded == saved
    assert stat.S_IMODE(project.mapping_path.stat().st_mode) == 0o600
    text = project.mapping_path.read_text()
    assert text.startswith("# cliniko2nutshell migration map")
    assert "[objects.patients]" in text and 'target = "customFields.Cliniko Patient ID"' in text


def test_every_save_of_a_change_is_a_new_version_and_old_ones_are_kept(project: Project) -> None:
    path = project.mapping_path
    v1 = save_map(default_map(), path)
    assert save_map(v1, path).version == 1  # unchanged: no new version
    changed = v1.model_copy(update={"policies": v1.policies.model_copy(update={"future_appointments": True})})
    v2 = save_map(changed, path, note="future appointments on")
    assert v2.version == 2
    assert list_versions(path) == [1, 2]
    assert (history_dir(path) / "mapping.v1.toml").exists()
    assert load_map_version(path, 1).policies.future_appointments is False
    assert load_map_version(path, 2).policies.future_appointments is True
    with pytest.raises(MapError, match="version 7"):
        load_map_version(path, 7)
    v3 = save_map(v2.model_copy(update={"fallback_owner": "3-users"}), path)
    assert v3.version == 3 and list_versions(path) == [1, 2, 3]
    assert stat.S_IMODE((history_dir(path) / "mapping.v2.toml").stat().st_mode) == 0o600


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    good = dump_map(default_map())
    _write(path, good.replace("[policies]", "[policies]\nfuture_apointments = true", 1))
    with pytest.raises(MapError, match=r"policies\.future_apointments: unknown key"):
        load_map(path)
    _write(path, good.replace('existing_person = "link-and-fill-empty"', 'existing_person = "merge"'))
    with pytest.raises(MapError, match=r"policies\.existing_person"):
        load_map(path)
    _write(path, good.replace('transform = "currency"', 'transform = "money"', 1))
    with pytest.raises(MapError, match=r"objects\.invoices\.fields\.0\.transform: unknown transform 'money'"):
        load_map(path)
    _write(path, "this is [not toml")
    with pytest.raises(MapError, match="not valid TOML"):
        load_map(path)
    with pytest.raises(MapError, match="does not exist"):
        load_map(tmp_path / "missing.toml")


def test_the_patient_id_is_always_mapped() -> None:
    m = default_map()
    rules = [r for r in m.objects["patients"].fields if r.custom_field != PATIENT_ID_FIELD]
    broken = m.model_dump()
    broken["objects"]["patients"]["fields"] = [r.model_dump() for r in rules]
    with pytest.raises(ValidationError, match="Cliniko Patient ID"):
        MigrationMap.model_validate(broken)
    with pytest.raises(ValidationError, match="cannot be switched off"):
        FieldRule(source="id", target=f"customFields.{PATIENT_ID_FIELD}", locked=True, enabled=False)


def test_rule_targets_and_transforms_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown target"):
        FieldRule(source="x", target="nowhere")
    with pytest.raises(ValidationError, match="unknown target"):
        FieldRule(source="x", target="customFields.")
    assert FieldRule(source="x", target="description.Occupation").custom_field is None
    assert set(TRANSFORMS) == TRANSFORM_NAMES


def test_value_map_rules() -> None:
    with pytest.raises(ValidationError, match="only future appointments can be scheduled"):
        ValueMaps(appointment_status={AppointmentStatus.CANCELLED: StatusRule(record=StatusRecording.SCHEDULED)})
    with pytest.raises(ValidationError, match="needs a label"):
        StatusRule(record=StatusRecording.LABELLED)


def test_practitioner_decisions_are_consistent() -> None:
    with pytest.raises(ValidationError, match="needs `user`"):
        PractitionerChoice(decision=PractitionerDecision.MATCHED)
    with pytest.raises(ValidationError, match="fallback_owner"):
        MigrationMap(practitioners={"1": PractitionerChoice(decision=PractitionerDecision.FALLBACK)})
    m = MigrationMap(
        practitioners={
            "1": PractitionerChoice(decision=PractitionerDecision.FALLBACK),
            "2": PractitionerChoice(decision=PractitionerDecision.MATCHED, user="4-users"),
            "3": PractitionerChoice(),
        },
        fallback_owner="9-users",
    )
    assert (m.owner_for("1"), m.owner_for("2"), m.owner_for("3"), m.owner_for("4")) == (
        "9-users",
        "4-users",
        None,
        None,
    )


def test_default_map_is_complete() -> None:
    m = default_map()
    for obj in (
        "patients",
        "invoices",
        "contacts",
        "practitioners",
        "individual_appointments",
        "attendees",
        "communications",
        "treatment_notes",
        "patient_attachments",
        "patient_notes",
        "appointment_notes",
        "medical_alerts",
        "businesses",
    ):
        assert obj in m.objects, obj
    targets = {r.custom_field for o in m.objects.values() for r in o.fields if r.custom_field}
    specs = {f.name for f in m.custom_fields}
    assert targets <= specs  # every custom field a rule writes is defined with its type
    for name in (
        "Date of Birth",
        "Original Create Date",
        "Total Invoiced",
        "Balance Due",
        "Last Invoice Date",
        "Last Payment Date",
        "Last Payment Amount",
        "Primary Service Type",
        "Insurance Policy Number",
        "Insurance Group Number",
        PATIENT_ID_FIELD,
    ):
        assert name in specs
    # The no-payments caveat travels with the fields it concerns.
    for name in ("Last Payment Date", "Last Payment Amount", "Balance Due"):
        assert "no payments API" in m.custom_field(name).description  # type: ignore[union-attr]
    assert m.policies.future_appointments is False and m.policies.draft_treatment_notes is False
    assert m.objects["businesses"].enabled is False


def test_limitations_are_listed_once_with_their_places() -> None:
    ids = [lim.id for lim in LIMITATIONS]
    assert len(ids) == len(set(ids)) == 5
    assert limitation("no-payments-api") in limitations_for("field:Last Payment Date")
    assert limitation("custom-fields-not-deletable") in limitations_for("rollback")
    assert {lim.id for lim in limitations_for("preflight")} == set(ids)
    objects = set(default_map().objects)
    for lim in LIMITATIONS:
        for place in lim.places:
            if place.startswith("object:"):
                assert place.removeprefix("object:") in objects, place
