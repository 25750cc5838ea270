"""A dyno swap serves every request: with the API served by uvicorn, a ``DynoManager`` on the process
runtime and the real router, all long-polling the API as in production, a steady load of sequential
requests through the router sees no error while a config change replaces the app's web dyno — the
agent reports the new dyno up and the old one gone, and sends SIGTERM only after the drain."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dockyard._util.clock import SystemClock
from dockyard.agent.manager import DynoManager
from dockyard.api.app import create_app
from dockyard.client.dataplane import DataPlaneClient
from dockyard.client.http import AsyncApiClient
from dockyard.control.accounts import create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.releases import append_release
from dockyard.router.routes import ApiRouteSource
from dockyard.router.server import RouterServer
from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import Settings
from tests.conftest import make_settings
from tests.runtime.slugs import build_slug, clean_up

TOKEN = "swap-internal-token"
ACCEPT = "application/vnd.heroku+json; version=3"


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports (held together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Stack:
    platform: Platform
    api_url: str
    router_url: str
    key: str
    app_id: str

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": ACCEPT}
        return httpx.request(method, self.api_url + path, headers=headers, timeout=10, **kwargs)

    def logs(self) -> list[str]:
        return [
            f"{x.source}[{x.dyno}]: {x.message}" for x in self.platform.logs.tail(self.app_id, 500)
        ]


def _run_data_plane(platform: Platform, api_url: str, stop: threading.Event) -> None:
    settings = platform.settings

    async def main() -> None:
        api = AsyncApiClient(api_url, TOKEN)
        runtime = ProcessRuntime(settings)
        manager = DynoManager(settings, runtime, DataPlaneClient(api), SystemClock(), host="swap")
        router = RouterServer(settings, ApiRouteSource(DataPlaneClient(api)))
        await router.start()
        running = asyncio.create_task(manager.run())
        await asyncio.to_thread(stop.wait)
        manager.request_stop()
        await running
        await router.stop(grace=1)
        await api.aclose()
        clean_up(runtime)  # the dynos outlive the agent; their processes are this runtime's

    asyncio.run(main())


@pytest.fixture
def stack(tmp_path: Path, start_audit_writer: Callable[[Settings], object]) -> Iterator[Stack]:
    api_port, router_port = _free_ports(2)
    settings = make_settings(
        tmp_path / "data",
        DOCKYARD_AGENT_STOP_TIMEOUT="2",
        DOCKYARD_ROUTER_HOST="127.0.0.1",
        DOCKYARD_ROUTER_PORT=str(router_port),
        DOCKYARD_ROUTER_TLS="false",
    )
    start_audit_writer(settings)  # the config change is audited
    platform = Platform.open(settings)
    user = create_user(platform, "dev@example.com")
    digest = build_slug(tmp_path, platform.slugs)
    with platform.store.transaction() as tx:
        app = tx.create_app("shop", user.account.id, STACK)
        slug = tx.create_slug(
            app.id,
            digest=digest,
            size=1,
            process_types={"web": "python3 app.py"},
            commit=None,
            stack=STACK,
        )
        append_release(
            tx, app, slug_id=slug.id, config={"GREETING": "v1"}, description="d", user=None
        )
        tx.update_formation(app.id, "web", quantity=1)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform, internal_token=TOKEN),
            host="127.0.0.1",
            port=api_port,
            log_level="warning",
            lifespan="off",
        )
    )
    api_thread = threading.Thread(target=server.run, daemon=True)
    api_thread.start()
    api_url = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: server.started, "the API")
    stop = threading.Event()
    plane = threading.Thread(target=_run_data_plane, args=(platform, api_url, stop), daemon=True)
    plane.start()
    try:
        yield Stack(platform, api_url, f"http://127.0.0.1:{router_port}", user.api_key, app.id)
    finally:
        stop.set()
        plane.join(30)
        server.should_exit = True
        api_thread.join(30)
        platform.close()


class Load:
    """Sequential requests to the app through the router, in a thread, until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        host = f"shop.{self.stack.platform.settings.domain}"
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.stack.router_url + "/", headers={"Host": host})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                self.outcomes[response.json()["env"]["GREETING"]] += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_sequential_requests_see_no_error_while_a_config_change_replaces_the_web_dyno(
    stack: Stack,
) -> None:
    runtime = ProcessRuntime(stack.platform.settings)
    host = {"Host": f"shop.{stack.platform.settings.domain}"}

    def serves(greeting: str) -> bool:
        try:
            answer = httpx.get(stack.router_url + "/", headers=host, timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["env"]["GREETING"] == greeting

    wait_for(lambda: serves("v1"), "the first release to serve")
    with Load(stack) as load:
        wait_for(lambda: sum(load.outcomes.values()) >= 20, "the load to start")
        changed = stack.api("PATCH", "/apps/shop/config-vars", json={"GREETING": "v2"})
        assert changed.status_code == 200, changed.text
        wait_for(lambda: load.outcomes["v2"] >= 20, "the new dyno to serve")
        wait_for(
            lambda: [d.spec.release_version for d in runtime.list()] == [2],
            "the old dyno to stop",
        )
        served_before_the_stop = sum(load.outcomes.values())
        wait_for(lambda: sum(load.outcomes.values()) >= served_before_the_stop + 20, "more load")

    assert load.errors == []
    assert load.outcomes["v1"] >= 20
    logs = stack.logs()
    assert logs.count("heroku[web.1]: Stopping all processes with SIGTERM") == 1
