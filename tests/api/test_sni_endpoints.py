"""``/apps/{app}/sni-endpoints`` in Heroku's shapes, ``/apps/{app}/router-settings``, and the
Dockyard CA's certificate at ``/.well-known/dockyard/ca.crt``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.control.context import Platform
from dockyard.router import tls
from tests.api.conftest import User
from tests.control.certificate_support import authority, server

SNI_KEYS = {
    "app",
    "certificate_chain",
    "created_at",
    "display_name",
    "domains",
    "id",
    "name",
    "ssl_cert",
    "updated_at",
}
SSL_CERT_KEYS = {
    "acm",
    "ca_signed?",
    "cert_domains",
    "expires_at",
    "id",
    "issuer",
    "self_signed?",
    "starts_at",
    "subject",
}


@pytest.fixture
def shop(client: TestClient, alice: User) -> str:
    assert client.post("/apps", json={"name": "shop"}, headers=alice.headers).status_code == 201
    added = client.post(
        "/apps/shop/domains", json={"hostname": "shop.example.org"}, headers=alice.headers
    )
    assert added.status_code == 201, added.text
    return str(added.json()["id"])


def test_a_certificate_is_added_listed_shown_updated_and_removed(
    client: TestClient, alice: User, shop: str, clock: FakeClock
) -> None:
    ca = authority("Example Root", clock.now())
    leaf = server(["shop.example.org"], clock.now(), issuer=ca)
    added = client.post(
        "/apps/shop/sni-endpoints",
        json={"certificate_chain": leaf.pem, "private_key": leaf.key_pem},
        headers=alice.headers,
    )
    assert added.status_code == 201, added.text
    endpoint = added.json()
    assert set(endpoint) == SNI_KEYS
    assert set(endpoint["ssl_cert"]) == SSL_CERT_KEYS
    assert endpoint["ssl_cert"]["cert_domains"] == ["shop.example.org"]
    assert endpoint["ssl_cert"]["issuer"] == "/C=NL/O=Example/CN=Example Root"
    assert endpoint["ssl_cert"]["expires_at"].endswith("Z")
    assert endpoint["ssl_cert"]["self_signed?"] is False
    assert endpoint["domains"] == [shop]
    assert endpoint["app"]["name"] == "shop"
    assert "PRIVATE KEY" not in added.text
    listed = client.get("/apps/shop/sni-endpoints", headers=alice.headers).json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    for ref in (endpoint["id"], endpoint["name"]):
        shown = client.get(f"/apps/shop/sni-endpoints/{ref}", headers=alice.headers)
        assert shown.json()["id"] == endpoint["id"]
    renewed = server(["shop.example.org"], clock.now(), issuer=ca, days=300)
    patched = client.patch(
        f"/apps/shop/sni-endpoints/{endpoint['name']}",
        json={"certificate_chain": renewed.pem, "private_key": renewed.key_pem},
        headers=alice.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["ssl_cert"]["expires_at"] != endpoint["ssl_cert"]["expires_at"]
    removed = client.delete(f"/apps/shop/sni-endpoints/{endpoint['id']}", headers=alice.headers)
    assert removed.status_code == 200
    assert client.get("/apps/shop/sni-endpoints", headers=alice.headers).json() == []


def test_a_key_that_does_not_match_is_refused_with_invalid_params(
    client: TestClient, alice: User, shop: str, clock: FakeClock
) -> None:
    leaf = server(["shop.example.org"], clock.now())
    other = server(["shop.example.org"], clock.now())
    refused = client.post(
        "/apps/shop/sni-endpoints",
        json={"certificate_chain": leaf.pem, "private_key": other.key_pem},
        headers=alice.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["id"] == "invalid_params"
    assert "does not match" in refused.json()["message"]
    missing = client.post(
        "/apps/shop/sni-endpoints", json={"certificate_chain": leaf.pem}, headers=alice.headers
    )
    assert missing.status_code == 422


def test_another_accounts_certificates_are_not_found(
    client: TestClient, alice: User, bob: User, shop: str
) -> None:
    assert client.get("/apps/shop/sni-endpoints", headers=bob.headers).status_code == 404
    gone = client.get("/apps/shop/sni-endpoints/tokyo-1234", headers=alice.headers)
    assert gone.status_code == 404
    assert gone.json()["id"] == "not_found"


# -- router settings --------------------------------------------------------------------------


def test_router_settings_start_off_and_change_field_by_field(
    client: TestClient, alice: User, shop: str
) -> None:
    initial = client.get("/apps/shop/router-settings", headers=alice.headers)
    assert initial.status_code == 200
    assert initial.json() == {
        "app": initial.json()["app"],
        "cache": False,
        "connection_limit": None,
        "hsts_include_subdomains": False,
        "hsts_max_age": None,
        "hsts_preload": False,
        "https_redirect": None,
        "updated_at": None,
    }
    changed = client.patch(
        "/apps/shop/router-settings",
        json={"cache": True, "https_redirect": 308, "hsts_max_age": 3600},
        headers=alice.headers,
    )
    assert changed.status_code == 200, changed.text
    again = client.patch(
        "/apps/shop/router-settings", json={"https_redirect": None}, headers=alice.headers
    ).json()
    assert again["cache"] is True and again["hsts_max_age"] == 3600
    assert again["https_redirect"] is None
    assert again["updated_at"] is not None


@pytest.mark.parametrize(
    "body", [{"https_redirect": 302}, {"hsts_preload": True}, {"caching": True}]
)
def test_impossible_router_settings_are_refused(
    client: TestClient, alice: User, shop: str, body: dict[str, object]
) -> None:
    refused = client.patch("/apps/shop/router-settings", json=body, headers=alice.headers)
    assert refused.status_code == 422
    assert refused.json()["id"] == "invalid_params"


def test_router_settings_of_another_account_are_not_found(
    client: TestClient, bob: User, shop: str
) -> None:
    assert client.get("/apps/shop/router-settings", headers=bob.headers).status_code == 404
    patched = client.patch("/apps/shop/router-settings", json={"cache": True}, headers=bob.headers)
    assert patched.status_code == 404


# -- the Dockyard CA ---------------------------------------------------------------------------


def test_the_ca_certificate_is_served_to_anyone_once_made(
    client: TestClient, platform: Platform
) -> None:
    assert client.get("/.well-known/dockyard/ca.crt").status_code == 404
    tls.ensure_platform_certificate(platform.settings)
    served = client.get("/.well-known/dockyard/ca.crt")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/x-x509-ca-cert"
    assert served.content == platform.settings.tls_ca_cert_file.read_bytes()
    assert b"PRIVATE" not in served.content
