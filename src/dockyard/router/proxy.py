"""The data path: client connections, routing, and the sweep that enforces every timeout.

Written as the hot path it is (see the router performance notes): ``asyncio.Protocol`` callbacks
and httptools, no framework and no streams; one ``transport.write`` per chunk received on either
side; no timer per request (``Proxy.sweep`` runs about once a second); request ids from a pooled
random block; the route table one dict keyed by the lowercased ``Host`` without its port, swapped
whole when the table changes.

Pipelined requests are parsed as they come, queued, and answered strictly in order; reading pauses
while a request waits. Request bodies stream to the dyno as they arrive (re-chunked when the client
sent chunks); response bodies stream back, and a body that ends with the dyno's connection is
re-chunked for HTTP/1.1 clients so their connection stays open.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import deque
from dataclasses import dataclass

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from dockyard.domain.dataplane import RouteTable
from dockyard.router import errors
from dockyard.router.accesslog import RouterLog
from dockyard.router.errors import RouterError
from dockyard.router.exchange import (
    BOOTING,
    CONNECTING,
    DONE,
    QUEUED,
    WAITING,
    Endpoint,
    Exchange,
    Target,
)
from dockyard.router.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    DROP,
    FORWARDED_FOR,
    HOST,
    PLAIN,
    PLAIN_CONNECTION_VALUES,
    REQUEST_ID,
    TRANSFER_ENCODING,
    VIA,
    connection_tokens,
    drop_named,
    kind_of,
)
from dockyard.router.headers import REQUEST_KINDS as _REQUEST_KINDS
from dockyard.router.requestid import RequestIds, is_valid_request_id
from dockyard.router.upstream import UpstreamConnection, UpstreamPool

_monotonic = time.monotonic
_time = time.time
_random = random.random

_VIA_END = b", 1.1 dockyard\r\n\r\n"
_REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_MAX_PARTS = 1 + 4 * 1000
"""A request head of at most 1,000 forwarded headers (Heroku's limit)."""
_MAX_LINE = 8192
_MAX_HEAD = 64 * 1024

_INFO = b"at=info"
_LOG_LINE = (
    b'%b method=%b path="%b" host=%b request_id=%b fwd="%b" dyno=%b connect=%dms service=%dms '
    b"status=%d bytes=%d protocol=http"
)

# Why reading from a client is paused (a bit each).
_PAUSE_PIPELINE = 1
_PAUSE_BODY = 2
_PAUSE_UPSTREAM = 4


@dataclass(frozen=True)
class ProxyOptions:
    """Timeouts and limits; the defaults are Heroku's."""

    connect_timeout: float = 5.0
    """Seconds to open a connection to a dyno before trying the next (H19 when all time out)."""
    first_byte_timeout: float = 30.0
    """Seconds from the request to the first response byte (H12)."""
    keepalive_timeout: float = 55.0
    """Seconds an idle client connection stays open."""
    boot_wait: float = 10.0
    """Seconds a request waits for a web dyno to come up when web dynos are scaled but none is up,
    then H20. When the route says the app crashed (no dyno up or starting), H10 comes at once."""
    sweep_interval: float = 1.0
    """Seconds between two checks of all timeouts."""
    upstream_idle_timeout: float = 50.0
    """Seconds an idle pooled connection to a dyno is kept."""
    max_idle_per_backend: int = 256


class _RequestRejectedError(Exception):
    """Raised inside a parser callback to stop parsing a request that breaks a limit."""


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_cached_host",
        "_cached_routes",
        "_cached_target",
        "_chunked",
        "_forwarded",
        "_has_body",
        "_host",
        "_hosts",
        "_last",
        "_parsing",
        "_parts",
        "_request_id",
        "_tokens",
        "_url",
        "_via",
        "_xff",
        "active",
        "client_ip",
        "idle_since",
        "parser",
        "paused",
        "proxy",
        "queue",
        "transport",
        "write_paused",
    )

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport = None  # type: ignore[assignment] # set by connection_made
        self.parser = HttpRequestParser(self)
        self.active: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.client_ip = b""
        self.idle_since = proxy.now
        self.write_paused = False
        self._forwarded = b""
        self._parsing: Exchange | None = None
        self._last: Exchange | None = None
        self.paused = 0
        """Why reading is paused: a bit per reason (pipelined requests, body buffered, dyno busy)."""
        self._cached_host = b""
        self._cached_routes: dict[bytes, Target] | None = None
        self._cached_target: Target | None = None
        # The head being parsed; reset by _reset_head after each request head.
        self._url = b""
        self._parts: list[bytes] = [b""]
        self._host = b""
        self._hosts = 0
        self._xff: bytes | None = None
        self._request_id: bytes | None = None
        self._via: bytes | None = None
        self._tokens: set[bytes] | None = None
        self._chunked = False
        self._has_body = False

    def _reset_head(self) -> None:
        self._url = b""
        self._parts = [b""]  # [0] becomes the request line
        self._host = b""
        self._hosts = 0
        self._xff = self._request_id = self._via = None
        self._tokens = None
        self._chunked = self._has_body = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client_ip = str(peer[0]).encode("ascii") if peer else b""
        port = sock[1] if sock else 0
        self._forwarded = b"X-Forwarded-Proto: http\r\nX-Forwarded-Port: %d\r\n" % port
        self.proxy.clients.add(self)
        if self.proxy.closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._upgrade_requested()
        except HttpParserError:
            self._malformed()
            return
        ex = self.active
        if ex is not None and ex.out and ex.upstream is not None:
            out = ex.out
            ex.upstream.transport.write(b"".join(out) if len(out) > 1 else out[0])
            out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        proxy = self.proxy
        proxy.clients.discard(self)
        if proxy.closing and not proxy.clients:
            proxy.drained.set()
        ex = self.active
        self.active = None
        self.queue.clear()
        if ex is None or ex.resp_done:
            return
        self._abandon(ex)
        ex.status = 499
        proxy.log_request(ex, errors.H27)

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and not up.paused:
            up.paused = True
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and up.paused:
            up.paused = False
            up.transport.resume_reading()

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_LINE:
            raise _RequestRejectedError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = _REQUEST_KINDS.get(name)
        if kind is None:
            kind = kind_of(_REQUEST_KINDS, name)
        if kind == PLAIN:
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == HOST:
            self._hosts += 1
            self._host = value
            self._parts += (name, b": ", value, b"\r\n")
        elif kind != DROP:
            self._special_header(kind, name, value)

    def _special_header(self, kind: int, name: bytes, value: bytes) -> None:
        if kind == CONTENT_LENGTH:
            self._has_body = self._has_body or value.strip() != b"0"
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == TRANSFER_ENCODING:
            self._chunked = self._has_body = True
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == FORWARDED_FOR:
            self._xff = value if self._xff is None else self._xff + b", " + value
        elif kind == REQUEST_ID:
            self._request_id = value
        elif kind == VIA:
            self._via = value if self._via is None else self._via + b", " + value
        elif kind == CONNECTION and value not in PLAIN_CONNECTION_VALUES:
            tokens = connection_tokens(value)
            self._tokens = tokens if self._tokens is None else self._tokens | tokens

    def on_headers_complete(self) -> None:
        parser = self.parser
        method = parser.get_method()
        url = self._url
        parts = self._parts
        if len(parts) > _MAX_PARTS:
            raise _RequestRejectedError("too many headers")
        parts[0] = method + b" " + url + b" HTTP/1.1\r\n"
        if self._tokens:
            parts = drop_named(parts, self._tokens)
        request_id = self._request_id
        if request_id is None or not is_valid_request_id(request_id):
            request_id = self.proxy.ids.new()
        xff = self._xff
        fwd = self.client_ip if xff is None else xff + b", " + self.client_ip
        via = self._via
        wall = _time()
        parts += (
            b"X-Forwarded-For: ",
            fwd,
            b"\r\n",
            self._forwarded,
            b"X-Request-Start: %d\r\n" % (wall * 1000),
            b"X-Request-Id: ",
            request_id,
            b"\r\nVia: 1.1 dockyard\r\n\r\n" if via is None else b"\r\nVia: " + via + _VIA_END,
        )
        ex = Exchange(self, method, url, self._host, request_id, fwd, wall)
        ex.keep_alive = parser.should_keep_alive()
        if parser.get_http_version() == "1.0":
            ex.http10 = True
        ex.chunked = self._chunked
        head = b"".join(parts)
        if len(head) > _MAX_HEAD:
            raise _RequestRejectedError("request head too large")
        ex.out.append(head)
        if method == b"HEAD":
            ex.head_only = True
        if not self._has_body and method in _REPLAYABLE:
            ex.head = head
        if self._hosts != 1 or method == b"CONNECT":
            ex.error = errors.BAD_REQUEST
            ex.keep_alive = False
        self._reset_head()
        self._parsing = self._last = ex
        if self.active is None:
            self.active = ex
            self.start(ex)
        else:
            self.queue.append(ex)
            self._pause(_PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self._parsing
        if ex is None or ex.discard:
            return
        if ex.chunked:
            ex.out += (b"%x\r\n" % len(body), body, b"\r\n")
        else:
            ex.out.append(body)
        if ex.upstream is None:
            self._pause(_PAUSE_BODY)

    def on_message_complete(self) -> None:
        ex = self._parsing
        if ex is None:
            return
        self._parsing = None
        ex.req_done = True
        if ex.chunked and not ex.discard:
            ex.out.append(b"0\r\n\r\n")
        if ex.resp_done:
            self.advance()

    # routing

    def start(self, ex: Exchange) -> None:
        """Route an exchange whose turn has come: answer it, or send it towards a dyno."""
        if ex.error is not None:
            self.answer(ex, ex.error)
            return
        proxy = self.proxy
        routes = proxy.routes
        if ex.host == self._cached_host and routes is self._cached_routes:
            target = self._cached_target
        else:
            target = proxy.lookup(ex.host)
            self._cached_host, self._cached_routes, self._cached_target = ex.host, routes, target
        if target is None:
            self.answer(ex, errors.NO_SUCH_APP)
            return
        ex.target = target
        if not target.released:
            self.answer(ex, errors.H81)
        elif target.maintenance:
            self.answer(ex, errors.H80)
        elif target.web_quantity <= 0:
            self.answer(ex, errors.H14)
        elif not target.backends:
            if target.crashed:
                self.answer(ex, errors.H10)
                return
            if ex.phase != BOOTING:
                ex.phase = BOOTING
                ex.deadline = proxy.now + proxy.options.boot_wait + proxy.options.sweep_interval
            proxy.waiting.add(ex)
        else:
            self._dispatch(ex, target.backends)

    def _dispatch(self, ex: Exchange, backends: tuple[Endpoint, ...]) -> None:
        count = len(backends)
        first = 0 if count == 1 else int(_random() * count)
        proxy = self.proxy
        backend = backends[first]
        conn = proxy.pool.take(backend[0])
        if conn is not None:
            ex.deadline = proxy.now + proxy.first_byte_window
            self._attach(ex, conn, ex.started, backend[3])
            return
        order = backends[first:] + backends[:first]
        ex.phase = CONNECTING
        ex.connect_task = asyncio.get_running_loop().create_task(self._connect(ex, order))

    async def _connect(self, ex: Exchange, order: tuple[Endpoint, ...]) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        timed_out = False
        for address, host, port, name in order:
            begun = _monotonic()
            ex.deadline = begun + proxy.options.connect_timeout
            ex.timed_out = False
            try:
                _, conn = await loop.create_connection(
                    functools.partial(UpstreamConnection, proxy, address), host, port
                )
            except asyncio.CancelledError:
                if not ex.timed_out:  # cancelled from outside, not by the sweep
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                timed_out = True
                continue
            except OSError:
                continue
            ex.connect_task = None
            if ex.abandoned or ex.resp_done:
                proxy.pool.put(conn)
                return
            now = _monotonic()
            ex.connect_ms = int((now - begun) * 1000)
            ex.deadline = now + proxy.options.first_byte_timeout
            self._attach(ex, conn, _time(), name)
            self.flush_upstream(ex)
            return
        ex.connect_task = None
        if ex.abandoned or ex.resp_done:
            return
        self.answer(ex, errors.H19 if timed_out else errors.H21)
        self.advance()

    def _attach(self, ex: Exchange, conn: UpstreamConnection, now: float, name: bytes) -> None:
        ex.upstream = conn
        ex.backend = name
        ex.phase = WAITING
        ex.sent_at = now
        conn.exchange = ex
        if self.write_paused and not conn.paused:
            conn.paused = True
            conn.transport.pause_reading()
        if self.paused:
            self._resume(_PAUSE_BODY)

    def flush_upstream(self, ex: Exchange) -> None:
        if ex.out and ex.upstream is not None:
            ex.upstream.transport.write(b"".join(ex.out))
            ex.out.clear()

    def retry(self, ex: Exchange) -> None:
        """Replay a body-less idempotent request on a fresh connection: the pooled one was stale."""
        assert ex.head is not None  # noqa: S101 - only replayable exchanges keep their head
        target = ex.target
        ex.retried = True
        ex.out = [ex.head]
        if target is None or not target.backends:
            self.answer(ex, errors.H13)
            self.advance()
            return
        ex.phase = CONNECTING
        ex.connect_task = asyncio.get_running_loop().create_task(self._connect(ex, target.backends))

    # answers

    def answer(self, ex: Exchange, err: RouterError) -> None:
        """Answer with one of the router's own pages instead of a dyno's response."""
        ex.discard = True
        ex.out.clear()
        ex.phase = DONE
        if self.proxy.closing:
            ex.keep_alive = False
        data = err.response(keep_alive=ex.keep_alive, http10=ex.http10)
        if ex.head_only:
            data = data[: len(data) - len(err.body)]
        self.transport.write(data)
        ex.status = err.status
        ex.resp_bytes = len(data)
        ex.resp_done = True
        self._resume(_PAUSE_BODY)
        if ex.target is not None:
            self.proxy.log_request(ex, err)

    def interrupt(self, ex: Exchange, err: RouterError) -> None:
        """The dyno broke off a response the client has already started to receive: close."""
        ex.resp_done = True
        ex.phase = DONE
        self.transport.close()
        self.proxy.log_request(ex, err)

    def advance(self) -> None:
        """Once both the request and its response are complete, start the next pipelined request."""
        while True:
            ex = self.active
            if ex is None or not ex.resp_done or not ex.req_done:
                return
            self.active = None
            if not ex.keep_alive or self.proxy.closing:
                self.transport.close()
                return
            if not self.queue:
                self.idle_since = self.proxy.now
                self._resume(_PAUSE_PIPELINE)
                return
            nxt = self.queue.popleft()
            self.active = nxt
            self.start(nxt)
            if nxt.upstream is not None:
                self.flush_upstream(nxt)

    def timeout(self, ex: Exchange) -> None:
        """Called by the sweep when the exchange's deadline has passed."""
        if ex.phase == CONNECTING:
            if ex.connect_task is not None and not ex.timed_out:
                ex.timed_out = True
                ex.connect_task.cancel()
        elif ex.phase == WAITING:
            self._detach(ex)
            self.answer(ex, errors.H12)
            self.advance()
        elif ex.phase == BOOTING:
            self._detach(ex)
            self.answer(ex, errors.H20)
            self.advance()

    def force_close(self) -> None:
        """Shutdown: close now, whatever is in flight (H24 for a request still unanswered)."""
        ex = self.active
        self.active = None
        if ex is not None and not ex.resp_done:
            self._abandon(ex)
            ex.status = 503
            self.proxy.log_request(ex, errors.H24)
        self.transport.abort()

    def pause_for_upstream(self) -> None:
        self._pause(_PAUSE_UPSTREAM)

    def resume_for_upstream(self) -> None:
        self._resume(_PAUSE_UPSTREAM)

    # internals

    def _abandon(self, ex: Exchange) -> None:
        """Give up an exchange whose client is gone (or is being closed)."""
        ex.abandoned = True
        ex.discard = True
        ex.resp_done = True
        if ex.connect_task is not None:
            ex.connect_task.cancel()
            ex.connect_task = None
        self._detach(ex)

    def _detach(self, ex: Exchange) -> None:
        """Forget the dyno side of an exchange: stop waiting for a dyno, close its connection."""
        if ex.phase == BOOTING:
            self.proxy.waiting.discard(ex)
        up = ex.upstream
        if up is not None:
            up.exchange = None
            ex.upstream = None
            up.transport.close()

    def _pause(self, reason: int) -> None:
        if not self.paused and not self.transport.is_closing():
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.transport.is_closing():
                self.transport.resume_reading()

    def _upgrade_requested(self) -> None:
        """An Upgrade (or CONNECT) request: answered as a plain request, then closed."""
        self._pause(_PAUSE_PIPELINE)
        ex = self._last
        if ex is not None:
            ex.keep_alive = False
            if not ex.req_done:
                self._parsing = None
                ex.req_done = True
                self.advance()
        if self.active is None:  # already answered: nothing more will be read
            self.transport.close()

    def _malformed(self) -> None:
        """A request that cannot be parsed: answer 400 in its turn, then close."""
        self._pause(_PAUSE_PIPELINE)
        broken = self._parsing
        if broken is None:  # the head of a new request
            ex = Exchange(self, b"-", b"-", b"", b"", self.client_ip, _time())
            ex.error = errors.BAD_REQUEST
            ex.keep_alive = False
            ex.req_done = True
            if self.active is None:
                self.active = ex
                self.start(ex)
                self.advance()
            else:
                self.queue.append(ex)
            return
        self._parsing = None
        broken.req_done = True
        broken.keep_alive = False
        if broken.phase == QUEUED:
            broken.error = errors.BAD_REQUEST
        elif broken.head_sent:  # the dyno's response has begun: nothing clean is left to say
            self._detach(broken)
            broken.resp_done = True
            self.transport.close()
        elif not broken.resp_done:
            self._detach(broken)
            self.answer(broken, errors.BAD_REQUEST)
            self.advance()
        else:
            self.advance()


class Proxy:
    """What all connections share: the route table, the upstream pool, the log buffer, the clock."""

    def __init__(self, *, domain: str, options: ProxyOptions, log: RouterLog) -> None:
        self.domain = domain.lower().rstrip(".")
        self.options = options
        self.log = log
        self.routes: dict[bytes, Target] = {}
        self.pool = UpstreamPool(options.max_idle_per_backend)
        self.clients: set[ClientConnection] = set()
        self.waiting: set[Exchange] = set()
        self.ids = RequestIds()
        self.now = _monotonic()
        """A coarse clock, advanced by each sweep, for the timeouts that do not need precision."""
        self.first_byte_window = options.first_byte_timeout + options.sweep_interval
        """H12 comes this long after the coarse clock's reading at dispatch (never early)."""
        self.closing = False
        self.drained = asyncio.Event()

    def connection(self) -> ClientConnection:
        """The protocol factory for ``loop.create_server``."""
        return ClientConnection(self)

    # the route table

    def set_table(self, table: RouteTable) -> None:
        routes: dict[bytes, Target] = {}
        addresses: set[str] = set()
        for route in table.routes:
            target = Target(route)
            addresses.update(b[0] for b in target.backends)
            default = f"{route.app_name}.{self.domain}"
            for hostname in (default, *route.hostnames):
                routes[hostname.lower().rstrip(".").encode("utf-8")] = target
        self.routes = routes
        self.pool.retain(addresses)
        if self.waiting:
            self._retry_waiting()

    def lookup(self, host: bytes) -> Target | None:
        name = host.lower()
        colon = name.rfind(b":")
        if colon >= 0 and name.find(b"]", colon) < 0:
            name = name[:colon]
        if name.endswith(b"."):
            name = name[:-1]
        target = self.routes.get(name)
        if target is None:
            dot = name.find(b".")
            if dot > 0:
                target = self.routes.get(b"*" + name[dot:])
        return target

    def _retry_waiting(self) -> None:
        for ex in list(self.waiting):
            target = self.lookup(ex.host)
            if target is not None and (target.backends or target.crashed):
                self.waiting.discard(ex)
                client = ex.client
                client.start(ex)
                if ex.upstream is not None:
                    client.flush_upstream(ex)
                client.advance()

    # timeouts

    def sweep(self, now: float) -> None:
        """Enforce every deadline; called about once a second."""
        self.now = now
        keepalive = self.options.keepalive_timeout
        for client in list(self.clients):
            ex = client.active
            if ex is None:
                if not client.queue and now - client.idle_since > keepalive:
                    client.transport.close()
            elif ex.deadline and now >= ex.deadline and not ex.resp_done:
                client.timeout(ex)
        self.pool.sweep(now, self.options.upstream_idle_timeout)

    async def run_sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_interval)
            self.sweep(_monotonic())

    # shutdown

    def begin_shutdown(self) -> None:
        """Stop keeping connections alive: idle ones close now, busy ones after their response."""
        self.closing = True
        for client in list(self.clients):
            if client.active is None and not client.queue:
                client.transport.close()
        if not self.clients:
            self.drained.set()

    def force_close(self) -> None:
        for client in list(self.clients):
            client.force_close()
        self.pool.close()

    # logging

    def log_request(self, ex: Exchange, err: RouterError | None) -> None:
        """Queue the ``heroku[router]`` line of a finished exchange."""
        target = ex.target
        if target is None:
            return
        now = _time()
        path = ex.path
        if b'"' in path:
            path = path.replace(b'"', b"%22")
        self.log.add(
            target.app_id,
            now,
            _LOG_LINE
            % (
                _INFO if err is None else err.log_prefix,
                ex.method,
                path,
                ex.host,
                ex.request_id,
                ex.fwd,
                ex.backend,
                ex.connect_ms,
                (now - ex.sent_at) * 1000 if ex.sent_at else 0,
                ex.status,
                ex.resp_bytes,
            ),
        )
