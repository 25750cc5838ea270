"""The data path: forwarding, keep-alive, pipelining, headers, routing and H-codes."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from dockyard.domain import dataplane

from .support import (
    DOMAIN,
    Backend,
    BackendFactory,
    RawClient,
    RouterFactory,
    build_request,
    refused_address,
    route,
    table,
)

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


async def test_get_is_forwarded_and_the_response_comes_back(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{h.port}/hello?x=1", headers={"Host": HOST})
    assert response.status_code == 200
    assert response.json()["path"] == "/hello?x=1"
    assert response.headers["via"] == "1.1 dockyard"
    assert [s.path for s in backend.seen] == ["/hello?x=1"]


async def test_post_body_with_content_length_reaches_the_backend(
    backend: Backend, router_factory: RouterFactory
) -> None:
    body = bytes(range(256)) * 1000
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(
            f"http://127.0.0.1:{h.port}/upload", headers={"Host": HOST}, content=body
        )
    assert response.status_code == 200
    assert backend.seen[0].body == body
    assert backend.seen[0].header("Content-Length") == str(len(body))


async def test_chunked_request_body_is_forwarded_chunked(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        head = build_request("/c", method="POST", headers={"Transfer-Encoding": "chunked"})
        await client.send(head)
        await client.send(b"5\r\nhello\r\n")
        await client.send(b"7\r\n, world\r\n0\r\n\r\n")
        response = await client.read()
    assert response.status == 200
    assert response.json()["body"] == "hello, world"
    assert backend.seen[0].header("Transfer-Encoding") == "chunked"
    assert backend.seen[0].header("Content-Length") is None


async def test_large_bodies_stream_both_ways(
    backend: Backend, router_factory: RouterFactory
) -> None:
    upload = b"u" * (3 << 20)
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        up = await client.post(
            f"http://127.0.0.1:{h.port}/up", headers={"Host": HOST}, content=upload
        )
        down = await client.get(
            f"http://127.0.0.1:{h.port}/big", headers={"Host": HOST, "X-Size": str(5 << 20)}
        )
    assert up.json()["length"] == len(upload)
    assert len(down.content) == 5 << 20


async def test_client_keepalive_reuses_one_connection_to_the_dyno(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        statuses = [(await client.request(f"/r{i}")).status for i in range(3)]
        second = await RawClient.open(h.port)
        raw_clients.append(second)
        statuses.append((await second.request("/r3")).status)
    assert statuses == [200, 200, 200, 200]
    assert [s.path for s in backend.seen] == ["/r0", "/r1", "/r2", "/r3"]
    assert len({s.client_port for s in backend.seen}) == 1, "one pooled upstream connection"


async def test_http10_client_keeps_alive_only_when_asked(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        first = await client.request("/a", version="HTTP/1.0", headers={"Connection": "keep-alive"})
        second = await client.request("/b", version="HTTP/1.0")
        closed = await client.at_eof()
    assert first.status == second.status == 200
    assert first.header("Connection") == "keep-alive"
    assert second.header("Connection") == "close"
    assert closed


async def test_http11_connection_close_is_honoured(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/", headers={"Connection": "close"})
        closed = await client.at_eof()
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert closed


async def test_pipelined_requests_are_answered_in_order(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        await client.send(
            build_request("/one")
            + build_request("/two", method="POST", body=b"second body")
            + build_request("/three", host="nope.example.com")
            + build_request("/four")
        )
        responses = [await client.read() for _ in range(4)]
    assert [r.status for r in responses] == [200, 200, 404, 200]
    assert responses[0].json()["path"] == "/one"
    assert responses[1].json()["body"] == "second body"
    assert responses[3].json()["path"] == "/four"


async def test_forwarding_headers_are_added(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        before = int(time.time() * 1000)
        await client.request(
            "/",
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Port": "443",
                "X-Request-Start": "1",
                "Via": "1.1 cdn",
            },
        )
        after = int(time.time() * 1000)
        port = h.port
    seen = backend.seen[0]
    assert seen.header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("X-Forwarded-Port") == str(port)
    assert before <= int(seen.header("X-Request-Start") or 0) <= after
    assert seen.header("Via") == "1.1 cdn, 1.1 dockyard"
    assert seen.header("Host") == HOST


async def test_hop_by_hop_request_headers_are_stripped(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request(
            "/",
            headers={
                "Connection": "keep-alive, X-Private",
                "X-Private": "drop me",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic abc",
                "Proxy-Connection": "keep-alive",
                "TE": "trailers",
                "Trailer": "X-Checksum",
                "X-Public": "keep me",
            },
        )
    assert response.status == 200
    names = backend.seen[0].header_names()
    assert names.isdisjoint(
        {
            "connection",
            "x-private",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "trailer",
        }
    )
    assert backend.seen[0].header("X-Public") == "keep me"


async def test_an_upgrade_the_dyno_does_not_accept_is_answered_then_the_connection_closes(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request(
            "/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket", "X-Other": "1"}
        )
        closed = await client.at_eof()
    assert response.status == 200
    assert backend.seen[0].header("Upgrade") == "websocket"
    assert backend.seen[0].header("Connection") == "Upgrade"
    assert closed


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("a" * 20, True),
        ("Ab0+/=-" * 28 + "abcd", True),  # 200 characters
        ("a" * 19, False),
        ("a" * 201, False),
        ("not valid because of spaces", False),
        ("semicolon;" * 3, False),
    ],
)
async def test_client_request_id_is_kept_only_when_valid(
    given: str, kept: bool, backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        await client.get(
            f"http://127.0.0.1:{h.port}/", headers={"Host": HOST, "X-Request-Id": given}
        )
    forwarded = backend.seen[0].header("X-Request-Id")
    assert (forwarded == given) is kept
    assert forwarded is not None and len(forwarded) >= 20


async def test_generated_request_ids_are_unique(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        for _ in range(20):
            await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
    ids = [s.header("X-Request-Id") for s in backend.seen]
    assert len(set(ids)) == 20


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: myapp.dockyard.localhost\r\nHost: other.example.com\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: myapp.dockyard.localhost\r\nContent-Length: 3\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: myapp.dockyard.localhost\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["two-hosts", "conflicting-length", "length-and-chunked", "no-host", "garbage"],
)
async def test_ambiguous_or_malformed_requests_get_400_and_a_close(
    request_bytes: bytes,
    backend: Backend,
    router_factory: RouterFactory,
    raw_clients: list[RawClient],
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        await client.send(request_bytes)
        response = await client.read()
        closed = await client.at_eof()
    assert response.status == 400
    assert b"Bad request" in response.body
    assert closed
    assert backend.seen == []


async def test_unknown_host_gets_404_no_such_app(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/", host=f"other.{DOMAIN}")
        again = await client.request("/", host=f"MyApp.{DOMAIN.upper()}:{h.port}")
    assert response.status == 404
    assert b"No such app" in response.body
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert again.status == 200, "host lookup ignores case and port, on the same connection"


async def test_custom_and_wildcard_domains_route_to_the_app(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    routes = table(
        route("myapp", [backend.address], hostnames=("www.example.com", "*.example.org"))
    )
    async with router_factory(routes) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        custom = await client.request("/", host="www.example.com")
        wildcard = await client.request("/", host="shop.example.org")
        default = await client.request("/", host=HOST)
        bare = await client.request("/", host="example.org")
    assert [custom.status, wildcard.status, default.status, bare.status] == [200, 200, 200, 404]


@pytest.mark.parametrize(
    ("app", "code", "text"),
    [
        (route("myapp", [], web_quantity=0), "H14", b"Application error"),
        (route("myapp", ["127.0.0.1:9"], maintenance=True), "H80", b"maintenance"),
        (route("myapp", [], released=False), "H81", b"Nothing deployed yet"),
    ],
)
async def test_app_states_are_answered_with_their_h_code(
    app: object, code: str, text: bytes, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(app)) as h:  # type: ignore[arg-type]
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/")
        after = await client.request("/")
        messages = await h.log_messages()
    assert response.status == 503
    assert text in response.body
    assert f"Error code: {code}".encode() in response.body
    assert after.status == 503, "an error page keeps the connection alive"
    assert f"code={code}" in messages[0]
    level = "info" if code in ("H80", "H81") else "error"
    assert messages[0].startswith(f"at={level} code={code} desc=")


async def test_head_error_page_has_no_body(
    router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [], web_quantity=0))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/", method="HEAD")
        after = await client.request("/")
    assert response.status == 503
    assert int(response.header("Content-Length") or 0) > 0
    assert after.status == 503, "no stray body bytes were left on the connection"


async def test_refused_connection_tries_the_next_dyno(
    backend: Backend, router_factory: RouterFactory
) -> None:
    routes = table(route("myapp", [refused_address(), backend.address, refused_address()]))
    async with router_factory(routes) as h, httpx.AsyncClient() as client:
        statuses = [
            (await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})).status_code
            for _ in range(10)
        ]
    assert statuses == [200] * 10


async def test_all_dynos_refusing_is_h21(router_factory: RouterFactory) -> None:
    routes = table(route("myapp", [refused_address(), refused_address()]))
    async with router_factory(routes) as h, httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        messages = await h.log_messages()
    assert response.status_code == 503
    assert b"H21" in response.content
    assert messages[0].startswith('at=error code=H21 desc="Backend connection refused"')


async def test_no_first_byte_in_time_is_h12(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address])), first_byte_timeout=0.3) as h,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{h.port}/slow", headers={"Host": HOST})
        backend.server.release.set()
        messages = await h.log_messages()
    assert response.status_code == 503
    assert b"H12" in response.content
    assert messages[0].startswith('at=error code=H12 desc="Request timeout"')
    assert f"dyno={backend.address}" in messages[0]


async def test_dyno_closing_without_a_response_is_h13(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{h.port}/hangup", headers={"Host": HOST})
        after = await client.get(f"http://127.0.0.1:{h.port}/fine", headers={"Host": HOST})
        messages = await h.log_messages()
    assert response.status_code == 503
    assert b"H13" in response.content
    assert after.status_code == 200
    assert messages[0].startswith('at=error code=H13 desc="Connection closed without response"')


async def test_connect_timeout_is_h19(router_factory: RouterFactory) -> None:
    """A listener whose accept queue is full never completes new handshakes."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        fillers = []
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        try:
            async with (
                router_factory(table(route("myapp", [address])), connect_timeout=0.3) as h,
                httpx.AsyncClient() as client,
            ):
                response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        finally:
            for filler in fillers:
                filler.close()
    assert response.status_code == 503
    assert b"H19" in response.content


async def test_no_dyno_up_waits_then_is_h20(router_factory: RouterFactory) -> None:
    async with (
        router_factory(table(route("myapp", [], web_quantity=1)), boot_wait=0.3) as h,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        messages = await h.log_messages()
    assert response.status_code == 503
    assert b"H20" in response.content
    assert messages[0].startswith('at=error code=H20 desc="App boot timeout"')


async def test_a_request_waiting_for_a_booting_dyno_is_served_when_it_is_up(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [], web_quantity=1)), boot_wait=10) as h,
        httpx.AsyncClient() as client,
    ):
        pending = asyncio.ensure_future(
            client.get(f"http://127.0.0.1:{h.port}/booted", headers={"Host": HOST})
        )
        while not h.router.proxy.waiting:  # the request has reached the router
            await asyncio.sleep(0.01)
        await h.publish(table(route("myapp", [backend.address])))
        response = await pending
    assert response.status_code == 200
    assert response.json()["path"] == "/booted"


async def test_a_crashed_app_is_h10_at_once(
    router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    """No web dyno is up or starting and one has crashed: nothing will come up, so no H20 wait."""
    crashed = table(route("myapp", [], web_quantity=1, crashed=True))
    async with router_factory(crashed, boot_wait=60) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await asyncio.wait_for(client.request("/"), 5)
        after = await asyncio.wait_for(client.request("/"), 5)
        waiting = len(h.router.proxy.waiting)
        messages = await h.log_messages()
    assert (response.status, after.status) == (503, 503)
    assert b"Error code: H10" in response.body
    assert waiting == 0
    assert messages[0].startswith('at=error code=H10 desc="App crashed" method=GET path="/"')


async def test_a_request_waiting_for_a_dyno_is_h10_when_the_app_crashes(
    router_factory: RouterFactory,
) -> None:
    async with (
        router_factory(table(route("myapp", [], web_quantity=1)), boot_wait=60) as h,
        httpx.AsyncClient() as client,
    ):
        pending = asyncio.ensure_future(
            client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        )
        while not h.router.proxy.waiting:  # the request waits for a starting dyno
            await asyncio.sleep(0.01)
        await h.publish(table(route("myapp", [], web_quantity=1, crashed=True)))
        response = await asyncio.wait_for(pending, 5)
    assert response.status_code == 503
    assert b"H10" in response.content


async def test_a_crashed_app_with_a_dyno_up_is_served(
    backend: Backend, router_factory: RouterFactory
) -> None:
    routes = table(route("myapp", [backend.address], crashed=True))
    async with router_factory(routes) as h, httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
    assert response.status_code == 200


async def test_log_lines_name_the_dyno_on_new_and_pooled_connections(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    routes = table(route("myapp", [dataplane.Backend("web.1", backend.address)]))
    async with router_factory(routes) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        first = await client.request("/")
        second = await client.request("/")  # on the pooled connection to the dyno
        messages = await h.log_messages()
    assert (first.status, second.status) == (200, 200)
    assert len({seen.client_port for seen in backend.seen}) == 1, "one connection, reused"
    assert [m.split(" dyno=")[1].split(" ")[0] for m in messages] == ["web.1", "web.1"]


async def test_route_table_swap_applies_without_restart(
    make_backend: BackendFactory, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    one, two = make_backend("one"), make_backend("two")
    async with router_factory(table(route("myapp", [one.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        before = await client.request("/")
        await h.publish(table(route("myapp", [two.address]), route("newapp", [one.address])))
        after = await client.request("/")
        new_app = await client.request("/", host=f"newapp.{DOMAIN}")
        await h.publish(table(route("newapp", [one.address])))
        removed = await client.request("/")
    assert before.json()["backend"] == "one"
    assert after.json()["backend"] == "two"
    assert new_app.json()["backend"] == "one"
    assert removed.status == 404


async def test_each_request_is_logged_in_herokus_router_format(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request('/logged?q="x"', headers={"X-Forwarded-For": "203.0.113.9"})
        await h.router.flush_logs()
        lines = h.logs.tail("id-myapp", 10)
    assert len(lines) == 1
    assert (lines[0].source, lines[0].dyno) == ("heroku", "router")
    pattern = (
        r'at=info method=GET path="/logged\?q=%22x%22" host=myapp\.dockyard\.localhost '
        r'request_id=[0-9a-f]{32} fwd="203\.0\.113\.9, 127\.0\.0\.1" '
        rf"dyno={backend.address} connect=\d+ms service=\d+ms status=200 "
        rf"bytes={len(response.raw_head) + len(response.body)} protocol=http"
    )
    assert re.fullmatch(pattern, lines[0].message), lines[0].message


@pytest.mark.parametrize(
    ("extra", "path", "status"),
    [
        ({f"X-Many-{i}": "v" for i in range(1001)}, "/", 431),
        ({"X-Huge": "v" * 8193}, "/", 431),
        ({}, "/" + "p" * 8200, 414),
        ({f"X-Big-{i}": "v" * 8000 for i in range(140)}, "/", 431),
    ],
    ids=["too-many-headers", "header-over-8k", "request-line-over-8k", "head-over-1m"],
)
async def test_request_heads_over_herokus_limits_are_refused_with_h26(
    extra: dict[str, str],
    path: str,
    status: int,
    backend: Backend,
    router_factory: RouterFactory,
    raw_clients: list[RawClient],
) -> None:
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request(path, headers=extra)
        closed = await client.at_eof()
    assert response.status == status
    assert closed
    assert backend.seen == []


async def test_headers_up_to_the_limits_pass(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    extra = {f"X-Many-{i}": "v" for i in range(90)} | {"X-Big": "v" * 8000}  # http.server: 100
    async with router_factory(table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/" + "p" * 8000, headers=extra)
    assert response.status == 200
    assert backend.seen[0].header("X-Big") == "v" * 8000


async def test_idle_client_connections_are_closed_after_the_keepalive_timeout(
    backend: Backend, router_factory: RouterFactory, raw_clients: list[RawClient]
) -> None:
    async with router_factory(table(route("myapp", [backend.address])), keepalive_timeout=0.2) as h:
        client = await RawClient.open(h.port)
        raw_clients.append(client)
        response = await client.request("/")
        closed = await client.at_eof()
    assert response.status == 200
    assert closed
