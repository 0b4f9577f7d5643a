"""Practitioners to Nutshell users: the labelled set of tricky pairs, and only e-mail matches auto-accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.model import PractitionerDecision
from cliniko2nutshell.mapping.practitioners import (
    EMAIL_SCORE,
    NutshellUser,
    PractitionerInfo,
    accept,
    match_practitioner,
    match_practitioners,
    name_score,
    propose_choices,
    send_to_fallback,
    unresolved,
)

PAIRS = Path(__file__).resolve().parent / "data" / "practitioner_pairs.json"


def _case(c: dict[str, Any]) -> tuple[PractitionerInfo, list[NutshellUser]]:
    p = PractitionerInfo(id=c["id"], **c["practitioner"])
    users = [
        NutshellUser(
            id=u["id"],
            name=u["name"],
            emails=tuple(u["emails"]),
            first_name=u.get("first_name"),
            last_name=u.get("last_name"),
            enabled=u["enabled"],
        )
        for u in c["users"]
    ]
    return p, users


CASES = json.loads(PAIRS.read_text(encoding="utf-8"))


def test_the_labelled_set_is_big_and_tricky_enough() -> None:
    assert len(CASES) >= 60
    assert len({c["id"] for c in CASES}) == len(CASES)
    with_answer = [c for c in CASES if c["answer"]]
    assert len(with_answer) >= 60
    assert len(CASES) - len(with_answer) >= 10  # practitioners with no user at all
    for c in with_answer:
        assert c["answer"] in {u["id"] for u in c["users"]}, c["id"]


def test_top_suggestion_is_right_for_95_percent() -> None:
    with_answer = [c for c in CASES if c["answer"]]
    wrong = []
    for c in with_answer:
        p, users = _case(c)
        top = match_practitioner(p, users).top
        if top is None or top.user_id != c["answer"]:
            wrong.append((c["id"], c["note"], top))
    accuracy = 1 - len(wrong) / len(with_answer)
    print(
        f"\npractitioner matching: top suggestion right for {len(with_answer) - len(wrong)}/{len(with_answer)} "
        f"= {accuracy:.1%} of the labelled pairs with an answer; wrong: {wrong}"
    )
    assert accuracy >= 0.95


def test_nothing_below_an_email_match_is_accepted_automatically() -> None:
    matches = [match_practitioner(*_case(c)) for c in CASES]
    choices = propose_choices(matches)
    for c, m in zip(CASES, matches, strict=True):
        choice = choices[c["id"]]
        p = m.practitioner
        emails = {e.strip().casefold() for u in c["users"] for e in u["emails"]}
        exact = bool(p.email) and p.email.strip().casefold() in emails
        if exact:
            assert choice.decision is PractitionerDecision.MATCHED and choice.method == "email", c["id"]
            assert choice.user == c["answer"]
        else:
            assert choice.decision is PractitionerDecision.UNRESOLVED, c["id"]
            # A name can never score like an e-mail, however alike.
            assert all(s.score < EMAIL_SCORE for s in m.suggestions)


def test_no_answer_cases_get_only_weak_suggestions() -> None:
    for c in CASES:
        if c["answer"] is None:
            top = match_practitioner(*_case(c)).top
            assert top is None or top.score < 70, (c["id"], top)


def test_email_is_compared_case_and_space_insensitively() -> None:
    p = PractitionerInfo("1", "Ann", "Lee", email="  ANN.Lee@Clinic.COM ")
    m = match_practitioner(p, [NutshellUser("9-users", "Someone Else", ("ann.lee@clinic.com",))])
    assert m.email_match == "9-users"


def test_inactive_practitioners_are_marked() -> None:
    (m,) = match_practitioners([PractitionerInfo("1", "Ann", "Lee", active=False)], [])
    assert m.inactive and m.top is None


@pytest.mark.parametrize(
    ("practitioner", "user", "minimum"),
    [
        (PractitionerInfo("1", "Zoë", "Ñúñez", title="Dr"), NutshellUser("u", "Dr. Zoe Nunez"), 90),
        (PractitionerInfo("1", "J.", "Smith"), NutshellUser("u", "John Smith"), 80),
        (PractitionerInfo("1", "Maria", "Garcia-Lopez"), NutshellUser("u", "Lopez Maria Garcia"), 90),
    ],
)
def test_name_forms(practitioner: PractitionerInfo, user: NutshellUser, minimum: float) -> None:
    score, reason = name_score(practitioner, user)
    assert score >= minimum, reason


def test_decisions_in_the_map() -> None:
    m = default_map()
    m = m.model_copy(
        update={
            "practitioners": propose_choices(
                match_practitioners([PractitionerInfo("1", "Ann", "Lee"), PractitionerInfo("2", "Bo", "Chen")], [])
            )
        }
    )
    assert unresolved(m) == ["1", "2"]
    m = accept(m, "1", "5-users", method="name")
    assert m.owner_for("1") == "5-users" and unresolved(m) == ["2"]
    with pytest.raises(ValueError, match="fallback owner"):
        send_to_fallback(m, "2")
    m = send_to_fallback(m, "2", "7-users")
    assert m.owner_for("2") == "7-users" and unresolved(m) == []
    # A later re-match keeps what the user decided.
    again = propose_choices(match_practitioners([PractitionerInfo("1", "Ann", "Lee")], []), m.practitioners)
    assert again["1"].user == "5-users"
