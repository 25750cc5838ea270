"""Route sources, the on-disk cache and the refresher that ties them to the proxy."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from dockyard.client.dataplane import DataPlaneClient, Versioned
from dockyard.client.http import AsyncApiClient
from dockyard.domain.dataplane import RouteTable
from dockyard.errors import UnavailableError
from dockyard.router.routes import (
    ApiRouteSource,
    FakeRouteSource,
    RouteCache,
    RouteRefresher,
)
from dockyard.settings import ApiSettings, Settings

from .support import refused_address, route, table

pytestmark = pytest.mark.anyio

TABLE = table(route("myapp", ["127.0.0.1:5001"]), route("other", [], web_quantity=0))


class Applied:
    def __init__(self) -> None:
        self.tables: list[RouteTable] = []

    def __call__(self, table: RouteTable) -> None:
        self.tables.append(table)


# --- FakeRouteSource


async def test_fake_source_answers_unchanged_with_none() -> None:
    source = FakeRouteSource(TABLE)
    first = await source.fetch(None)
    assert first is not None and first.value == TABLE
    assert await source.fetch(first.etag) is None
    source.publish(RouteTable())
    second = await source.fetch(first.etag)
    assert second is not None and second.value == RouteTable()


# --- RouteCache


def test_cache_round_trips_the_table_and_etag(tmp_path: Path) -> None:
    cache = RouteCache(tmp_path / "state" / "routes.json")
    assert cache.load() is None
    source_etag = '"v7"'
    cache.save(Versioned(TABLE, source_etag))
    loaded = cache.load()
    assert loaded is not None
    assert loaded.value == TABLE
    assert loaded.etag == source_etag
    assert sorted(p.name for p in cache.path.parent.iterdir()) == ["routes.json"], "no temp file"


def test_unreadable_cache_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "routes.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="dockyard.router"):
        assert RouteCache(path).load() is None
    assert "ignoring the cached route table" in caplog.text


# --- RouteRefresher


async def test_refresher_applies_new_tables_and_caches_them(tmp_path: Path) -> None:
    source = FakeRouteSource(TABLE)
    applied = Applied()
    cache = RouteCache(tmp_path / "routes.json")
    refresher = RouteRefresher(source, applied, cache=cache, interval=1)
    assert await refresher.refresh() is True
    assert await refresher.refresh() is False, "an unchanged table is not applied again"
    assert applied.tables == [TABLE]
    cached = cache.load()
    assert cached is not None and cached.value == TABLE


async def test_refresher_starts_from_the_cache(tmp_path: Path) -> None:
    cache = RouteCache(tmp_path / "routes.json")
    first = RouteRefresher(FakeRouteSource(TABLE), Applied(), cache=cache, interval=1)
    await first.refresh()
    applied = Applied()
    second = RouteRefresher(FakeRouteSource(TABLE), applied, cache=cache, interval=1)
    assert second.load_cache() is True
    assert applied.tables == [TABLE]
    assert await second.refresh() is False, "the cached etag makes the first poll a 304"


async def test_an_outage_is_logged_once_and_the_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FakeRouteSource(TABLE)
    applied = Applied()
    refresher = RouteRefresher(source, applied, cache=None, interval=1)
    await refresher.refresh()
    source.failing = True
    with caplog.at_level(logging.INFO, logger="dockyard.router"):
        for _ in range(5):
            assert await refresher.refresh() is False
        source.failing = False
        await refresher.refresh()
        await refresher.refresh()
        source.failing = True
        await refresher.refresh()
        await refresher.refresh()
    messages = [r.getMessage() for r in caplog.records if r.name == "dockyard.router"]
    failures = [m for m in messages if m.startswith("cannot refresh the route table")]
    recoveries = [m for m in messages if "answers again" in m]
    assert len(failures) == 2, "one warning per outage, not per poll"
    assert len(recoveries) == 1
    assert applied.tables == [TABLE], "the last table stays in force"


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.001)


async def test_a_running_refresher_applies_a_new_table_while_its_poll_is_held() -> None:
    """The API holds the poll until the table changes: the new table arrives without waiting out
    an interval, and an unchanged table costs no polls meanwhile."""
    source = FakeRouteSource(TABLE)
    applied = Applied()
    refresher = RouteRefresher(source, applied, cache=None, interval=30, wait=30)
    async with anyio.create_task_group() as group:
        group.start_soon(refresher.run)
        await _until(lambda: len(applied.tables) == 1 and source.fetches == 2)  # the second is held
        source.publish(RouteTable())
        await _until(lambda: len(applied.tables) == 2)
        group.cancel_scope.cancel()
    assert applied.tables == [TABLE, RouteTable()]
    assert source.fetches == 3, "one poll to get the table, one held, one held again"


class ImpatientSource(FakeRouteSource):
    """An API that answers unchanged polls at once instead of holding them."""

    async def fetch(self, etag: str | None, wait: float = 0.0) -> Versioned[RouteTable] | None:
        return await super().fetch(etag, 0.0)


async def test_unchanged_answers_that_come_at_once_are_paced_by_the_interval() -> None:
    source = ImpatientSource(TABLE)
    refresher = RouteRefresher(source, Applied(), cache=None, interval=0.2, wait=30)
    async with anyio.create_task_group() as group:
        group.start_soon(refresher.run)
        await anyio.sleep(0.5)
        group.cancel_scope.cancel()
    assert 2 <= source.fetches <= 5, f"{source.fetches} polls in 0.5 s: no busy loop"


async def test_the_api_source_asks_the_api_to_hold_the_poll(
    api_server: _RoutesServer, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, api=ApiSettings(port=api_server.server_address[1]))
    source = ApiRouteSource.from_settings(settings)
    try:
        await source.fetch(None, 25)
        await source.fetch('"abc"', 25)
    finally:
        await source.aclose()
    assert api_server.paths == ["/internal/v1/routes", "/internal/v1/routes?wait=25"]


# --- ApiRouteSource against a real HTTP server


class _RoutesHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RoutesServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        self.server.paths.append(self.path)
        if self.path.split("?")[0] != "/internal/v1/routes":
            self.send_error(404)
            return
        if self.headers.get("If-None-Match") == '"abc"':
            self.send_response(304)
            self.send_header("ETag", '"abc"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(TABLE.to_json()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"abc"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _RoutesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RoutesHandler)
        self.authorizations: list[str] = []
        self.paths: list[str] = []


@pytest.fixture
def api_server() -> Iterator[_RoutesServer]:
    server = _RoutesServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_api_source_fetches_with_the_internal_token(
    api_server: _RoutesServer, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, api=ApiSettings(port=api_server.server_address[1]))
    source = ApiRouteSource.from_settings(settings)
    try:
        fetched = await source.fetch(None)
        unchanged = await source.fetch('"abc"')
    finally:
        await source.aclose()
    token = settings.internal_token_file.read_text().strip()
    assert fetched is not None
    assert fetched.value == TABLE
    assert fetched.etag == '"abc"'
    assert unchanged is None
    assert api_server.authorizations == [f"Bearer {token}"] * 2


async def test_api_source_raises_unavailable_when_the_api_is_down() -> None:
    source = ApiRouteSource(DataPlaneClient(AsyncApiClient(f"http://{refused_address()}", "token")))
    try:
        with pytest.raises(UnavailableError):
            await source.fetch(None)
    finally:
        await source.aclose()
