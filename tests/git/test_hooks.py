"""The pre-receive hook entry point: its refusals when run outside a Dockyard push."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from dockyard._util import proc
from dockyard.control.context import Platform
from dockyard.git.hooks import ACCOUNT_ID_VAR, APP_ID_VAR, parse_ref_lines, pre_receive
from dockyard.settings import load_settings

ZERO = "0" * 40
SHA = "c" * 40


def test_ref_lines_are_parsed() -> None:
    text = f"{ZERO} {SHA} refs/heads/main\n\n{SHA} {ZERO} refs/heads/old\n"
    assert parse_ref_lines(text) == [(ZERO, SHA, "refs/heads/main"), (SHA, ZERO, "refs/heads/old")]


def test_a_push_that_did_not_come_through_dockyard_is_refused(tmp_path: Path) -> None:
    stdout = io.StringIO()
    code = pre_receive(io.StringIO(f"{ZERO} {SHA} refs/heads/main\n"), stdout, {}, tmp_path)

    assert code == 1
    assert stdout.getvalue().splitlines() == [
        " !     This repository accepts pushes only through Dockyard's git endpoint",
        " !     Push failed",
    ]


def test_an_unknown_app_fails_the_push(platform: Platform, tmp_path: Path) -> None:
    environ = platform.settings.to_env()
    environ[APP_ID_VAR] = "0b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10"
    environ[ACCOUNT_ID_VAR] = "9b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10"
    stdout = io.StringIO()

    code = pre_receive(io.StringIO(f"{ZERO} {SHA} refs/heads/main\n"), stdout, environ, tmp_path)

    assert code == 1
    lines = stdout.getvalue().splitlines()
    assert lines[0].startswith(" !     Account ")
    assert lines[-1] == " !     Push failed"


def test_settings_travel_to_the_hook_through_the_environment(platform: Platform) -> None:
    assert load_settings(platform.settings.to_env()) == platform.settings


def test_the_module_explains_its_usage() -> None:
    result = proc.run([sys.executable, "-m", "dockyard.git.hooks"], check=False)
    assert result.returncode == 2
    assert b"usage: python -m dockyard.git.hooks pre-receive" in result.stderr
