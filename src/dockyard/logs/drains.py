"""Drains: ship an app's stream to syslog (TCP, TLS) or HTTPS endpoints, as Logplex does.

Every drain has its own connection and its own bounded buffer (``buffer_lines``, 1,024 by
default). While the connection takes data, lines go straight into it; when it is slow, down or
hanging they wait in the buffer, whose oldest lines are dropped once it is full. Dropped lines are
reported into the app's stream as Logplex's L10 line, at once and then at most once a minute, and
once more when the drain recovers. A TLS certificate that fails validation is reported as L14.
Nothing here blocks the caller of ``feed``: connecting, TLS, HTTP and back-off run in the drain's
own task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, cast

from dockyard import __version__
from dockyard.errors import InvalidError
from dockyard.logs.drainurl import AddressGuard, DrainTarget, parse_drain_url
from dockyard.logs.line import format_timestamp
from dockyard.logs.syslog import octet_frames

log = logging.getLogger("dockyard.logs.drains")

Report = Callable[[str, str], None]
"""``report(app_id, message)``: write a ``heroku[logplex]`` line into the app's stream."""

REPORT_INTERVAL = 60.0
CONNECT_TIMEOUT = 10.0
HTTP_TIMEOUT = 30.0
HTTP_ATTEMPTS = 10
HTTP_BATCH_LINES = 1000
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
WRITE_HIGH_WATER = 256 << 10
USER_AGENT = f"Logplex/v72 (Dockyard {__version__})"


@dataclass(frozen=True)
class DrainConfig:
    id: str
    app_id: str
    token: str
    url: str


@dataclass
class DrainStats:
    sent: int = 0
    """Lines handed to the connection (syslog) or acknowledged with a 2xx (HTTPS)."""
    dropped: int = 0
    """Lines dropped since the drain started."""
    connected: bool = False
    last_error: str = ""


class Drain(Protocol):
    config: DrainConfig
    stats: DrainStats

    def feed(self, lines: Sequence[bytes]) -> None: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@dataclass
class DrainOptions:
    guard: AddressGuard
    report: Report
    buffer_lines: int = 1024
    ca_file: str = ""
    retry_delays: Sequence[float] = RETRY_DELAYS
    now: Callable[[], float] = time.time
    _tls: ssl.SSLContext | None = field(default=None, repr=False)

    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self.ca_file)
        return self._tls


class BufferedDrain:
    """The buffer, the drop accounting and the L10/L14 reports every drain shares."""

    def __init__(self, config: DrainConfig, options: DrainOptions) -> None:
        self.config = config
        self.options = options
        self.target: DrainTarget = parse_drain_url(config.url)
        self.hostname = config.token.encode()
        self.buffer: deque[bytes] = deque(maxlen=options.buffer_lines)
        self.stats = DrainStats()
        self._unreported = 0
        self._dropping_since: float | None = None
        self._last_report = float("-inf")
        self._l14_reported = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._wake = asyncio.Event()

    # -- buffer -----------------------------------------------------------------------------------

    def _hold(self, lines: Sequence[bytes]) -> None:
        overflow = len(self.buffer) + len(lines) - (self.buffer.maxlen or 0)
        if overflow > 0:
            self._dropped(overflow)
        self.buffer.extend(lines)
        self._wake.set()

    def _dropped(self, count: int) -> None:
        self.stats.dropped += count
        self._unreported += count
        if self._dropping_since is None:
            self._dropping_since = self.options.now()
        if time.monotonic() - self._last_report >= REPORT_INTERVAL:
            self._report_drops()

    def _report_drops(self) -> None:
        if not self._unreported or self._dropping_since is None:
            return
        since = format_timestamp(datetime.fromtimestamp(self._dropping_since, UTC))
        count, self._unreported, self._dropping_since = self._unreported, 0, None
        self._last_report = time.monotonic()
        self.options.report(
            self.config.app_id,
            f"Error L10 (output buffer overflow): {count} messages dropped since {since}.",
        )

    def _recovered(self) -> None:
        """The drain delivers again: say how much it lost meanwhile."""
        self._l14_reported = False
        if self._unreported:
            self._report_drops()

    def _certificate_failed(self, exc: ssl.SSLCertVerificationError) -> None:
        self.stats.last_error = f"certificate validation failed: {exc.verify_message or exc}"
        if not self._l14_reported:
            self._l14_reported = True
            self.options.report(
                self.config.app_id,
                f"Error L14 (certificate validation error): {self.target.redacted}: "
                f"{exc.verify_message or exc.reason or exc}",
            )

    def _delay(self, attempt: int) -> float:
        delays = self.options.retry_delays
        return delays[min(attempt, len(delays) - 1)]

    async def _addresses(self) -> list[str]:
        return await self.options.guard.resolve_async(self.target.host, self.target.port)

    # -- life -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:  # pragma: no cover - each drain kind has its own
        raise NotImplementedError

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class SyslogDrain(BufferedDrain, asyncio.Protocol):
    """``syslog://`` and ``syslog+tls://``: RFC 5424 over TCP with RFC 6587 octet counting."""

    def __init__(self, config: DrainConfig, options: DrainOptions) -> None:
        super().__init__(config, options)
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self._lost: asyncio.Future[None] | None = None

    def feed(self, lines: Sequence[bytes]) -> None:
        if self.transport is not None and not self._paused and not self.buffer:
            self.transport.write(octet_frames(lines, self.hostname))
            self.stats.sent += len(lines)
        else:
            self._hold(lines)

    def _flush(self) -> None:
        while self.buffer and self.transport is not None and not self._paused:
            batch = list(self.buffer)
            self.buffer.clear()
            self.transport.write(octet_frames(batch, self.hostname))
            self.stats.sent += len(batch)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses: cast, do not check.
        stream = cast(asyncio.Transport, transport)
        stream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.transport = stream
        self._paused = False
        self.stats.connected = True
        self._flush()
        self._recovered()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.stats.connected = False
        if exc is not None:
            self.stats.last_error = str(exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._flush()

    def data_received(self, data: bytes) -> None:
        pass  # a syslog receiver has nothing to say

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._closed:
            try:
                addresses = await self._addresses()
                self._lost = loop.create_future()
                await asyncio.wait_for(
                    loop.create_connection(
                        lambda: self,
                        addresses[0],
                        self.target.port,
                        ssl=self.options.tls() if self.target.tls else None,
                        server_hostname=self.target.host if self.target.tls else None,
                    ),
                    CONNECT_TIMEOUT,
                )
                attempt = 0
                await self._lost
            except ssl.SSLCertVerificationError as exc:
                self._certificate_failed(exc)
            except (OSError, TimeoutError, InvalidError, ssl.SSLError) as exc:
                self.stats.last_error = str(exc) or type(exc).__name__
            if self._closed:
                break
            await asyncio.sleep(self._delay(attempt))
            attempt += 1

    async def close(self) -> None:
        await super().close()
        if self.transport is not None:
            self.transport.abort()


class HttpDrain(BufferedDrain):
    """``https://`` and ``http://``: batched POSTs of ``application/logplex-1``, retried with back-off
    under the same ``Logplex-Frame-Id``."""

    def __init__(self, config: DrainConfig, options: DrainOptions) -> None:
        super().__init__(config, options)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.in_flight = 0

    def feed(self, lines: Sequence[bytes]) -> None:
        self._hold(lines)

    async def _run(self) -> None:
        try:
            while not self._closed:
                if not self.buffer:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                count = min(len(self.buffer), HTTP_BATCH_LINES)
                batch = [self.buffer.popleft() for _ in range(count)]
                self.in_flight = count
                await self._deliver(batch)
                self.in_flight = 0
        finally:
            self._disconnect()

    async def _deliver(self, batch: list[bytes]) -> None:
        body = octet_frames(batch, b"host", structured_data=False)
        frame_id = uuid.uuid4().hex
        for attempt in range(HTTP_ATTEMPTS):
            try:
                status = await asyncio.wait_for(
                    self._post(body, len(batch), frame_id), HTTP_TIMEOUT
                )
            except ssl.SSLCertVerificationError as exc:
                self._disconnect()
                self._certificate_failed(exc)
            except (OSError, TimeoutError, InvalidError, ssl.SSLError, ValueError) as exc:
                self._disconnect()
                self.stats.last_error = str(exc) or type(exc).__name__
            else:
                if 200 <= status < 300:
                    self.stats.sent += len(batch)
                    self.stats.connected = True
                    self._recovered()
                    return
                self.stats.last_error = f"HTTP {status}"
            self.stats.connected = False
            if self._closed:
                return
            await asyncio.sleep(self._delay(attempt))
        self._dropped(len(batch))

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def _post(self, body: bytes, count: int, frame_id: str) -> int:
        target = self.target
        if self._writer is None or self._writer.is_closing():
            addresses = await self._addresses()
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    addresses[0],
                    target.port,
                    ssl=self.options.tls() if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                ),
                CONNECT_TIMEOUT,
            )
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise ConnectionError("the drain's connection closed")
        default_port = 443 if target.tls else 80
        host = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            host = f"{host}:{target.port}"
        headers = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {host}",
            "Content-Type: application/logplex-1",
            f"Content-Length: {len(body)}",
            f"Logplex-Msg-Count: {count}",
            f"Logplex-Frame-Id: {frame_id}",
            f"Logplex-Drain-Token: {self.config.token}",
            f"User-Agent: {USER_AGENT}",
        ]
        if target.username is not None:
            secret = f"{target.username}:{target.password or ''}".encode()
            headers.append(f"Authorization: Basic {base64.b64encode(secret).decode()}")
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return await _read_response(reader, self)


async def _read_response(reader: asyncio.StreamReader, drain: HttpDrain) -> int:
    """Read one HTTP/1.1 response, its body included; the status. Closes the connection when the
    server asks for it or the body runs to the end of the connection."""
    status_line = await reader.readline()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[bytes, bytes] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    close = headers.get(b"connection") == b"close"
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        await _read_chunked(reader)
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif status not in (204, 304) and not 100 <= status < 200:
        await reader.read()  # the body runs to the end of the connection
        close = True
    if close:
        drain._disconnect()
    return status


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
        await reader.readexactly(size + 2)  # the chunk and its CRLF
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass  # trailers


DRAIN_KINDS: dict[str, type[SyslogDrain] | type[HttpDrain]] = {
    "syslog": SyslogDrain,
    "syslog+tls": SyslogDrain,
    "https": HttpDrain,
    "http": HttpDrain,
}


def make_drain(config: DrainConfig, options: DrainOptions) -> SyslogDrain | HttpDrain:
    return DRAIN_KINDS[parse_drain_url(config.url).scheme](config, options)
