"""signup, login with a password (and a second factor), password:reset, password:change,
auth:sessions and sessions:destroy, against a small fake of those API routes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from dockyard.cli.main import cli
from dockyard.cli.netrc import Credentials, Netrc
from dockyard.client.http import ApiClient
from tests.cli.fakeapi import API_URL, FakeApi, make_context

TOKEN = "dkya_" + "t" * 43


class AccountsApi:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        body: Any = json.loads(request.content) if request.content else None
        if (method, path) == ("POST", "/oauth/authorizations"):
            basic = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            if basic != "dev@example.com:correct horse battery staple":
                return httpx.Response(
                    401, json={"id": "unauthorized", "message": "Invalid credentials provided."}
                )
            if request.headers.get("heroku-two-factor-code") != "123456":
                return httpx.Response(403, json={"id": "two_factor", "message": "code needed"})
            return httpx.Response(201, json={"id": "a1", "access_token": {"token": TOKEN}})
        if (method, path) == ("GET", "/account"):
            return httpx.Response(200, json={"id": "u1", "email": "dev@example.com"})
        if (method, path) == ("POST", "/signups"):
            return httpx.Response(
                202, json={"email": body["email"], "message": "Check your mailbox."}
            )
        if (method, path) == ("GET", "/signups/dyv_x/verify"):
            return httpx.Response(200, json={"email": "new@example.com"})
        if (method, path) == ("POST", "/signups/dyv_x/verify"):
            return httpx.Response(201, json={"email": "new@example.com"})
        if (method, path) == ("POST", "/password-resets"):
            return httpx.Response(202, json={"message": "If an account uses this address..."})
        if (method, path) == ("GET", "/account/sessions"):
            return httpx.Response(
                200, json=[{"id": "s1", "kind": "web", "ip_address": "192.0.2.1", "current": True}]
            )
        if (method, path) == ("DELETE", "/account/sessions/s1"):
            return httpx.Response(200, json={"id": "s1"})
        return httpx.Response(404, json={"id": "not_found", "message": path})


def run(
    api: AccountsApi, home: Path, *args: str, input: str | None = None, key: bool = False
) -> Result:
    env = {"HOME": str(home), "DOCKYARD_API_URL": API_URL}
    if key:
        env["DOCKYARD_API_KEY"] = TOKEN
    context = make_context(
        FakeApi(),
        env=env,
        api_factory=lambda url, k: ApiClient(url, k, transport=httpx.MockTransport(api.handle)),
    )
    return CliRunner().invoke(cli, list(args), obj=context, input=input)


def test_login_with_a_password_and_a_second_factor_stores_the_token(tmp_path: Path) -> None:
    api = AccountsApi()
    result = run(
        api, tmp_path, "login", input="dev@example.com\ncorrect horse battery staple\n123456\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.stderr and "Two-factor code:" in result.stderr
    assert "correct horse" not in result.output
    first, second = api.requests[0], api.requests[1]
    assert (first.method, first.url.path) == ("POST", "/oauth/authorizations")
    assert json.loads(first.content)["scope"] == ["global"]
    assert second.headers["heroku-two-factor-code"] == "123456"
    assert Netrc(tmp_path / ".netrc").get("localhost") == Credentials("dev@example.com", TOKEN)


def test_a_wrong_password_stores_nothing(tmp_path: Path) -> None:
    result = run(AccountsApi(), tmp_path, "login", "--email", "dev@example.com", input="nope\n")
    assert result.exit_code == 1
    assert "Invalid credentials provided." in result.stderr
    assert not (tmp_path / ".netrc").exists()


def test_signup_then_finish_with_the_mailed_token(tmp_path: Path) -> None:
    api = AccountsApi()
    started = run(api, tmp_path, "signup", "new@example.com", "--name", "New")
    assert started.exit_code == 0 and "Check your mailbox." in started.stderr
    assert json.loads(api.requests[0].content) == {"email": "new@example.com", "name": "New"}
    password = "seven purple otters ride north"
    done = run(api, tmp_path, "signup", "--token", "dyv_x", input=f"{password}\n{password}\n")
    assert done.exit_code == 0, done.output
    assert json.loads(api.requests[-1].content) == {"password": password}


def test_password_reset_asks_for_a_link(tmp_path: Path) -> None:
    api = AccountsApi()
    result = run(api, tmp_path, "password:reset", "dev@example.com")
    assert result.exit_code == 0
    assert json.loads(api.requests[0].content) == {"email": "dev@example.com"}


def test_sessions_are_listed_and_destroyed(tmp_path: Path) -> None:
    api = AccountsApi()
    listed = run(api, tmp_path, "auth:sessions", key=True)
    assert listed.exit_code == 0 and "s1" in listed.stdout and "192.0.2.1" in listed.stdout
    destroyed = run(api, tmp_path, "sessions:destroy", "s1", key=True)
    assert destroyed.exit_code == 0
    assert (api.requests[-1].method, api.requests[-1].url.path) == (
        "DELETE",
        "/account/sessions/s1",
    )
