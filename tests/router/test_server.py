"""Running the router: serve/stop, the cached table across restarts, graceful shutdown, ``main``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from dockyard._util import proc
from dockyard.errors import ConflictError, InvalidError
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import CACHE_FILE, FakeRouteSource
from dockyard.router.server import RouterServer, proxy_options, serve
from dockyard.settings import RouterSettings, Settings, load_settings

from .support import DOMAIN, Backend, RawClient, RouterFactory, build_request, route, table

HOST = f"myapp.{DOMAIN}"


@pytest.mark.anyio
async def test_serve_runs_until_stopped_and_logs_its_url(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        data_dir=tmp_path, domain=DOMAIN, router=RouterSettings(port=0, refresh_interval=0.05)
    )
    stop = asyncio.Event()
    ready: list[RouterServer] = []
    with caplog.at_level(logging.INFO, logger="dockyard.router"):
        task = asyncio.ensure_future(
            serve(
                settings,
                FakeRouteSource(table(route("myapp", [backend.address]))),
                ready=ready.append,
                stop=stop,
            )
        )
        while not ready:
            await asyncio.sleep(0.01)
        router = ready[0]
        async with httpx.AsyncClient() as client:
            while not router.proxy.routes:  # the first poll has run
                await asyncio.sleep(0.01)
            response = await client.get(f"http://127.0.0.1:{router.port}/", headers={"Host": HOST})
        stop.set()
        await asyncio.wait_for(task, 10)
    assert response.status_code == 200
    assert f"listening on http://127.0.0.1:{router.port}" in caplog.text
    assert "router stopped" in caplog.text
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", router.port), timeout=1):
        pass


@pytest.mark.anyio
async def test_cached_routes_are_served_when_the_api_is_down_at_start(
    backend: Backend, router_factory: RouterFactory, tmp_path: Path
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))):
        pass
    assert (tmp_path / "state" / CACHE_FILE).is_file()
    down = FakeRouteSource()
    down.failing = True
    async with router_factory(source=down) as h, httpx.AsyncClient() as client:
        assert await h.router.refresh() is False
        response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
    assert response.status_code == 200
    assert down.fetches >= 1


@pytest.mark.anyio
async def test_stop_lets_requests_in_flight_finish(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        idle = await RawClient.open(h.port)
        raw_clients.append(idle)
        await client.send(build_request("/slow"))
        while not backend.seen:
            await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(h.router.stop(grace=5))
        idle_closed = await idle.at_eof()
        backend.server.release.set()
        response = await client.read()
        await asyncio.wait_for(stopping, 10)
    assert idle_closed, "idle keep-alive connections close at once"
    assert response.status == 200
    assert response.header("Connection") == "close"


@pytest.mark.anyio
async def test_stop_closes_what_is_still_running_after_the_grace_period(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        await client.send(build_request("/slow"))
        while not backend.seen:
            await asyncio.sleep(0.01)
        await h.router.stop(grace=0.2)
        closed = await client.at_eof()
        messages = [line.message for line in h.logs.tail("id-myapp", 10)]
    backend.server.release.set()
    assert closed
    assert messages[0].startswith('at=error code=H24 desc="Forced close"')


@pytest.mark.anyio
async def test_a_port_in_use_is_a_conflict(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, router=RouterSettings(port=port))
        router = RouterServer(settings, FakeRouteSource())
        with pytest.raises(ConflictError, match="in use"):
            await router.start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_main_serves_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DOCKYARD_DATA_DIR": str(tmp_path / "data"),
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_ROUTER_PORT": str(port),
        "DOCKYARD_ROUTER_WORKERS": "1",
        "DOCKYARD_ROUTER_TLS": "0",  # no HTTPS port to find free
        "DOCKYARD_API_PORT": str(_free_port()),  # nothing listens: the API is down
    }
    code = (
        "from dockyard.router.server import main\n"
        "from dockyard.settings import load_settings\n"
        "main(load_settings())\n"
    )
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        process = proc.spawn([sys.executable, "-c", code], env=env, stderr=stderr)
    try:
        _wait_for(lambda: b"listening on" in stderr_path.read_bytes() or process.poll() is not None)
        response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": HOST}, timeout=5)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = stderr_path.read_text()
    assert returncode == 0, output
    assert response.status_code == 404
    assert f"listening on http://127.0.0.1:{port}" in output
    assert output.count("cannot refresh the route table") == 1
    assert "router stopped" in output


def test_main_takes_its_timeouts_from_the_settings(tmp_path: Path) -> None:
    """A cached route with a web dyno scaled and none up: H20 after DOCKYARD_ROUTER_BOOT_WAIT, not
    after the default 75 s (the client would give up first)."""
    port = _free_port()
    data = tmp_path / "data"
    cached = {"etag": "", "table": table(route("myapp", [], web_quantity=1)).to_json()}
    (data / "state").mkdir(parents=True)
    (data / "state" / CACHE_FILE).write_text(json.dumps(cached))
    env = {
        **os.environ,
        "DOCKYARD_DATA_DIR": str(data),
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_ROUTER_PORT": str(port),
        "DOCKYARD_API_PORT": str(_free_port()),
        "DOCKYARD_ROUTER_WORKERS": "1",
        "DOCKYARD_ROUTER_TLS": "0",  # no HTTPS port to find free
        "DOCKYARD_ROUTER_BOOT_WAIT": "0.1",
    }
    code = (
        "from dockyard.router.server import main\n"
        "from dockyard.settings import load_settings\n"
        "main(load_settings())\n"
    )
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        process = proc.spawn([sys.executable, "-c", code], env=env, stderr=stderr)
    try:
        _wait_for(lambda: b"listening on" in stderr_path.read_bytes() or process.poll() is not None)
        response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": HOST}, timeout=5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert response.status_code == 503, stderr_path.read_text()
    assert b"H20" in response.content


def test_router_settings_give_the_proxy_its_timeouts() -> None:
    settings = load_settings(
        {
            "DOCKYARD_CONFIG": os.devnull,
            "DOCKYARD_ROUTER_CONNECT_TIMEOUT": "1.5",
            "DOCKYARD_ROUTER_FIRST_BYTE_TIMEOUT": "12",
            "DOCKYARD_ROUTER_IDLE_TIMEOUT": "20",
            "DOCKYARD_ROUTER_BOOT_WAIT": "3",
        }
    )
    options = proxy_options(settings.router)
    assert (
        options.connect_timeout,
        options.first_byte_timeout,
        options.keepalive_timeout,
        options.boot_wait,
    ) == (1.5, 12.0, 20.0, 3.0)


def test_the_default_settings_give_herokus_timeouts() -> None:
    assert proxy_options(RouterSettings()) == ProxyOptions()
    assert ProxyOptions() == ProxyOptions(
        connect_timeout=5.0, first_byte_timeout=30.0, keepalive_timeout=55.0, boot_wait=75.0
    )


def test_a_router_without_explicit_options_takes_them_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, router=RouterSettings(port=0, first_byte_timeout=7))
    assert RouterServer(settings, FakeRouteSource()).options.first_byte_timeout == 7


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_timeout_that_is_not_positive_is_refused_with_its_variable_named(value: str) -> None:
    env = {"DOCKYARD_CONFIG": os.devnull, "DOCKYARD_ROUTER_CONNECT_TIMEOUT": value}
    with pytest.raises(InvalidError, match="DOCKYARD_ROUTER_CONNECT_TIMEOUT"):
        load_settings(env)


def test_workers_share_the_port_and_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DOCKYARD_DATA_DIR": str(tmp_path / "data"),
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_ROUTER_PORT": str(port),
        "DOCKYARD_ROUTER_WORKERS": "2",
        "DOCKYARD_ROUTER_TLS": "0",
        "DOCKYARD_API_PORT": str(_free_port()),
    }
    code = (
        "from dockyard.router.server import main\n"
        "from dockyard.settings import load_settings\n"
        "main(load_settings())\n"
    )
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        process = proc.spawn([sys.executable, "-c", code], env=env, stderr=stderr)

    def workers() -> list[int]:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    try:
        _wait_for(lambda: stderr_path.read_bytes().count(b"listening on") == 2)
        first = workers()
        os.kill(first[0], signal.SIGKILL)
        _wait_for(lambda: len(workers()) == 2 and first[0] not in workers())
        statuses = [
            httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": HOST}, timeout=5).status_code
            for _ in range(20)
        ]
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = stderr_path.read_text()
    assert returncode == 0, output
    assert len(first) == 2
    assert statuses == [404] * 20
    assert "2 workers sharing port(s)" in output
    assert "starting it again" in output
    assert output.count("router stopped") >= 2
