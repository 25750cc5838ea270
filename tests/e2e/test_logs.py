"""Logs end to end on a real platform (``make up``): a deployed app's output, router lines and platform
events in ``logs`` and ``logs --tail``; real syslog and HTTPS receivers get every line in Logplex's
framing; a stopped drain produces L10 without affecting the tail; the history survives a restart of
the logs process and is pruned at its limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import VENV_BIN, Dockyard
from tests.logs.support import HttpReceiver, SyslogReceiver, make_ca

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APP = "logs-e2e"
MAX_APP_BYTES = 256 << 10
SERVER = """\
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/spam"):
            count = int(self.path.split("=")[1])
            for n in range(count):
                print(f"spam {n} " + "s" * 150)
            sys.stdout.flush()
        print(f"served {self.path}", flush=True)
        body = b"ok\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"""


class Receivers:
    """A syslog and an HTTPS receiver on a loop in a thread of the test process."""

    def __init__(self, ca_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ca_file, tls = make_ca(ca_dir)
        self.syslog = self.call(SyslogReceiver().start())
        self.https = self.call(HttpReceiver().start(tls))

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def close(self) -> None:
        self.call(self.syslog.close())
        self.call(self.https.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def receivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receivers]:
    found = Receivers(tmp_path_factory.mktemp("drain-ca"))
    yield found
    found.close()


@pytest.fixture(scope="module", autouse=True)
def logs_settings(receivers: Receivers) -> Iterator[None]:
    """The platform of this module lets drains reach loopback, trusts the test CA and keeps little
    history (set before the module's platform starts)."""
    extra = {
        "DOCKYARD_LOGS_ALLOW_PRIVATE_DRAINS": "true",
        "DOCKYARD_LOGS_DRAIN_CA_FILE": str(receivers.ca_file),
        "DOCKYARD_LOGS_MAX_APP_BYTES": str(MAX_APP_BYTES),
        "DOCKYARD_LOGS_SEGMENT_BYTES": str(64 << 10),
    }
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def app(dockyard: Dockyard, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    created = dockyard.cli("admin:create-user", "logs@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    dockyard.cli("login", "--email", "logs@example.com", "--api-key", key.group(1))
    assert dockyard.api("POST", "/apps", key.group(1), json={"name": APP}).status_code == 201
    repo = tmp_path_factory.mktemp(APP)
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "server.py").write_text(SERVER)
    (repo / "Procfile").write_text("web: python3 -u server.py\n")
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", "first", cwd=repo)
    dockyard.cli("git:remote", "-a", APP, cwd=repo)
    dockyard.git("push", "dockyard", "main", cwd=repo)
    dockyard.wait_for(APP, "ok")
    return APP, key.group(1)


def logs(dockyard: Dockyard, *args: str) -> list[str]:
    return dockyard.cli("logs", "-a", APP, *args).stdout.splitlines()


def wait_for_line(dockyard: Dockyard, pattern: str, *args: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = logs(dockyard, *args)
        if any(re.search(pattern, line) for line in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(found[-40:]))
        time.sleep(0.3)


def test_app_output_router_lines_and_platform_events_in_one_stream(
    dockyard: Dockyard, app: tuple[str, str]
) -> None:
    dockyard.get(APP, "/first")
    wait_for_line(dockyard, r"app\[web\.1\]: served /first", "-n", "1500")
    lines = wait_for_line(dockyard, r"heroku\[router\]: .*path=\"/first\"", "-n", "1500")
    text = "\n".join(lines)
    assert re.search(r"app\[web\.1\]: served /first", text)
    deploy = next(i for i, x in enumerate(lines) if "heroku[api]: Deploy " in x)
    served = next(i for i, x in enumerate(lines) if "served /first" in x)
    assert deploy < served
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 \w+\[", x) for x in lines)
    only_router = logs(dockyard, "-s", "heroku", "-d", "router")
    assert only_router and all("heroku[router]:" in x for x in only_router)


def test_tail_streams_new_lines_as_they_happen(dockyard: Dockyard, app: tuple[str, str]) -> None:
    tail = subprocess.Popen(
        [str(VENV_BIN / "dockyard"), "logs", "-a", APP, "-t", "-n", "0"],
        env=dockyard.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: queue.Queue[str] = queue.Queue()
    assert tail.stdout is not None
    reader = threading.Thread(target=lambda: [seen.put(x) for x in tail.stdout], daemon=True)
    reader.start()
    try:
        got: list[str] = []
        deadline = time.monotonic() + 60
        # The tail starts whenever the CLI is up: request until one request's lines come through.
        for n in range(1000):
            dockyard.get(APP, f"/tailed-{n}")
            with contextlib.suppress(queue.Empty):
                while True:
                    got.append(seen.get(timeout=0.5))
            paths = [m.group(1) for x in got if (m := re.search(r'path="/(tailed-\d+)"', x))]
            served = [m.group(1) for x in got if (m := re.search(r"served /(tailed-\d+)", x))]
            if set(paths) & set(served) or time.monotonic() > deadline:
                break
        assert set(paths) & set(served), got
        assert all(" heroku[router]: " in x or " app[web.1]: " in x for x in got)
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(10)
        reader.join(10)
        tail.stdout.close()


def test_syslog_and_https_drains_get_every_line(
    dockyard: Dockyard, app: tuple[str, str], receivers: Receivers
) -> None:
    _, key = app
    syslog_url = f"syslog://127.0.0.1:{receivers.syslog.port}"
    https_url = f"https://localhost:{receivers.https.port}/drain"
    for url in (syslog_url, https_url):
        added = dockyard.api("POST", f"/apps/{APP}/log-drains", key, json={"url": url})
        assert added.status_code == 201, added.text
    listed = json.loads(dockyard.cli("drains", "-a", APP, "--json").stdout)
    tokens = {d["url"]: d["token"] for d in listed}
    time.sleep(2)  # the logs process connects
    dockyard.get(APP, "/spam?n=200")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        syslog = [m for m in receivers.syslog.messages if b" spam " in m]
        https = [m for m in receivers.https.messages() if b" spam " in m]
        if len(syslog) >= 200 and len(https) >= 200:
            break
        time.sleep(0.3)
    assert len(syslog) == 200 and len(https) == 200
    token = tokens[syslog_url].encode()
    assert re.match(rb"<190>1 \S+ " + re.escape(token) + rb" app web\.1 - - spam 0 ", syslog[0])
    assert re.match(rb"<190>1 \S+ host app web\.1 - spam 0 ", https[0])
    post = receivers.https.posts[-1]
    assert post.headers["content-type"] == "application/logplex-1"
    assert post.headers["logplex-drain-token"] == tokens[https_url]


def test_a_stopped_drain_reports_l10_and_the_tail_keeps_working(
    dockyard: Dockyard, app: tuple[str, str]
) -> None:
    _, key = app
    dead = "syslog://127.0.0.1:9"  # nothing listens there
    assert dockyard.api("POST", f"/apps/{APP}/log-drains", key, json={"url": dead}).is_success
    time.sleep(1)
    dockyard.get(APP, "/spam?n=1500")
    wait_for_line(
        dockyard, r"heroku\[logplex\]: Error L10 \(output buffer overflow\)", "-n", "1500"
    )
    dockyard.get(APP, "/after-l10")
    wait_for_line(dockyard, r"served /after-l10")


def test_history_survives_a_restart_of_the_logs_process_and_is_pruned(
    dockyard: Dockyard, app: tuple[str, str]
) -> None:
    dockyard.get(APP, "/before-restart")
    wait_for_line(dockyard, r"served /before-restart")
    pids = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and b"dockyard.serve\0logs" in _cmdline(entry)
        and dockyard.env["DOCKYARD_DATA_DIR"].encode() in _environ(entry)
    ]
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    assert any("served /before-restart" in x for x in logs(dockyard, "-n", "1500"))
    time.sleep(3)  # the supervisor starts it again
    assert any("served /before-restart" in x for x in logs(dockyard, "-n", "1500"))
    for _ in range(16):
        dockyard.get(APP, "/spam?n=400")  # about 1 MB in all: four times the history limit
        time.sleep(0.3)
    wait_for_line(dockyard, r"served /spam\?n=400")
    time.sleep(2)
    logs_dir = Path(dockyard.env["DOCKYARD_DATA_DIR"]) / "logs"
    sizes = [p.stat().st_size for p in logs_dir.glob("*.log")] + [
        p.stat().st_size for p in logs_dir.glob("*/*.log")
    ]
    assert sum(sizes) <= MAX_APP_BYTES + (64 << 10) * 2
    searched = dockyard.cli("logs", "-a", APP, "--since", "1h", "--grep", "served /first").stdout
    assert searched == ""  # the oldest history went first


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def _environ(entry: Path) -> bytes:
    try:
        return (entry / "environ").read_bytes()
    except OSError:
        return b""
