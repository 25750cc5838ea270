"""The logs process (``dockyard.serve logs``): follows every app's segment files and fans the lines out
to the ring buffers, the ``--tail`` sessions and the drains.

One asyncio loop, nothing in it waits on a client or a drain:

- ``.notify`` (Unix datagrams) says which apps have new lines; a scan every second catches what a
  lost datagram missed. New bytes are read in one call per app and split into lines in C;
- the ring buffer holds each app's newest ``buffer_lines`` lines (bytes), loaded from the history
  at start;
- ``.session`` (Unix stream) serves the API: ``recent`` (the newest lines), ``tail`` (the newest
  lines, then every new one; cut with L11 when the client falls ``tail_buffer_bytes`` behind),
  ``drains-changed`` and ``status``;
- drains (``logs.drains``) are fed each batch; their configuration comes from ``drain_source``
  (the store), re-read every 5 s and when the API says it changed;
- retention: the logs process rotates each app's current segment at ``segment_bytes`` and prunes
  history past ``max_app_bytes``, ``history_days`` and the free-disk floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from dockyard.logs.drains import Drain, DrainConfig, DrainOptions, make_drain
from dockyard.logs.drainurl import AddressGuard, host_addresses
from dockyard.logs.line import make_lines
from dockyard.logs.query import LogFilter
from dockyard.logs.store import FileLogStore, LogFollower
from dockyard.settings import LogsSettings, Settings

log = logging.getLogger("dockyard.logs")

DrainSource = Callable[[], Sequence[DrainConfig]]
SCAN_INTERVAL = 1.0
RETENTION_INTERVAL = 60.0
DRAIN_RELOAD_INTERVAL = 5.0
L11_GRACE = 10.0
MAX_REQUEST_BYTES = 64 << 10


def segment_bytes(settings: LogsSettings) -> int:
    """The segment size: the setting, at most a quarter of an app's history, at least 64 KB."""
    return max(min(settings.segment_bytes, settings.max_app_bytes // 4), 64 << 10)


class TailSession:
    def __init__(
        self,
        router: LogRouter,
        app_id: str,
        wanted: LogFilter,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.router = router
        self.app_id = app_id
        self.filter = wanted
        self.writer = writer
        self.closed = False
        self.sent = 0

    def send(self, data: bytes, lines: Sequence[bytes]) -> None:
        if self.closed:
            return
        if not self.filter.everything:
            data = b"".join([raw + b"\n" for raw in lines if self.filter.accepts_raw(raw)])
            if not data:
                return
        transport = self.writer.transport
        if transport.get_write_buffer_size() + len(data) > self.router.settings.tail_buffer_bytes:
            self.overflow()
            return
        self.writer.write(data)
        self.sent += 1

    def overflow(self) -> None:
        """L11: the client is too slow. Its last line says so; it is cut off, not waited for."""
        self.close()
        message = (
            "Error L11 (Tail buffer overflow) -> This tail session fell more than "
            f"{self.router.settings.tail_buffer_bytes} bytes behind and was closed; "
            "run logs --tail again, or filter it with --source, --dyno or --grep."
        )
        for line in make_lines("heroku", "logplex", message, datetime.now(UTC)):
            self.writer.write(line.format().encode() + b"\n")
        self.router.report(self.app_id, message)
        with contextlib.suppress(Exception):
            self.writer.close()
        transport = self.writer.transport
        asyncio.get_running_loop().call_later(L11_GRACE, transport.abort)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.router.tails.get(self.app_id, set()).discard(self)


class LogRouter:
    def __init__(
        self,
        store: FileLogStore,
        settings: LogsSettings,
        *,
        drain_source: DrainSource | None = None,
        guard: AddressGuard | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.segment_bytes = segment_bytes(settings)
        self.drain_source = drain_source
        self.guard = guard or AddressGuard(allow_private=settings.allow_private_drains)
        self.buffers: dict[str, deque[bytes]] = {}
        self.followers: dict[str, LogFollower] = {}
        self.tails: dict[str, set[TailSession]] = {}
        self.drains: dict[str, Drain] = {}
        self.app_drains: dict[str, list[Drain]] = {}
        self.lines_in = 0
        self._dirty: set[str] = set()
        self._pump_scheduled = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: asyncio.base_events.Server | None = None
        self._notify: asyncio.DatagramTransport | None = None
        self._drains_changed = asyncio.Event()
        self.drain_options = DrainOptions(
            guard=self.guard,
            report=self.report,
            buffer_lines=settings.drain_buffer_lines,
            ca_file=settings.drain_ca_file,
        )

    # -- start and stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for app_id in self.store.app_ids():
            self._track(app_id, at_end=True)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            self.store.notify_path.unlink()
        notify.bind(str(self.store.notify_path))
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        notify.setblocking(False)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Notified(self), sock=notify)
        self._notify = transport
        with contextlib.suppress(FileNotFoundError):
            self.store.session_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._session, path=str(self.store.session_path), limit=MAX_REQUEST_BYTES
        )
        os.chmod(self.store.session_path, 0o600)
        self._tasks = [
            loop.create_task(self._every(SCAN_INTERVAL, self.scan)),
            loop.create_task(self._every_async(RETENTION_INTERVAL, self.enforce_retention)),
            loop.create_task(self._drain_loop()),
        ]
        log.info("logs: following %d app stream(s) in %s", len(self.followers), self.store.root)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            self._server.close()
        if self._notify is not None:
            self._notify.close()
        for sessions in list(self.tails.values()):
            for session in list(sessions):
                session.close()
                session.writer.transport.abort()
        for drain in list(self.drains.values()):
            await drain.close()
        self.drains.clear()
        self.app_drains.clear()
        for follower in self.followers.values():
            follower.close()
        for path in (self.store.notify_path, self.store.session_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _every(self, interval: float, work: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                work()
            except Exception:
                log.exception("logs: %s failed", getattr(work, "__name__", work))

    async def _every_async(self, interval: float, work: Callable[[], None]) -> None:
        while True:
            try:
                await asyncio.to_thread(work)
            except Exception:
                log.exception("logs: %s failed", getattr(work, "__name__", work))
            await asyncio.sleep(interval)

    # -- ingest -----------------------------------------------------------------------------------

    def _track(self, app_id: str, *, at_end: bool) -> LogFollower:
        follower = LogFollower(self.store, app_id, at_end=at_end)
        self.followers[app_id] = follower
        if app_id not in self.buffers:
            self.buffers[app_id] = deque(
                self.store.tail_bytes(app_id, self.settings.buffer_lines) if at_end else (),
                maxlen=self.settings.buffer_lines,
            )
        return follower

    def buffer(self, app_id: str) -> deque[bytes]:
        found = self.buffers.get(app_id)
        if found is None:
            found = self.buffers[app_id] = deque(
                self.store.tail_bytes(app_id, self.settings.buffer_lines),
                maxlen=self.settings.buffer_lines,
            )
        return found

    def mark_dirty(self, app_id: str) -> None:
        self._dirty.add(app_id)
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        """Read what every dirty app's stream got and hand it on."""
        self._pump_scheduled = False
        dirty, self._dirty = self._dirty, set()
        for app_id in dirty:
            try:
                follower = self.followers.get(app_id)
                if follower is None:  # a stream that appeared after the start: all of it is new
                    follower = self._track(app_id, at_end=False)
                data = follower.read_bytes()
                if data:
                    self.deliver(app_id, data)
                if follower.offset >= self.segment_bytes and self.store.rotate(
                    app_id, min_bytes=self.segment_bytes
                ):
                    self.store.prune(app_id, max_bytes=self.settings.max_app_bytes)
            except ValueError:
                continue  # not an app id (a stray datagram)
            except OSError as exc:
                log.warning("logs: cannot read the stream of %s: %s", app_id, exc)

    def deliver(self, app_id: str, data: bytes) -> None:
        """Whole lines (``data`` ends with a newline) into the buffer, the tails and the drains."""
        lines = data.split(b"\n")
        lines.pop()
        self.lines_in += len(lines)
        self.buffer(app_id).extend(lines)
        for session in list(self.tails.get(app_id, ())):
            session.send(data, lines)
        for drain in self.app_drains.get(app_id, ()):
            drain.feed(lines)

    def scan(self) -> None:
        """Catch up with streams whose datagram was lost, and streams that are new."""
        for app_id in self.store.app_ids():
            follower = self.followers.get(app_id)
            if follower is None or follower.pending_bytes() > 0:
                self.mark_dirty(app_id)

    def report(self, app_id: str, message: str) -> None:
        """A ``heroku[logplex]`` line (L10, L11, L14) into the app's stream."""
        try:
            self.store.append(app_id, make_lines("heroku", "logplex", message, datetime.now(UTC)))
        except (OSError, ValueError) as exc:
            log.warning("logs: cannot write to the stream of %s: %s", app_id, exc)

    # -- retention --------------------------------------------------------------------------------

    def enforce_retention(self) -> None:
        older_than = time.time() - self.settings.history_days * 86400
        for app_id in self.store.app_ids():
            self.store.prune(app_id, max_bytes=self.settings.max_app_bytes, older_than=older_than)
        self._keep_free_space()

    def _keep_free_space(self) -> None:
        """Below ``min_free_bytes`` free, the oldest segment of the app holding most goes, and so
        on, until there is enough room or nothing closed is left."""
        floor = self.settings.min_free_bytes
        for _ in range(10_000):
            try:
                info = os.statvfs(self.store.root)
            except OSError:
                return
            if info.f_bavail * info.f_frsize >= floor:
                return
            sizes = {app: self.store.history_bytes(app) for app in self.store.app_ids()}
            for app_id in sorted(sizes, key=lambda a: sizes[a], reverse=True):
                if self.store.closed_segments(app_id) or self.store.rotate(app_id):
                    oldest = self.store.closed_segments(app_id)
                    if oldest:
                        oldest[0].unlink(missing_ok=True)
                        log.warning(
                            "logs: less than %d bytes free; removed %s of %s",
                            floor,
                            oldest[0].name,
                            app_id,
                        )
                        break
            else:
                return

    # -- drains -----------------------------------------------------------------------------------

    def drains_changed(self) -> None:
        self._drains_changed.set()

    async def _drain_loop(self) -> None:
        while True:
            if self.drain_source is not None:
                try:
                    configs = await asyncio.to_thread(self.drain_source)
                    self.set_drains(configs)
                except Exception as exc:
                    log.warning("logs: cannot read the drains: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drains_changed.wait(), DRAIN_RELOAD_INTERVAL)
            self._drains_changed.clear()

    def set_drains(self, configs: Iterable[DrainConfig]) -> None:
        wanted = {config.id: config for config in configs}
        for drain_id in list(self.drains):
            if drain_id not in wanted or self.drains[drain_id].config != wanted[drain_id]:
                drain = self.drains.pop(drain_id)
                asyncio.get_running_loop().create_task(drain.close())
        for drain_id, config in wanted.items():
            if drain_id not in self.drains:
                try:
                    drain = make_drain(config, self.drain_options)
                except Exception as exc:
                    log.warning("logs: drain %s cannot start: %s", config.token, exc)
                    continue
                self.drains[drain_id] = drain
                drain.start()
        by_app: dict[str, list[Drain]] = {}
        for drain in self.drains.values():
            by_app.setdefault(drain.config.app_id, []).append(drain)
        self.app_drains = by_app

    # -- sessions ---------------------------------------------------------------------------------

    def recent(self, app_id: str, count: int, wanted: LogFilter) -> list[bytes]:
        if count <= 0:
            return []
        buffer = self.buffer(app_id)
        if wanted.everything:
            return list(buffer)[-count:]
        found: list[bytes] = []
        for raw in reversed(buffer):
            if wanted.accepts_raw(raw):
                found.append(raw)
                if len(found) == count:
                    break
        return found[::-1]

    def status(self) -> dict[str, Any]:
        return {
            "apps": len(self.followers),
            "lines_in": self.lines_in,
            "tails": sum(len(s) for s in self.tails.values()),
            "drains": {
                drain.config.id: {
                    "app_id": drain.config.app_id,
                    "token": drain.config.token,
                    "sent": drain.stats.sent,
                    "dropped": drain.stats.dropped,
                    "connected": drain.stats.connected,
                    "buffered": len(getattr(drain, "buffer", ())),
                    "last_error": drain.stats.last_error,
                }
                for drain in self.drains.values()
            },
        }

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            op = request.get("op")
            if op == "drains-changed":
                self.drains_changed()
                writer.write(b"ok\n")
            elif op == "status":
                writer.write(json.dumps(self.status()).encode() + b"\n")
            elif op in ("recent", "tail"):
                await self._serve_lines(request, reader, writer, tail=op == "tail")
                return
            else:
                writer.write(b'{"error": "unknown op"}\n')
            await writer.drain()
        except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
            with contextlib.suppress(Exception):
                writer.write(json.dumps({"error": str(exc)}).encode() + b"\n")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_lines(
        self,
        request: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tail: bool,
    ) -> None:
        app_id = str(request.get("app") or "")
        self.store.current_path(app_id)  # ValueError for what is not an app id
        count = int(request.get("lines") or 0)
        wanted = LogFilter.from_json(request.get("filter") or {})
        if app_id not in self.followers:
            self._track(app_id, at_end=True)
        else:
            self.mark_dirty(app_id)
            self.pump()  # what is already written comes before the tail starts
        newest = self.recent(app_id, count, wanted)
        if newest:
            writer.write(b"\n".join(newest) + b"\n")
        if not tail:
            await writer.drain()
            return
        session = TailSession(self, app_id, wanted, writer)
        self.tails.setdefault(app_id, set()).add(session)
        try:
            while await reader.read(4096):  # the client says nothing; EOF: it went away
                pass
        finally:
            session.close()


class _Notified(asyncio.DatagramProtocol):
    def __init__(self, router: LogRouter) -> None:
        self.router = router

    def datagram_received(self, data: bytes, addr: Any) -> None:
        with contextlib.suppress(UnicodeDecodeError):
            self.router.mark_dirty(data.decode())


async def serve(router: LogRouter, stop: asyncio.Event) -> None:
    await router.start()
    try:
        await stop.wait()
    finally:
        await router.stop()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(settings: Settings, drain_source: DrainSource | None) -> None:
    """Run the logs process in the foreground until SIGTERM or SIGINT."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        own = [] if settings.logs.allow_private_drains else await asyncio.to_thread(host_addresses)
        guard = AddressGuard(allow_private=settings.logs.allow_private_drains, own=own)
        router = LogRouter(
            FileLogStore(settings.logs_dir), settings.logs, drain_source=drain_source, guard=guard
        )
        await serve(router, stop)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())
