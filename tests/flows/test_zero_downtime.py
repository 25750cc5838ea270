"""Zero downtime under continuous load (issue 5, item 4): with the API served by uvicorn, a
``DynoManager`` on the process runtime and the real router, all long-polling the API as in
production, concurrent keep-alive clients see no failed request while the app is deployed (a new
release), restarted, scaled down and rolled back, one after the other."""

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

TOKEN = "zero-downtime-internal-token"
ACCEPT = "application/vnd.heroku+json; version=3"
CLIENTS = 4


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Platform_:
    platform: Platform
    api_url: str
    router_url: str
    key: str
    runtime: ProcessRuntime

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": ACCEPT}
        response = httpx.request(method, self.api_url + path, headers=headers, timeout=10, **kwargs)
        assert response.status_code < 300, response.text
        return response

    def web_releases(self) -> list[int]:
        return sorted(d.spec.release_version for d in self.runtime.list())


def _run_data_plane(platform: Platform, api_url: str, stop: threading.Event) -> None:
    settings = platform.settings

    async def main() -> None:
        api = AsyncApiClient(api_url, TOKEN)
        runtime = ProcessRuntime(settings)
        manager = DynoManager(settings, runtime, DataPlaneClient(api), SystemClock(), host="zd")
        router = RouterServer(settings, ApiRouteSource(DataPlaneClient(api)))
        await router.start()
        running = asyncio.create_task(manager.run())
        await asyncio.to_thread(stop.wait)
        manager.request_stop()
        await running
        await router.stop(grace=1)
        await api.aclose()
        await asyncio.to_thread(clean_up, runtime)  # the dynos, by the runtime that started them

    asyncio.run(main())


@pytest.fixture
def stack(tmp_path: Path, start_audit_writer: Callable[[Settings], object]) -> Iterator[Platform_]:
    api_port, router_port = _free_ports(2)
    settings = make_settings(
        tmp_path / "data",
        DOCKYARD_AGENT_STOP_TIMEOUT="2",
        DOCKYARD_ROUTER_HOST="127.0.0.1",
        DOCKYARD_ROUTER_PORT=str(router_port),
        DOCKYARD_ROUTER_TLS="0",
    )
    start_audit_writer(settings)
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
        tx.update_formation(app.id, "web", quantity=2)
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
    runtime = ProcessRuntime(settings)
    try:
        yield Platform_(platform, api_url, f"http://127.0.0.1:{router_port}", user.api_key, runtime)
    finally:
        stop.set()
        plane.join(30)
        server.should_exit = True
        api_thread.join(30)
        clean_up(runtime)
        platform.close()


class Load:
    """``CLIENTS`` keep-alive clients sending requests through the router until stopped."""

    def __init__(self, stack: Platform_) -> None:
        self.stack = stack
        self.served: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _run(self) -> None:
        host = f"shop.{self.stack.platform.settings.domain}"
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.stack.router_url + "/", headers={"Host": host})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                self.served[response.json()["env"]["GREETING"]] += 1

    def total(self) -> int:
        return sum(self.served.values())

    def more(self, count: int, what: str) -> None:
        start = self.total()
        wait_for(lambda: self.total() >= start + count, what)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def test_deploy_restart_scale_down_and_rollback_under_load_fail_no_request(
    stack: Platform_,
) -> None:
    host = {"Host": f"shop.{stack.platform.settings.domain}"}

    def serves(greeting: str) -> bool:
        try:
            answer = httpx.get(stack.router_url + "/", headers=host, timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["env"]["GREETING"] == greeting

    wait_for(lambda: serves("v1") and stack.web_releases() == [1, 1], "two v1 dynos")
    with Load(stack) as load:
        load.more(50, "the load to start")
        # deploy: a new release (v2) replaces both dynos
        stack.api("PATCH", "/apps/shop/config-vars", json={"GREETING": "v2"})
        wait_for(lambda: stack.web_releases() == [2, 2], "the deploy to finish")
        load.more(50, "requests after the deploy")
        # restart: new dynos of the same release
        before = {d.spec.id for d in stack.runtime.list()}
        stack.api("DELETE", "/apps/shop/dynos")
        wait_for(
            lambda: (
                len(stack.runtime.list()) == 2
                and not before & {d.spec.id for d in stack.runtime.list()}
            ),
            "the restart to finish",
        )
        load.more(50, "requests after the restart")
        # scale down to one web dyno
        stack.api("PATCH", "/apps/shop/formation/web", json={"quantity": 1})
        wait_for(lambda: len(stack.runtime.list()) == 1, "the scale-down to finish")
        load.more(50, "requests after the scale-down")
        # roll back to v1's code and config (a new release, v4)
        stack.api("POST", "/apps/shop/releases", json={"release": 1})
        wait_for(lambda: serves("v1") and len(stack.runtime.list()) == 1, "the rollback")
        load.more(50, "requests after the rollback")
    assert load.errors == []
    assert load.served["v1"] >= 100 and load.served["v2"] >= 100
