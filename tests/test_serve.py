"""The composition root's operator commands (the processes themselves run in tests/e2e)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard import serve
from dockyard.audit.writer import AuditWriter
from dockyard.control.accounts import authenticate
from dockyard.control.context import Platform
from dockyard.settings import Settings, load_settings


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
