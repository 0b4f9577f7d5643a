"""Connecting a project (connect.py) against both sandboxes over real HTTP: what each key reaches, the problems a
newcomer meets (wrong key, wrong shard, a receptionist's key, "API key not found", nothing listening), and where the
keys go (the keychain or this session only; never a file)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from cliniko2nutshell.connect import (
    ClinikoAccess,
    ConnectError,
    ConnectProblem,
    NutshellAccess,
    check_cliniko,
    check_nutshell,
    record_connection,
    store_keys,
)
from cliniko2nutshell.connections import project_secrets
from cliniko2nutshell.mapping.currency import currency_for_country, normalize_currency
from cliniko2nutshell.project import Project
from cliniko2nutshell.project.secrets import MemoryKeyring, Secret, Where
from cliniko2nutshell.retry import RetryPolicy
from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.cliniko_gate import split_key
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

QUICK = RetryPolicy(attempts=2, base=0.01, cap=0.02, timeout=httpx.Timeout(2.0, connect=1.0))


@pytest.fixture
def cliniko(small_clinic_db: Path, tmp_path: Path):
    db = tmp_path / "clinic.db"
    db.write_bytes(small_clinic_db.read_bytes())
    sandbox = start_cliniko_sandbox(db, rate_limit=1000)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def nutshell(small_clinic_db: Path):
    from fixtures.nutshell import nutshell_seed_from_clinic

    sandbox = start_nutshell_sandbox(nutshell_seed_from_clinic(small_clinic_db))
    yield sandbox
    sandbox.stop()


async def test_an_administrators_cliniko_key_reaches_the_account(cliniko: ClinikoSandbox) -> None:
    access = await check_cliniko(cliniko.api_key, cliniko.base_url)
    assert access.problem is None and access.is_admin and access.role == "administrator"
    assert access.account_name and access.country_code == "AU" and access.currency == "AUD"
    assert access.time_zone == "Melbourne"
    assert access.shard == split_key(cliniko.api_key)[1] and access.base_url == cliniko.base_url
    assert access.user_id.isdigit() and access.user_name == "Morgan Hale"
    assert access.rate_limit_per_minute == 200 and access.latency_ms > 0
    assert any("administrator" in line for line in access.describe())


async def test_a_receptionists_key_works_but_is_refused_for_a_full_export(cliniko: ClinikoSandbox) -> None:
    access = await check_cliniko(cliniko.staff_keys["receptionist"], cliniko.base_url)
    assert access.role == "receptionist" and not access.is_admin
    assert access.account_name  # what the key can see is still shown
    assert isinstance(access.problem, ConnectError) and access.problem.kind == ConnectProblem.NOT_ADMIN
    assert "administrator" in access.problem.message and "receptionist" in access.problem.message
    assert access.problem.action


async def test_a_wrong_cliniko_key_and_a_wrong_shard_are_told_apart(cliniko: ClinikoSandbox) -> None:
    base, shard = split_key(cliniko.api_key)
    with pytest.raises(ConnectError) as wrong:
        await check_cliniko(f"{base[:-4]}XXXX-{shard}", cliniko.base_url, policy=QUICK)
    assert wrong.value.kind == ConnectProblem.WRONG_KEY and "refused" in wrong.value.message
    with pytest.raises(ConnectError) as cut:  # the shard ending lost when copying: tried on au1
        await check_cliniko(base, cliniko.base_url, policy=QUICK)
    assert cut.value.kind == ConnectProblem.WRONG_SHARD and "after the last dash" in cut.value.action


async def test_a_key_sent_to_another_shards_host_is_a_wrong_shard() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "api.au1.cliniko.com"
        return httpx.Response(401, text="HTTP Basic: Access denied.\n")

    with pytest.raises(ConnectError) as err:
        await check_cliniko(
            "MS0xMjM0NTY3ODkwYWJjZGVm-uk1",
            "https://api.au1.cliniko.com/v1",
            policy=QUICK,
            transport=httpx.MockTransport(refuse),
        )
    assert err.value.kind == ConnectProblem.WRONG_SHARD
    assert "uk1" in err.value.message and "api.uk1.cliniko.com" in err.value.action


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_nothing_listening_is_unreachable_and_a_silent_server_is_a_timeout() -> None:
    with pytest.raises(ConnectError) as err:
        await check_cliniko("abc-au1", f"http://127.0.0.1:{_dead_port()}/v1", policy=QUICK)
    assert err.value.kind == ConnectProblem.UNREACHABLE and "internet connection" in err.value.action
    with pytest.raises(ConnectError) as err:
        await check_nutshell("a@b.example", "k" * 20, f"http://127.0.0.1:{_dead_port()}/rest", policy=QUICK)
    assert err.value.kind == ConnectProblem.UNREACHABLE

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(ConnectError) as err:
        await check_nutshell("a@b.example", "k" * 20, policy=QUICK, transport=httpx.MockTransport(slow))
    assert err.value.kind == ConnectProblem.TIMEOUT


async def test_nutshell_user_company_and_both_protocols(nutshell: NutshellSandbox) -> None:
    access = await check_nutshell(nutshell.username, nutshell.api_key, nutshell.rest_url)
    assert access.problem is None and access.is_admin is True
    assert access.user_id and access.user_id.endswith("-users") and access.user_email == nutshell.username
    assert access.company_name  # JSON-RPC instanceData
    assert access.rest_url == nutshell.rest_url and access.rpc_url == nutshell.rpc_url
    assert access.latency_ms > 0


async def test_nutshell_api_key_not_found_has_its_own_words(nutshell: NutshellSandbox) -> None:
    with pytest.raises(ConnectError) as err:
        await check_nutshell(nutshell.username, "not-the-key-1234567", nutshell.rest_url, policy=QUICK)
    assert err.value.kind == ConnectProblem.KEY_NOT_FOUND
    assert "API key not found" in err.value.message and "Settings > API keys" in err.value.action


async def test_a_nutshell_user_who_is_not_an_administrator_is_a_problem(nutshell: NutshellSandbox) -> None:
    users = httpx.get(f"{nutshell.rest_url}/users", auth=(nutshell.username, nutshell.api_key), timeout=10).json()
    plain = next(u for u in users["users"] if not u["isAdministrator"] and u["isEnabled"])
    access = await check_nutshell(plain["emails"][0].strip(), nutshell.api_key, nutshell.rest_url)
    assert access.is_admin is False and access.user_id == plain["id"]
    assert access.problem is not None and access.problem.kind == ConnectProblem.NOT_ADMIN


async def test_empty_keys_are_refused_before_any_request() -> None:
    with pytest.raises(ConnectError) as err:
        await check_cliniko("  ")
    assert err.value.kind == ConnectProblem.NO_KEY and "Manage API keys" in err.value.action
    with pytest.raises(ConnectError) as err:
        await check_nutshell("me@example.com", "")
    assert err.value.kind == ConnectProblem.NO_KEY and "API key" in err.value.message


def test_currency_follows_the_country() -> None:
    assert [currency_for_country(c) for c in ("AU", "nz", "GB", "IE", "US", "CA", None, "XX")] == [
        "AUD", "NZD", "GBP", "EUR", "USD", "CAD", None, None,
    ]  # fmt: skip
    assert normalize_currency(" aud ") == "AUD"
    with pytest.raises(ValueError, match="three letters"):
        normalize_currency("dollars")


def _access() -> tuple[ClinikoAccess, NutshellAccess]:
    cliniko = ClinikoAccess(
        "Harbour Physio", "AU", "AUD", "Melbourne", "17", "Morgan Hale", "administrator", True, "au2",
        "http://127.0.0.1:5/v1", 200, 12.5,
    )  # fmt: skip
    nutshell = NutshellAccess(
        "admin@harbour.example", "3-users", "Morgan Hale", "admin@harbour.example", "Harbour", True,
        "http://127.0.0.1:6/rest", "http://127.0.0.1:6/api/v1/json", 8.0,
    )  # fmt: skip
    return cliniko, nutshell


def test_keys_go_to_the_keychain_and_the_facts_to_the_store(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    ring = MemoryKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: ring)
    for name in ("CLINIKO_API_KEY", "NUTSHELL_USERNAME", "NUTSHELL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    where = store_keys(
        project, cliniko_key="SECRET-CLINIKO-au2", nutshell_username="admin@harbour.example", nutshell_key="SECRET-NS"
    )
    assert "OS keychain" in where and "MemoryKeyring" in where
    secrets = project_secrets(project)
    assert secrets.locate(Secret.CLINIKO_API_KEY) == ("SECRET-CLINIKO-au2", Where.KEYCHAIN)
    assert ring.get_password(secrets.service, "NUTSHELL_API_KEY") == "SECRET-NS"

    cliniko, nutshell = _access()
    record_connection(project, cliniko, nutshell)
    detail = project.store.milestone("connected").detail  # type: ignore[union-attr]
    assert detail == {
        "cliniko_account": "Harbour Physio", "cliniko_role": "administrator", "shard": "au2", "currency": "AUD",
        "time_zone": "Melbourne", "nutshell_user_id": "3-users", "nutshell_company": "Harbour",
        "cliniko_latency_ms": 12.5, "nutshell_latency_ms": 8.0,
    }  # fmt: skip
    assert project.settings.nutshell.username == "admin@harbour.example"
    assert project.settings.cliniko.base_url == "http://127.0.0.1:5/v1"  # not the real service: remembered
    project.close()
    for p in project.path.rglob("*"):
        if p.is_file():
            assert b"SECRET-" not in p.read_bytes(), p


def test_without_a_keychain_keys_are_refused_unless_for_this_session(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    for name in ("CLINIKO_API_KEY", "NUTSHELL_USERNAME", "NUTSHELL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    keys = {"cliniko_key": "C-au1", "nutshell_username": "u@example.com", "nutshell_key": "N-KEY"}
    with pytest.raises(ConnectError) as err:
        store_keys(project, **keys)
    assert err.value.kind == ConnectProblem.NO_KEYCHAIN
    assert "session only" in err.value.action and "NUTSHELL_API_KEY" in err.value.action
    assert project_secrets(project).get(Secret.CLINIKO_API_KEY) is None  # nothing half-stored
    where = store_keys(project, **keys, session_only=True)
    assert "this session only" in where
    # Another Secrets of the same project in this process (the next command's client) finds them.
    assert project_secrets(project).locate(Secret.NUTSHELL_API_KEY) == ("N-KEY", Where.MEMORY)


async def test_without_a_country_in_the_public_settings_an_administrator_reads_the_settings() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        user = {"id": "7", "first_name": "Ana", "last_name": "Ruiz", "role": "administrator"}
        bodies = {
            "/v1/user": user,
            "/v1/settings/public": {"account": {"name": "Kiwi Physio", "country_code": None}},
            "/v1/settings": {"account": {"name": "Kiwi Physio", "country_code": "NZ", "time_zone": "Auckland"}},
        }
        return httpx.Response(200, json=bodies[request.url.path])

    access = await check_cliniko("abc-au1", policy=QUICK, transport=httpx.MockTransport(answer))
    assert seen == ["/v1/user", "/v1/settings/public", "/v1/settings"]
    assert (access.account_name, access.country_code, access.currency, access.time_zone) == (
        "Kiwi Physio", "NZ", "NZD", "Auckland",
    )  # fmt: skip
    assert access.base_url == "https://api.au1.cliniko.com/v1"  # the key's shard gives the host
