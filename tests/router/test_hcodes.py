"""H-codes from dynos that misbehave on purpose, and from clients that do: H12 from the end of the
request, H15, H17, H25, H26 (417, 413), H28, and the app's own error and maintenance pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from .support import DOMAIN, RawClient, RouterFactory, build_request, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """A dyno that reads one request head and then does what the test script says."""
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                await script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def _one(h_port: int, request: bytes) -> tuple[bytes, bool]:
    client = await RawClient.open(h_port)
    try:
        await client.send(request)
        data = await asyncio.wait_for(client.reader.read(), 10)
        return data, True
    finally:
        await client.close()


async def test_a_response_head_line_over_512_kb_is_h25(
    scripted: Callable[[Script], Awaitable[str]], router_factory: RouterFactory
) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (513 * 1024) + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    address = await scripted(huge)
    async with router_factory(table(route("myapp", [address]))) as h:
        client = await RawClient.open(h.port)
        response = await client.request("/")
        await client.close()
        messages = await h.log_messages()
    assert response.status == 502
    assert messages[0].startswith('at=error code=H25 desc="HTTP Restriction"')


async def test_a_status_line_without_a_reason_phrase_is_h17(
    scripted: Callable[[Script], Awaitable[str]], router_factory: RouterFactory
) -> None:
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    address = await scripted(bare)
    async with router_factory(table(route("myapp", [address]))) as h:
        client = await RawClient.open(h.port)
        response = await client.request("/")
        await client.close()
        messages = await h.log_messages()
    assert response.status == 503
    assert messages[0].startswith('at=error code=H17 desc="Poorly formatted HTTP response"')


async def test_a_response_that_goes_silent_is_cut_after_the_idle_window_h15(
    scripted: Callable[[Script], Awaitable[str]], router_factory: RouterFactory
) -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(5)

    address = await scripted(stalls)
    async with router_factory(table(route("myapp", [address])), keepalive_timeout=0.3) as h:
        data, _ = await _one(h.port, build_request("/"))
        messages = await h.log_messages()
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"partial"), "what came is passed on, then the connection closes"
    assert messages[0].startswith('at=warning code=H15 desc="Idle connection"')


async def test_h12_counts_from_the_end_of_the_request_and_a_stalled_body_is_h28(
    scripted: Callable[[Script], Awaitable[str]], router_factory: RouterFactory
) -> None:
    async def waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    address = await scripted(waits)
    async with router_factory(
        table(route("myapp", [address])), keepalive_timeout=0.4, first_byte_timeout=10
    ) as h:
        head = build_request("/upload", method="POST", headers={"Content-Length": "100"})
        data, _ = await _one(h.port, head + b"only part of the body")
        messages = await h.log_messages()
    assert data == b"", "the client is told nothing more: it went quiet mid-request"
    assert messages[0].startswith('at=warning code=H28 desc="Client Connection Idle"')
    assert "status=499" in messages[0]


async def test_an_expectation_other_than_100_continue_is_h26_417(
    scripted: Callable[[Script], Awaitable[str]], router_factory: RouterFactory
) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("the dyno must not be asked")

    address = await scripted(never)
    async with router_factory(table(route("myapp", [address]))) as h:
        client = await RawClient.open(h.port)
        response = await client.request("/", headers={"Expect": "something-else"})
        await client.close()
        messages = await h.log_messages()
    assert response.status == 417
    assert messages[0].startswith('at=error code=H26 desc="Request Error"')


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_refused_with_413(
    chunked: bool,
    scripted: Callable[[Script], Awaitable[str]],
    router_factory: RouterFactory,
) -> None:
    async def reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    address = await scripted(reads)
    async with router_factory(table(route("myapp", [address])), max_body_bytes=1000) as h:
        body = b"x" * 2000
        if chunked:
            request = build_request(
                "/", method="POST", headers={"Transfer-Encoding": "chunked"}
            ) + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
        else:
            request = build_request("/", method="POST", body=body)
        data, _ = await _one(h.port, request)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large") or data.startswith(
        b"HTTP/1.1 413 Request Entity Too Large"
    )


async def test_an_apps_own_pages_replace_the_router_pages(
    router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    error_url = "https://pages.example.com/error.html"
    maintenance_url = "https://pages.example.com/maintenance.html"
    pages = {"error_page_url": error_url, "maintenance_page_url": maintenance_url}
    async with router_factory(
        table(
            route("myapp", [], web_quantity=0, **pages),
            route("down", [], web_quantity=1, maintenance=True, **pages),
        )
    ) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        no_web = await client.request("/")
        maintenance = await client.request("/", host=f"down.{DOMAIN}")
        messages = await h.log_messages()
    assert no_web.status == 503
    assert f'<iframe src="{error_url}">'.encode() in no_web.body
    assert maintenance.status == 503
    assert f'<iframe src="{maintenance_url}">'.encode() in maintenance.body
    assert messages[0].startswith('at=error code=H14 desc="No web processes running"')
