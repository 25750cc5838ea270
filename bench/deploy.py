"""Deploy time: from the start of ``git push`` to the first HTTP 200 served by the new release, for
a Flask app with ``requirements.txt`` (flask, gunicorn; no Procfile), through a real Dockyard.

A Dockyard is started (``dockyard up``, the ``process`` dyno runtime, otherwise default settings)
on free ports with a temporary data directory. Without a build stack image builds run in the uid
sandbox: as a build user of their own when run as root (their slots are host-wide, so a test run
on the same host does not disturb them), or as root with ``--root-builds`` (the data directory's
parent closed to other users, as the figures before the build users' hard-linked virtualenvs were
measured). **Cold** runs push to a new app each time (empty
build cache: pip downloads and installs everything; the first dyno of the app starts).
**Warm** runs change one line of ``app.py`` of one app and push again (same dependencies). While a
push runs, the router is polled every 20 ms until the response carries the marker of the pushed
commit.

The dependency install is the time the Python buildpack reports for pip itself (its
``Dependencies installed in X s`` line: pip plus byte-compiling what it installed); the platform's
share is the rest. Where the time goes (stamped push output lines, the dyno manager's log lines)
is printed to stderr, medians per step, with the load average before and after; ``--trace`` adds
the last runs' push output with the second each line arrived.

Prints one line:
``deploy: warm 1.7 s (platform 1.7 s), cold 9.8 s (platform 0.9 s), medians of 5``.

    .venv/bin/python bench/deploy.py [--runs N] [--keep] [--trace] [--root-builds]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOMAIN = "dockyard.localhost"
POLL = 0.02
REQUIREMENTS = "flask\ngunicorn\n"
APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "marker {marker}"
"""
STEPS = {
    # name: (start, end) — stamps from the push output and the platform's log lines
    "push → build starts (git, hook, export, sandbox)": ("push", "build"),
    "buildpack (detect, venv, install)": ("build", "discover"),
    "process types, seal": ("discover", "compress"),
    "mksquashfs, slug store": ("compress", "compressed"),
    "slug and release recorded": ("compressed", "launching"),
    "release → push ends": ("launching", "push_end"),
    "release → dyno started (agent's long poll, start)": ("launching", "dyno_start"),
    "dyno started → up (boot, probe)": ("dyno_start", "dyno_up"),
    "up → first 200 (report, router's long poll, worker)": ("dyno_up", "first_200"),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    total: float
    install: float
    stamps: dict[str, float] = field(default_factory=dict)
    """Seconds after the start of the push."""
    lines: list[tuple[float, str]] = field(default_factory=list)
    """The push's output, each line with the second it arrived."""

    @property
    def platform(self) -> float:
        return self.total - self.install


class Platform:
    """A running Dockyard and a logged-in CLI."""

    def __init__(self, base: Path) -> None:
        self.base = base
        home = base / "home"
        home.mkdir()
        self.api_port, self.router_port = _free_port(), _free_port()
        self.env = {
            **os.environ,
            "HOME": str(home),
            "DOCKYARD_CONFIG": os.devnull,
            "DOCKYARD_DATA_DIR": str(base / "data"),
            "DOCKYARD_API_PORT": str(self.api_port),
            "DOCKYARD_ROUTER_PORT": str(self.router_port),
            "DOCKYARD_API_URL": f"http://localhost:{self.api_port}",
            "DOCKYARD_GIT_SSH_PORT": str(_free_port()),  # not the defaults another Dockyard uses
            "DOCKYARD_RENDEZVOUS_PORT": str(_free_port()),
            "DOCKYARD_AGENT_STOP_TIMEOUT": "5",
            "DOCKYARD_AGENT_RUNTIME": "process",  # the default as root is runc, which needs a stack
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        self.api_url = f"http://localhost:{self.api_port}"
        self.log_path = base / "platform.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "dockyard"), "up"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Dockyard did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        created = self.cli("admin:create-user", "bench@example.com")
        match = re.search(r"API key \(shown once\): (\S+)", created)
        if match is None:
            raise RuntimeError(created)
        self.key = match.group(1)
        self.cli("login", "--email", "bench@example.com", "--api-key", self.key)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def cli(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "dockyard"), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"dockyard {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def git(self, *args: str, cwd: Path) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=self.env, check=True, capture_output=True)

    def create_app(self, name: str, repo: Path) -> None:
        response = httpx.post(
            f"{self.api_url}/apps",
            json={"name": name},
            headers={
                "Authorization": f"Bearer {self.key}",
                "Accept": "application/vnd.heroku+json; version=3",
            },
            timeout=30,
        )
        response.raise_for_status()
        repo.mkdir(parents=True)
        (repo / "requirements.txt").write_text(REQUIREMENTS)
        self.git("init", "-q", "-b", "main", cwd=repo)
        self.cli("git:remote", "-a", name, cwd=repo)

    def app_log(self, name: str) -> str:
        return self.cli("logs", "-n", "200", "-a", name)


def _stamp_lines(
    stream: Iterator[bytes], started: float, stamps: dict[str, float]
) -> list[tuple[float, str]]:
    """Read the push's output, noting when each line (and those that mark the steps) arrives."""
    marks = {
        "-----> Building on": "build",
        "-----> Discovering process types": "discover",
        "-----> Compressing": "compress",
        "       Done: ": "compressed",
        "-----> Launching": "launching",
    }
    lines: list[tuple[float, str]] = []
    for raw in stream:
        now = time.monotonic() - started
        for part in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
            lines.append((now, part))
            for text, name in marks.items():
                if text in part:
                    stamps.setdefault(name, now)
    return lines


def _log_stamps(log: str, since: datetime, wall_start: float, stamps: dict[str, float]) -> None:
    """The dyno manager's lines for the new dyno, as seconds after the push started."""
    for line in log.splitlines():
        match = re.match(r"^(\S+) heroku\[web\.\d+\]: (.*)$", line)
        if match is None:
            continue
        when = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        if when < since:
            continue
        offset = when.timestamp() - wall_start
        if match.group(2).startswith("Starting process"):
            stamps.setdefault("dyno_start", offset)
        elif match.group(2) == "State changed from starting to up":
            stamps.setdefault("dyno_up", offset)


def deploy(platform: Platform, name: str, repo: Path, marker: str) -> Run:
    """Commit a new marker, push, and poll the router until it serves it."""
    (repo / "app.py").write_text(APP.format(marker=marker))
    platform.git("add", "-A", cwd=repo)
    platform.git("commit", "-q", "-m", f"marker {marker}", cwd=repo)
    found = threading.Event()
    stamps: dict[str, float] = {}
    client = httpx.Client(timeout=5)

    def poll() -> None:
        url = f"http://127.0.0.1:{platform.router_port}/"
        while not found.is_set():
            with contextlib.suppress(httpx.HTTPError):
                response = client.get(url, headers={"Host": f"{name}.{DOMAIN}"})
                if response.status_code == 200 and f"marker {marker}" in response.text:
                    stamps["first_200"] = time.monotonic() - started
                    found.set()
                    return
            time.sleep(POLL)

    wall_start = time.time()
    since = datetime.fromtimestamp(wall_start).astimezone()
    started = time.monotonic()
    stamps["push"] = 0.0
    push = subprocess.Popen(
        ["git", "push", "-q", "dockyard", "main"],
        cwd=repo,
        env=platform.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert push.stderr is not None
    lines = _stamp_lines(iter(push.stderr.readline, b""), started, stamps)
    if push.wait() != 0:
        found.set()
        raise RuntimeError("push failed:\n" + "\n".join(text for _, text in lines[-40:]))
    stamps["push_end"] = time.monotonic() - started
    if not found.wait(timeout=120):
        raise RuntimeError(f"{name} never served marker {marker}")
    client.close()
    text = "\n".join(line for _, line in lines)
    installed = re.search(r"Dependencies installed in ([0-9.]+) s", text)
    run = Run(stamps["first_200"], float(installed.group(1)) if installed else 0.0, stamps, lines)
    with contextlib.suppress(RuntimeError):
        _log_stamps(platform.app_log(name), since, wall_start, run.stamps)
    return run


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _report_steps(label: str, runs: list[Run]) -> None:
    sys.stderr.write(f"{label}: median seconds per step (n={len(runs)})\n")
    for step, (start, end) in STEPS.items():
        values = [r.stamps[end] - r.stamps[start] for r in runs if {start, end} <= r.stamps.keys()]
        sys.stderr.write(f"  {step:<52} {_median(values):6.2f}\n")
    totals = ", ".join(f"{r.total:.2f}" for r in runs)
    installs = ", ".join(f"{r.install:.2f}" for r in runs)
    sys.stderr.write(f"  total per run: {totals}\n  dependency install per run: {installs}\n")


def _report_trace(label: str, run: Run) -> None:
    """The push output of one run, each line with the second it arrived, then the later stamps."""
    sys.stderr.write(f"{label}: the push output as it arrived (seconds after the push started)\n")
    for when, line in run.lines:
        sys.stderr.write(f"  {when:6.2f}  {line}\n")
    for name in ("push_end", "dyno_start", "dyno_up", "first_200"):
        if name in run.stamps:
            sys.stderr.write(f"  {run.stamps[name]:6.2f}  ({name})\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--trace", action="store_true", help="also print the last runs' push output with times"
    )
    parser.add_argument(
        "--root-builds",
        action="store_true",
        help="close the data directory's parent to other users, so buildpacks run as root",
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-deploy-"))
    if not args.root_builds:
        base.chmod(0o711)  # build users reach their scratch directories through it
    load_before = os.getloadavg()
    platform = Platform(base)
    try:
        platform.start()
        cold: list[Run] = []
        for index in range(args.runs):
            name = f"cold-{index}"
            platform.create_app(name, base / "repos" / name)
            cold.append(deploy(platform, name, base / "repos" / name, f"cold {index}"))
        warm: list[Run] = []
        platform.create_app("warm", base / "repos" / "warm")
        deploy(platform, "warm", base / "repos" / "warm", "first")  # fills the cache
        for index in range(args.runs):
            warm.append(deploy(platform, "warm", base / "repos" / "warm", f"warm {index}"))
    finally:
        platform.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()
    sys.stderr.write(
        "load average (1, 5, 15 min): before "
        + " ".join(f"{v:.2f}" for v in load_before)
        + ", after "
        + " ".join(f"{v:.2f}" for v in load_after)
        + "\n"
    )
    _report_steps("warm", warm)
    _report_steps("cold", cold)
    if args.trace and warm and cold:
        _report_trace("last warm run", warm[-1])
        _report_trace("last cold run", cold[-1])
    sys.stdout.write(
        f"deploy: warm {_median([r.total for r in warm]):.1f} s "
        f"(platform {_median([r.platform for r in warm]):.1f} s), "
        f"cold {_median([r.total for r in cold]):.1f} s "
        f"(platform {_median([r.platform for r in cold]):.1f} s), medians of {args.runs}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
