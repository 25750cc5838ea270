"""A real Dockyard started with the README's command, on free ports and a temporary data directory.

As root (CI), the platform runs its dynos with its default runtime, ``runc``: on the stack image the runtime
tests share (built once per machine, ``tests.runtime.runc_support.stacks_dir``, passed in
``DOCKYARD_RUNTIME_STACKS_DIR`` so ``make up`` never debootstraps again), with a run directory, an nftables
table and a dyno address range of its own, all removed after the platform stopped.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from dockyard._util import proc
from dockyard.slug.mount import mount_points
from tests.runtime.runc_support import missing_requirements
from tests.runtime.sandbox_support import build_stacks_dir

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_platforms = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Dockyard:
    env: dict[str, str]
    api_url: str
    router_port: int
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    runtime: str
    """``runc`` as root (the default there), else ``process``."""
    run_dir: Path | None
    """The runc runtime's run directory (``runc --root <run dir>/runc list`` shows the dynos)."""
    keys: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "dockyard"), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"dockyard {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n--- platform log ---\n{self.platform_log()}"
            )
        return result

    def git(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n"
                f"--- platform log ---\n{self.platform_log()}"
            )
        return result

    def get(self, app: str, path: str = "/") -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{self.router_port}{path}",
            headers={"Host": f"{app}.dockyard.localhost"},
            timeout=10,
        )

    def wait_for(self, app: str, expected_text: str, *, timeout: float = 90.0) -> httpx.Response:
        """Poll the app through the router until a 200 response contains ``expected_text``."""
        deadline = time.monotonic() + timeout
        last = "no response"
        while time.monotonic() < deadline:
            try:
                response = self.get(app)
                if response.status_code == 200 and expected_text in response.text:
                    return response
                last = f"{response.status_code} {response.text[:200]!r}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise AssertionError(
            f"{app} never served {expected_text!r}; last: {last}\n"
            f"--- platform log ---\n{self.platform_log()}"
        )

    def api(self, method: str, path: str, key: str, **kwargs: object) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/vnd.heroku+json; version=3",
        }
        return httpx.request(method, self.api_url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def platform_log(self, *, whole: bool = False) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if whole else text[-6000:]


def runc_env() -> dict[str, str]:
    """Settings that give this platform's runc dynos the shared stack image, and a run directory, table and
    range of their own."""
    number = next(_platforms)
    tag = f"{os.getpid()}x{number}"
    return {
        "DOCKYARD_RUNTIME_STACKS_DIR": str(build_stacks_dir()),
        "DOCKYARD_RUNTIME_RUN_DIR": f"/run/dockyard-e2e-{tag}",
        "DOCKYARD_NETWORK_TABLE": f"dye2e{tag}",
        "DOCKYARD_NETWORK_PRIVATE_RANGE": f"10.92.{(os.getpid() + number) % 200 + 20}.0/24",
    }


def remove_runc_leftovers(env: dict[str, str], base: Path) -> None:
    """What a stopped platform's runc runtime leaves on the host: its table, mounts and run directory."""
    run_dir = Path(env["DOCKYARD_RUNTIME_RUN_DIR"])
    proc.run(["nft", "delete", "table", "inet", env["DOCKYARD_NETWORK_TABLE"]], check=False)
    for point in sorted(mount_points(), key=lambda p: len(p.parts), reverse=True):
        if run_dir in point.parents or base in point.parents:
            proc.run(["umount", "-l", point], check=False)
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dockyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyard]:
    base = tmp_path_factory.mktemp("dockyard")
    home = base / "home"
    home.mkdir()
    api_port, router_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_DATA_DIR": str(base / "data"),
        "DOCKYARD_API_PORT": str(api_port),
        "DOCKYARD_ROUTER_PORT": str(router_port),
        "DOCKYARD_GIT_SSH_PORT": str(free_port()),
        "DOCKYARD_RENDEZVOUS_PORT": str(free_port()),
        "DOCKYARD_API_URL": f"http://localhost:{api_port}",
        "DOCKYARD_AGENT_STOP_TIMEOUT": "5",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    env.pop("DOCKYARD_TEST_DATABASE_URL", None)
    runtime = "runc" if missing_requirements() is None else "process"
    if runtime == "runc":
        env.pop("DOCKYARD_AGENT_RUNTIME", None)  # runc is the default as root
        env.update(runc_env())
    else:
        env["DOCKYARD_AGENT_RUNTIME"] = "process"
    forward = IP_FORWARD.read_text() if runtime == "runc" else ""
    log_path = base / "platform.log"
    with log_path.open("wb") as log:
        # The README's start command, exactly as a newcomer runs it.
        process = subprocess.Popen(
            ["make", "up"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run_dir = Path(env["DOCKYARD_RUNTIME_RUN_DIR"]) if runtime == "runc" else None
    platform = Dockyard(
        env, f"http://localhost:{api_port}", router_port, home, process, log_path, runtime, run_dir
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{platform.api_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Dockyard did not start:\n{platform.platform_log()}")
            time.sleep(0.3)
        yield platform
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if runtime == "runc":
            remove_runc_leftovers(env, base)
            IP_FORWARD.write_text(forward)
