"""The response cache: what is stored and what is not, freshness and ``Age``, ``Vary``, ``HEAD``,
``X-Cache``, purges on deploy, and bounded memory with least-recently-used eviction.

The dyno here is a small asyncio server whose responses each test sets per path; its bodies say
how many requests it has answered, so a response from the cache is told apart from a fresh one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.domain.dataplane import Route, RouteTable
from dockyard.logs.store import FileLogStore
from dockyard.router.cache import Fill, ResponseCache, request_headers
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer
from dockyard.settings import RouterSettings, Settings

from .support import DOMAIN, Harness, RawClient, RawResponse, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"
PUBLIC = [("Cache-Control", "public, max-age=60")]


class Origin:
    """A dyno answering each path with the status and headers the test set (default: public for a
    minute); the body is ``<path> #<n>``, n counting the requests it answered."""

    def __init__(self) -> None:
        self.responses: dict[str, tuple[int, list[tuple[str, str]]]] = {}
        self.chunked: set[str] = set()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.seen if p == path)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, headers = request_headers(head)
                fields = {k.decode(): v.decode() for k, v in headers.items()}
                length = int(fields.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                path = target.decode()
                self.seen.append((method.decode(), path, fields))
                status, extra = self.responses.get(path, (200, PUBLIC))
                body = f"{path} #{len(self.seen)}".encode()
                lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in extra]
                if path in self.chunked:
                    lines.append("Transfer-Encoding: chunked")
                    payload = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
                else:
                    lines.append(f"Content-Length: {len(body)}")
                    payload = body
                if method == b"HEAD" or status in (204, 304):
                    payload = b""
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    dyno = Origin()
    dyno.server = await asyncio.start_server(dyno.handle, "127.0.0.1", 0)
    yield dyno
    dyno.server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached(address: str, **changes: Any) -> Route:
    return route("myapp", [address], **{"cache": True, "release_version": 1, **changes})


@asynccontextmanager
async def running(
    tmp: Path, initial: RouteTable, **router: Any
) -> AsyncIterator[tuple[Harness, Clock]]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "refresh_interval": 3600,
        "tls": False,
    }
    values.update(router)
    settings = Settings(data_dir=tmp, domain=DOMAIN, router=RouterSettings(**values))
    source = FakeRouteSource(initial)
    logs = FileLogStore(settings.logs_dir)
    server = RouterServer(
        settings, source, options=ProxyOptions(sweep_interval=0.05), poll=False, log_store=logs
    )
    clock = Clock()
    server.cache.clock = clock
    await server.start()
    try:
        await server.refresh()
        yield Harness(server, source, settings, logs, tmp), clock
    finally:
        await server.stop(grace=2.0)


async def get(
    port: int, path: str, headers: dict[str, str] | None = None, host: str = HOST
) -> RawResponse:
    client = await RawClient.open(port)
    try:
        return await client.request(path, headers=headers, host=host)
    finally:
        await client.close()


# -- what is stored ------------------------------------------------------------------------------


async def test_a_public_response_with_max_age_is_served_from_memory_the_second_time(
    tmp_path: Path, origin: Origin
) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, clock):
        first = await get(h.port, "/page")
        clock.now += 5
        second = await get(h.port, "/page")
        messages = await h.log_messages()
    assert first.header("X-Cache") == "MISS"
    assert second.header("X-Cache") == "HIT"
    assert second.body == first.body == b"/page #1"
    assert second.header("Age") == "5"
    assert second.header("Content-Length") == str(len(first.body))
    assert second.header("Cache-Control") == "public, max-age=60"
    assert origin.hits("/page") == 1
    assert "dyno=cache" in messages[-1] and "status=200" in messages[-1]


async def test_a_response_is_fetched_again_once_its_max_age_has_passed(
    tmp_path: Path, origin: Origin
) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, clock):
        await get(h.port, "/page")
        clock.now += 61
        again = await get(h.port, "/page")
    assert again.header("X-Cache") == "MISS"
    assert again.body == b"/page #2"


async def test_s_maxage_wins_over_max_age(tmp_path: Path, origin: Origin) -> None:
    origin.responses["/s"] = (200, [("Cache-Control", "public, max-age=600, s-maxage=10")])
    async with running(tmp_path, table(cached(origin.address))) as (h, clock):
        await get(h.port, "/s")
        clock.now += 9
        hit = await get(h.port, "/s")
        clock.now += 2
        stale = await get(h.port, "/s")
    assert hit.header("X-Cache") == "HIT"
    assert stale.header("X-Cache") == "MISS"


async def test_the_age_a_response_arrives_with_counts_against_its_max_age(
    tmp_path: Path, origin: Origin
) -> None:
    origin.responses["/aged"] = (200, [("Cache-Control", "public, max-age=60"), ("Age", "50")])
    async with running(tmp_path, table(cached(origin.address))) as (h, clock):
        await get(h.port, "/aged")
        clock.now += 3
        hit = await get(h.port, "/aged")
        clock.now += 8
        stale = await get(h.port, "/aged")
    assert hit.header("Age") == "53"
    assert stale.header("X-Cache") == "MISS"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Cache-Control", "max-age=60")], id="not-public"),
        pytest.param([("Cache-Control", "public")], id="no-max-age"),
        pytest.param([("Cache-Control", "public, max-age=60, private")], id="private"),
        pytest.param([("Cache-Control", "public, max-age=60, no-store")], id="no-store"),
        pytest.param([("Cache-Control", "public, no-cache, max-age=60")], id="no-cache"),
        pytest.param([("Cache-Control", "public, max-age=0")], id="max-age-0"),
        pytest.param([*PUBLIC, ("Set-Cookie", "session=abc")], id="set-cookie"),
        pytest.param([*PUBLIC, ("Vary", "*")], id="vary-star"),
        pytest.param([], id="no-cache-control"),
    ],
)
async def test_responses_that_forbid_or_do_not_allow_sharing_are_not_stored(
    tmp_path: Path, origin: Origin, headers: list[tuple[str, str]]
) -> None:
    origin.responses["/x"] = (200, headers)
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        first = await get(h.port, "/x")
        second = await get(h.port, "/x")
    assert (first.header("X-Cache"), second.header("X-Cache")) == ("MISS", "MISS")
    assert second.body == b"/x #2"


async def test_a_status_that_is_not_cacheable_is_not_stored(tmp_path: Path, origin: Origin) -> None:
    origin.responses["/e"] = (500, PUBLIC)
    origin.responses["/gone"] = (404, PUBLIC)
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        for path in ("/e", "/e", "/gone", "/gone"):
            await get(h.port, path)
    assert origin.hits("/e") == 2
    assert origin.hits("/gone") == 1, "a 404 with explicit freshness is cacheable"


async def test_requests_with_authorization_neither_read_nor_fill_the_cache(
    tmp_path: Path, origin: Origin
) -> None:
    auth = {"Authorization": "Bearer secret"}
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        await get(h.port, "/me", auth)
        after_auth = await get(h.port, "/me")
        anonymous = await get(h.port, "/me")
        with_auth = await get(h.port, "/me", auth)
    assert after_auth.header("X-Cache") == "MISS", "the authorized response was not stored"
    assert anonymous.header("X-Cache") == "HIT"
    assert with_auth.header("X-Cache") == "MISS"
    assert with_auth.body == b"/me #3"


async def test_vary_keeps_one_response_per_value_of_the_named_request_headers(
    tmp_path: Path, origin: Origin
) -> None:
    origin.responses["/v"] = (200, [*PUBLIC, ("Vary", "Accept-Encoding")])
    gzip = {"Accept-Encoding": "gzip"}
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        plain = await get(h.port, "/v")
        zipped = await get(h.port, "/v", gzip)
        plain_again = await get(h.port, "/v")
        zipped_again = await get(h.port, "/v", gzip)
    assert plain.body == plain_again.body == b"/v #1"
    assert zipped.body == zipped_again.body == b"/v #2"
    assert (plain_again.header("X-Cache"), zipped_again.header("X-Cache")) == ("HIT", "HIT")


async def test_a_head_request_is_answered_from_a_stored_get(tmp_path: Path, origin: Origin) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        full = await get(h.port, "/h")
        client = await RawClient.open(h.port)
        try:
            head = await client.request("/h", method="HEAD")
            after = await client.request("/h")  # the connection is still in step
        finally:
            await client.close()
    assert head.header("X-Cache") == "HIT"
    assert head.header("Content-Length") == str(len(full.body))
    assert head.body == b""
    assert after.body == full.body
    assert origin.hits("/h") == 1


async def test_other_methods_pass_through_and_are_never_stored(
    tmp_path: Path, origin: Origin
) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        client = await RawClient.open(h.port)
        try:
            posted = await client.request("/p", method="POST", body=b"data")
            fetched = await client.request("/p")
        finally:
            await client.close()
    assert posted.header("X-Cache") == "MISS"
    assert fetched.header("X-Cache") == "MISS"
    assert [m for m, p, _ in origin.seen] == ["POST", "GET"]


async def test_a_chunked_response_is_stored_and_served_with_a_length(
    tmp_path: Path, origin: Origin
) -> None:
    origin.chunked.add("/c")
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        first = await get(h.port, "/c")
        second = await get(h.port, "/c")
    assert first.header("Transfer-Encoding") == "chunked"
    assert second.header("Transfer-Encoding") is None
    assert second.header("Content-Length") == str(len(first.body))
    assert second.body == first.body


async def test_a_body_over_the_object_limit_is_not_stored(tmp_path: Path, origin: Origin) -> None:
    async with running(tmp_path, table(cached(origin.address)), cache_max_object_bytes=4) as (h, _):
        await get(h.port, "/large")
        again = await get(h.port, "/large")
    assert again.header("X-Cache") == "MISS"


# -- per app, and purges ------------------------------------------------------------------------


async def test_the_cache_is_off_unless_the_app_turns_it_on(tmp_path: Path, origin: Origin) -> None:
    async with running(tmp_path, table(route("myapp", [origin.address]))) as (h, _):
        first = await get(h.port, "/page")
        second = await get(h.port, "/page")
    assert first.header("X-Cache") is None and second.header("X-Cache") is None
    assert origin.hits("/page") == 2


async def test_a_deploy_purges_the_apps_responses_and_only_its_own(
    tmp_path: Path, origin: Origin
) -> None:
    other = route("other", [origin.address], cache=True, release_version=4)
    async with running(tmp_path, table(cached(origin.address), other)) as (h, _):
        await get(h.port, "/page")
        await get(h.port, "/page", host=f"other.{DOMAIN}")
        await h.publish(table(cached(origin.address, release_version=2), other))
        mine = await get(h.port, "/page")
        theirs = await get(h.port, "/page", host=f"other.{DOMAIN}")
    assert mine.header("X-Cache") == "MISS"
    assert theirs.header("X-Cache") == "HIT"


async def test_turning_the_cache_off_forgets_the_apps_responses(
    tmp_path: Path, origin: Origin
) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        await get(h.port, "/page")
        await h.publish(table(cached(origin.address, cache=False)))
        assert h.router.cache.entries == {}
        off = await get(h.port, "/page")
        await h.publish(table(cached(origin.address)))
        back = await get(h.port, "/page")
    assert off.header("X-Cache") is None
    assert back.header("X-Cache") == "MISS"


async def test_an_unchanged_table_keeps_what_is_stored(tmp_path: Path, origin: Origin) -> None:
    async with running(tmp_path, table(cached(origin.address))) as (h, _):
        await get(h.port, "/page")
        await h.publish(table(cached(origin.address)))  # a new table, the same release
        hit = await get(h.port, "/page")
    assert hit.header("X-Cache") == "HIT"


# -- bounded memory ------------------------------------------------------------------------------


def store(cache: ResponseCache, app: str, path: bytes, body: bytes) -> None:
    fill = cache.request(app, b"http", b"h", b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(fill, Fill)
    head = [b"HTTP/1.1 200 OK\r\n", b"Cache-Control", b": ", b"public, max-age=60", b"\r\n"]
    assert fill.head(200, head)
    fill.body(body)
    fill.done()


@pytest.fixture
def small() -> Iterator[ResponseCache]:
    cache = ResponseCache(3 * 1400, 2000, clock=lambda: 0.0)
    cache.apply(table(dataclasses.replace(route("a"), cache=True)))
    yield cache


def test_memory_stays_under_the_bound_by_evicting_the_least_recently_used(
    small: ResponseCache,
) -> None:
    for name in (b"/1", b"/2", b"/3"):
        store(small, "id-a", name, b"x" * 1000)
    assert len(small.entries) == 3
    small.request("id-a", b"http", b"h", b"GET /1 HTTP/1.1\r\n\r\n")  # /1 is used again
    store(small, "id-a", b"/4", b"x" * 1000)
    paths = sorted(key[1] for key in small.entries)
    assert paths == [b"http://h/1", b"http://h/3", b"http://h/4"]
    assert small.size <= small.max_bytes


def test_a_response_larger_than_the_object_limit_is_given_up(small: ResponseCache) -> None:
    store(small, "id-a", b"/big", b"x" * 2001)
    assert small.entries == {}


def test_the_scheme_is_part_of_the_key(small: ResponseCache) -> None:
    store(small, "id-a", b"/s", b"body")
    assert small.request("id-a", b"https", b"h", b"GET /s HTTP/1.1\r\n\r\n") is not None
    assert small.hits == 0
