"""The single exit point: exit codes, the one-line error format, aliases, the test hook."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dockyard.cli.main import main
from dockyard.client.http import ApiClient
from tests.cli.conftest import Dock
from tests.cli.fakeapi import API_KEY, FakeApi, make_context


def test_api_error_is_one_bang_line_on_stderr_and_exit_1(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.errors[("GET", "/apps/shop/config-vars")] = (
        403,
        {"id": "forbidden", "message": "You do not have access to the app shop.\nAsk its owner."},
    )
    result = dock("config", "-a", "shop")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == " !    You do not have access to the app shop. Ask its owner.\n"


def test_not_found_app_exits_1(dock: Dock) -> None:
    result = dock("apps:info", "-a", "ghost")
    assert result.exit_code == 1
    assert result.stderr == " !    Couldn't find that app: ghost\n"


def test_unreachable_api_is_reported_not_raised(dock: Dock, fake: FakeApi) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = dock(
        "apps",
        api_factory=lambda url, key: ApiClient(url, key, transport=httpx.MockTransport(refuse)),
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(" !    cannot reach the Dockyard API at http://localhost:5000")
    assert result.stderr.count("\n") == 1


def test_usage_error_exits_2(dock: Dock) -> None:
    result = dock("config:set")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_unknown_command_exits_2(dock: Dock) -> None:
    assert dock("frobnicate").exit_code == 2


def test_ctrl_c_exits_130(dock: Dock) -> None:
    def interrupt(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    result = dock(
        "apps",
        api_factory=lambda url, key: ApiClient(url, key, transport=httpx.MockTransport(interrupt)),
    )
    assert result.exit_code == 130


def test_without_credentials_says_how_to_log_in(dock: Dock, env: dict[str, str]) -> None:
    del env["DOCKYARD_API_KEY"]
    result = dock("apps")
    assert result.exit_code == 1
    assert "Not logged in" in result.stderr and "dockyard login" in result.stderr


def test_bad_api_url_is_explained(dock: Dock, env: dict[str, str]) -> None:
    env["DOCKYARD_API_URL"] = "localhost:5000"
    result = dock("apps")
    assert result.exit_code == 1
    assert "DOCKYARD_API_URL" in result.stderr


def test_aliases_run_the_same_command(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.add_release("shop", "Deploy 1")
    fake.add_release("shop", "Deploy 2")
    result = dock("rollback", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("POST", "/apps/shop/releases", {"release": "rel-shop-1"})]


def test_aliases_are_not_listed_in_help(dock: Dock) -> None:
    result = dock("--help")
    assert "releases:rollback" in result.stdout
    assert "\n  rollback " not in result.stdout


def test_main_takes_argv_and_a_context(
    fake: FakeApi, env: dict[str, str], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_app("shop")
    with pytest.raises(SystemExit) as exited:
        main(["auth:whoami"], obj=make_context(fake, env=env, cwd=workdir))
    assert exited.value.code == 0
    assert capsys.readouterr().out == "dev@example.com\n"
    assert fake.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_main_exit_code_on_error(
    fake: FakeApi, env: dict[str, str], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["apps:info", "-a", "ghost"], obj=make_context(fake, env=env, cwd=workdir))
    assert exited.value.code == 1
    assert capsys.readouterr().err == " !    Couldn't find that app: ghost\n"
