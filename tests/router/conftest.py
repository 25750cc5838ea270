"""Fixtures for the router tests: backends, a router on an ephemeral port, raw clients.

``router_factory`` starts a ``RouterServer`` on 127.0.0.1:0 with a ``FakeRouteSource``; tests
publish tables and call ``refresh()`` themselves, so nothing depends on the poll interval.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.domain.dataplane import RouteTable
from dockyard.logs.store import FileLogStore
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer

from .support import (
    Backend,
    BackendServer,
    Harness,
    RawClient,
    RouterFactory,
    make_settings,
)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Every async router test runs on the standard loop and on uvloop."""
    return request.param


@pytest.fixture
def make_backend() -> Iterator[Callable[[str], Backend]]:
    started: list[Backend] = []

    def make(name: str = "a") -> Backend:
        server = BackendServer(name)
        thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=f"backend-{name}", daemon=True
        )
        thread.start()
        backend = Backend(name, server, thread)
        started.append(backend)
        return backend

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture
def backend(make_backend: Callable[[str], Backend]) -> Backend:
    return make_backend("a")


@pytest.fixture
def router_factory(tmp_path: Path) -> RouterFactory:
    @asynccontextmanager
    async def start(
        initial: RouteTable | None = None,
        *,
        source: FakeRouteSource | None = None,
        data_dir: Path | None = None,
        **options: Any,
    ) -> AsyncIterator[Harness]:
        settings = make_settings(data_dir or tmp_path)
        source = source or FakeRouteSource(initial or RouteTable())
        logs = FileLogStore(settings.logs_dir)
        defaults = {"sweep_interval": 0.05}
        router = RouterServer(
            settings,
            source,
            options=dataclasses.replace(ProxyOptions(), **{**defaults, **options}),
            poll=False,
            log_store=logs,
        )
        await router.start()
        try:
            await router.refresh()
            yield Harness(router, source, settings, logs, data_dir or tmp_path)
        finally:
            await router.stop(grace=2.0)

    return start


@pytest.fixture
async def raw_clients() -> AsyncIterator[list[RawClient]]:
    """Raw clients opened by a test, closed at its end."""
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        await client.close()
