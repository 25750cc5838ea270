"""The dyno side of the data path: response framing, hop-by-hop headers, pooled connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from .support import (
    DOMAIN,
    Backend,
    RawClient,
    RouterFactory,
    build_request,
    route,
    table,
)

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


async def test_chunked_response_is_streamed_chunked(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/chunked")
        after = await client.request("/after")
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"first,second,third"
    assert after.status == 200


async def test_response_ending_at_close_is_rechunked_for_http11_clients(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/until-close")
        after = await client.request("/after")
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"body that ends at close"
    assert after.status == 200, "the client connection survives the dyno's close"


async def test_response_ending_at_close_ends_an_http10_connection(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        await client.send(
            build_request("/until-close", version="HTTP/1.0", headers={"Connection": "keep-alive"})
        )
        response = await client.read()
    assert response.header("Transfer-Encoding") is None
    assert response.header("Connection") == "close"
    assert response.body == b"body that ends at close"


async def test_head_response_has_no_body_and_the_connections_stay_usable(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        head = await client.request("/big", method="HEAD", headers={"X-Size": "5000"})
        after = await client.request("/after")
    assert head.status == 200
    assert head.header("Content-Length") == "5000"
    assert after.json()["path"] == "/after"
    assert len({s.client_port for s in backend.seen}) == 1, "the dyno connection was reused"


async def test_hop_by_hop_response_headers_are_stripped(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/hop")
    names = {name.lower() for name, _ in response.headers}
    assert "x-secret" not in names
    assert "keep-alive" not in names
    assert "connection" not in names
    assert response.header("X-Kept") == "yes"
    assert response.header("Via") == "1.1 dockyard"


async def test_expect_100_continue_is_relayed(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        head = build_request("/upload", method="POST", headers={"Expect": "100-continue"})
        await client.send(head.replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n"))
        interim = await client.read()
        await client.send(b"data")
        final = await client.read()
    assert interim.status == 100
    assert final.status == 200
    assert final.json()["body"] == "data"


async def test_dyno_breaking_off_a_response_closes_the_client_and_logs_h18(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        await client.send(build_request("/partial"))
        head = await client.reader.readuntil(b"\r\n\r\n")
        rest = await asyncio.wait_for(client.reader.read(), 5)
        messages = await h.log_messages()
    assert head.startswith(b"HTTP/1.1 200")
    assert rest == b"0123456789", "what arrived is passed on, then the connection ends"
    assert messages[0].startswith('at=error code=H18 desc="Server Request Interrupted"')


async def test_client_leaving_before_the_response_is_logged_h27(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        await client.send(build_request("/slow"))
        while not backend.seen:
            await asyncio.sleep(0.01)
        await client.close()
        while not await h.log_messages():
            await asyncio.sleep(0.01)
        messages = await h.log_messages()
        backend.server.release.set()
    assert messages[0].startswith('at=warning code=H27 desc="Client Request Interrupted"')
    assert "status=499" in messages[0]


class StaleAfterOneBackend:
    """A dyno that answers the first request of each connection, then drops the connection when
    the next request arrives on it (what a dyno's idle timeout looks like from the router)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            body = b"connection %d" % number
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the second request: dropped unanswered
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def stale_backend() -> AsyncIterator[StaleAfterOneBackend]:
    backend = StaleAfterOneBackend()
    backend.server = await asyncio.start_server(backend.handle, "127.0.0.1", 0)
    yield backend
    backend.server.close()


async def test_idempotent_request_on_a_stale_pooled_connection_is_replayed(
    stale_backend: StaleAfterOneBackend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [stale_backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        first = await client.request("/")
        second = await client.request("/")
    assert (first.status, first.body) == (200, b"connection 1")
    assert (second.status, second.body) == (200, b"connection 2")


async def test_request_with_a_body_on_a_stale_pooled_connection_is_not_replayed(
    stale_backend: StaleAfterOneBackend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [stale_backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        first = await client.request("/", method="POST", body=b"one")
        second = await client.request("/", method="POST", body=b"two")
    assert first.status == 200
    assert second.status == 503
    assert b"H13" in second.body
    assert stale_backend.connections == 1
