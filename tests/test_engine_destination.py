"""The adapter over the Nutshell client: errors become the engine's five, records come back in payload shape."""

from __future__ import annotations

import json

import pytest

from cliniko2nutshell.engine.destination import Conflict, Gone, OutcomeUnknown, Rejected, Unavailable
from cliniko2nutshell.engine.destination_nutshell import _clearing, _remote, _translate
from cliniko2nutshell.engine.markers import edited_fields, fingerprint, legacy_fingerprint
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    NutshellValidationError,
    OutcomeUnknownError,
    ProtocolError,
    ServiceError,
)
from cliniko2nutshell.nutshell.models import Activity, Company, Note, Person


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
    fields = _remote(person).fields
    assert fields["name"] == "Jo Bloggs"
    assert [e["value"] for e in fields["emails"]] == ["jo@example.org"]
    assert fields["customFields"] == {"Cliniko Patient ID": "42"}
    assert fields["links"] == {"owner": "5-users"}
    activity = Activity.from_api({"id": "9-activities", "name": "Consult", "startTime": 1700000000,
                                  "endTime": 1700000600, "isLogged": True,
                                  "links": {"participants": ["7-contacts", "5-users"],
                                            "activityType": "1-activityTypes"}})  # fmt: skip
    got = _remote(activity).fields
    assert (got["startTime"], got["isLogged"], got["activityType"]) == (1700000000, True, "1-activityTypes")
    assert got["links"] == {"participants": ["7-contacts", "5-users"]}


def test_emptied_multi_value_fields_are_sent_as_empty_lists() -> None:
    assert _clearing({"phones": None, "name": None, "links": {"accounts": None, "owner": "1-users"}}) == {
        "phones": [], "name": None, "links": {"accounts": [], "owner": "1-users"}}  # fmt: skip


# Records as either protocol reads them, and the fingerprints the journal holds for them. A journal written by an
# earlier version keeps these: if a converter change moved one, every record would look edited in Nutshell.
_READ = {
    "person_rest": (
        "Person",
        {
            "id": "3-contacts",
            "name": "Andy Nutshell",
            "description": "CEO",
            "createdTime": 1717000000,
            "emails": [
                {"isPrimary": False, "name": "personal", "value": "andy@home.example"},
                {"isPrimary": True, "name": "work", "value": "andy@nutshell.example"},
            ],
            "phones": [
                {
                    "isPrimary": True,
                    "name": "mobile",
                    "value": {"countryCode": "1", "number": "7341234567", "E164": "+17341234567"},
                }
            ],
            "urls": [{"isPrimary": True, "name": "site", "value": "http://andy.example"}],
            "addresses": [
                {
                    "isPrimary": True,
                    "name": "work",
                    "address_1": "206 E Huron St",
                    "city": "Ann Arbor",
                    "postalCode": "48103",
                    "country": "US",
                    "value": {"location": {"latitude": 42.2}},
                }
            ],
            "customFields": {
                "Cliniko Patient ID": "123",
                "Empty": "",
                "Balance Due": {"currency": "AUD", "amount": "12.50"},
            },
            "links": {"owner": "5-users", "accounts": ["337-accounts", "12-accounts"], "creator": "5-users"},
        },
    ),
    "person_rpc": (
        "Person",
        {
            "id": 3,
            "entityType": "Contacts",
            "rev": "7",
            "modifiedTime": "2016-03-13T05:14:21+0000",
            "name": {"givenName": "Louis", "familyName": "Woodward", "displayName": "Mr. Louis Woodward"},
            "owner": {"stub": True, "id": 9, "entityType": "Users"},
            "accounts": [{"stub": True, "id": 337, "entityType": "Accounts"}],
            "email": {"0": "lwoodward@leap.example", "1": "louis@home.example", "--primary": "lwoodward@leap.example"},
            "phone": {"0": {"countryCode": "1", "number": "5996915805", "E164": "+15996915805"}},
            "address": {"home": {"address_1": "1 Beach Rd", "city": "Hampton", "state": "VIC", "postalCode": "3188"}},
            "customFields": {"Cliniko Patient ID": "123", "Date of Birth": "1980-02-29", "Nothing": None},
        },
    ),
    "person_bare": ("Person", {"id": "4-contacts", "name": "Solo"}),
    "company_rest": (
        "Company",
        {
            "id": "4-accounts",
            "name": "Arbor",
            "description": "Insurer\n\ncliniko:company:77",
            "phones": [{"isPrimary": True, "name": "work", "value": "+61390001234"}],
            "addresses": [
                {"isPrimary": True, "name": "office", "value": {"address_1": "220 Depot St", "city": "Ann Arbor"}}
            ],
            "customFields": {"Kind": "insurer"},
            "links": {"owner": "1-users", "contacts": ["3-contacts"]},
        },
    ),
    "company_rpc": (
        "Company",
        {
            "id": 4,
            "entityType": "Accounts",
            "rev": "2",
            "name": "Arbor",
            "address": {"office": {"address_1": "220 Depot St", "city": "Ann Arbor"}},
            "owner": {"entityType": "Users", "id": 1},
        },
    ),
    "activity_rest": (
        "Activity",
        {
            "id": "9-activities",
            "name": "Consult",
            "agenda": "Knee\n\ncliniko:appointment:5",
            "location": "Room 1",
            "startTime": 1700000000,
            "endTime": 1700000600,
            "isLogged": True,
            "isAllDay": False,
            "isFlagged": False,
            "links": {"activityType": "1-activityTypes", "contacts": ["7-contacts"], "users": ["5-users"]},
        },
    ),
    "activity_rpc_files": (
        "Activity",
        {
            "id": 10,
            "entityType": "Activities",
            "rev": "3",
            "name": "Document",
            "description": "cliniko:attachment_activity:8",
            "activityType": {"id": 2, "entityType": "Activity_Types"},
            "startTime": "2024-06-06T14:00:00+0000",
            "endTime": "2024-06-06T14:00:00+0000",
            "status": 1,
            "isAllDay": True,
            "isFlagged": True,
            "participants": [{"id": 7, "entityType": "Contacts"}, {"id": 5, "entityType": "Users"}],
            "logNote": {"files": [{"entityType": "Files", "id": 44, "name": "x.pdf", "size": 120, "rev": "abc"}]},
        },
    ),
    "activity_cancelled": (
        "Activity",
        {
            "id": "11-activities",
            "name": "No show",
            "startTime": 1700000000,
            "endTime": 1700000600,
            "isCancelled": True,
            "links": {"participants": ["7-contacts"]},
        },
    ),
    "note_rest": (
        "Note",
        {"id": "8-notes", "body": "Allergic\n\ncliniko:patient_note:3", "links": {"parent": "3-contacts"}},
    ),
    "note_rpc": ("Note", {"id": 8, "entityType": "Notes", "note": "Hi", "entity": {"entityType": "Contacts", "id": 3}}),
    "note_orphan": ("Note", {"id": "9-notes", "body": "x"}),
}

_PINNED = {
    "person_rest": {
        "addresses": "ba226b91dc56",
        "customFields.Balance Due": "129d407285ee",
        "customFields.Cliniko Patient ID": "3140d59420ca",
        "description": "248270dce014",
        "emails": "34791a906e2e",
        "links": "7170e2e3e6f2",
        "name": "205b82998bd3",
        "phones": "21fe0a81adf7",
        "urls": "ab1243646c3c",
    },
    "person_rpc": {
        "addresses": "cb99b9096fa6",
        "customFields.Cliniko Patient ID": "3140d59420ca",
        "customFields.Date of Birth": "798322049a92",
        "emails": "fb470a7138f7",
        "links": "f4e7dedd718a",
        "name": "3e2043202c7f",
        "phones": "6d56e45d4dc7",
    },
    "person_bare": {"name": "e9f59b513f2f"},
    "company_rest": {
        "addresses": "b213abc694ee",
        "customFields.Kind": "f114eface349",
        "description": "3c763c4fe734",
        "links": "132a410fb666",
        "name": "21b5602c19d6",
        "phones": "ba2231b93b83",
    },
    "company_rpc": {"addresses": "b213abc694ee", "links": "132a410fb666", "name": "21b5602c19d6"},
    "activity_rest": {
        "activityType": "80071b6c23b2",
        "description": "88eeab31c89e",
        "endTime": "9d04a498ae53",
        "isAllDay": "fcbcf165908d",
        "isFlagged": "fcbcf165908d",
        "isLogged": "b5bea41b6c62",
        "links": "40db111cf2a1",
        "location": "6599454a4cbc",
        "name": "b2388adde0d0",
        "startTime": "3f3b4313e71a",
    },
    "activity_rpc_files": {
        "activityType": "808dc76f92d4",
        "description": "f75ec4a95f5c",
        "endTime": "22fba7f1e449",
        "isAllDay": "b5bea41b6c62",
        "isFlagged": "b5bea41b6c62",
        "isLogged": "b5bea41b6c62",
        "links": "40db111cf2a1",
        "name": "1e9013137f7a",
        "startTime": "22fba7f1e449",
    },
    "activity_cancelled": {
        "endTime": "9d04a498ae53",
        "isAllDay": "fcbcf165908d",
        "isFlagged": "fcbcf165908d",
        "isLogged": "fcbcf165908d",
        "links": "a3f89f6f08dc",
        "name": "cc2ceaf8c333",
        "startTime": "3f3b4313e71a",
    },
    "note_rest": {"body": "c3950e178046", "parent": "9a20a40889fb"},
    "note_rpc": {"body": "fdda60cb3869", "parent": "9a20a40889fb"},
    "note_orphan": {"body": "ba2df4903a2c"},
}


_PINNED_V2 = {
    "person_rest": {
        "addresses": "e4c07031a2ae",
        "customFields.Balance Due": "aac6f2f024b4",
        "customFields.Cliniko Patient ID": "3140d59420ca",
        "description": "248270dce014",
        "emails": "d4e7efc47bdd",
        "links.accounts": "28b8137ad551",
        "links.owner": "28c552d59c9e",
        "name": "205b82998bd3",
        "phones": "0a2fe4394d84",
        "urls": "1520987e471c",
    },
    "person_rpc": {
        "addresses": "57fc3a9d1f05",
        "customFields.Cliniko Patient ID": "3140d59420ca",
        "customFields.Date of Birth": "798322049a92",
        "emails": "170d720031fa",
        "links.accounts": "9ac93e041ca2",
        "links.owner": "e8a3c3cea309",
        "name": "3e2043202c7f",
        "phones": "fefe5ece0ad0",
    },
    "person_bare": {"name": "e9f59b513f2f"},
    "company_rest": {
        "addresses": "9d4558478399",
        "customFields.Kind": "f114eface349",
        "description": "3c763c4fe734",
        "links.owner": "ae7f4d273367",
        "name": "21b5602c19d6",
        "phones": "f5c1d7c77e59",
    },
    "company_rpc": {"addresses": "9d4558478399", "links.owner": "ae7f4d273367", "name": "21b5602c19d6"},
    "activity_rest": {
        "activityType": "80071b6c23b2",
        "description": "88eeab31c89e",
        "endTime": "3508731dab21",
        "isAllDay": "fcbcf165908d",
        "isFlagged": "fcbcf165908d",
        "isLogged": "b5bea41b6c62",
        "links.participants": "6bb2a4b3a691",
        "location": "6599454a4cbc",
        "name": "b2388adde0d0",
        "startTime": "240980fb76b4",
    },
    "activity_rpc_files": {
        "activityType": "808dc76f92d4",
        "description": "f75ec4a95f5c",
        "endTime": "681ee9c17cd6",
        "isAllDay": "b5bea41b6c62",
        "isFlagged": "b5bea41b6c62",
        "isLogged": "b5bea41b6c62",
        "links.participants": "6bb2a4b3a691",
        "name": "1e9013137f7a",
        "startTime": "681ee9c17cd6",
    },
    "activity_cancelled": {
        "endTime": "3508731dab21",
        "isAllDay": "fcbcf165908d",
        "isCancelled": "b5bea41b6c62",
        "isFlagged": "fcbcf165908d",
        "isLogged": "fcbcf165908d",
        "links.participants": "25a7d6f0a51f",
        "name": "cc2ceaf8c333",
        "startTime": "240980fb76b4",
    },
    "note_rest": {"body": "c3950e178046", "parent": "9a20a40889fb"},
    "note_rpc": {"body": "fdda60cb3869", "parent": "9a20a40889fb"},
    "note_orphan": {"body": "ba2df4903a2c"},
}


@pytest.mark.parametrize("name", sorted(_READ))
def test_fingerprints_of_records_read_back_are_pinned(name: str) -> None:
    """Journals hold both kinds: the older exact ones still compare equal to the same record read again, and
    the v2 ones the engine takes now do not drift either."""
    model, raw = _READ[name]
    entity = {"Person": Person, "Company": Company, "Activity": Activity, "Note": Note}[model].from_api(raw)
    fields = _remote(entity).fields
    assert json.loads(legacy_fingerprint(fields)) == _PINNED[name]
    assert edited_fields(json.dumps(_PINNED[name], sort_keys=True, separators=(",", ":")), fields) == []
    taken = fingerprint(fields)
    assert taken.startswith("v2:") and json.loads(taken[3:]) == _PINNED_V2[name]
    assert edited_fields(taken, fields) == []
