"""Keep-alive connections to web dynos, and the response side of the data path.

``UpstreamConnection`` parses a dyno's response with httptools and re-frames it for the client:
the rebuilt head and the first body bytes leave in one ``write`` per chunk received. Finished
connections go back to the ``UpstreamPool`` (idle connections per backend, newest first). Each
chunk from the dyno moves the exchange's deadline (Heroku's 55-second rolling window, H15); a
response head line over 512 KB, a head over ``max_head_bytes`` or a malformed length is H25; a
status line without a reason phrase, or anything else unparseable, is H17. A 101 answer to an
upgrade request turns both connections into a tunnel.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from dockyard.router import errors
from dockyard.router.errors import RouterError
from dockyard.router.exchange import DONE, RESPONDING, WAITING, Exchange
from dockyard.router.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    PLAIN,
    PLAIN_CONNECTION_VALUES,
    TRANSFER_ENCODING,
    UPGRADE,
    connection_tokens,
    drop_named,
    kind_of,
)
from dockyard.router.headers import RESPONSE_KINDS as _RESPONSE_KINDS

if TYPE_CHECKING:
    from dockyard.router.proxy import Proxy

_NO_BODY_STATUS = frozenset({204, 304})
_VIA = b"Via: 1.1 dockyard\r\n\r\n"
_CLOSE_VIA = b"Connection: close\r\n" + _VIA
_KEEP_ALIVE_VIA = b"Connection: keep-alive\r\n" + _VIA
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"

# How the response body is written to the client.
_RAW = 0
_CHUNK = 1

_MAX_RESPONSE_LINE = 512 * 1024
"""A response header line at most 512 KB (Heroku's limit; H25 beyond)."""


class _RestrictedError(Exception):
    """Raised inside a parser callback: the response breaks a limit (H25) or has no reason (H17)."""

    def __init__(self, error: RouterError) -> None:
        super().__init__(error.desc)
        self.error = error


_STATUS_LINES = {s.value: b"HTTP/1.1 %d %b\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def status_line(status: int) -> bytes:
    """The status line sent to clients (with the standard reason phrase for the code)."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


def _failure(exc: HttpParserError) -> RouterError:
    """H25 for a response over a limit or with a bad length, H17 for anything else unparseable."""
    cause = exc.__context__
    if isinstance(cause, _RestrictedError):
        return cause.error
    return errors.H25 if "Content-Length" in str(exc) else errors.H17


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_eof_body",
        "_has_length",
        "_head_bytes",
        "_interim",
        "_mode",
        "_parts",
        "_reason",
        "_reset",
        "_te",
        "_tokens",
        "_upgrade",
        "address",
        "done",
        "exchange",
        "got_bytes",
        "idle_since",
        "keep",
        "out",
        "parser",
        "paused",
        "proxy",
        "reused",
        "transport",
    )

    def __init__(self, proxy: Proxy, address: str) -> None:
        self.proxy = proxy
        self.address = address
        self.transport: asyncio.Transport = None  # type: ignore[assignment] # set by connection_made
        self.parser = HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.out: list[bytes] = []
        self._parts: list[bytes] = [b""]  # [0] becomes the status line
        self._has_length = False
        self._te: bytes | None = None
        self._upgrade: bytes | None = None
        self._reason = False
        self._head_bytes = 0
        """Bytes of the response head so far; -1 once the head is complete."""
        self._tokens: set[bytes] | None = None
        self._mode = _RAW
        self._eof_body = False
        self._interim = False
        self._reset = False
        self.done = False
        self.keep = False
        self.got_bytes = False
        self.reused = False
        self.paused = False
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # bytes from an idle connection: it cannot be trusted any more
            self.transport.close()
            return
        proxy = self.proxy
        if not self.got_bytes:
            self.got_bytes = True
            if ex.phase == WAITING:
                ex.phase = RESPONDING
        ex.deadline = proxy.idle_deadline
        if self._head_bytes >= 0:
            self._head_bytes += len(data)
            if self._head_bytes > proxy.options.max_head_bytes:
                self._malformed(ex, errors.H25)
                return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            if ex.upgrade is not None and ex.status == 101:
                self._switch(ex, data[exc.args[0] :])
            else:
                self._malformed(ex, errors.H17)
            return
        except HttpParserError as exc:
            self._malformed(ex, _failure(exc))
            return
        out = self.out
        if out:
            payload = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            ex.resp_bytes += len(payload)
            ex.client.transport.write(payload)
        if self.done:
            self._finish(ex, self.keep)

    def connection_lost(self, exc: Exception | None) -> None:
        ex = self.exchange
        if ex is None:
            self.proxy.pool.discard(self)
            return
        if self._eof_body and ex.head_sent:  # a body delimited by the end of the connection
            if self._mode == _CHUNK:
                self.out.append(_LAST_CHUNK)
            payload = b"".join(self.out)
            self.out.clear()
            ex.resp_bytes += len(payload)
            ex.client.transport.write(payload)
            self._finish(ex, False)
            return
        self.exchange = None
        ex.upstream = None
        client = ex.client
        if ex.head_sent:  # the client has part of a response: all we can do is close
            client.interrupt(ex, errors.H18)
        elif not self.got_bytes and self.reused and ex.head is not None and not ex.retried:
            client.retry(ex)  # a pooled connection the dyno had closed: replay on a fresh one
        else:
            client.answer(ex, errors.H18 if self.got_bytes else errors.H13)
            client.advance()

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.pause_for_upstream()

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.resume_for_upstream()

    # httptools callbacks

    def on_status(self, status: bytes) -> None:
        self._reason = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > _MAX_RESPONSE_LINE:
            raise _RestrictedError(errors.H25)
        kind = _RESPONSE_KINDS.get(name)
        if kind is None:
            kind = kind_of(_RESPONSE_KINDS, name)
        if kind == PLAIN:
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == CONTENT_LENGTH:
            self._has_length = True
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == TRANSFER_ENCODING:
            self._te = value
        elif kind == CONNECTION and value not in PLAIN_CONNECTION_VALUES:
            tokens = connection_tokens(value)
            self._tokens = tokens if self._tokens is None else self._tokens | tokens
        elif kind == UPGRADE:
            self._upgrade = value

    def on_headers_complete(self) -> None:
        ex = self.exchange
        assert ex is not None  # noqa: S101 - data_received drops bytes without an exchange
        if not self._reason:  # "HTTP/1.1 200" alone: Heroku's H17
            raise _RestrictedError(errors.H17)
        self._reason = False
        self._head_bytes = -1
        status = self.parser.get_status_code()
        parts, self._parts = self._parts, [b""]
        te, self._te = self._te, None
        has_length, self._has_length = self._has_length, False
        parts[0] = status_line(status)
        if self._tokens:
            parts = drop_named(parts, self._tokens)
            self._tokens = None
        if status < 200:
            self._informational(ex, status, parts)
            return
        keep_client = ex.keep_alive and not self.proxy.closing
        if ex.head_only or status in _NO_BODY_STATUS:
            self._mode = _RAW
            if ex.head_only:  # the parser would wait for a body that never comes
                self.done = True
                self.keep = self.parser.should_keep_alive()
                self._reset = True
        elif te is not None or not has_length:
            self._eof_body = te is None
            if ex.http10:  # no chunked encoding in HTTP/1.0: closing the connection ends the body
                self._mode = _RAW
                keep_client = False
            else:
                self._mode = _CHUNK
                parts.append(_CHUNKED if te is None else b"Transfer-Encoding: " + te + b"\r\n")
        else:
            self._mode = _RAW
        if ex.cache_entry is not None and self.proxy.cache is not None:
            self.proxy.cache.response_head(ex, status, parts)
        if not keep_client:
            ex.keep_alive = False
            parts.append(_CLOSE_VIA)
        elif ex.http10:
            parts.append(_KEEP_ALIVE_VIA)
        else:
            parts.append(_VIA)
        self.out.append(b"".join(parts))
        ex.status = status
        ex.head_sent = True

    def _informational(self, ex: Exchange, status: int, parts: list[bytes]) -> None:
        if status == 101 and ex.upgrade is not None:  # switching protocols: a tunnel follows
            upgrade, self._upgrade = self._upgrade, None
            parts.append(b"Connection: Upgrade\r\nUpgrade: %b\r\n" % (upgrade or ex.upgrade))
            parts.append(_VIA)
            self.out.append(b"".join(parts))
            ex.status = 101
            ex.head_sent = True
            return
        # 100 Continue, 103 Early Hints: forwarded, the final response follows
        self._interim = True
        self._head_bytes = 0
        if not ex.http10:
            parts.append(b"\r\n")
            self.out.append(b"".join(parts))

    def on_body(self, body: bytes) -> None:
        if self._mode == _CHUNK:
            self.out += (b"%x\r\n" % len(body), body, b"\r\n")
        else:
            self.out.append(body)
        ex = self.exchange
        if ex is not None and ex.cache_entry is not None and self.proxy.cache is not None:
            self.proxy.cache.response_body(ex, body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._mode == _CHUNK:
            self.out.append(_LAST_CHUNK)
        self.done = True
        self.keep = self.parser.should_keep_alive()

    # internals

    def _finish(self, ex: Exchange, reusable: bool) -> None:
        """The response is complete: release this connection and tell the client side."""
        self.done = False
        self.got_bytes = False
        self.exchange = None
        self._eof_body = False
        self._head_bytes = 0
        if self._reset:
            self._reset = False
            self.parser = HttpResponseParser(self)
        ex.upstream = None
        ex.phase = DONE
        ex.resp_done = True
        client = ex.client
        proxy = self.proxy
        if ex.cache_entry is not None and proxy.cache is not None:
            proxy.cache.response_end(ex, reusable or self._mode == _RAW)
        proxy.release(ex)
        if reusable and ex.req_done and not self.transport.is_closing():
            if self.paused:
                self.paused = False
                self.transport.resume_reading()
            self.reused = True
            proxy.pool.put(self)
        else:
            self.transport.close()
            if not ex.req_done:  # the dyno answered before the whole body: the rest is dropped
                ex.discard = True
                ex.out.clear()
        if client.paused:
            client.resume_for_upstream()
        proxy.log_request(ex, None)
        client.advance()

    def _malformed(self, ex: Exchange, err: RouterError) -> None:
        self.exchange = None
        ex.upstream = None
        self.transport.close()
        if ex.head_sent:
            ex.client.interrupt(ex, err)
        else:
            ex.out.clear()
            self.out.clear()
            ex.client.answer(ex, err)
            ex.client.advance()

    def _switch(self, ex: Exchange, rest: bytes) -> None:
        """The dyno agreed to switch protocols: send the 101 on, then relay bytes both ways."""
        out = self.out
        if rest:
            out.append(rest)
        payload = b"".join(out)
        out.clear()
        ex.resp_bytes += len(payload)
        client = ex.client
        client.transport.write(payload)
        self.exchange = None
        ex.upstream = None
        ex.phase = DONE
        ex.resp_done = True
        proxy = self.proxy
        proxy.release(ex)
        proxy.log_request(ex, None)
        client.active = None
        proxy.open_tunnel(client, self)


class UpstreamPool:
    """Idle keep-alive connections per backend address; the newest is reused first."""

    def __init__(self, max_idle_per_backend: int) -> None:
        self.max_idle = max_idle_per_backend
        self.idle: dict[str, list[UpstreamConnection]] = {}

    def take(self, address: str) -> UpstreamConnection | None:
        conns = self.idle.get(address)
        while conns:
            conn = conns.pop()
            if not conn.transport.is_closing():
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        if conn.address not in conn.proxy.endpoints:  # the dyno left the table: no more requests
            conn.transport.close()
            return
        conns = self.idle.get(conn.address)
        if conns is None:
            conns = self.idle[conn.address] = []
        if len(conns) >= self.max_idle:
            conn.transport.close()
            return
        conn.idle_since = conn.proxy.now
        conns.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        conns = self.idle.get(conn.address)
        if conns and conn in conns:
            conns.remove(conn)

    def count(self, address: str) -> int:
        return len(self.idle.get(address, ()))

    def sweep(self, now: float, idle_timeout: float) -> None:
        """Close connections idle for longer than ``idle_timeout``."""
        for conns in self.idle.values():
            while conns and now - conns[0].idle_since > idle_timeout:
                conns.pop(0).transport.close()

    def retain(self, addresses: set[str]) -> None:
        """Close the idle connections of backends that left the route table."""
        for address in [a for a in self.idle if a not in addresses]:
            for conn in self.idle.pop(address):
                conn.transport.close()

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.transport.close()
        self.idle.clear()
