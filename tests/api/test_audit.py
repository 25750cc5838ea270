"""The audit log through the API: what tenants and operators read, the public checkpoint and proofs,
and sensitive actions failing closed (503, nothing changed) while the audit writer is stopped."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.audit.checkpoint import NoteVerifier, open_checkpoint
from dockyard.audit.event import value_hash
from dockyard.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from dockyard.audit.verify import verify_entries
from dockyard.audit.writer import AuditWriter, WriterConfig, WriterThread
from dockyard.control.context import Platform
from dockyard.settings import Settings
from tests.api.conftest import User
from tests.conftest import make_settings

OPERATOR = "ops@example.com"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data", DOCKYARD_AUDIT_OPERATORS=f"{OPERATOR}, boss@example.com"
    )


@pytest.fixture
def writer_thread(settings: Settings) -> Iterator[WriterThread]:
    thread = WriterThread(WriterConfig.from_settings(settings))
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def audit_writer(writer_thread: WriterThread) -> AuditWriter:
    """The platform's writer, stoppable by the test through ``writer_thread``."""
    assert writer_thread.writer is not None
    return writer_thread.writer


def ssh_key(comment: str = "laptop", fill: bytes = b"k") -> str:
    blob = b"".join(struct.pack(">I", len(f)) + f for f in (b"ssh-ed25519", fill * 32))
    return "ssh-ed25519 " + base64.b64encode(blob).decode() + " " + comment


def log_key(client: TestClient) -> NoteVerifier:
    response = client.get("/audit/log-key")
    assert response.status_code == 200
    return NoteVerifier.from_vkey(response.text)


def check_page(client: TestClient, page: dict[str, object]) -> list[dict[str, object]]:
    """Every event of an events answer is in the signed checkpoint it carries."""
    checkpoint = open_checkpoint(str(page["checkpoint"]), log_key(client)).checkpoint
    assert checkpoint.size == page["tree_size"]
    events = page["events"]
    assert isinstance(events, list)
    for item in events:
        leaf = leaf_hash(item["entry"].encode())
        assert leaf.hex() == item["leaf_hash"]
        proof = [base64.b64decode(h) for h in item["inclusion_proof"]]
        assert verify_inclusion(item["seq"], checkpoint.size, leaf, proof, checkpoint.root)
    return [item["event"] for item in events]


def test_a_new_ssh_key_is_recorded_with_who_how_where_and_a_proof(
    client: TestClient, alice: User
) -> None:
    headers = {**alice.headers, "User-Agent": "laptop-cli/1.0", "X-Request-Id": "r" * 24}
    added = client.post("/account/keys", json={"public_key": ssh_key()}, headers=headers)
    assert added.status_code == 201
    page = client.get("/account/audit-events", headers=alice.headers).json()
    events = check_page(client, page)
    event = next(e for e in events if e["action"] == "ssh_key.add")
    me = client.get("/account", headers=alice.headers).json()
    assert event["actor"] == {"type": "account", "id": me["id"]}
    assert event["account"] == me["id"]
    assert event["auth"] == "api_key"
    assert event["ip"] == "testclient"
    assert event["ua"] == "laptop-cli/1.0"
    assert event["request_id"] == "r" * 24
    assert event["outcome"] == "success"
    assert event["target"]["name"] == added.json()["fingerprint"]
    assert event["ts"].endswith("Z")


def test_with_the_writer_stopped_adding_a_key_answers_503_and_adds_nothing(
    client: TestClient, alice: User, writer_thread: WriterThread
) -> None:
    writer_thread.stop()
    response = client.post("/account/keys", json={"public_key": ssh_key()}, headers=alice.headers)
    assert response.status_code == 503
    assert response.json()["id"] == "service_unavailable"
    assert "audit log is unavailable" in response.json()["message"]
    assert client.get("/account/keys", headers=alice.headers).json() == []


def test_a_config_change_records_key_names_and_value_hashes_never_the_value(
    client: TestClient, alice: User, settings: Settings
) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    secret = "CANARY-4f1d2c-never-in-the-audit-log"
    changed = client.patch(
        "/apps/shop/config-vars", json={"DATABASE_PASSWORD": secret}, headers=alice.headers
    )
    assert changed.status_code == 200
    events = check_page(client, client.get("/apps/shop/audit-events", headers=alice.headers).json())
    update = next(e for e in events if e["action"] == "config.update")
    assert update["details"]["changes"] == {
        "DATABASE_PASSWORD": value_hash(app["id"], "DATABASE_PASSWORD", secret)
    }
    for path in settings.audit_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_tenants_read_their_own_account_and_apps_only(
    client: TestClient, alice: User, bob: User
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    client.post("/account/keys", json={"public_key": ssh_key()}, headers=alice.headers)
    bobs = check_page(client, client.get("/account/audit-events", headers=bob.headers).json())
    assert all(e["action"] not in ("ssh_key.add", "app.create") for e in bobs)
    assert client.get("/apps/shop/audit-events", headers=bob.headers).status_code == 404
    assert client.get("/audit/events", headers=bob.headers).status_code == 403
    shared = client.post(
        "/apps/shop/collaborators", json={"user": bob.email}, headers=alice.headers
    )
    assert shared.status_code == 201
    app_events = client.get("/apps/shop/audit-events", headers=bob.headers).json()
    actions = [e["action"] for e in check_page(client, app_events)]
    assert actions == ["collaborator.add", "app.create"]  # newest first; alice's key is hers


def test_events_page_back_with_before(client: TestClient, alice: User) -> None:
    for name in ("one", "two", "three"):
        client.post("/apps", json={"name": name}, headers=alice.headers)
    first = client.get("/account/audit-events?limit=2", headers=alice.headers).json()
    assert [e["event"]["target"]["name"] for e in first["events"]] == ["three", "two"]
    older = client.get(
        f"/account/audit-events?limit=2&before={first['next_before']}", headers=alice.headers
    ).json()
    assert [e["event"]["target"]["name"] for e in older["events"]][:1] == ["one"]


def test_operators_read_and_export_everything_and_the_export_verifies(
    client: TestClient, alice: User, platform: Platform
) -> None:
    from dockyard.control.accounts import create_user

    operator = User(OPERATOR, create_user(platform, OPERATOR).api_key)
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    everything = client.get("/audit/events?limit=1000", headers=operator.headers).json()
    actions = [e["action"] for e in check_page(client, everything)]
    assert "app.create" in actions
    assert "audit.writer.start" in actions
    assert client.get("/audit/export", headers=alice.headers).status_code == 403
    export = client.get("/audit/export", headers=operator.headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    entries = [line.encode() for line in export.text.splitlines()]
    note = client.get("/audit/checkpoint").text
    checkpoint = open_checkpoint(note, log_key(client)).checkpoint
    report = verify_entries(entries, checkpoint)
    assert report.ok, report.summary()
    assert report.checked >= checkpoint.size


def test_the_public_checkpoint_and_consistency_proofs_need_no_credentials(
    client: TestClient, alice: User
) -> None:
    key = log_key(client)
    first = open_checkpoint(client.get("/audit/checkpoint").text, key).checkpoint
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    second = open_checkpoint(client.get("/audit/checkpoint").text, key).checkpoint
    assert second.size > first.size
    proof = client.get(f"/audit/proof/consistency?first={first.size}&second={second.size}").json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    assert verify_consistency(first.size, second.size, first.root, second.root, hashes)
    leaves = client.get(f"/audit/leaf-hashes?start=0&end={second.size}").json()["hashes"]
    assert len(leaves) == second.size
    too_big = client.get(f"/audit/proof/consistency?first=1&second={second.size + 5}")
    assert too_big.status_code == 422


def test_an_export_for_a_tenant_is_json_lines_with_the_checkpoint_first(
    client: TestClient, alice: User
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    response = client.get("/account/audit-events/export", headers=alice.headers)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    header, events = lines[0], lines[1:]
    checkpoint = open_checkpoint(header["checkpoint"], log_key(client)).checkpoint
    assert [e["event"]["action"] for e in events] == [
        "app.create",
        "api_key.create",
        "account.create",
    ]
    for item in events:
        proof = [base64.b64decode(h) for h in item["inclusion_proof"]]
        leaf = leaf_hash(item["entry"].encode())
        assert verify_inclusion(item["seq"], checkpoint.size, leaf, proof, checkpoint.root)
