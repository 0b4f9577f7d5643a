"""Field comparison under link-and-fill-empty: relations are filled one by one, never replaced."""

from __future__ import annotations

from cliniko2nutshell.engine.fields import before_of, changes_needed, field_names, fill_empty


def test_an_existing_person_with_an_owner_still_gets_the_company_link() -> None:
    planned = {"name": "Ana", "links": {"owner": "5-users", "accounts": ["14-accounts"]}}
    theirs = {"name": "Ana Existing", "links": {"owner": "2-users"}}
    changes = fill_empty(planned, theirs)
    assert changes == {"links": {"accounts": ["14-accounts"]}}  # their owner and name are kept
    assert field_names(changes) == {"links.accounts"}
    assert before_of(changes, theirs) == {"links": {"accounts": None}}  # what a rollback writes back


def test_changes_needed_names_only_the_relation_that_differs() -> None:
    ours = {"links": {"owner": "5-users", "accounts": ["14-accounts"]}, "customFields": {"A": "1", "B": "2"}}
    stored = {"links": {"owner": "5-users", "accounts": []}, "customFields": {"A": "1", "B": "3"}}
    assert changes_needed(ours, stored) == {"links": {"accounts": ["14-accounts"]}, "customFields": {"B": "2"}}
