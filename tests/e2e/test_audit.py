"""The audit log of a real Dockyard (``make up``): the writer process appends what the API does, the
CLI reads and verifies it, a witness cosigns it, and a hung writer makes ``POST /account/keys`` fail
with 503 without adding the key."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def writer_pid(dockyard: Dockyard) -> int:
    """The pid of this platform's ``audit-writer`` process (found by its command line and data
    directory)."""
    data_dir = dockyard.env["DOCKYARD_DATA_DIR"].encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"audit-writer" in cmdline and b"dockyard.serve" in cmdline and data_dir in environ:
            return int(entry.name)
    raise AssertionError(f"no audit-writer process\n{dockyard.platform_log()}")


@pytest.fixture(scope="module")
def api_key(dockyard: Dockyard) -> str:
    created = dockyard.cli("admin:create-user", "auditor@example.com")
    found = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert found, created.stdout
    dockyard.cli("login", "--email", "auditor@example.com", "--api-key", found.group(1))
    return found.group(1)


def public_key(dockyard: Dockyard, tmp_path: Path) -> str:
    identity = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", str(identity)],
        check=True,
    )
    return (tmp_path / "id_ed25519.pub").read_text().strip()


def log_key(dockyard: Dockyard) -> str:
    return (Path(dockyard.env["DOCKYARD_DATA_DIR"]) / "audit" / "key.pub").read_text().strip()


def test_actions_are_recorded_read_back_verified_and_witnessed(
    dockyard: Dockyard, api_key: str, tmp_path: Path
) -> None:
    created = dockyard.api("POST", "/apps", api_key, json={"name": "audited"})
    assert created.status_code == 201, created.text
    events = dockyard.cli("audit", "events", "--log-key", log_key(dockyard))
    assert "app.create" in events.stdout
    assert "account.create" in events.stdout
    assert "each proven in the checkpoint" in events.stderr
    audit_dir = Path(dockyard.env["DOCKYARD_DATA_DIR"]) / "audit"
    verified = dockyard.cli("audit", "verify", "--log-dir", str(audit_dir))
    assert verified.stdout.startswith("OK: ")
    witness = dockyard.cli(
        "audit",
        "witness",
        "--once",
        "--state",
        str(tmp_path / "witness"),
        "--name",
        "witness.e2e/w1",
        "--log-key",
        log_key(dockyard),
    )
    assert " OK size " in witness.stderr


def test_a_hung_writer_makes_adding_a_key_fail_with_503_and_add_nothing(
    dockyard: Dockyard, api_key: str, tmp_path: Path
) -> None:
    key = public_key(dockyard, tmp_path)
    pid = writer_pid(dockyard)
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        refused = dockyard.api("POST", "/account/keys", api_key, json={"public_key": key})
        waited = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert refused.status_code == 503, refused.text
    assert refused.json()["id"] == "service_unavailable"
    assert waited < 15
    listed = dockyard.api("GET", "/account/keys", api_key)
    assert listed.json() == []
    events = dockyard.api("GET", "/account/audit-events", api_key).json()["events"]
    assert all(e["event"]["action"] != "ssh_key.add" for e in events)  # the late append was dropped
    added = dockyard.api("POST", "/account/keys", api_key, json={"public_key": key})
    assert added.status_code == 201, added.text
