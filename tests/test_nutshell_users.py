"""Nutshell users as the practitioner matcher needs them, from answers shaped like the live service's."""

from __future__ import annotations

from cliniko2nutshell.mapping.practitioners import PractitionerInfo, match_practitioner
from cliniko2nutshell.nutshell.models import User


def test_a_live_rest_user_without_last_name_gets_it_from_the_full_name() -> None:
    # Live REST users carry firstName and name, no lastName (reference/recorded/airbyte).
    user = User.from_api({"id": "2-users", "firstName": "Jon", "name": "Jon Whitfield", "emails": ["jon.w@x.test"]})
    assert (user.first_name, user.last_name) == ("Jon", "Whitfield")
    titled = User.from_api({"id": "3-users", "firstName": "Dr Priya", "name": "Dr Priya Raman"})
    assert titled.last_name == "Raman"
    alone = User.from_api({"id": "4-users", "firstName": "Cher", "name": "Cher"})
    assert alone.last_name is None


def test_such_a_user_is_suggested_for_the_practitioner_by_name() -> None:
    user = User.from_api({"id": "2-users", "firstName": "Jon", "name": "Jon Whitfield", "emails": ["jon.w@x.test"]})
    from cliniko2nutshell.mapping.practitioners import NutshellUser

    candidate = NutshellUser(user.id.rest, user.name, user.emails, user.first_name, user.last_name)
    practitioner = PractitionerInfo("1", "Jonathan", "Whitfield", email="jonathan.whitfield@clinic.test")
    top = match_practitioner(practitioner, [candidate]).top
    assert top is not None and top.user_id == "2-users" and top.score >= 90
