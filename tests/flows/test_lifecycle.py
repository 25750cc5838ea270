"""The dyno lifecycle across the control plane, the agent and the rendezvous service, all real: the
API served by uvicorn, a ``DynoManager`` on the process runtime polling it, the rendezvous service,
and the ``dockyard`` command in a subprocess.

- ``dockyard run 'echo hello'`` prints hello and exits 0; a failing command's status comes back;
- a detached one-off dyno runs once, its output reaches the logs, and once it has exited the control
  plane forgets it (it leaves ``ps`` and is never started again);
- a crashing worker is shown ``crashed`` in ``ps`` with the time of its next retry (Heroku's
  20-minute cool-off after the second crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dockyard._util.clock import SystemClock
from dockyard._util.secretfile import ensure_secret_file
from dockyard.agent.manager import DynoManager
from dockyard.api.app import create_app
from dockyard.audit.writer import WriterConfig, running
from dockyard.client.dataplane import DataPlaneClient
from dockyard.client.http import AsyncApiClient
from dockyard.control.accounts import create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.releases import append_release
from dockyard.rendezvous.server import RendezvousServer
from dockyard.rendezvous.tls import ensure_certificate, server_context
from dockyard.runtime.process import ProcessRuntime
from tests.conftest import make_settings
from tests.runtime.slugs import build_slug, clean_up

TOKEN = "flow-internal-token"
ACCEPT = "application/vnd.heroku+json; version=3"
CLI = "from dockyard.cli.main import main; main()"
PROCESSES = {"web": "python3 app.py", "worker": "echo worker crashing; exit 1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    platform: Platform
    api_url: str
    key: str
    app_id: str
    home: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": ACCEPT}
        return httpx.request(method, self.api_url + path, headers=headers, timeout=10, **kwargs)

    @property
    def cli_env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "TERM": "xterm",
            "DOCKYARD_API_URL": self.api_url,
            "DOCKYARD_API_KEY": self.key,
        }

    def dockyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CLI, *args],
            env=self.cli_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def logs(self) -> list[str]:
        return [
            f"{x.source}[{x.dyno}]: {x.message}" for x in self.platform.logs.tail(self.app_id, 500)
        ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _run_data_plane(platform: Platform, api_url: str, stop: threading.Event) -> None:
    settings = platform.settings

    async def main() -> None:
        ensure_certificate(
            settings.rendezvous_cert_file, settings.rendezvous_tls_key_file, "localhost"
        )
        rendezvous = RendezvousServer(
            ensure_secret_file(settings.rendezvous_key_file),
            server_context(settings.rendezvous_cert_file, settings.rendezvous_tls_key_file),
            host="127.0.0.1",
            port=settings.rendezvous.port,
            socket_path=settings.rendezvous_socket,
            attach_timeout=30,
        )
        await rendezvous.start()
        api = AsyncApiClient(api_url, TOKEN)
        runtime = ProcessRuntime(settings)
        manager = DynoManager(settings, runtime, DataPlaneClient(api), SystemClock(), host="flow")
        running = asyncio.create_task(manager.run())
        await asyncio.to_thread(stop.wait)
        manager.request_stop()
        await running
        await api.aclose()
        await rendezvous.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("flow")
    settings = make_settings(
        base / "data",
        DOCKYARD_RENDEZVOUS_PORT=str(_free_port()),
        DOCKYARD_AGENT_REFRESH_INTERVAL="0.1",
        DOCKYARD_AGENT_STOP_TIMEOUT="2",
    )
    audit = contextlib.ExitStack()
    audit.enter_context(running(WriterConfig.from_settings(settings)))
    platform = Platform.open(settings)
    user = create_user(platform, "dev@example.com")
    digest = build_slug(base, platform.slugs)
    with platform.store.transaction() as tx:
        app = tx.create_app("shop", user.account.id, STACK)
        slug = tx.create_slug(
            app.id, digest=digest, size=1, process_types=PROCESSES, commit=None, stack=STACK
        )
        append_release(
            tx, app, slug_id=slug.id, config={"GREETING": "hi"}, description="d", user=None
        )
        tx.update_formation(app.id, "web", quantity=0)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform, internal_token=TOKEN),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    api_thread = threading.Thread(target=server.run, daemon=True)
    api_thread.start()
    api_url = f"http://127.0.0.1:{port}"
    wait_for(lambda: server.started, "the API")
    stop = threading.Event()
    plane = threading.Thread(target=_run_data_plane, args=(platform, api_url, stop), daemon=True)
    plane.start()
    home = base / "home"
    home.mkdir()
    try:
        yield Stack(platform, api_url, user.api_key, app.id, home)
    finally:
        stop.set()
        plane.join(30)
        server.should_exit = True
        api_thread.join(30)
        clean_up(ProcessRuntime(settings))
        platform.close()
        audit.close()


def test_dockyard_run_prints_the_output_and_exits_0(stack: Stack) -> None:
    result = stack.dockyard("run", "-a", "shop", "echo hello from $DYNO with $GREETING")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hello from run.")
    assert result.stdout.endswith(" with hi\n")
    assert "up, run." in result.stderr


def test_dockyard_run_passes_a_failing_status_through(stack: Stack) -> None:
    result = stack.dockyard("run", "-a", "shop", "python3", "-c", "raise SystemExit(5)")
    assert result.returncode == 5, result.stderr
    assert result.stdout == ""


def test_a_detached_one_off_dyno_runs_once_logs_its_output_and_is_forgotten(stack: Stack) -> None:
    answer = stack.api("POST", "/apps/shop/dynos", json={"command": "echo detached $DYNO"})
    assert answer.status_code == 201
    name = answer.json()["name"]
    wait_for(lambda: f"app[{name}]: detached {name}" in stack.logs(), "the output in the logs")
    wait_for(
        lambda: all(d["name"] != name for d in stack.api("GET", "/apps/shop/dynos").json()),
        "the one-off dyno to leave ps",
    )
    time.sleep(0.5)  # a few more agent rounds: it must not start again
    logs = stack.logs()
    assert logs.count(f"heroku[{name}]: Starting process with command `echo detached $DYNO`") == 1
    assert f"heroku[{name}]: Process exited with status 0" in logs


def test_a_crashing_worker_shows_its_next_retry_in_ps(stack: Stack) -> None:
    stack.api("PATCH", "/apps/shop/formation/worker", json={"quantity": 1})

    def retry_pending() -> bool:
        dynos = stack.api("GET", "/apps/shop/dynos").json()
        return any(d["name"] == "worker.1" and d["next_retry_at"] for d in dynos)

    wait_for(retry_pending, "a crashed worker with a next retry")
    (worker,) = [d for d in stack.api("GET", "/apps/shop/dynos").json() if d["name"] == "worker.1"]
    assert worker["state"] == "crashed"
    wait = datetime.fromisoformat(worker["next_retry_at"]) - datetime.fromisoformat(
        worker["updated_at"]
    )
    assert 19 * 60 < wait.total_seconds() <= 20 * 60
    assert stack.logs().count("app[worker.1]: worker crashing") == 2  # at once, then the cool-off
    stack.api("PATCH", "/apps/shop/formation/worker", json={"quantity": 0})


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, f"no {marker!r} in {data!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data += os.read(fd, 4096)
            except OSError:
                break
    return data


def test_dockyard_run_in_a_terminal_passes_keys_and_ctrl_c_to_the_dyno(stack: Stack) -> None:
    master, slave = os.openpty()
    command = "read -r answer; echo got $answer; sleep 100"
    cli = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "-a", "shop", command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=stack.cli_env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        _read_until(master, b"up, run.")
        os.write(master, b"typed\r")  # raw mode: the Enter key reaches the dyno's terminal as is
        assert b"got typed" in _read_until(master, b"got typed")
        started = time.monotonic()
        os.write(master, b"\x03")  # Ctrl-C interrupts the dyno's command, not the CLI
        code = cli.wait(timeout=30)
        assert time.monotonic() - started < 20
        assert code == 1  # the shell died of SIGINT, so no exit status came back
        assert b"ended without an exit status" in _read_until(master, b"exit status")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        os.close(master)
