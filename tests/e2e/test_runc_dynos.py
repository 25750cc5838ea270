"""runc dynos in a whole platform started with ``make up`` as root (runc is the default there): one-off dynos
with ``dockyard run``, port-scan blocking reported in the app's log, R14 and R15 for a memory hog, and dynos that
keep serving while the agent is killed and are adopted by the next one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockyard._util import proc
from tests.e2e.conftest import VENV_BIN, Dockyard
from tests.runtime.runc_support import requires_runc

pytestmark = [pytest.mark.e2e, pytest.mark.root, requires_runc, pytest.mark.timeout(600)]

APP = "runc-dynos"

SERVER = """\
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"served by {os.environ['DYNO']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"""

# Probes 30 closed ports of the host end of its link (its default gateway), then waits to be seen.
SCAN = """\
import socket, struct, time

with open("/proc/net/route") as routes:
    for line in routes.read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            gateway = socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
print("scanning", gateway, flush=True)
probes = []
for port in range(20000, 20030):
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex((gateway, port))
    probes.append(probe)
time.sleep(120)
"""

# Holds 700 MB (above standard-1x's 512 MB quota: R14) long enough for the agent's 10 s samples, then
# grows until the kernel kills it at twice the quota (R15).
HOG = """\
import time
held = [b"\\x01" * (700 << 20)]
print("holding 700 MB", flush=True)
time.sleep(25)
while True:
    held.append(b"\\x01" * (64 << 20))
    time.sleep(0.05)
"""


def wait_until(check: Callable[[], bool], timeout: float, what: str, platform: Dockyard) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s\n{platform.platform_log()}")
        time.sleep(0.5)


def app_log(platform: Dockyard) -> str:
    return platform.cli("logs", "-n", "1500", "-a", APP).stdout


def run_attached(platform: Dockyard, command: str) -> subprocess.CompletedProcess[str]:
    """``dockyard run COMMAND`` as a script runs it: no terminal on stdin."""
    return subprocess.run(
        [str(VENV_BIN / "dockyard"), "run", "-a", APP, command],
        env=platform.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def containers(platform: Dockyard) -> list[dict[str, object]]:
    assert platform.run_dir is not None
    listed = proc.run(["runc", "--root", platform.run_dir / "runc", "list", "--format", "json"])
    found: list[dict[str, object]] = json.loads(listed.text or "null") or []
    return found


@pytest.fixture(scope="module")
def app(dockyard: Dockyard, tmp_path_factory: pytest.TempPathFactory) -> str:
    assert dockyard.runtime == "runc"
    created = dockyard.cli("admin:create-user", "runc-dynos@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    dockyard.keys[APP] = key.group(1)
    dockyard.cli("login", "--email", "runc-dynos@example.com", "--api-key", key.group(1))
    response = dockyard.api("POST", "/apps", key.group(1), json={"name": APP})
    assert response.status_code == 201, response.text
    repo: Path = tmp_path_factory.mktemp(APP)
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "server.py").write_text(SERVER)
    (repo / "scan.py").write_text(SCAN)
    (repo / "hog.py").write_text(HOG)
    (repo / "Procfile").write_text("web: python3 server.py\nhog: python3 hog.py\n")
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", "first", cwd=repo)
    dockyard.cli("git:remote", "-a", APP, cwd=repo)
    dockyard.git("push", "dockyard", "main", cwd=repo)
    dockyard.wait_for(APP, "served by web.1")
    return APP


def test_dockyard_run_runs_the_command_in_a_sandboxed_one_off_dyno(
    dockyard: Dockyard, app: str
) -> None:
    result = run_attached(dockyard, "echo hello; id -u; hostname; head -1 /etc/dockyard-stack")
    assert result.returncode == 0, result.stderr + dockyard.platform_log()
    lines = result.stdout.splitlines()
    assert lines[:2] == ["hello", "1000"]  # the dyno's user
    assert re.fullmatch(r"run\.\d+", lines[2])  # its own hostname
    assert lines[3] == "NAME=dockyard-12"  # the stack image, not the host
    failed = run_attached(dockyard, "sh -c 'exit 3'")
    assert failed.returncode == 3, failed.stderr
    assert "Process exited with status 3" not in app_log(dockyard)  # attached: start and end only


def test_a_dyno_that_scans_ports_is_blocked_and_its_app_log_says_so(
    dockyard: Dockyard, app: str
) -> None:
    started = dockyard.cli("run:detached", "-a", app, "python3 scan.py")
    dyno = re.search(r"(run\.\d+)", started.stdout + started.stderr)
    assert dyno, started.stdout + started.stderr
    line = f"heroku[{dyno.group(1)}]: Port scan blocked: 10.92."
    wait_until(lambda: line in app_log(dockyard), 60, "the block in the app's log", dockyard)
    assert "probed more than 20 closed ports or dyno addresses within 60 s" in app_log(dockyard)
    assert "Port scan blocked: 10.92." in dockyard.platform_log(whole=True)
    dockyard.cli("ps:stop", dyno.group(1), "-a", app)


def test_a_memory_hog_gets_r14_above_its_quota_then_r15_at_twice_it_and_a_restart(
    dockyard: Dockyard, app: str
) -> None:
    dockyard.cli("ps:scale", "hog=1", "-a", app)
    try:
        wait_until(
            lambda: "heroku[hog.1]: Error R15 (Memory quota vastly exceeded)" in app_log(dockyard),
            120,
            "R15",
            dockyard,
        )
        log = app_log(dockyard)
        hog = [line.split(": ", 1)[1] for line in log.splitlines() if "[hog.1]" in line]
        r14 = hog.index("Error R14 (Memory quota exceeded)")
        over = re.fullmatch(r"Process running mem=(\d+)M\((\d+\.\d)%\)", hog[r14 - 1])
        assert over and 512 < int(over.group(1)) < 1024, hog  # in the R14 zone
        r15 = hog.index("Error R15 (Memory quota vastly exceeded)")
        assert r14 < r15
        killed_at = re.fullmatch(r"Process running mem=(\d+)M\((\d+\.\d)%\)", hog[r15 - 1])
        assert killed_at and 960 <= int(killed_at.group(1)) <= 1024, hog  # at twice the quota
        assert hog[r15 + 1 : r15 + 3] == [
            "Stopping process with SIGKILL",
            "Process exited with status 137",
        ]
        wait_until(
            lambda: "heroku[hog.1]: State changed from crashed to starting" in app_log(dockyard),
            30,
            "the restart after R15",
            dockyard,
        )
        assert dockyard.get(app).status_code == 200  # the neighbour kept serving
    finally:
        dockyard.cli("ps:scale", "hog=0", "-a", app)


def test_dynos_keep_serving_while_the_agent_is_killed_and_the_next_agent_adopts_them(
    dockyard: Dockyard, app: str
) -> None:
    wait_until(lambda: len(containers(dockyard)) == 1, 60, "only web.1 running", dockyard)
    before = containers(dockyard)
    agents = re.findall(r"started agent \(pid (\d+)\)", dockyard.platform_log(whole=True))
    os.kill(int(agents[-1]), signal.SIGKILL)
    served = [dockyard.get(app).status_code for _ in range(20)]  # while no agent runs
    assert served == [200] * 20
    wait_until(
        lambda: len(re.findall(r"started agent", dockyard.platform_log(whole=True))) > len(agents),
        30,
        "a new agent",
        dockyard,
    )
    time.sleep(3)  # a few rounds of the new agent
    after = containers(dockyard)
    assert [(c["id"], c["pid"], c["status"]) for c in after] == [
        (c["id"], c["pid"], "running") for c in before
    ]  # the same container, not restarted
    starts = re.findall(r"heroku\[web\.1\]: Starting process", app_log(dockyard))
    assert len(starts) == 1
    with httpx.Client() as client:
        for _ in range(5):
            response = client.get(
                f"http://127.0.0.1:{dockyard.router_port}/",
                headers={"Host": f"{app}.dockyard.localhost"},
                timeout=10,
            )
            assert response.text == "served by web.1\n"
