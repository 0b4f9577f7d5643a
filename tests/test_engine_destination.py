"""The adapter over the Nutshell client: errors become the engine's five, records come back in payload shape."""

from __future__ import annotations

import pytest

from cliniko2nutshell.engine.destination import Conflict, Gone, OutcomeUnknown, Rejected, Unavailable
from cliniko2nutshell.engine.destination_nutshell import _clearing, _translate, activity_fields, person_fields
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    NutshellValidationError,
    OutcomeUnknownError,
    ProtocolError,
    ServiceError,
)
from cliniko2nutshell.nutshell.models import Activity, Person


@pytest.mark.parametrize(
    ("raised", "write", "expected"),
    [
        (OutcomeUnknownError("dropped"), True, OutcomeUnknown),
        (ConflictError("rev key is out-of-date"), True, Conflict),
        (NotFoundError("gone"), False, Gone),
        (NutshellValidationError("Invalid phone number"), True, Rejected),
        (AuthError("refused"), False, Unavailable),
        (ServiceError("503 every try"), False, Unavailable),
        (ServiceError("503 every try"), True, OutcomeUnknown),  # a write that failed may have happened
        (ProtocolError("not JSON"), True, OutcomeUnknown),
    ],
)
async def test_errors_translate_to_what_the_engine_does_next(raised: Exception, write: bool, expected: type) -> None:
    async def call() -> None:
        raise raised

    with pytest.raises(expected):
        await _translate(call(), write=write)


async def test_a_read_that_cannot_be_understood_is_not_hidden() -> None:
    async def call() -> None:
        raise ProtocolError("not JSON")

    with pytest.raises(ProtocolError):
        await _translate(call(), write=False)


def test_records_come_back_in_the_shape_we_send() -> None:
    person = Person.from_api({
        "id": 7, "entityType": "Contacts", "rev": "3", "name": {"givenName": "Jo", "familyName": "Bloggs",
        "displayName": "Jo Bloggs"}, "email": {"--primary": "jo@example.org"}, "phone": {"mobile": "+61400"},
        "customFields": {"Cliniko Patient ID": "42", "Empty": ""}, "owner": {"entityType": "Users", "id": 5},
    })  # fmt: skip
    fields = person_fields(person)
    assert fields["name"] == "Jo Bloggs"
    assert [e["value"] for e in fields["emails"]] == ["jo@example.org"]
    assert fields["customFields"] == {"Cliniko Patient ID": "42"}
    assert fields["links"] == {"owner": "5-users"}
    activity = Activity.from_api({"id": "9-activities", "name": "Consult", "startTime": 1700000000,
                                  "endTime": 1700000600, "isLogged": True,
                                  "links": {"participants": ["7-contacts", "5-users"],
                                            "activityType": "1-activityTypes"}})  # fmt: skip
    got = activity_fields(activity)
    assert (got["startTime"], got["isLogged"], got["activityType"]) == (1700000000, True, "1-activityTypes")
    assert got["links"] == {"participants": ["7-contacts", "5-users"]}


def test_emptied_multi_value_fields_are_sent_as_empty_lists() -> None:
    assert _clearing({"phones": None, "name": None, "links": {"accounts": None, "owner": "1-users"}}) == {
        "phones": [], "name": None, "links": {"accounts": [], "owner": "1-users"}}  # fmt: skip
