"""The client side of the data path: one ``ClientConnection`` per connection to the router.

Written as the hot path it is (see the router performance notes): ``asyncio.Protocol`` callbacks
and httptools, no framework and no streams; one ``transport.write`` per chunk received on either
side; no timer per request (``Proxy.sweep`` enforces every deadline about once a second).

Pipelined requests are parsed as they come, queued, and answered strictly in order; reading pauses
while a request waits. Request bodies stream to the dyno as they arrive (re-chunked when the client
sent chunks). A request that asks to switch protocols (WebSocket) is sent with its ``Upgrade``
header; when the dyno answers 101 both connections become a byte tunnel (``router.tunnel``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from dockyard.router import errors
from dockyard.router.balancing import all_quarantined, next_untried
from dockyard.router.errors import RouterError
from dockyard.router.exchange import (
    BACKLOG,
    BOOTING,
    CONNECTING,
    DONE,
    QUEUED,
    RESPONDING,
    WAITING,
    Endpoint,
    Exchange,
    Target,
)
from dockyard.router.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    DROP,
    EXPECT,
    FORWARDED_FOR,
    HOST,
    PLAIN,
    PLAIN_CONNECTION_VALUES,
    REQUEST_ID,
    TRANSFER_ENCODING,
    UPGRADE,
    VIA,
    connection_tokens,
    drop_named,
    kind_of,
)
from dockyard.router.headers import REQUEST_KINDS as _REQUEST_KINDS
from dockyard.router.requestid import is_valid_request_id
from dockyard.router.upstream import UpstreamConnection

if TYPE_CHECKING:
    from dockyard.router.proxy import Proxy

logger = logging.getLogger("dockyard.router")

_monotonic = time.monotonic
_time = time.time

_VIA_END = b", 1.1 dockyard\r\n\r\n"
_REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_MAX_PARTS = 1 + 4 * 1000
"""A request head of at most 1,000 forwarded headers (Heroku's limit)."""
_MAX_LINE = 8192
"""Request line, and each header, at most 8 KB (Heroku's limits)."""

# Why reading from a client is paused (a bit each).
_PAUSE_PIPELINE = 1
_PAUSE_BODY = 2
_PAUSE_UPSTREAM = 4


class _RequestRejectedError(Exception):
    """Raised inside a parser callback to stop parsing a request that breaks a limit."""

    def __init__(self, error: RouterError) -> None:
        super().__init__(error.desc)
        self.error = error


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_cached_host",
        "_cached_routes",
        "_cached_target",
        "_chunked",
        "_expect",
        "_forwarded",
        "_has_body",
        "_host",
        "_hosts",
        "_last",
        "_length",
        "_parsing",
        "_parts",
        "_request_id",
        "_tokens",
        "_upgrade",
        "_url",
        "_via",
        "_xff",
        "active",
        "client_ip",
        "head_bytes",
        "idle_since",
        "last_read",
        "parser",
        "paused",
        "proxy",
        "queue",
        "received",
        "scheme",
        "transport",
        "write_paused",
    )

    def __init__(self, proxy: Proxy, scheme: bytes = b"http") -> None:
        self.proxy = proxy
        self.scheme = scheme
        """``http`` or ``https``: what the client spoke to the router (``X-Forwarded-Proto``)."""
        self.transport: asyncio.Transport = None  # type: ignore[assignment] # set by connection_made
        self.parser = HttpRequestParser(self)
        self.active: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.client_ip = b""
        self.idle_since = self.last_read = proxy.now
        self.head_bytes = 0
        """Bytes received since the last request head began (bounds a head's memory)."""
        self.received = 0
        """Bytes received on the connection (the guard measures how fast bodies arrive)."""
        self.write_paused = False
        self._forwarded = b""
        self._parsing: Exchange | None = None
        self._last: Exchange | None = None
        self.paused = 0
        """Why reading is paused: a bit per reason (pipelined requests, body buffered, dyno busy)."""
        self._cached_host = b""
        self._cached_routes: dict[bytes, Target] | None = None
        self._cached_target: Target | None = None
        self._reset_head()

    def _reset_head(self) -> None:
        self._url = b""
        self._parts: list[bytes] = [b""]  # [0] becomes the request line
        self._host = b""
        self._hosts = 0
        self._xff: bytes | None = None
        self._request_id: bytes | None = None
        self._via: bytes | None = None
        self._upgrade: bytes | None = None
        self._expect: bytes | None = None
        self._length: bytes | None = None
        self._tokens: set[bytes] | None = None
        self._chunked = self._has_body = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client_ip = str(peer[0]).encode("ascii") if peer else b""
        port = sock[1] if sock else 0
        self._forwarded = b"X-Forwarded-Proto: %b\r\nX-Forwarded-Port: %d\r\n" % (self.scheme, port)
        proxy = self.proxy
        proxy.clients.add(self)
        guard = proxy.guard
        if proxy.closing or (guard is not None and not guard.connection_made(self)):
            transport.close()

    def data_received(self, data: bytes) -> None:
        proxy = self.proxy
        self.last_read = proxy.now
        self.received += len(data)
        if self._parsing is None:
            self.head_bytes += len(data)
            if self.head_bytes > proxy.options.max_head_bytes:
                self._malformed(errors.HEADERS_TOO_LARGE)
                return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._upgrade_requested(data[exc.args[0] :])
        except HttpParserError as exc:
            self._parse_failed(exc)
            return
        except Exception:  # a bug of ours must cost one connection, not the router
            logger.exception("the router failed on a request")
            self._malformed(errors.H99)
            return
        ex = self.active
        if ex is not None and ex.out and ex.upstream is not None:
            out = ex.out
            ex.upstream.transport.write(b"".join(out) if len(out) > 1 else out[0])
            out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        proxy = self.proxy
        proxy.clients.discard(self)
        if proxy.guard is not None:
            proxy.guard.connection_lost(self)
        if proxy.closing and not proxy.clients:
            proxy.drained.set()
        ex = self.active
        self.active = None
        for queued in self.queue:
            queued.abandoned = True
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
            raise _RequestRejectedError(errors.URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(value) > _MAX_LINE:
            raise _RequestRejectedError(errors.HEADERS_TOO_LARGE)
        kind = _REQUEST_KINDS.get(name)
        if kind is None:
            if len(name) > 1000:
                raise _RequestRejectedError(errors.HEADERS_TOO_LARGE)
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
            self._length = value
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
        elif kind == UPGRADE:
            self._upgrade = value
        elif kind == EXPECT:
            self._expect = value
            self._parts += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        parser = self.parser
        proxy = self.proxy
        method = parser.get_method()
        url = self._url
        parts = self._parts
        if len(parts) > _MAX_PARTS:
            raise _RequestRejectedError(errors.HEADERS_TOO_LARGE)
        parts[0] = method + b" " + url + b" HTTP/1.1\r\n"
        upgrade = None
        tokens = self._tokens
        if tokens:
            if b"upgrade" in tokens and self._upgrade is not None:
                upgrade = self._upgrade
                parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, b"\r\n")
            parts = drop_named(parts, tokens)
        request_id = self._request_id
        if request_id is None or not is_valid_request_id(request_id):
            request_id = proxy.ids.new()
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
        ex.out.append(head)
        if method == b"HEAD":
            ex.head_only = True
        if self._has_body:
            self._check_body(ex)
        elif method in _REPLAYABLE and upgrade is None:
            ex.head = head
        if upgrade is not None:
            ex.upgrade = upgrade
            ex.keep_alive = False  # after a refused upgrade, the connection is not reused
        self._check_head(ex, method)
        self._reset_head()
        self.head_bytes = 0
        self._parsing = self._last = ex
        if self.active is None:
            self.active = ex
            self.start(ex)
        else:
            self.queue.append(ex)
            self._pause(_PAUSE_PIPELINE)

    def _check_head(self, ex: Exchange, method: bytes) -> None:
        if self._hosts != 1 or method == b"CONNECT":
            ex.error = errors.BAD_REQUEST
            ex.keep_alive = False
        elif self._expect is not None and self._expect.lower() != b"100-continue":
            ex.error = errors.EXPECTATION_FAILED

    def _check_body(self, ex: Exchange) -> None:
        limit = self.proxy.options.max_body_bytes
        if limit <= 0:
            return
        length = self._length
        if not self._chunked and length is not None and length.strip().isdigit():
            if int(length) > limit:
                ex.error = errors.BODY_TOO_LARGE
                ex.keep_alive = False
            return
        ex.body_budget = limit

    def on_body(self, body: bytes) -> None:
        ex = self._parsing
        if ex is None or ex.discard:
            return
        if ex.body_budget >= 0:
            ex.body_budget -= len(body)
            if ex.body_budget < 0:
                raise _RequestRejectedError(errors.BODY_TOO_LARGE)
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
        if ex.phase == WAITING:  # H12 counts from the end of the request
            ex.deadline = self.proxy.now + self.proxy.first_byte_window
        if ex.resp_done:
            self.advance()

    # routing

    def start(self, ex: Exchange) -> None:
        """Route an exchange whose turn has come: answer it, or send it towards a dyno."""
        proxy = self.proxy
        routes = proxy.routes
        if ex.host == self._cached_host and routes is self._cached_routes:
            target = self._cached_target
        else:
            target = proxy.lookup(ex.host)
            self._cached_host, self._cached_routes, self._cached_target = ex.host, routes, target
        ex.target = target
        if ex.error is not None:
            self.answer(ex, ex.error)
            return
        guard = proxy.guard
        if guard is not None:
            refused = guard.before_route(ex)
            if refused is not None:
                self.answer(ex, refused)
                return
        if target is None:
            self.answer(ex, errors.NO_SUCH_APP)
            return
        app = target.app
        if not app.requested:
            app.requested = True
            proxy.requested.append(app)
        self.route(ex, target)

    def route(self, ex: Exchange, target: Target) -> None:
        """Answer from the app's state, wait for a dyno, or send the request to one."""
        ex.target = target
        if not target.released:
            self.answer(ex, errors.H81)
        elif target.maintenance:
            self.answer(ex, errors.H80)
        elif target.web_quantity <= 0:
            self.answer(ex, errors.H14)
        else:
            backends = target.backends or target.app.woken
            if backends:
                if self.proxy.cache is not None and self._from_cache(ex):
                    return
                self._dispatch(ex, target, backends)
            elif target.crashed:
                self.answer(ex, errors.H10)
            else:
                self._boot_wait(ex, target)

    def _boot_wait(self, ex: Exchange, target: Target) -> None:
        proxy = self.proxy
        if ex.phase != BOOTING:
            ex.phase = BOOTING
            ex.deadline = proxy.now + proxy.options.boot_wait + proxy.options.sweep_interval
        proxy.waiting.add(ex)
        proxy.wake(target)

    def _from_cache(self, ex: Exchange) -> bool:
        """Answer from the response cache (the cache hook), if it holds this response."""
        cache = self.proxy.cache
        found = cache.lookup(ex) if cache is not None else None
        if found is None:
            return False
        status, data = found
        ex.discard = True
        ex.out.clear()
        ex.phase = DONE
        ex.status = status
        ex.resp_bytes = len(data)
        ex.resp_done = True
        self.transport.write(data)
        self._resume(_PAUSE_BODY)
        self.proxy.log_request(ex, None)
        return True

    def _dispatch(self, ex: Exchange, target: Target, backends: tuple[Endpoint, ...]) -> None:
        proxy = self.proxy
        ep = proxy.pick(backends, proxy.now, proxy.options.max_inflight)
        if ep is not None:
            self.send_to(ex, ep)
            return
        if all_quarantined(backends, proxy.now):
            failed = [b.failure for b in backends if b.failure is not None]
            self.answer(ex, failed[0] if failed else errors.H21)
            return
        backlog = target.app.backlog
        if len(backlog) >= proxy.options.max_inflight * len(backends):
            self.answer(ex, errors.H11)
            return
        ex.phase = BACKLOG
        ex.deadline = proxy.now + proxy.first_byte_window
        backlog.append(ex)

    def send_to(self, ex: Exchange, ep: Endpoint) -> None:
        """Count ``ex`` against ``ep`` and send it on a pooled connection, or open one."""
        proxy = self.proxy
        ep.inflight += 1
        ex.endpoint = ep
        conn = proxy.pool.take(ep.address)
        if conn is not None:
            self._attach(ex, conn, ex.started, ep.name)
            return
        ex.phase = CONNECTING
        ex.connect_task = asyncio.get_running_loop().create_task(self._connect(ex))

    async def _connect(self, ex: Exchange) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        timed_out = False
        ep = ex.endpoint
        while ep is not None:
            tried.add(ep.address)
            begun = _monotonic()
            ex.deadline = begun + proxy.options.connect_timeout
            ex.timed_out = False
            try:
                _, conn = await loop.create_connection(
                    functools.partial(UpstreamConnection, proxy, ep.address), ep.host, ep.port
                )
            except asyncio.CancelledError:
                if not ex.timed_out:  # cancelled from outside, not by the sweep
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                timed_out = True
                ep = self._connect_failed(ex, ep, errors.H19, tried)
                continue
            except OSError:
                ep = self._connect_failed(ex, ep, errors.H21, tried)
                continue
            ex.connect_task = None
            if ex.abandoned or ex.resp_done:
                proxy.release(ex)
                proxy.pool.put(conn)
                return
            now = _monotonic()
            ex.connect_ms = int((now - begun) * 1000)
            self._attach(ex, conn, _time(), ep.name)
            self.flush_upstream(ex)
            return
        ex.connect_task = None
        if ex.abandoned or ex.resp_done:
            return
        self.answer(ex, errors.H19 if timed_out else errors.H21)
        self.advance()

    def _connect_failed(
        self, ex: Exchange, ep: Endpoint, failure: RouterError, tried: set[str]
    ) -> Endpoint | None:
        """Quarantine a dyno that refused or did not accept in time; the next one to try."""
        proxy = self.proxy
        ep.quarantined = _monotonic() + proxy.options.quarantine
        ep.failure = failure
        app = ep.app
        if ep in app.woken:
            app.woken = ()
        proxy.release(ex)
        if ex.abandoned or ex.resp_done:
            return None
        target = ex.target
        if target is None:
            return None
        nxt = next_untried(target.backends or app.woken, tried, _monotonic())
        if nxt is not None:
            nxt.inflight += 1
            ex.endpoint = nxt
        return nxt

    def _attach(self, ex: Exchange, conn: UpstreamConnection, now: float, name: bytes) -> None:
        ex.upstream = conn
        ex.backend = name
        ex.phase = WAITING
        ex.sent_at = now
        if ex.req_done:
            ex.deadline = self.proxy.now + self.proxy.first_byte_window
        else:
            ex.deadline = 0.0  # H12 counts from the end of the request; H28 watches the client
        conn.exchange = ex
        if self.write_paused and not conn.paused:
            conn.paused = True
            conn.transport.pause_reading()
        if self.paused & _PAUSE_BODY:
            self._resume(_PAUSE_BODY)

    def flush_upstream(self, ex: Exchange) -> None:
        if ex.out and ex.upstream is not None:
            ex.upstream.transport.write(b"".join(ex.out))
            ex.out.clear()

    def retry(self, ex: Exchange) -> None:
        """Replay a body-less idempotent request on a fresh connection: the pooled one was stale."""
        assert ex.head is not None  # noqa: S101 - only replayable exchanges keep their head
        ex.retried = True
        ex.out = [ex.head]
        ep = ex.endpoint
        if ep is None:
            self.answer(ex, errors.H13)
            self.advance()
            return
        ex.phase = CONNECTING
        ex.connect_task = asyncio.get_running_loop().create_task(self._connect(ex))

    # answers

    def answer(self, ex: Exchange, err: RouterError) -> None:
        """Answer with one of the router's own pages instead of a dyno's response."""
        proxy = self.proxy
        if ex.endpoint is not None:
            proxy.release(ex)
        ex.discard = True
        ex.out.clear()
        ex.phase = DONE
        if proxy.closing:
            ex.keep_alive = False
        page = None
        target = ex.target
        if target is not None and err.app_page:
            page = target.maintenance_page if err is errors.H80 else target.error_page
        data = err.response(keep_alive=ex.keep_alive, http10=ex.http10, body=page)
        if ex.head_only:
            data = data[: data.index(b"\r\n\r\n") + 4]
        self.transport.write(data)
        ex.status = err.status
        ex.resp_bytes = len(data)
        ex.resp_done = True
        self._resume(_PAUSE_BODY)
        proxy.log_request(ex, err)

    def interrupt(self, ex: Exchange, err: RouterError) -> None:
        """The dyno broke off a response the client has already started to receive: close."""
        if ex.endpoint is not None:
            self.proxy.release(ex)
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
        phase = ex.phase
        if phase == CONNECTING:
            if ex.connect_task is not None and not ex.timed_out:
                ex.timed_out = True
                ex.connect_task.cancel()
        elif phase == RESPONDING:
            up = ex.upstream
            if up is not None and up.paused:  # the client is slow to read, not the dyno to send
                ex.deadline = self.proxy.idle_deadline
                return
            self._detach(ex)
            ex.keep_alive = False
            self.interrupt(ex, errors.H15)
        elif phase in (WAITING, BOOTING, BACKLOG):
            self._detach(ex)
            self.answer(ex, errors.H20 if phase == BOOTING else errors.H12)
            self.advance()

    def client_idle(self, ex: Exchange) -> None:
        """The sweep saw no byte of the request's rest for the idle window: H28."""
        self._detach(ex)
        ex.status = 499
        ex.keep_alive = False
        self.interrupt(ex, errors.H28)

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

    def resume_for_tunnel(self) -> None:
        self.paused = 0
        self.transport.resume_reading()

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
        self.proxy.release(ex)

    def _detach(self, ex: Exchange) -> None:
        """Forget the dyno side of an exchange: stop waiting for a dyno, close its connection."""
        if ex.phase == BOOTING:
            self.proxy.waiting.discard(ex)
        elif ex.phase == BACKLOG and ex.target is not None:
            backlog = ex.target.app.backlog
            if ex in backlog:
                backlog.remove(ex)
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

    def _upgrade_requested(self, rest: bytes) -> None:
        """A request asking to switch protocols (or CONNECT): nothing more is parsed on this
        connection. Bytes after its head go to the dyno raw; a 101 turns the connection into a
        tunnel, anything else is answered and the connection closed."""
        self._pause(_PAUSE_PIPELINE)
        ex = self._last
        if ex is None:
            self.transport.close()
            return
        ex.keep_alive = False
        if ex.upgrade is not None and rest and not ex.discard:
            ex.out.append(rest)
            if ex.upstream is not None:
                self.flush_upstream(ex)
        if not ex.req_done:
            self._parsing = None
            ex.req_done = True
        if ex.resp_done:
            self.advance()

    def _parse_failed(self, exc: HttpParserError) -> None:
        cause = exc.__context__
        if isinstance(cause, _RequestRejectedError):
            self._malformed(cause.error)
        elif isinstance(exc, HttpParserCallbackError) and cause is not None:
            logger.error("the router failed on a request", exc_info=cause)
            self._malformed(errors.H99)
        else:
            self._malformed(errors.BAD_REQUEST)

    def _malformed(self, err: RouterError) -> None:
        """A request that cannot be parsed or breaks a limit: answered in its turn, then close."""
        self._pause(_PAUSE_PIPELINE)
        broken = self._parsing
        if broken is None:  # the head of a new request
            ex = Exchange(self, b"-", self._url[:200] or b"-", self._host, b"", self.client_ip, 0)
            ex.request_id = self.proxy.ids.new()
            ex.error = err
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
            broken.error = err
        elif broken.head_sent:  # the dyno's response has begun: nothing clean is left to say
            self._detach(broken)
            self.interrupt(broken, err)
        elif not broken.resp_done:
            self._detach(broken)
            self.answer(broken, err)
            self.advance()
        else:
            self.advance()
