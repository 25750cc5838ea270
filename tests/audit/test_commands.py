"""``dockyard audit events | verify | witness`` (the CLI, in tests/audit with the rest of the audit
log's tests) against the real Platform API served by uvicorn on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import uvicorn
from click.testing import CliRunner, Result

from dockyard._util.clock import FakeClock
from dockyard.api.app import create_app
from dockyard.audit.checkpoint import NoteVerifier, open_checkpoint
from dockyard.audit.witness import load_witness_key
from dockyard.audit.writer import AuditWriter, WriterConfig, WriterThread
from dockyard.cli.context import CliContext
from dockyard.cli.main import cli
from dockyard.control import apps
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.settings import Settings
from tests.audit.test_verify import rewrite_entry
from tests.conftest import make_settings

OPERATOR = "ops@example.com"


@pytest.fixture
def witness_dir(tmp_path: Path) -> Path:
    return tmp_path / "witness"


@pytest.fixture
def settings(tmp_path: Path, witness_dir: Path) -> Settings:
    witness_key = load_witness_key(witness_dir, "witness.test/w1").verifier.vkey()
    return make_settings(
        tmp_path / "data",
        DOCKYARD_AUDIT_OPERATORS=OPERATOR,
        DOCKYARD_AUDIT_WITNESS_KEYS=witness_key,
    )


@pytest.fixture
def writer_thread(settings: Settings) -> Iterator[WriterThread]:
    thread = WriterThread(WriterConfig.from_settings(settings))
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def audit_writer(writer_thread: WriterThread) -> AuditWriter:
    assert writer_thread.writer is not None
    return writer_thread.writer


@pytest.fixture
def api_url(platform: Platform) -> Iterator[str]:
    app = create_app(platform, internal_token="internal-test-token")
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # start-up wait only
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def user(platform: Platform) -> NewUser:
    return create_user(platform, "dev@example.com")


@pytest.fixture
def operator(platform: Platform) -> NewUser:
    return create_user(platform, OPERATOR)


def run(
    api_url: str, tmp_path: Path, *args: str, key: str = "", clock: FakeClock | None = None
) -> Result:
    env = {"DOCKYARD_API_URL": api_url, "HOME": str(tmp_path / "home"), "DOCKYARD_API_KEY": key}
    context = CliContext(env=env, terminal=False, **({"clock": clock} if clock else {}))
    return CliRunner().invoke(cli, list(args), obj=context)


def test_events_lists_my_events_each_proven(
    api_url: str, tmp_path: Path, user: NewUser, platform: Platform, audit_writer: AuditWriter
) -> None:
    apps.create_app(platform, user.account, "shop")
    result = run(
        api_url,
        tmp_path,
        "audit",
        "events",
        "--log-key",
        audit_writer.verifier.vkey(),
        key=user.api_key,
    )
    assert result.exit_code == 0, result.output
    assert "app.create" in result.stdout
    assert "account.create" in result.stdout
    assert "3 event(s), each proven in the checkpoint of" in result.stderr
    as_json = run(api_url, tmp_path, "audit:events", "-a", "shop", "--json", key=user.api_key)
    assert [e["event"]["action"] for e in json.loads(as_json.stdout)["events"]] == ["app.create"]


def test_verify_over_the_api_is_for_operators(
    api_url: str, tmp_path: Path, user: NewUser, operator: NewUser, audit_writer: AuditWriter
) -> None:
    vkey = audit_writer.verifier.vkey()
    refused = run(api_url, tmp_path, "audit", "verify", "--log-key", vkey, key=user.api_key)
    assert refused.exit_code == 1
    assert "Only operators" in refused.stderr
    result = run(api_url, tmp_path, "audit", "verify", "--log-key", vkey, key=operator.api_key)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: ")


def test_verify_of_an_edited_log_directory_names_the_entry(
    tmp_path: Path,
    settings: Settings,
    platform: Platform,
    user: NewUser,
    writer_thread: WriterThread,
) -> None:
    for name in ("one", "two", "three"):
        apps.create_app(platform, user.account, name)
    writer_thread.stop()
    rewrite_entry(settings.audit_dir, 4, {"outcome": "failure"})
    result = run(
        "http://127.0.0.1:9", tmp_path, "audit", "verify", "--log-dir", str(settings.audit_dir)
    )
    assert result.exit_code == 1
    assert "first entry that does not match: 4" in result.stderr


def test_an_export_file_verifies_against_a_kept_checkpoint(
    api_url: str, tmp_path: Path, operator: NewUser, platform: Platform, audit_writer: AuditWriter
) -> None:
    import httpx

    apps.create_app(platform, operator.account, "shop")
    headers = {"Authorization": f"Bearer {operator.api_key}"}
    (tmp_path / "export.jsonl").write_text(
        httpx.get(f"{api_url}/audit/export", headers=headers).text
    )
    (tmp_path / "checkpoint").write_text(httpx.get(f"{api_url}/audit/checkpoint").text)
    args = ["audit", "verify", "--export", str(tmp_path / "export.jsonl"), "--checkpoint"]
    vkey = audit_writer.verifier.vkey()
    result = run(api_url, tmp_path, *args, str(tmp_path / "checkpoint"), "--log-key", vkey)
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"success"', '"failure"')
    (tmp_path / "export.jsonl").write_text("\n".join(lines) + "\n")
    tampered = run(api_url, tmp_path, *args, str(tmp_path / "checkpoint"), "--log-key", vkey)
    assert tampered.exit_code == 1
    assert "FAILED" in tampered.stderr


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alarms"
    server.shutdown()
    server.server_close()


def test_the_witness_cosigns_then_alarms_when_the_writer_stops(
    api_url: str,
    tmp_path: Path,
    witness_dir: Path,
    writer_thread: WriterThread,
    webhook: str,
) -> None:
    assert writer_thread.writer is not None
    vkey = writer_thread.writer.verifier.vkey()
    clock = FakeClock(datetime.now(UTC))
    base = ["audit", "witness", "--state", str(witness_dir), "--interval", "60", "--once"]
    first_run = run(api_url, tmp_path, *base, clock=clock)
    assert first_run.exit_code == 1
    assert "--log-key" in first_run.stderr
    ok = run(api_url, tmp_path, *base, "--log-key", vkey, "--webhook", webhook, clock=clock)
    assert ok.exit_code == 0, ok.output
    assert " OK size " in ok.stderr
    import httpx

    kept = httpx.get(f"{api_url}/audit/cosignatures").json()["checkpoints"]
    witness_key = load_witness_key(witness_dir).verifier
    opened = open_checkpoint(kept[0], NoteVerifier.from_vkey(vkey), (witness_key,))
    assert opened.cosigners[0][0] == "witness.test/w1"
    writer_thread.stop()
    clock.advance(2.5 * 60)
    alarm = run(api_url, tmp_path, *base, "--webhook", webhook, clock=clock)
    assert alarm.exit_code == 1
    assert "ALARM stale: no new checkpoint for 150 s" in alarm.stderr
    assert [h["alarm"] for h in Hook.received] == ["stale"]
    assert Hook.received[0]["log"] == api_url


def test_the_witness_shows_its_key(tmp_path: Path, witness_dir: Path) -> None:
    result = run(
        "http://127.0.0.1:9", tmp_path, "audit:witness", "--state", str(witness_dir), "--show-key"
    )
    assert result.exit_code == 0
    assert result.stdout.strip() == load_witness_key(witness_dir).verifier.vkey()
