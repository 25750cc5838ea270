"""Object-level access on every route: each operation of the OpenAPI document is called by another tenant
against this tenant's ids, and answers 403 or 404 every time (generated from the document, so a new route
is covered as soon as it exists)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.control import oauth, transfer
from dockyard.control.accounts import create_user
from dockyard.control.context import Platform

NOT_TENANT_OBJECTS = ("/internal", "/dyno-sizes", "/password-resets", "/repudiations", "/signups")
"""Routes whose ids are not a tenant's objects (the data plane; the public catalog; secret links)."""
SAMPLES: dict[str, Any] = {
    "hostname": "www.example.org",
    "user": "carol@example.com",
    "recipient": "carol@example.com",
    "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",
    "url": "https://logs.example.org/drain",
    "command": "echo hi",
    "reason": "ticket 1234: looking into a crash",
    "state": "accepted",
    "app": "shop",
    "buildpack": "heroku/python",
    "slug": "00000000-0000-4000-8000-000000000002",
    "process_types": {"web": "./bin/web"},
}


def _certificate() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.org")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.org")]), False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key.decode()


CERTIFICATE, PRIVATE_KEY = _certificate()
SAMPLES["certificate_chain"] = CERTIFICATE
SAMPLES["private_key"] = PRIVATE_KEY


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def sample(spec: dict[str, Any], schema: dict[str, Any], name: str = "") -> Any:
    """A value the schema accepts, with plausible strings for well-known fields."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if _resolve(spec, s).get("type") != "null"]
        return sample(spec, options[0], name) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if name in SAMPLES and not isinstance(SAMPLES[name], str):
        return SAMPLES[name]
    if kind == "object":
        props = schema.get("properties", {})
        if not props:
            return {"command": SAMPLES["command"]}  # a free-form body (one-off dynos)
        wanted = [k for k in props if k in schema.get("required", []) or k in SAMPLES]
        return {key: sample(spec, props[key], key) for key in wanted}
    if kind == "array":
        return [sample(spec, schema.get("items", {}), name)] if name in ("updates", "") else []
    if kind == "integer":
        return 1
    if kind == "boolean":
        return False
    return SAMPLES.get(name, "x")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, ops in spec["paths"].items():
        if "{" not in path or path.startswith(NOT_TENANT_OBJECTS):
            continue
        for method, op in ops.items():
            found.append((method.upper(), path, op))
    return found


@pytest.fixture
def tenant_ids(client: TestClient, platform: Platform, clock: FakeClock) -> dict[str, str]:
    owner = create_user(platform, "ada@example.com")
    create_user(platform, "carol@example.com")
    headers = {"Authorization": f"Bearer {owner.api_key}"}
    app = client.post("/apps", json={"name": "shop"}, headers=headers).json()
    key = client.post("/account/keys", json={"public_key": SAMPLES["public_key"]}, headers=headers)
    client.post("/apps/shop/collaborators", json={"user": "carol@example.com"}, headers=headers)
    client.post("/apps/shop/domains", json={"hostname": "shop.example.org"}, headers=headers)
    _, offered = transfer.offer(platform, owner.account, "shop", "carol@example.com")
    grant = oauth.create_authorization(
        platform, owner.account, scopes=["read"], description="ci", expires_in=3600
    )
    return {
        "app": app["id"],
        "key": key.json()["id"],
        "collaborator": "carol@example.com",
        "domain": "shop.example.org",
        "transfer_id": offered.id,
        "authorization": grant.authorization.id,
        "account": "ada@example.com",
        "release": "1",
        "build": "00000000-0000-4000-8000-000000000001",
        "slug": "00000000-0000-4000-8000-000000000002",
        "dyno": "web.1",
        "ptype": "web",
        "drain": "00000000-0000-4000-8000-000000000003",
        "credential": "00000000-0000-4000-8000-000000000004",
        "session_id": "00000000-0000-4000-8000-000000000005",
    }


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_every_operation_refuses_another_tenant(
    client: TestClient, platform: Platform, tenant_ids: dict[str, str]
) -> None:
    intruder = create_user(platform, "mallory@example.com")
    headers = {"Authorization": f"Bearer {intruder.api_key}"}
    spec = client.get("/openapi.json").json()
    checked, failures = 0, []
    for method, template, op in operations(spec):
        path = template
        for name, value in tenant_ids.items():
            path = path.replace("{" + name + "}", value)
        path = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-00000000000f", path)
        body = None
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content:
            body = sample(spec, content["schema"])
        elif method in ("POST", "PUT", "PATCH"):
            body = {"command": SAMPLES["command"]}  # routes that read their body themselves
        response = client.request(
            method, path, params={"confirm": "shop"}, json=body, headers=headers
        )
        checked += 1
        if response.status_code not in (403, 404):
            failures.append(f"{method} {template}: {response.status_code} {response.text[:120]}")
    assert checked > 40
    assert failures == [], "\n".join(failures)


def test_the_owner_still_reaches_the_same_ids(
    client: TestClient, platform: Platform, tenant_ids: dict[str, str]
) -> None:
    """The ids are real: the owner gets them."""
    with platform.store.read() as tx:
        owner = tx.find_account("ada@example.com")
    assert owner is not None
    key = oauth.create_authorization(
        platform, owner, scopes=["global"], description="t", expires_in=60
    )
    headers = {"Authorization": f"Bearer {key.access_token}"}
    assert client.get(f"/apps/{tenant_ids['app']}", headers=headers).status_code == 200
    assert client.get(f"/account/keys/{tenant_ids['key']}", headers=headers).status_code == 200
