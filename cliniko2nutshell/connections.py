"""From a project to live clients: credentials (keychain → environment → memory), endpoints (project.toml, or
the real services), and the Nutshell side as the map and the pre-flight need it (`read_snapshot`).

The wizard and the headless commands both connect through here, so a missing key reads the same everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.events import EventSink, ignore
from cliniko2nutshell.mapping.practitioners import NutshellUser
from cliniko2nutshell.mapping.snapshot import (
    DEFAULT_FILE_SIZE_LIMIT,
    ActivityTypeInfo,
    CustomFieldInfo,
    ExistingPerson,
    NutshellSnapshot,
)
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.existing import people_by_email
from cliniko2nutshell.nutshell.rest import DEFAULT_REST_URL
from cliniko2nutshell.project import Project
from cliniko2nutshell.project.secrets import Secret, Secrets
from cliniko2nutshell.project.store import Store

# Where the size of the Nutshell account's people list is kept between commands (ids and counts only).
PEOPLE_MILESTONE = "nutshell_people"


class MissingCredentials(RuntimeError):
    """A key or user the command needs is neither in the keychain, the environment nor this session."""


def _require(secrets: Secrets, secret: Secret, what: str) -> str:
    value = secrets.get(secret)
    if not value:
        raise MissingCredentials(
            f"No {what} for this project: connect it in the wizard, or set {secret.value} in the environment. "
            f"{secrets.explain()}"
        )
    return value


def known_people_total(store: Store) -> int | None:
    """How many people the Nutshell account held when we last looked (None: never looked)."""
    seen = store.milestone(PEOPLE_MILESTONE)
    total = seen.detail.get("total") if seen else None
    return total if isinstance(total, int) else None


def remember_people_total(store: Store, total: int | None) -> None:
    if total is not None and total != known_people_total(store):
        store.set_milestone(PEOPLE_MILESTONE, {"total": total})


def project_secrets(project: Project) -> Secrets:
    return Secrets(project.settings.id)


CONTACT_LIMIT_OPTION = "contact_limit"  # project.toml [options]: the Nutshell plan's contact limit (asked on connect)


def contact_limit(project: Project) -> int | None:
    """The Nutshell plan's contact limit the user recorded, or None."""
    value = project.settings.options.get(CONTACT_LIMIT_OPTION)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def remember_endpoints(project: Project, *, cliniko_url: str | None = None, nutshell_url: str | None = None) -> None:
    """Save endpoint overrides given on the command line in project.toml (endpoints are not secrets)."""
    changed = False
    if cliniko_url:
        project.settings.cliniko.base_url = cliniko_url.rstrip("/")
        changed = True
    if nutshell_url:
        project.settings.nutshell.base_url = nutshell_url.rstrip("/")
        changed = True
    if changed:
        project.save_settings()


def cliniko_client(
    project: Project, secrets: Secrets, *, rate_limit: int | None = None, sink: EventSink = ignore
) -> ClinikoClient:
    key = _require(secrets, Secret.CLINIKO_API_KEY, "Cliniko API key")
    kwargs = {"rate_limit": rate_limit} if rate_limit else {}
    return ClinikoClient(key, base_url=project.settings.cliniko.base_url, sink=sink, **kwargs)


def nutshell_client(project: Project, secrets: Secrets, *, sink: EventSink = ignore) -> NutshellClient:
    username = secrets.get(Secret.NUTSHELL_USERNAME) or project.settings.nutshell.username
    if not username:
        _require(secrets, Secret.NUTSHELL_USERNAME, "Nutshell user e-mail")
    key = _require(secrets, Secret.NUTSHELL_API_KEY, "Nutshell API key")
    assert username is not None
    return NutshellClient(username, key, project.settings.nutshell.base_url or DEFAULT_REST_URL, events=sink)


async def read_snapshot(
    client: NutshellClient,
    emails: Iterable[str | None] = (),
    *,
    file_size_limit: int | None = DEFAULT_FILE_SIZE_LIMIT,
    custom_field_cap: int | None = None,
    contact_limit: int | None = None,
    project: Project | None = None,
) -> NutshellSnapshot:
    """What Nutshell holds that the map and the pre-flight compare against: users, activity types, custom field
    definitions, how many people and companies it holds, and the people already there with any of `emails`
    (nutshell/existing.py: one look-up per distinct address or one read per page of the account's people,
    whichever is fewer). `contact_limit` is the plan's, as the user recorded it. With `project`, the account's
    size is kept for the run's own check (which then needs no count first)."""
    users, types, contact_fields, account_fields, people_total, companies_total = await asyncio.gather(
        client.list_users(),
        client.list_activity_types(),
        client.custom_field_definitions("contacts"),
        client.custom_field_definitions("accounts"),
        client.count("contacts"),
        client.count("accounts"),
    )
    existing = await people_by_email(client, emails, total=people_total)
    if project is not None:
        remember_people_total(project.store, existing.total)
    found = {
        email: [ExistingPerson(p.id.rest, p.name, tuple(e.value for e in p.emails)) for p in people]
        for email, people in existing.found.items()
    }
    return NutshellSnapshot(
        users=[
            NutshellUser(
                id=u.id.rest,
                name=u.name,
                emails=u.emails,
                first_name=u.first_name,
                last_name=u.last_name,
                enabled=u.is_enabled,
            )
            for u in users
        ],
        activity_types=[ActivityTypeInfo(t.id.rest, t.name) for t in types],
        custom_fields={
            "Contacts": [CustomFieldInfo(d.name, d.type or "Text", "Contacts", d.choices) for d in contact_fields],
            "Accounts": [CustomFieldInfo(d.name, d.type or "Text", "Accounts", d.choices) for d in account_fields],
        },
        people_by_email=found,
        file_size_limit=file_size_limit,
        custom_field_cap=custom_field_cap,
        people_total=people_total if people_total is not None else existing.total,
        companies_total=companies_total,
        contact_limit=contact_limit,
    )
