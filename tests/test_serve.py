"""The composition root's operator commands (the processes themselves run in tests/e2e)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard import serve
from dockyard._util.clock import FakeClock
from dockyard.audit.writer import AuditWriter
from dockyard.control import mail
from dockyard.control.accounts import authenticate
from dockyard.control.context import Platform
from dockyard.settings import Settings, load_settings
from tests.control.mailbox import free_port, open_platform, start_mailbox


@pytest.fixture
def env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_audit_writer: Callable[[Settings], AuditWriter],
) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("DOCKYARD_DATA_DIR", str(data))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    start_audit_writer(load_settings())  # operator commands are audited
    return data


def test_admin_create_user_prints_a_key_that_authenticates(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["admin", "create-user", "ops@example.com"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"API key \(shown once\): (\S+)", out)
    assert key is not None
    platform = Platform.open(load_settings())
    try:
        assert authenticate(platform, key.group(1)).email == "ops@example.com"
    finally:
        platform.close()


def test_admin_errors_are_one_line_and_exit_1(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["admin", "create-user", "ops@example.com"]) == 0
    assert serve.main(["admin", "create-user", "ops@example.com"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "!    An account with email ops@example.com already exists"
    )
    assert serve.main(["admin", "create-user", "not-an-email"]) == 1


def test_migrate_creates_the_database(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["migrate"]) == 0
    assert (env / "dockyard.db").is_file()
    assert "up to date" in capsys.readouterr().out


def test_an_unknown_runtime_is_reported(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKYARD_AGENT_RUNTIME", "docker")
    assert serve.main(["stop-dynos"]) == 1
    assert "unknown runtime 'docker'" in capsys.readouterr().err


def _outbox_with_one_mail(data_dir: Path, clock: FakeClock) -> Settings:
    """Settings whose outbox holds a message written while no mail server was set."""
    platform = open_platform(data_dir, clock)
    mail.send(platform, mail.Mail("a@example.com", "Left behind", "x\n"))
    platform.close()
    return platform.settings


def test_mail_left_in_the_outbox_is_sent_when_the_api_starts(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = _outbox_with_one_mail(tmp_path / "data", clock)
    box = start_mailbox()
    try:
        with_smtp = replace(settings, smtp=replace(settings.smtp, url=box.url))
        assert serve.deliver_outbox(with_smtp) == 1
        assert [m["Subject"] for m in box.to("a@example.com")] == ["Left behind"]
        assert mail.pending(settings) == []
    finally:
        box.controller.stop()


def test_the_outbox_is_tried_again_while_the_mail_server_is_down(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = _outbox_with_one_mail(tmp_path / "data", clock)
    port = free_port()
    with_smtp = replace(settings, smtp=replace(settings.smtp, url=f"smtp://127.0.0.1:{port}"))
    waits: list[float] = []
    boxes = []

    def wait(seconds: float) -> None:  # the server comes up during the first wait
        waits.append(seconds)
        boxes.append(start_mailbox(port))

    try:
        assert serve.deliver_outbox(with_smtp, wait=wait) == 1
        assert waits == [mail.RETRY_INTERVAL]
        assert len(boxes[0].to("a@example.com")) == 1
    finally:
        for box in boxes:
            box.controller.stop()


def test_without_a_mail_server_the_outbox_is_left_alone(tmp_path: Path, clock: FakeClock) -> None:
    settings = _outbox_with_one_mail(tmp_path / "data", clock)
    assert serve.deliver_outbox(settings, wait=lambda _: pytest.fail("no retry")) == 0
    assert len(mail.pending(settings)) == 1
