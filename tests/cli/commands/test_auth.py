"""login, logout, auth:whoami, auth:token: keys checked with GET /account, kept in ~/.netrc."""

from __future__ import annotations

import stat
from pathlib import Path

from dockyard.cli.netrc import Credentials, Netrc
from tests.cli.conftest import Dock
from tests.cli.fakeapi import API_KEY, FakeApi


def _logged_out(env: dict[str, str]) -> None:
    del env["DOCKYARD_API_KEY"]


def test_login_with_flags_checks_the_key_and_stores_it(
    dock: Dock, fake: FakeApi, env: dict[str, str], home: Path
) -> None:
    _logged_out(env)
    (home / ".netrc").write_text("machine github.com login octo password gh\n")
    result = dock("login", "--email", "dev@example.com", "--api-key", API_KEY)
    assert result.exit_code == 0, result.output
    assert "Logged in as dev@example.com" in result.stderr
    assert fake.sent() == [("GET", "/account", None)]
    assert fake.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    netrc = Netrc(home / ".netrc")
    assert netrc.get("localhost") == Credentials("dev@example.com", API_KEY)
    assert netrc.get("github.com") == Credentials("octo", "gh")
    assert stat.S_IMODE((home / ".netrc").stat().st_mode) == 0o600


def test_login_prompts_for_a_hidden_key_with_api_key_and_no_value(
    dock: Dock, fake: FakeApi, env: dict[str, str], home: Path
) -> None:
    _logged_out(env)
    result = dock("login", "--email", "dev@example.com", "--api-key", "", input=f"{API_KEY}\n")
    assert result.exit_code == 1  # an empty key is refused, never sent
    assert "The API key is empty" in result.stderr
    assert fake.sent() == []


def test_then_commands_use_the_stored_key(dock: Dock, fake: FakeApi, env: dict[str, str]) -> None:
    _logged_out(env)
    assert dock("login", "--api-key", API_KEY).exit_code == 0
    result = dock("auth:whoami")
    assert result.exit_code == 0
    assert result.stdout == "dev@example.com\n"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_login_with_a_wrong_key_stores_nothing(
    dock: Dock, fake: FakeApi, env: dict[str, str], home: Path
) -> None:
    _logged_out(env)
    result = dock("login", "--email", "dev@example.com", "--api-key", "wrong")
    assert result.exit_code == 1
    assert result.stderr.endswith(" !    Invalid credentials provided.\n")
    assert not (home / ".netrc").exists()


def test_login_refuses_a_key_of_another_account(
    dock: Dock, env: dict[str, str], home: Path
) -> None:
    _logged_out(env)
    result = dock("login", "--email", "someone@example.com", "--api-key", API_KEY)
    assert result.exit_code == 1
    assert "belongs to dev@example.com, not someone@example.com" in result.stderr
    assert not (home / ".netrc").exists()


def test_login_uses_the_api_host_as_netrc_machine(
    dock: Dock, fake: FakeApi, env: dict[str, str], home: Path
) -> None:
    _logged_out(env)
    env["DOCKYARD_API_URL"] = "http://paas.internal:5000"
    fake.api_url = env["DOCKYARD_API_URL"]
    assert dock("login", "--api-key", API_KEY).exit_code == 0
    assert Netrc(home / ".netrc").hosts() == ["paas.internal"]


def test_logout_removes_only_this_host(dock: Dock, env: dict[str, str], home: Path) -> None:
    _logged_out(env)
    netrc = Netrc(home / ".netrc")
    netrc.put(["github.com"], Credentials("octo", "gh"))
    netrc.put(["localhost"], Credentials("dev@example.com", API_KEY))
    result = dock("logout")
    assert result.exit_code == 0
    assert "Logging out... done" in result.stderr
    assert netrc.hosts() == ["github.com"]
    assert dock("auth:whoami").exit_code == 1


def test_whoami_with_the_environment_key(dock: Dock) -> None:
    result = dock("whoami")
    assert (result.exit_code, result.stdout) == (0, "dev@example.com\n")


def test_token_prints_the_key_in_use(dock: Dock, env: dict[str, str], home: Path) -> None:
    _logged_out(env)
    Netrc(home / ".netrc").put(["localhost"], Credentials("dev@example.com", "stored-key"))
    result = dock("auth:token")
    assert (result.exit_code, result.stdout) == (0, "stored-key\n")
