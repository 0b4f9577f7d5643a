"""The proposer: a target, a confidence and a reason for every Cliniko patient custom field; open decisions."""

from __future__ import annotations

import pytest
from mapping_golden import golden_context

from cliniko2nutshell.mapping.catalog import CustomFieldDef
from cliniko2nutshell.mapping.model import CustomFieldAction, CustomFieldSpec
from cliniko2nutshell.mapping.proposer import (
    MAP_THRESHOLD,
    accept_all,
    apply_proposals,
    confirm_map,
    decide,
    insurance_targets,
    open_decisions,
    propose,
)
from cliniko2nutshell.mapping.snapshot import CustomFieldInfo


def d(
    token: str, section: str, name: str, type_: str, options: tuple[str, ...] = (), archived: bool = False
) -> CustomFieldDef:
    return CustomFieldDef(token, section, name, type_, archived, options)


EXISTING = [
    CustomFieldInfo("Date of Birth", "Date"),
    CustomFieldInfo("Referral Channel", "Decision", choices=("Google", "Friend", "Doctor")),
    CustomFieldInfo("Emergency Phone", "Text"),
    CustomFieldInfo("Favourite Number", "Number"),
    CustomFieldInfo("Account Manager", "Text", entity="Accounts"),
]


def test_proposals_map_create_and_skip_with_reasons() -> None:
    defs = {
        "dob": d("dob", "Personal", "Birth date", "date"),
        "ref": d("ref", "Intake", "Referral channel", "radiobuttons", ("Google", "Friend")),
        "em": d("em", "Contacts", "Emergency phone number", "text"),
        "goals": d("goals", "Intake", "Goals", "paragraph"),
        "old": d("old", "Intake", "Fax number", "text", archived=True),
        "empty": d("empty", "Intake", "Shoe size", "text"),
        "am": d("am", "Intake", "Account manager", "text"),
    }
    samples = {
        "dob": ["1980-02-03", "1999-12-31"],
        "ref": ["Google", "Friend", "Google"],
        "em": ["0400 000 000"],
        "goals": ["Run a marathon\nwithout pain"],
        "am": ["Jane"],
    }
    by_token = {p.token: p for p in propose(defs, samples, EXISTING)}
    assert by_token["dob"].action is CustomFieldAction.MAP and by_token["dob"].target == "Date of Birth"
    assert by_token["ref"].action is CustomFieldAction.MAP and by_token["ref"].target == "Referral Channel"
    assert by_token["em"].action is CustomFieldAction.MAP and by_token["em"].target == "Emergency Phone"
    assert by_token["goals"].action is CustomFieldAction.CREATE and by_token["goals"].target_type == "LongText"
    assert by_token["old"].action is CustomFieldAction.SKIP and "archived" in by_token["old"].reason
    assert by_token["empty"].action is CustomFieldAction.SKIP and "no sampled patient" in by_token["empty"].reason
    # An Accounts field never receives patient values.
    assert by_token["am"].target != "Account Manager"
    for p in by_token.values():
        assert 0 <= p.confidence <= 1 and p.reason and "\n" not in p.reason
        if p.action is CustomFieldAction.MAP:
            assert p.confidence >= MAP_THRESHOLD


def test_type_and_values_weigh_in() -> None:
    defs = {"n": d("n", "Intake", "Favourite number", "text")}
    assert propose(defs, {"n": ["7", "42"]}, EXISTING)[0].target == "Favourite Number"
    # The same name, but values a Number field would refuse: not mapped there.
    assert propose(defs, {"n": ["seven", "lots"]}, EXISTING)[0].action is CustomFieldAction.CREATE
    # A paragraph cannot go into a Decision field however alike the names.
    para = {"r": d("r", "Intake", "Referral channel", "paragraph")}
    assert propose(para, {"r": ["long text"]}, EXISTING)[0].target != "Referral Channel"
    # A radio field with free "Other" answers becomes text, not a picklist that would refuse them.
    radio = {"h": d("h", "Intake", "How did you hear", "radiobuttons", ("Google",))}
    created = propose(radio, {"h": ["Google", "Other: a flyer"]}, [])[0]
    assert created.action is CustomFieldAction.CREATE and created.target_type == "Text"


def test_planned_fields_are_candidates_and_new_names_do_not_collide() -> None:
    defs = {"p": d("p", "Insurance", "Policy number", "text"), "x": d("x", "Other", "Date of Birth", "text")}
    planned = [CustomFieldSpec(name="Insurance Policy Number", type="Text")]
    by_token = {p.token: p for p in propose(defs, {"p": ["A1"], "x": ["sometime in spring"]}, EXISTING, planned)}
    assert by_token["p"].target == "Insurance Policy Number" and "field the map creates" in by_token["p"].reason
    # "Date of Birth" (text values that are no dates) needs a new name that does not clash with the Date field.
    assert by_token["x"].action is CustomFieldAction.CREATE and by_token["x"].target == "Other Date of Birth"


def test_decisions_must_all_be_confirmed() -> None:
    ctx = golden_context()
    m = ctx.map.model_copy(update={"custom_field_decisions": {}})
    catalog = ctx.catalog
    pending = open_decisions(m, catalog)
    assert {p.id for p in pending if p.kind == "custom_field"} == set(catalog.custom_field_defs)
    with pytest.raises(ValueError, match="still open"):
        confirm_map(m, catalog)
    targets = insurance_targets(m, catalog.custom_field_defs)
    assert targets == {
        "fdb9c8a0-2984-4d96-8dc1-fbe703a8afdb": "Insurance Policy Number",
        "0b7a1c52-6d3e-4f0e-9a55-2f1e3c4d5e6f": "Insurance Group Number",
    }
    proposals = propose(
        catalog.custom_field_defs,
        {"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d": ["Google"]},
        [],
        m.custom_fields,
        insurance_targets=targets,
    )
    m = apply_proposals(m, proposals)
    assert all(not x.confirmed for x in m.custom_field_decisions.values())
    assert len(open_decisions(m, catalog)) == 3
    # The user decides one by hand; accepting the rest confirms them as proposed.
    m = decide(
        m,
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        CustomFieldAction.CREATE,
        "Heard Of Us",
        "Decision",
        ["Google", "Friend"],
    )
    assert m.custom_field("Heard Of Us").choices == ["Google", "Friend"]  # type: ignore[union-attr]
    m = accept_all(m)
    assert open_decisions(m, catalog) == []
    assert confirm_map(m, catalog).confirmed
    # Re-proposing never overrides a confirmed decision.
    again = apply_proposals(m, proposals)
    assert again.custom_field_decisions["a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"].target == "Heard Of Us"
