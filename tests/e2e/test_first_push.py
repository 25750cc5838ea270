"""The Foundation's end-to-end path: account → app → git push → 200 through the router → config, scale,
rollback, and a broken push that leaves the app serving."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SERVER = """\
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"greeting={os.environ.get('GREETING', 'none')} dyno={os.environ['DYNO']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"served {self.path}", flush=True)

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"""


def _commit(dockyard: Dockyard, repo: Path, message: str) -> None:
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", message, cwd=repo)


@pytest.fixture(scope="module")
def app(dockyard: Dockyard, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    created = dockyard.cli("admin:create-user", "dev@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    api_key = key.group(1)
    dockyard.cli("login", "--email", "dev@example.com", "--api-key", api_key)
    response = dockyard.api("POST", "/apps", api_key, json={"name": "hello-e2e"})
    assert response.status_code == 201, response.text
    repo = tmp_path_factory.mktemp("hello-e2e")
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "server.py").write_text(SERVER)
    (repo / "Procfile").write_text("web: python3 server.py\n")
    _commit(dockyard, repo, "first")
    dockyard.cli("git:remote", "-a", "hello-e2e", cwd=repo)
    return "hello-e2e", repo, api_key


def test_push_builds_releases_and_serves(dockyard: Dockyard, app: tuple[str, Path, str]) -> None:
    name, repo, _ = app
    push = dockyard.git("push", "dockyard", "main", cwd=repo)
    output = push.stdout + push.stderr
    assert "remote: -----> " in output
    assert "Released v2" in output
    assert dockyard.wait_for(name, "greeting=none").status_code == 200


def test_config_set_makes_a_release_whose_dynos_see_the_var(
    dockyard: Dockyard, app: tuple[str, Path, str]
) -> None:
    name, _, _ = app
    dockyard.cli("config:set", "GREETING=hello", "-a", name)
    dockyard.wait_for(name, "greeting=hello")
    releases = dockyard.cli("releases", "-a", name, "--json").stdout
    assert '"Set GREETING config var"' in releases


def test_scaling_web_runs_two_dynos(dockyard: Dockyard, app: tuple[str, Path, str]) -> None:
    name, _, api_key = app
    dockyard.cli("ps:scale", "web=2", "-a", name)
    deadline = time.monotonic() + 90
    states: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        dynos = dockyard.api("GET", f"/apps/{name}/dynos", api_key).json()
        states = sorted((d["name"], d["state"]) for d in dynos)
        if states == [("web.1", "up"), ("web.2", "up")]:
            break
        time.sleep(0.5)
    assert states == [("web.1", "up"), ("web.2", "up")]
    served_by = {dockyard.wait_for(name, "dyno=").text.split("dyno=")[1].strip() for _ in range(30)}
    assert served_by == {"web.1", "web.2"}


def test_rollback_restores_the_previous_release(
    dockyard: Dockyard, app: tuple[str, Path, str]
) -> None:
    name, _, _ = app
    dockyard.cli("releases:rollback", "v2", "-a", name)
    dockyard.wait_for(name, "greeting=none")
    assert "Rollback to v2" in dockyard.cli("releases", "-a", name).stdout


def test_a_broken_procfile_fails_the_push_and_the_app_keeps_serving(
    dockyard: Dockyard, app: tuple[str, Path, str]
) -> None:
    name, repo, _ = app
    before = dockyard.cli("releases", "-a", name, "--json").stdout
    (repo / "Procfile").write_text("web: python3 server.py\nworker:\n")
    _commit(dockyard, repo, "broken")
    push = dockyard.git("push", "dockyard", "main", cwd=repo, check=False)
    assert push.returncode != 0
    assert 'Procfile line 2: "worker" has no command' in push.stderr + push.stdout
    assert dockyard.cli("releases", "-a", name, "--json").stdout == before
    assert dockyard.get(name).status_code == 200


def test_the_app_keeps_serving_while_the_api_is_down_and_the_api_comes_back(
    dockyard: Dockyard, app: tuple[str, Path, str]
) -> None:
    name, _, api_key = app
    pids = re.findall(r"started api \(pid (\d+)\)", dockyard.platform_log(whole=True))
    os.kill(int(pids[-1]), signal.SIGKILL)
    for _ in range(20):
        assert dockyard.get(name).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if dockyard.api("GET", f"/apps/{name}", api_key).status_code == 200:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the supervisor did not restart the API")
    assert "api exited with status -9; restarting in 1 s" in dockyard.platform_log(whole=True)


def test_logs_show_the_app_and_the_platform(dockyard: Dockyard, app: tuple[str, Path, str]) -> None:
    name, _, _ = app
    logs = dockyard.cli("logs", "-n", "200", "-a", name).stdout
    assert re.search(r"app\[web\.1\]: served /", logs), logs
    assert "heroku[api]: Set GREETING config var by dev@example.com" in logs
    assert "heroku[router]: at=info" in logs
