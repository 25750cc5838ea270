"""Helpers for the router tests: real ``http.server`` backends in threads, route builders, a raw
HTTP client that reads responses by hand (Content-Length, chunks, or up to the close).

The backends are an independent HTTP implementation, so the router is tested against code it did not
write.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dockyard.domain import dataplane
from dockyard.domain.dataplane import Route, RouteTable
from dockyard.logs.store import FileLogStore
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer
from dockyard.settings import RouterSettings, Settings
from dockyard.types import AppId, AppName

DOMAIN = "dockyard.localhost"


# --- backends


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: BackendServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        seen = Seen(
            self.command, self.path, list(self.headers.items()), body, self.client_address[1]
        )
        self.server.seen.append(seen)
        path = self.path.split("?")[0]
        if path == "/hangup":  # accept, read, close without a byte
            self.close_connection = True
            return
        if path == "/slow":
            self.server.release.wait(10)
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first,", b"second,", b"third"):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/until-close":  # no length: the body ends when the connection does
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"body that ends at close")
            self.close_connection = True
            return
        if path == "/partial":  # promises 100 bytes, sends 10, closes
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.close_connection = True
            return
        if path == "/big":
            data = b"x" * int(self.headers.get("X-Size") or 1 << 20)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        payload = json.dumps(
            {
                "backend": self.server.name,
                "method": self.command,
                "path": self.path,
                "body": body.decode("latin-1"),
                "length": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if path == "/hop":
            self.send_header("Connection", "X-Secret")
            self.send_header("X-Secret", "1")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("X-Kept", "yes")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


class BackendServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.seen: list[Seen] = []
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the router closed a connection the test made it give up on
        super().handle_error(request, client_address)


@dataclass
class Backend:
    name: str
    server: BackendServer
    thread: threading.Thread

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen

    def stop(self) -> None:
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def refused_address() -> str:
    """An address on which nothing listens: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


# --- router


def route(
    name: str = "myapp",
    backends: Sequence[str | dataplane.Backend] = (),
    *,
    hostnames: tuple[str, ...] = (),
    web_quantity: int | None = None,
    **kwargs: Any,
) -> Route:
    """A route for ``<name>.dockyard.localhost``; a bare address is a backend without a dyno name
    (logged as ``dyno=<address>``)."""
    return Route(
        app_id=AppId(f"id-{name}"),
        app_name=AppName(name),
        hostnames=hostnames or (f"{name}.{DOMAIN}",),
        backends=tuple(dataplane.Backend("", b) if isinstance(b, str) else b for b in backends),
        web_quantity=len(backends) if web_quantity is None else web_quantity,
        **kwargs,
    )


def table(*routes: Route) -> RouteTable:
    return RouteTable(tuple(routes))


def make_settings(tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp,
        domain=DOMAIN,
        router=RouterSettings(host="127.0.0.1", port=0, refresh_interval=3600),
    )


@dataclass
class Harness:
    router: RouterServer
    source: FakeRouteSource
    settings: Settings
    logs: FileLogStore
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.router.port

    async def publish(self, new: RouteTable) -> None:
        self.source.publish(new)
        assert await self.router.refresh()

    async def log_messages(self, app: str = "myapp") -> list[str]:
        await self.router.flush_logs()
        return [line.message for line in self.logs.tail(f"id-{app}", 1000)]


# --- raw client


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> RawResponse:
    """Read one response, by Content-Length, chunks, or up to the end of the connection."""
    raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    _, status, reason = ([*status_line.split(" ", 2), ""])[:3]
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines if line]
    response = RawResponse(int(status), reason, headers, b"", raw_head)  # type: ignore[arg-type]
    if head_only or response.status in (204, 304) or 100 <= response.status < 200:
        return response
    if "chunked" in (response.header("Transfer-Encoding") or ""):
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
        response.body = body
    elif response.header("Content-Length") is not None:
        response.body = await reader.readexactly(int(response.header("Content-Length") or 0))
    else:
        response.body = await asyncio.wait_for(reader.read(), 10)
    return response


class RawClient:
    """One client connection to the router, written to byte by byte as the test says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(
        self,
        path: str = "/",
        *,
        host: str = f"myapp.{DOMAIN}",
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        version: str = "HTTP/1.1",
    ) -> RawResponse:
        await self.send(
            build_request(
                path, host=host, method=method, headers=headers, body=body, version=version
            )
        )
        return await read_response(self.reader, head_only=method == "HEAD")

    async def read(self, *, head_only: bool = False) -> RawResponse:
        return await read_response(self.reader, head_only=head_only)

    async def at_eof(self) -> bool:
        """True when the router closed the connection."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), 5)
        except ConnectionResetError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


def build_request(
    path: str = "/",
    *,
    host: str = f"myapp.{DOMAIN}",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None and not any(k.lower() == "transfer-encoding" for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


BackendFactory = Callable[[str], Backend]
RouterFactory = Callable[..., AbstractAsyncContextManager[Harness]]
