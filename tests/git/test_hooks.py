"""The pre-receive hook: a thin client that hands the push to the API and relays its output.
Pushes that build end to end are in ``test_http.py`` and ``test_ssh.py``."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard._util.secretfile import ensure_secret_file
from dockyard.control.context import Platform
from dockyard.git.hooks import (
    ACCOUNT_ID_VAR,
    API_ADDRESS_VAR,
    APP_ID_VAR,
    TOKEN_FILE_VAR,
    api_address,
    hook_environment,
    parse_ref_lines,
    pre_receive,
)
from dockyard.settings import ApiSettings, Settings
from tests.git.conftest import serve

ZERO = "0" * 40
SHA = "c" * 40
PUSHED = f"{ZERO} {SHA} refs/heads/main\n"
APP_ID = "0b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10"


def test_ref_lines_are_parsed() -> None:
    text = f"{ZERO} {SHA} refs/heads/main\n\n{SHA} {ZERO} refs/heads/old\n"
    assert parse_ref_lines(text) == [(ZERO, SHA, "refs/heads/main"), (SHA, ZERO, "refs/heads/old")]


def test_a_push_that_did_not_come_through_dockyard_is_refused(tmp_path: Path) -> None:
    stdout = io.StringIO()
    code = pre_receive(io.StringIO(PUSHED), stdout, {}, tmp_path)

    assert code == 1
    assert stdout.getvalue().splitlines() == [
        " !     This repository accepts pushes only through Dockyard's git endpoint",
        " !     Push failed",
    ]


def test_the_hook_environment_names_the_api_and_the_token_but_no_git_variables(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, api=ApiSettings(host="0.0.0.0", port=5123))  # noqa: S104
    base = {"PATH": "/usr/bin", "GIT_DIR": "/elsewhere", "LANG": "C.UTF-8"}

    env = hook_environment(settings, "app-1", "account-1", base)

    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        APP_ID_VAR: "app-1",
        ACCOUNT_ID_VAR: "account-1",
        API_ADDRESS_VAR: "127.0.0.1:5123",
        TOKEN_FILE_VAR: str(settings.internal_token_file),
    }


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", "127.0.0.1:80"), ("::", "[::1]:80"), ("10.1.2.3", "10.1.2.3:80")],
)
def test_the_hook_reaches_the_api_on_its_listening_address(host: str, address: str) -> None:
    assert api_address(Settings(api=ApiSettings(host=host, port=80))) == address


def _environ(platform: Platform, app_id: str = APP_ID) -> dict[str, str]:
    ensure_secret_file(platform.settings.internal_token_file)
    return hook_environment(platform.settings, app_id, "9b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10", {})


def test_when_the_api_does_not_answer_the_push_fails_saying_so(platform: Platform) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once it is closed
    environ = _environ(platform)
    environ[API_ADDRESS_VAR] = f"127.0.0.1:{port}"
    stdout = io.StringIO()

    code = pre_receive(io.StringIO(PUSHED), stdout, environ, platform.settings.repos_dir)

    assert code == 1
    lines = stdout.getvalue().splitlines()
    assert lines[0].startswith(f" !     The Dockyard API does not answer on 127.0.0.1:{port}")
    assert "Push again once it runs" in lines[0]
    assert lines[-1] == " !     Push failed"


def test_the_api_builds_the_push_and_the_hook_relays_its_reason_to_fail(
    platform: Platform,
) -> None:
    repo = platform.settings.repos_dir / f"{APP_ID}.git"
    stdout = io.StringIO()
    with serve(platform):
        code = pre_receive(io.StringIO(PUSHED), stdout, _environ(platform), repo)

    assert code == 1
    lines = stdout.getvalue().splitlines()
    assert lines[0].startswith(" !     Account ")  # the API looked the pusher up: nobody
    assert lines[-1] == " !     Push failed"


def test_a_push_the_api_refuses_fails_with_the_apis_reason(platform: Platform) -> None:
    stdout = io.StringIO()
    with serve(platform):
        code = pre_receive(
            io.StringIO(PUSHED), stdout, _environ(platform), platform.settings.repos_dir / "x.git"
        )

    assert code == 1
    lines = stdout.getvalue().splitlines()
    assert lines[0].startswith(" !     The Dockyard API refused the push (422): ")
    assert "is not the repository of app" in lines[0]


def test_a_wrong_token_is_refused(platform: Platform, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    stdout = io.StringIO()
    with serve(platform):
        environ = {**_environ(platform), TOKEN_FILE_VAR: str(wrong)}
        code = pre_receive(io.StringIO(PUSHED), stdout, environ, platform.settings.repos_dir)

    assert code == 1
    assert (
        stdout.getvalue()
        .splitlines()[0]
        .startswith(" !     The Dockyard API refused the push (401): ")
    )


@pytest.fixture
def one_shot_server() -> Iterator[tuple[str, list[bytes]]]:
    """A socket that answers one request with a chunked stream of two output lines split across
    chunks, then closes the connection before the outcome (as an API that dies mid-build)."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            received.append(body)
            lines = b'{"line": "-----> Building"}\n{"line": "       one"}\n'
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for chunk in (lines[:10], lines[10:]):
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", received
    thread.join(timeout=10)
    server.close()


def test_output_is_relayed_and_a_lost_connection_fails_the_push(
    platform: Platform, one_shot_server: tuple[str, list[bytes]]
) -> None:
    address, received = one_shot_server
    environ = {**_environ(platform), API_ADDRESS_VAR: address, "GIT_QUARANTINE_PATH": "/q"}
    stdout = io.StringIO()

    code = pre_receive(io.StringIO(PUSHED), stdout, environ, Path("/repo.git"))

    assert code == 1
    assert stdout.getvalue().splitlines() == [
        "-----> Building",
        "       one",
        " !     The connection to the Dockyard API was lost during the build",
        "",
        " !     Push failed",
    ]
    sent = json.loads(received[0])
    assert sent["refs"] == [[ZERO, SHA, "refs/heads/main"]]
    assert sent["repo"] == "/repo.git"
    assert sent["git_env"] == {"GIT_QUARANTINE_PATH": "/q"}


def test_the_hook_starts_without_the_control_plane() -> None:
    """What makes a push fast: the hook process imports no database, web or platform code."""
    script = (
        "import sys, dockyard.git.hooks\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'httpx', 'fastapi', 'starlette', 'http')"
        " or m.startswith(('dockyard.control', 'dockyard.store', 'dockyard.build'))]\n"
        "print(heavy)\n"
    )
    result = proc.run([sys.executable, "-c", script])
    assert result.text.strip() == "[]"


def test_the_module_explains_its_usage() -> None:
    result = proc.run([sys.executable, "-m", "dockyard.git.hooks"], check=False)
    assert result.returncode == 2
    assert b"usage: python -m dockyard.git.hooks pre-receive" in result.stderr
