"""WebSockets and other protocol switches through the router: a byte tunnel after the dyno's 101."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets

from .support import DOMAIN, RawClient, RouterFactory, build_request, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


@pytest.fixture
async def ws_backend() -> AsyncIterator[str]:
    """A WebSocket echo server (the ``websockets`` library: an implementation the router did not
    write) that also says which path and headers it was opened with."""

    async def echo(ws: websockets.ServerConnection) -> None:
        request = ws.request
        assert request is not None
        await ws.send(f"path={request.path} via={request.headers.get('Via')}")
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"127.0.0.1:{port}"


async def test_a_websocket_is_relayed_both_ways(
    ws_backend: str, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [ws_backend]))) as h,
        websockets.connect(f"ws://{HOST}/chat?room=1", host="127.0.0.1", port=h.port) as ws,
    ):
        hello = await ws.recv()
        await ws.send("ping")
        echoed = await ws.recv()
        big = "x" * (1 << 20)
        await ws.send(big)
        echoed_big = await ws.recv()
        messages = await h.log_messages()
    assert hello == "path=/chat?room=1 via=1.1 dockyard"
    assert echoed == "ping"
    assert echoed_big == big
    assert "status=101" in messages[0]
    assert messages[0].startswith('at=info method=GET path="/chat?room=1"')


async def test_bytes_sent_right_after_the_upgrade_request_reach_the_dyno(
    router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    seen: list[bytes] = []

    async def dyno(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            b"greeting"
        )
        while data := await reader.read(1024):
            writer.write(data.upper())
        writer.write_eof()
        writer.close()

    server = await asyncio.start_server(dyno, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with router_factory(table(route("myapp", [address]))) as h:
            client = await RawClient.open(h.port)
            raw_clients.append(client)
            request = build_request("/", headers={"Connection": "upgrade", "Upgrade": "echo"})
            await client.send(request + b"early bytes;")
            head = await client.reader.readuntil(b"\r\n\r\n")
            greeting = await client.reader.readexactly(len(b"greeting"))
            early = await client.reader.readexactly(len(b"early bytes;"))
            await client.send(b"more")
            more = await client.reader.readexactly(4)
            client.writer.write_eof()
            rest = await asyncio.wait_for(client.reader.read(), 5)
    finally:
        server.close()
        await server.wait_closed()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nUpgrade: echo\r\n" in head
    assert b"\r\nConnection: Upgrade\r\n" in head
    assert b"\r\nUpgrade: echo\r\n" in seen[0]
    assert (greeting, early, more, rest) == (b"greeting", b"EARLY BYTES;", b"MORE", b"")


async def test_an_idle_tunnel_is_closed_after_the_idle_window(
    ws_backend: str, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [ws_backend])), keepalive_timeout=0.2) as h,
        websockets.connect(
            f"ws://{HOST}/", host="127.0.0.1", port=h.port, ping_interval=None
        ) as ws,
    ):
        await ws.recv()
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert not h.router.proxy.tunnels
