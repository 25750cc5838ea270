"""Step-up on the API: sensitive actions from a sign-in token need authentication within 15 minutes, not
extended by activity; the Heroku CLI's pre-authorization; typed names; soft deletion; MFA after the grace
period; high-profile apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.api.app import create_app
from dockyard.control.context import Platform
from tests.api.security_helpers import basic, bearer, member
from tests.conftest import make_settings

LOGIN = {"scope": ["global"], "description": "cli", "expires_in": 2592000}


def _token(client: TestClient, email: str, code: str) -> str:
    response = client.post(
        "/oauth/authorizations",
        json=LOGIN,
        headers={**basic(email), "Heroku-Two-Factor-Code": code},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]["token"]
    return token


def test_sudo_window_is_15_minutes_and_not_extended_by_activity(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    token = _token(client, "ada@example.com", ada.code())
    assert client.post("/apps", json={"name": "shop"}, headers=bearer(token)).status_code == 201
    fresh = client.post(
        "/apps/shop/domains", json={"hostname": "a.example.com"}, headers=bearer(token)
    )
    assert fresh.status_code == 201
    for _ in range(4):
        clock.advance(4 * 60)
        assert client.get("/apps/shop", headers=bearer(token)).status_code == 200
    stale = client.post(
        "/apps/shop/domains", json={"hostname": "b.example.com"}, headers=bearer(token)
    )
    assert stale.status_code == 403
    assert stale.json()["id"] == "two_factor" and stale.json()["app"]["name"] == "shop"


def test_heroku_cli_pre_authorization_then_retry(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    token = _token(client, "ada@example.com", ada.code())
    client.post("/apps", json={"name": "shop"}, headers=bearer(token))
    clock.advance(16 * 60)
    body = {"hostname": "c.example.com"}
    assert client.post("/apps/shop/domains", json=body, headers=bearer(token)).status_code == 403
    bad = client.put(
        "/apps/shop/pre-authorizations", headers=bearer(token, **{"Heroku-Two-Factor-Code": "1"})
    )
    assert bad.status_code == 403
    pre = client.put(
        "/apps/shop/pre-authorizations",
        headers=bearer(token, **{"Heroku-Two-Factor-Code": ada.code()}),
    )
    assert pre.status_code == 200
    assert client.post("/apps/shop/domains", json=body, headers=bearer(token)).status_code == 201
    clock.advance(15 * 60)
    again = client.delete("/apps/shop/domains/c.example.com", headers=bearer(token))
    assert again.status_code == 403
    with_code = client.delete(
        "/apps/shop/domains/c.example.com",
        headers=bearer(token, **{"Heroku-Two-Factor-Code": ada.code()}),
    )
    assert with_code.status_code == 200


def test_scaling_to_zero_needs_step_up_but_scaling_up_does_not(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    token = _token(client, "ada@example.com", ada.code())
    client.post("/apps", json={"name": "shop"}, headers=bearer(token))
    clock.advance(16 * 60)
    down = client.patch(
        "/apps/shop/formation",
        json={"updates": [{"type": "web", "quantity": 0}]},
        headers=bearer(token),
    )
    assert down.status_code == 403 and down.json()["id"] == "two_factor"
    up = client.patch(
        "/apps/shop/formation",
        json={"updates": [{"type": "web", "quantity": 2}]},
        headers=bearer(token),
    )
    assert up.status_code != 403


def test_long_lived_api_keys_do_not_prompt_but_deletion_needs_the_typed_name(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    clock.advance(3600)
    added = client.post(
        "/apps/shop/domains", json={"hostname": "d.example.com"}, headers=ada.key_headers
    )
    assert added.status_code == 201
    refused = client.delete("/apps/shop", headers=ada.key_headers)
    assert refused.status_code == 403 and refused.json()["id"] == "confirmation_required"
    wrong = client.delete("/apps/shop?confirm=shp", headers=ada.key_headers)
    assert wrong.json()["id"] == "confirmation_required"
    assert client.delete("/apps/shop?confirm=shop", headers=ada.key_headers).status_code == 200


def test_deletion_is_soft_for_7_days_then_purged(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com", with_totp=False)
    for name in ("shop", "blog"):
        client.post("/apps", json={"name": name}, headers=ada.key_headers)
        assert (
            client.delete(f"/apps/{name}?confirm={name}", headers=ada.key_headers).status_code
            == 200
        )
    assert client.get("/apps/shop", headers=ada.key_headers).status_code == 404
    assert [a["name"] for a in client.get("/apps", headers=ada.key_headers).json()] == []
    taken = client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    assert taken.status_code == 409
    clock.advance(6 * 86400)
    restored = client.post("/account/deleted-apps/shop/actions/restore", headers=ada.key_headers)
    assert restored.status_code == 200
    assert client.get("/apps/shop", headers=ada.key_headers).status_code == 200
    clock.advance(2 * 86400)
    assert client.get("/account/deleted-apps", headers=ada.key_headers).json() == []
    gone = client.post("/account/deleted-apps/blog/actions/restore", headers=ada.key_headers)
    assert gone.status_code == 404
    assert client.post("/apps", json={"name": "blog"}, headers=ada.key_headers).status_code == 201


def test_mfa_is_required_after_the_grace_period(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    bob = member(platform, clock, "bob@example.com", with_totp=False)
    clock.advance(13 * 86400)
    assert client.get("/apps", headers=bob.key_headers).status_code == 200
    clock.advance(86400 + 1)
    blocked = client.get("/apps", headers=bob.key_headers)
    assert blocked.status_code == 403 and blocked.json()["id"] == "mfa_enrollment_required"
    assert client.get("/account/two-factor", headers=bob.key_headers).status_code == 200
    ada = member(platform, clock, "ada@example.com")
    clock.advance(15 * 86400)
    assert client.get("/apps", headers=ada.key_headers).status_code == 200


def test_the_grace_period_is_a_setting(tmp_path: Path, start_audit_writer: Any) -> None:
    settings = make_settings(tmp_path / "data", DOCKYARD_AUTH_MFA_GRACE_DAYS="2")
    start_audit_writer(settings)
    clock = FakeClock()
    plat = Platform.open(settings, clock=clock)
    try:
        with TestClient(create_app(plat, internal_token="t")) as client:
            bob = member(plat, clock, "bob@example.com", with_totp=False)
            clock.advance(2 * 86400 - 60)
            assert client.get("/apps", headers=bob.key_headers).status_code == 200
            clock.advance(60)
            assert client.get("/apps", headers=bob.key_headers).status_code == 403
    finally:
        plat.close()


def test_high_profile_apps_require_webauthn_of_collaborators(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    from tests.api.test_account_security import register_key

    ada = member(platform, clock, "ada@example.com")
    bob = member(platform, clock, "bob@example.com")
    client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    client.post(
        "/apps/shop/collaborators", json={"user": bob.account.email}, headers=ada.key_headers
    )
    no_key = client.patch(
        "/apps/shop/security", json={"high_profile": True}, headers=ada.key_headers
    )
    assert no_key.status_code == 422
    register_key(client, ada)
    flagged = client.patch(
        "/apps/shop/security", json={"high_profile": True}, headers=ada.key_headers
    )
    assert flagged.status_code == 200
    assert client.get("/apps/shop", headers=ada.key_headers).status_code == 200
    refused = client.get("/apps/shop", headers=bob.key_headers)
    assert refused.status_code == 403 and refused.json()["id"] == "webauthn_required"
    register_key(client, bob)
    assert client.get("/apps/shop", headers=bob.key_headers).status_code == 200
