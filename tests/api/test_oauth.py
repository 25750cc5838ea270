"""/oauth/authorizations and /oauth/tokens: the Heroku CLI's ``login -i`` with two-factor, long-lived
authorizations under step-up, refresh-token rotation with reuse detection, hashed storage, logout."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.control.context import Platform
from tests.api.security_helpers import basic, bearer, member

LOGIN_BODY = {
    "scope": ["global"],
    "description": "Heroku CLI login from laptop",
    "expires_in": 2592000,
}


def _login(client: TestClient, email: str, code: str) -> dict[str, object]:
    response = client.post(
        "/oauth/authorizations",
        json=LOGIN_BODY,
        headers={**basic(email), "Heroku-Two-Factor-Code": code},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_heroku_cli_login_asks_for_the_second_factor_then_issues_a_token(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    first = client.post("/oauth/authorizations", json=LOGIN_BODY, headers=basic("ada@example.com"))
    assert first.status_code in (401, 403)
    assert first.json()["id"] == "two_factor"
    wrong = client.post(
        "/oauth/authorizations",
        json=LOGIN_BODY,
        headers={**basic("ada@example.com"), "Heroku-Two-Factor-Code": "000000"},
    )
    assert wrong.status_code == 401
    body = _login(client, "ada@example.com", ada.code())
    token = body["access_token"]["token"]  # type: ignore[index]
    assert token.startswith("dkya_")
    assert body["user"]["email"] == "ada@example.com"  # type: ignore[index]
    assert body["access_token"]["expires_in"] == 2592000  # type: ignore[index]
    account = client.get("/account", headers=bearer(token))
    assert account.status_code == 200 and account.json()["email"] == "ada@example.com"


def test_a_code_cannot_be_replayed_for_a_second_login(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    code = ada.code()
    _login(client, "ada@example.com", code)
    again = client.post(
        "/oauth/authorizations",
        json=LOGIN_BODY,
        headers={**basic("ada@example.com"), "Heroku-Two-Factor-Code": code},
    )
    assert again.status_code == 401


def test_tokens_are_stored_only_as_hashes(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    body = _login(client, "ada@example.com", ada.code())
    database = platform.settings.data_dir / "dockyard.db"
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert body["access_token"]["token"] not in dump  # type: ignore[index]
    assert body["refresh_token"]["token"] not in dump  # type: ignore[index]


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    body = _login(client, "ada@example.com", ada.code())
    old_access = body["access_token"]["token"]  # type: ignore[index]
    old_refresh = body["refresh_token"]["token"]  # type: ignore[index]
    exchange = {"grant": {"type": "refresh_token"}, "refresh_token": {"token": old_refresh}}
    rotated = client.post("/oauth/tokens", json=exchange)
    assert rotated.status_code == 201
    new_access = rotated.json()["access_token"]["token"]
    assert rotated.json()["refresh_token"]["token"] != old_refresh
    assert client.get("/account", headers=bearer(old_access)).status_code == 401
    assert client.get("/account", headers=bearer(new_access)).status_code == 200
    replay = client.post("/oauth/tokens", json=exchange)
    assert replay.status_code == 401
    assert client.get("/account", headers=bearer(new_access)).status_code == 401
    newest = {"grant": {"type": "refresh_token"}, "refresh_token": rotated.json()["refresh_token"]}
    assert client.post("/oauth/tokens", json=newest).status_code == 401


def test_long_lived_authorizations_need_step_up_scopes_and_report_last_use(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    body = {"scope": ["read"], "description": "CI", "expires_in": 3600}
    refused = client.post("/oauth/authorizations", json=body, headers=ada.key_headers)
    assert refused.status_code == 403 and refused.json()["id"] == "two_factor"
    created = client.post(
        "/oauth/authorizations",
        json=body,
        headers={**ada.key_headers, "Heroku-Two-Factor-Code": ada.code()},
    )
    assert created.status_code == 201, created.text
    token = created.json()["access_token"]["token"]
    assert client.get("/apps", headers=bearer(token)).status_code == 200
    assert client.post("/apps", json={"name": "shop"}, headers=bearer(token)).status_code == 403
    listed = client.get("/oauth/authorizations", headers=ada.key_headers).json()
    mine = next(a for a in listed if a["id"] == created.json()["id"])
    assert mine["scope"] == ["read"] and mine["last_used_ip"] and mine["last_used_at"]
    assert mine["access_token"]["token"] is None
    assert any(a["kind"] == "api-key" for a in listed)
    no_scope = client.post(
        "/oauth/authorizations",
        json={"description": "x"},
        headers={**ada.key_headers, "Heroku-Two-Factor-Code": ada.code()},
    )
    assert no_scope.status_code == 422
    clock.advance(3601)
    assert client.get("/apps", headers=bearer(token)).status_code == 401


def test_revoking_an_authorization_and_logging_out(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    login = _login(client, "ada@example.com", ada.code())
    token = login["access_token"]["token"]  # type: ignore[index]
    assert client.delete("/oauth/sessions/~", headers=bearer(token)).status_code == 200
    assert client.get("/account", headers=bearer(token)).status_code == 401
    second = _login(client, "ada@example.com", ada.code())
    revoked = client.delete(f"/oauth/authorizations/{second['id']}", headers=ada.key_headers)
    assert revoked.status_code == 200
    assert (
        client.get("/account", headers=bearer(second["access_token"]["token"])).status_code == 401
    )  # type: ignore[index]
    api_key = client.get("/oauth/authorizations/~", headers=ada.key_headers)
    assert api_key.status_code == 200 and api_key.json()["scope"] == ["global"]
