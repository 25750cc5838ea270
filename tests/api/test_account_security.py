"""Second factors over the API (TOTP, recovery codes, WebAuthn with a software authenticator), roles and
transfers, operators (deactivation everywhere, support access visible to the tenant)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.auth import mfa as totp
from dockyard.control import mail, revocation, sessions
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from tests.api.security_helpers import Member, basic, bearer, member
from tests.auth.softauthn import SoftAuthenticator


def register_key(client: TestClient, who: Member) -> SoftAuthenticator:
    headers = {**who.key_headers}
    if who.secret is not None:
        headers["Heroku-Two-Factor-Code"] = who.code()
    options = client.post("/account/webauthn/registrations", headers=headers)
    assert options.status_code == 201, options.text
    body: dict[str, Any] = options.json()
    device = SoftAuthenticator(platform_origin(client), body["rp"]["id"])
    done = client.put(
        "/account/webauthn/registrations",
        json={**device.create(body), "name": "yubikey"},
        headers=who.key_headers,
    )
    assert done.status_code == 200, done.text
    return device


def platform_origin(client: TestClient) -> str:
    plat: Platform = client.app.state.dockyard.platform  # type: ignore[attr-defined]
    return plat.settings.api_url.rstrip("/")


def test_totp_enrolment_gives_recovery_codes_which_work_once(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    bob = member(platform, clock, "bob@example.com", with_totp=False)
    started = client.post("/account/two-factor/totp", headers=bob.key_headers)
    # without a second factor, step-up for an API key means the password: POST /account/sudo
    assert started.status_code == 403 and started.json()["id"] == "reauthentication_required"
    sudo = client.post(
        "/account/sudo",
        json={"password": "correct horse battery staple 42"},
        headers=bob.key_headers,
    )
    assert sudo.status_code == 200
    started = client.post("/account/two-factor/totp", headers=bob.key_headers)
    assert started.status_code == 201
    secret = started.json()["secret"]
    confirmed = client.put(
        "/account/two-factor/totp",
        json={"code": totp.totp(secret, clock.now())},
        headers=bob.key_headers,
    )
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    status = client.get("/account/two-factor", headers=bob.key_headers).json()
    assert status["enabled"] and status["recovery_codes_left"] == 10
    login = {"scope": ["global"], "description": "cli"}
    with_code = {**basic("bob@example.com"), "Heroku-Two-Factor-Code": codes[0]}
    assert client.post("/oauth/authorizations", json=login, headers=with_code).status_code == 201
    assert client.post("/oauth/authorizations", json=login, headers=with_code).status_code == 401
    assert any("recovery code" in m.subject.lower() for m in mail.read_outbox(platform.settings))
    clock.advance(16 * 60)
    regenerated = client.post(
        "/account/recovery-codes", headers={**bob.key_headers, "Heroku-Two-Factor-Code": codes[1]}
    )
    assert regenerated.status_code == 201
    old = {**basic("bob@example.com"), "Heroku-Two-Factor-Code": codes[2]}
    assert client.post("/oauth/authorizations", json=login, headers=old).status_code == 401


def test_webauthn_registration_and_sudo_with_a_security_key(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    device = register_key(client, ada)
    status = client.get("/account/two-factor", headers=ada.key_headers).json()
    assert [k["name"] for k in status["webauthn"]] == ["yubikey"]
    options = client.post("/account/sudo/webauthn", headers=ada.key_headers).json()
    assertion = device.get(options)
    sudo = client.post(
        "/account/sudo",
        json={"password": "correct horse battery staple 42", "webauthn": assertion},
        headers=ada.key_headers,
    )
    assert sudo.status_code == 200, sudo.text
    replay = client.post(
        "/account/sudo",
        json={"password": "correct horse battery staple 42", "webauthn": assertion},
        headers=ada.key_headers,
    )
    assert replay.status_code == 422


def test_collaborators_cannot_rename_delete_or_transfer(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    bob = member(platform, clock, "bob@example.com")
    client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    client.post(
        "/apps/shop/collaborators", json={"user": bob.account.email}, headers=ada.key_headers
    )
    assert (
        client.patch("/apps/shop", json={"maintenance": True}, headers=bob.key_headers).status_code
        == 200
    )
    assert (
        client.patch("/apps/shop", json={"name": "shop2"}, headers=bob.key_headers).status_code
        == 403
    )
    assert client.delete("/apps/shop?confirm=shop", headers=bob.key_headers).status_code == 403
    offer = {"app": "shop", "recipient": "ada@example.com", "confirm": "shop"}
    assert (
        client.post("/account/app-transfers", json=offer, headers=bob.key_headers).status_code
        == 403
    )
    assert (
        client.patch("/apps/shop", json={"name": "shop2"}, headers=ada.key_headers).status_code
        == 200
    )


def test_transfer_offer_accept_old_owner_becomes_collaborator(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    ada = member(platform, clock, "ada@example.com")
    bob = member(platform, clock, "bob@example.com")
    client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    offer = {"app": "shop", "recipient": "bob@example.com"}
    unconfirmed = client.post("/account/app-transfers", json=offer, headers=ada.key_headers)
    assert unconfirmed.json()["id"] == "confirmation_required"
    created = client.post(
        "/account/app-transfers", json={**offer, "confirm": "shop"}, headers=ada.key_headers
    )
    assert created.status_code == 201 and created.json()["state"] == "pending"
    transfer_id = created.json()["id"]
    assert (
        client.patch(
            f"/account/app-transfers/{transfer_id}",
            json={"state": "accepted"},
            headers=ada.key_headers,
        ).status_code
        == 403
    )
    accepted = client.patch(
        f"/account/app-transfers/{transfer_id}", json={"state": "accepted"}, headers=bob.key_headers
    )
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    assert (
        client.get("/apps/shop", headers=bob.key_headers).json()["owner"]["email"]
        == "bob@example.com"
    )
    collaborators = client.get("/apps/shop/collaborators", headers=bob.key_headers).json()
    assert [c["user"]["email"] for c in collaborators] == ["ada@example.com"]
    subjects = [(m.to, m.subject) for m in mail.read_outbox(platform.settings)]
    for address in ("ada@example.com", "bob@example.com"):
        assert any(to == address and "transfer was requested" in s for to, s in subjects)
        assert any(to == address and "transfer was accepted" in s for to, s in subjects)


def test_deactivation_revokes_every_credential_at_once(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    root = member(platform, clock, "root@example.com")
    revocation.set_role(platform, "root@example.com", "admin")
    carl = member(platform, clock, "carl@example.com")
    login = client.post(
        "/oauth/authorizations",
        json={"scope": ["global"]},
        headers={**basic("carl@example.com"), "Heroku-Two-Factor-Code": carl.code()},
    ).json()
    dashboard = sessions.start(platform, carl.account, kind="web", context=RequestContext())
    assert client.get("/account", headers=bearer(dashboard.token)).status_code == 200
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl carl"
    added = client.post("/account/keys", json={"public_key": key}, headers=carl.key_headers)
    assert added.status_code == 201
    fingerprint = added.json()["fingerprint"]
    with platform.store.read() as tx:
        assert tx.account_for_ssh_key(fingerprint) is not None  # what git over SSH asks
    refused = client.post(
        "/admin/accounts/carl@example.com/actions/deactivate", headers=root.key_headers
    )
    assert refused.status_code == 403  # operators need a security key
    register_key(client, root)
    done = client.post(
        "/admin/accounts/carl@example.com/actions/deactivate",
        headers={**root.key_headers, "Heroku-Two-Factor-Code": root.code()},
    )
    assert done.status_code == 200, done.text
    assert done.json()["revoked"]["ssh_keys"] == 1
    assert client.get("/account", headers=carl.key_headers).status_code == 401
    assert client.get("/account", headers=bearer(dashboard.token)).status_code == 401
    assert client.get("/account", headers=bearer(login["access_token"]["token"])).status_code == 401
    refresh = {"grant": {"type": "refresh_token"}, "refresh_token": login["refresh_token"]}
    assert client.post("/oauth/tokens", json=refresh).status_code == 401
    with platform.store.read() as tx:
        assert tx.list_ssh_keys(carl.account.id) == []
        assert tx.account_for_ssh_key(fingerprint) is None
    again = client.post(
        "/oauth/authorizations",
        json={"scope": ["global"]},
        headers={**basic("carl@example.com"), "Heroku-Two-Factor-Code": carl.code()},
    )
    assert again.status_code in (401, 403)


def test_support_access_is_logged_and_visible_to_the_tenant(
    client: TestClient, platform: Platform, clock: FakeClock
) -> None:
    root = member(platform, clock, "root@example.com")
    revocation.set_role(platform, "root@example.com", "admin")
    register_key(client, root)
    ada = member(platform, clock, "ada@example.com")
    client.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    assert client.get("/apps/shop", headers=root.key_headers).status_code == 404
    granted = client.post(
        "/admin/apps/shop/support-access",
        json={"reason": "ticket 4711: app crashes at boot"},
        headers=root.key_headers,
    )
    assert granted.status_code == 201
    assert client.get("/apps/shop", headers=root.key_headers).status_code == 200
    assert (
        client.patch("/apps/shop", json={"maintenance": True}, headers=root.key_headers).status_code
        == 404
    )
    seen = client.get("/apps/shop/support-access", headers=ada.key_headers).json()
    assert seen[0]["operator"]["email"] == "root@example.com" and "4711" in seen[0]["reason"]
    clock.advance(5 * 3600)
    assert client.get("/apps/shop", headers=root.key_headers).status_code == 404


def test_no_route_reads_or_sets_a_password_for_operators(client: TestClient) -> None:
    for path in client.get("/openapi.json").json()["paths"]:
        if path.startswith("/admin"):
            assert "password" not in path
