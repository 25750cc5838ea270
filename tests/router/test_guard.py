"""The router's protections: connections and request rate per address (429), slow heads and bodies
(408, H28), the per-app limit (H22), and blocking addresses that probe for unknown hosts or paths.

Loopback is exempt by default, so these routers exempt nothing; the firewall is a fake that
records what it was asked to block (``test_guard_nftables.py`` checks the real block set).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.domain.dataplane import RouteTable
from dockyard.errors import CommandError
from dockyard.logs.store import FileLogStore
from dockyard.router.guard import ADMIT, BLOCKED, TOO_MANY, Guard, GuardOptions
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer
from dockyard.settings import RouterSettings, Settings

from .support import DOMAIN, Backend, Harness, RawClient, build_request, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


class FakeFirewall:
    def __init__(self, fail: bool = False) -> None:
        self.blocked: list[tuple[str, int]] = []
        self.fail = fail

    def block(self, address: str, seconds: int) -> None:
        if self.fail:
            raise CommandError("nft failed: no such table")
        self.blocked.append((address, seconds))


@asynccontextmanager
async def running(
    tmp: Path, initial: RouteTable, firewall: FakeFirewall | None = None, **router: Any
) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "refresh_interval": 3600,
        "tls": False,
        "guard_exempt": "",
    }
    values.update(router)
    settings = Settings(data_dir=tmp, domain=DOMAIN, router=RouterSettings(**values))
    source = FakeRouteSource(initial)
    logs = FileLogStore(settings.logs_dir)
    server = RouterServer(
        settings, source, options=ProxyOptions(sweep_interval=0.05), poll=False, log_store=logs
    )
    server.guard.blocker = firewall or FakeFirewall()
    await server.start()
    try:
        await server.refresh()
        yield Harness(server, source, settings, logs, tmp)
    finally:
        await server.stop(grace=2.0)


async def ends(client: RawClient) -> bool:
    """Whether the router ends the connection within a few seconds (whatever it sent first)."""
    try:
        while await asyncio.wait_for(client.reader.read(65536), 5):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def status_of(port: int, path: str = "/", host: str = HOST) -> int:
    client = await RawClient.open(port)
    try:
        return (await client.request(path, host=host)).status
    finally:
        await client.close()


# -- per address ---------------------------------------------------------------------------------


async def test_connections_over_the_per_address_limit_get_429_and_are_closed(
    tmp_path: Path, backend: Backend
) -> None:
    async with running(
        tmp_path, table(route("myapp", [backend.address])), max_connections_per_address=2
    ) as h:
        first, second = await RawClient.open(h.port), await RawClient.open(h.port)
        third = await RawClient.open(h.port)
        refused = await third.read()
        closed = await third.at_eof()
        assert (await first.request("/")).status == 200
        await first.close()
        await asyncio.sleep(0.05)
        fourth = await RawClient.open(h.port)
        allowed = await fourth.request("/")
        for client in (second, third, fourth):
            await client.close()
    assert refused.status == 429 and closed
    assert allowed.status == 200


async def test_requests_over_the_rate_get_429_and_the_connection_closes(
    tmp_path: Path, backend: Backend
) -> None:
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        request_rate_per_address=0.001,
        request_burst_per_address=3,
    ) as h:
        client = await RawClient.open(h.port)
        statuses = [(await client.request(f"/{i}")).status for i in range(3)]
        limited = await client.request("/3")
        closed = await client.at_eof()
        await client.close()
    assert statuses == [200, 200, 200]
    assert limited.status == 429 and closed
    assert [s.path for s in backend.seen] == ["/0", "/1", "/2"]


async def test_exempt_networks_are_never_limited(tmp_path: Path, backend: Backend) -> None:
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        guard_exempt="127.0.0.0/8",
        max_connections_per_address=1,
        request_burst_per_address=1,
        request_rate_per_address=0.001,
    ) as h:
        clients = [await RawClient.open(h.port) for _ in range(3)]
        statuses = [(await c.request("/")).status for c in clients for _ in range(2)]
        for client in clients:
            await client.close()
    assert statuses == [200] * 6


def test_the_request_rate_refills_with_time() -> None:
    guard = Guard(GuardOptions(request_rate=2.0, request_burst=2))
    assert [guard.allow(b"203.0.113.1", 0.0) for _ in range(3)] == [True, True, False]
    assert guard.allow(b"203.0.113.2", 0.0), "each address has its own bucket"
    assert guard.allow(b"203.0.113.1", 0.5)
    assert not guard.allow(b"203.0.113.1", 0.5)
    guard.tidy(10.0)
    assert guard.buckets == {}


# -- slow clients ------------------------------------------------------------------------------


async def test_a_head_that_trickles_in_is_cut_with_408(tmp_path: Path, backend: Backend) -> None:
    async with running(tmp_path, table(route("myapp", [backend.address])), header_timeout=0.3) as h:
        client = await RawClient.open(h.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
        for _ in range(2):  # a line every 0.1 s, then nothing: the head never ends
            await asyncio.sleep(0.1)
            await client.send(b"X-Slow: 1\r\n")
        response = await asyncio.wait_for(client.read(), 5)
        closed = await client.at_eof()
        await client.close()
        fast = await status_of(h.port)
    assert response.status == 408 and closed
    assert backend.seen[0].path == "/", "only the fast request reached the dyno"
    assert len(backend.seen) == 1
    assert fast == 200


async def test_a_body_that_trickles_in_is_cut_with_408_and_logged_as_h28(
    tmp_path: Path, backend: Backend
) -> None:
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        body_timeout=0.3,
        body_min_rate=100,
    ) as h:
        client = await RawClient.open(h.port)
        head = build_request("/upload", method="POST", headers={"Content-Length": "10000"})
        await client.send(head + b"x" * 10)

        for _ in range(3):  # a byte every 0.1 s, then nothing: far below 100 bytes a second
            await asyncio.sleep(0.1)
            await client.send(b"x")
        response = await asyncio.wait_for(client.read(), 5)
        await client.close()
        messages = await h.log_messages()
    assert response.status == 408
    assert any(
        'code=H28 desc="Client Connection Idle"' in m and "status=408" in m for m in messages
    )


async def test_a_body_sent_at_a_decent_pace_is_not_cut(tmp_path: Path, backend: Backend) -> None:
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        body_timeout=0.2,
        body_min_rate=1000,
    ) as h:
        client = await RawClient.open(h.port)
        body = b"y" * 4000
        await client.send(
            build_request("/up", method="POST", headers={"Content-Length": str(len(body))})
        )
        for i in range(0, len(body), 500):
            await client.send(body[i : i + 500])
            await asyncio.sleep(0.05)
        response = await client.read()
        await client.close()
    assert response.status == 200
    assert response.json()["length"] == 4000


# -- per app ---------------------------------------------------------------------------------------


async def test_an_app_over_its_connection_limit_gets_h22(tmp_path: Path, backend: Backend) -> None:
    async with running(tmp_path, table(route("myapp", [backend.address], connection_limit=1))) as h:
        slow = await RawClient.open(h.port)
        await slow.send(build_request("/slow"))
        for _ in range(100):
            if backend.seen:
                break
            await asyncio.sleep(0.02)
        refused = await status_of(h.port, "/second")
        backend.server.release.set()
        first = await slow.read()
        await slow.close()
        after = await status_of(h.port, "/third")
        messages = await h.log_messages()
    assert refused == 503
    assert first.status == 200 and after == 200
    assert any('code=H22 desc="Connection limit reached"' in m for m in messages)
    assert [s.path for s in backend.seen] == ["/slow", "/third"]


def test_the_routers_default_applies_to_apps_that_set_no_limit() -> None:
    guard = Guard(GuardOptions(app_connection_limit=2))
    assert [guard.enter("a", 0) for _ in range(3)] == [True, True, False]
    assert guard.enter("a", 3)
    guard.leave("a")
    assert guard.enter("a", 0) is False  # three in flight: still over the default of two
    guard.leave("a")
    guard.leave("a")
    assert guard.enter("a", 0)


# -- probing ---------------------------------------------------------------------------------------


async def test_probing_unknown_hosts_blocks_the_address_in_the_firewall_and_the_router(
    tmp_path: Path, backend: Backend
) -> None:
    firewall = FakeFirewall()
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        firewall,
        probe_threshold=3,
    ) as h:
        client = await RawClient.open(h.port)
        statuses = [(await client.request("/", host=f"n{i}.example.com")).status for i in range(3)]
        await client.send(build_request("/", host="n3.example.com"))
        cut = await ends(client)
        await client.close()
        await h.router.guard.settle()
        late = await RawClient.open(h.port)
        refused = await late.at_eof()
        await late.close()
    assert statuses == [404, 404, 404]
    assert cut and refused
    assert firewall.blocked == [("127.0.0.1", 3600)]


async def test_many_404s_from_an_app_count_as_probing_too(tmp_path: Path) -> None:
    async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    dyno = await asyncio.start_server(not_found, "127.0.0.1", 0)
    address = f"127.0.0.1:{dyno.sockets[0].getsockname()[1]}"
    firewall = FakeFirewall()
    async with running(
        tmp_path, table(route("myapp", [address])), firewall, probe_threshold=2
    ) as h:
        client = await RawClient.open(h.port)
        statuses = [(await client.request(f"/wp-admin/{i}")).status for i in range(2)]
        await client.send(build_request("/.env"))
        cut = await ends(client)
        await client.close()
        await h.router.guard.settle()
    dyno.close()
    assert statuses == [404, 404] and cut
    assert firewall.blocked == [("127.0.0.1", 3600)]


async def test_without_the_firewall_the_router_blocks_on_its_own(
    tmp_path: Path, backend: Backend
) -> None:
    async with running(
        tmp_path,
        table(route("myapp", [backend.address])),
        FakeFirewall(fail=True),
        probe_threshold=1,
    ) as h:
        client = await RawClient.open(h.port)
        await client.request("/", host="a.example.com")
        await client.send(build_request("/", host="b.example.com"))
        await ends(client)
        await client.close()
        await h.router.guard.settle()
        late = await RawClient.open(h.port)
        refused = await late.at_eof()
        await late.close()
        firewall_on = h.router.guard.firewall
    assert refused
    assert not firewall_on


def test_a_block_ends_after_its_duration_and_probes_count_per_window() -> None:
    guard = Guard(GuardOptions(probe_threshold=2, probe_window=10.0, block_duration=60.0))
    address = b"203.0.113.5"
    assert not guard.probe(address, 0.0)
    assert not guard.probe(address, 1.0)
    assert not guard.probe(address, 20.0), "a new window starts the count again"
    assert not guard.probe(address, 21.0)
    assert guard.probe(address, 22.0)
    assert guard.admit(address, 30.0) == BLOCKED
    assert guard.admit(address, 83.0) == ADMIT


def test_a_connection_count_is_given_back_when_the_connection_ends() -> None:
    guard = Guard(GuardOptions(max_connections_per_address=1))
    assert guard.admit(b"203.0.113.6", 0.0) == ADMIT
    assert guard.admit(b"203.0.113.6", 0.0) == TOO_MANY
    guard.release(b"203.0.113.6")
    assert guard.admit(b"203.0.113.6", 0.0) == ADMIT
