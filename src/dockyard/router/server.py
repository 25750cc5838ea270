"""Run the router: listen, keep the route table fresh, flush the router log, stop cleanly.

``main(settings)`` is the foreground entry point (uvloop when installed, until SIGINT or SIGTERM):
with ``router.workers`` above one it binds the listening sockets once per worker with
``SO_REUSEPORT`` and forks the workers (``router.workers``), each a whole router with its own route
table poll. ``serve(settings, route_source)`` and ``RouterServer`` are what a worker is made of, for
tests and embedding. The listening sockets come from ``listeners(settings)``: plain HTTP on
``router.port``, and whatever else a listener list names (HTTPS with its ``SSLContext``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from dockyard.domain.dataplane import RouteTable
from dockyard.errors import ConflictError, DockyardError, UnavailableError
from dockyard.logs.store import FileLogStore
from dockyard.router import tls
from dockyard.router.accesslog import RouterLog
from dockyard.router.cache import CacheHook, ResponseCache
from dockyard.router.guard import Guard, GuardOptions, NftablesBlocker
from dockyard.router.proxy import Proxy, ProxyOptions
from dockyard.router.routes import (
    CACHE_FILE,
    ApiRouteSource,
    RouteCache,
    RouteRefresher,
    RouteSource,
)
from dockyard.router.wake import AgentWaker
from dockyard.settings import RouterSettings, Settings

logger = logging.getLogger("dockyard.router")

LOG_FLUSH_INTERVAL = 0.25
"""Seconds between two writes of the buffered ``heroku[router]`` lines."""
SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish when the router stops."""
BACKLOG = 2048
"""Connections the kernel queues per listening socket before the router accepts them."""


@dataclass(frozen=True)
class Listener:
    """One address the router listens on, and what its clients speak."""

    host: str
    port: int
    scheme: Literal["http", "https"] = "http"
    ssl: ssl.SSLContext | None = None


Bound = tuple[Listener, socket.socket]


def listeners(settings: Settings) -> list[Listener]:
    """Where the router listens: HTTP on ``router.host:router.port``, and HTTPS on
    ``router.tls_port`` (a free port too when ``router.port`` is 0) unless ``router.tls`` is off
    or the default certificate cannot be had (the log says why)."""
    router = settings.router
    found = [Listener(router.host, router.port)]
    if router.tls:
        context = tls.platform_context(settings)
        if context is not None:
            https = Listener(router.host, router.tls_port if router.port else 0, "https", context)
            if https.port:
                try:
                    bind(https).close()  # a port taken by another server costs HTTPS, not HTTP
                except DockyardError as exc:
                    logger.error("HTTPS is off, apps answer plain HTTP only: %s", exc.message)
                    return found
            found.append(https)
    return found


def bind(listener: Listener, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket for ``listener`` (with ``SO_REUSEPORT`` so that workers can each have
    one on the same port); errors say what to change."""
    where = f"{listener.host}:{listener.port}"
    try:
        infos = socket.getaddrinfo(
            listener.host, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UnavailableError(
            f"the router cannot listen on {where}: {exc} — check DOCKYARD_ROUTER_HOST"
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            variable = "DOCKYARD_ROUTER_TLS_PORT" if listener.ssl else "DOCKYARD_ROUTER_PORT"
            raise ConflictError(
                f"the router cannot listen on {where}: the port is in use — stop the other "
                f"server or choose another port ({variable})"
            ) from exc
        raise UnavailableError(
            f"the router cannot listen on {where}: {exc.strerror or exc} — check "
            "DOCKYARD_ROUTER_HOST and DOCKYARD_ROUTER_PORT (ports below 1024 need root)"
        ) from exc
    return sock


def proxy_options(settings: RouterSettings) -> ProxyOptions:
    """The proxy's timeouts and limits as the operator set them (``DOCKYARD_ROUTER_*``,
    ``[router]``)."""
    return ProxyOptions(
        connect_timeout=settings.connect_timeout,
        first_byte_timeout=settings.first_byte_timeout,
        keepalive_timeout=settings.idle_timeout,
        boot_wait=settings.boot_wait,
        quarantine=settings.quarantine,
        max_inflight=settings.max_inflight_per_dyno,
        balancing=settings.balancing,
        max_body_bytes=settings.max_body_bytes,
    )


class RouterServer:
    """One listening router: ``async with RouterServer(...) as router:`` serves inside the block."""

    def __init__(
        self,
        settings: Settings,
        source: RouteSource,
        *,
        options: ProxyOptions | None = None,
        poll: bool = True,
        log_store: FileLogStore | None = None,
        cache: RouteCache | None = None,
        sockets: Sequence[Bound] | None = None,
        waker: AgentWaker | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or proxy_options(settings.router)
        self.poll = poll
        self.log = RouterLog(log_store or FileLogStore(settings.logs_dir))
        self.proxy = Proxy(
            domain=settings.domain,
            options=self.options,
            log=self.log,
            waker=waker or AgentWaker(settings.agent_socket, self.options.boot_wait),
            last_request_dir=settings.last_request_dir,
        )
        self.guard = Guard(
            GuardOptions.from_settings(settings), blocker=NftablesBlocker(settings.network)
        )
        self.proxy.guard = self.guard
        router = settings.router
        self.cache = ResponseCache(router.cache_max_bytes, router.cache_max_object_bytes)
        self.cache_hook = CacheHook(self.cache)
        self.certificates: tls.Certificates | None = None
        """The HTTPS listener's certificates by SNI name, once it listens."""
        self.table = RouteTable()
        self.tls_port = 0
        """The HTTPS port once listening; 0 when the router serves no HTTPS."""
        self.refresher = RouteRefresher(
            source,
            self.apply,
            cache=cache or RouteCache(settings.state_dir / CACHE_FILE),
            interval=settings.router.refresh_interval,
        )
        self.host = settings.router.host
        self.port = settings.router.port
        self.sockets: list[Bound] = list(sockets or ())
        """Listening sockets handed in (a worker's); empty: bind ``listeners(settings)``."""
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def apply(self, table: RouteTable) -> None:
        """A new route table: the proxy's, the cache's (purges), the certificates'."""
        self.table = table
        self.proxy.set_table(table)
        self.cache.apply(table)
        self.proxy.cache = self.cache_hook if any(r.cache or r.hsts for r in table.routes) else None
        if self.certificates is not None:
            self.certificates.update(table)

    async def start(self) -> None:
        self.refresher.load_cache()
        loop = asyncio.get_running_loop()
        if not self.sockets:
            self.sockets = [(listener, bind(listener)) for listener in listeners(self.settings)]
        for listener, sock in self.sockets:
            if listener.ssl is not None:
                self.certificates = tls.Certificates(
                    listener.ssl, self.settings.sni_endpoints_dir, self.settings.domain
                )
                self.certificates.update(self.table)
            server = await loop.create_server(
                self.proxy.connection_factory(listener.scheme),
                sock=sock,
                ssl=listener.ssl,
                ssl_handshake_timeout=self.settings.router.header_timeout if listener.ssl else None,
                backlog=BACKLOG,
            )
            self._servers.append(server)
        first = self.sockets[0]
        self.host = first[0].host
        self.port = first[1].getsockname()[1]
        for listener, sock in self.sockets:
            if listener.ssl is not None:
                self.tls_port = sock.getsockname()[1]
        self.guard.https_port = self.tls_port
        self._tasks = [
            loop.create_task(self.proxy.run_sweeper()),
            loop.create_task(self.log.run(LOG_FLUSH_INTERVAL)),
        ]
        if self.certificates is not None and not self.settings.router.tls_cert_file:
            self._tasks.append(loop.create_task(tls.run_renewal(self.settings, self.certificates)))
        if self.poll:
            self._tasks.append(loop.create_task(self.refresher.run()))

    async def refresh(self) -> bool:
        """Poll the route source now; True when a new table was applied."""
        return await self.refresher.refresh()

    async def flush_logs(self) -> None:
        await self.log.flush()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let requests in flight finish for up to ``grace`` seconds, then close."""
        for server in self._servers:
            server.close()
        self.proxy.begin_shutdown()
        if self.proxy.clients:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proxy.drained.wait(), grace)
        self.proxy.force_close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        await self.log.flush()

    async def __aenter__(self) -> RouterServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(
    settings: Settings,
    route_source: RouteSource,
    *,
    ready: Callable[[RouterServer], object] | None = None,
    stop: asyncio.Event | None = None,
    options: ProxyOptions | None = None,
    sockets: Sequence[Bound] | None = None,
) -> None:
    """Serve until ``stop`` is set or the task is cancelled; ``ready`` is called once listening."""
    router = RouterServer(settings, route_source, options=options, sockets=sockets)
    await router.start()
    try:
        logger.info(
            "Dockyard router listening on %s — apps answer at http://<app>.%s:%d/",
            router.url,
            settings.domain,
            router.port,
        )
        if ready is not None:
            ready(router)
        if stop is None:
            await asyncio.Future()  # until cancelled
        else:
            await stop.wait()
        logger.info("Dockyard router stopping: letting requests in flight finish")
    finally:
        await router.stop()
    logger.info("Dockyard router stopped")


async def _serve_until_signalled(settings: Settings, sockets: Sequence[Bound] | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    source = ApiRouteSource.from_settings(settings)
    try:
        await serve(
            settings, source, stop=stop, options=proxy_options(settings.router), sockets=sockets
        )
    finally:
        await source.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_worker(settings: Settings, sockets: Sequence[Bound] | None = None) -> None:
    """One router process, in the foreground until SIGINT or SIGTERM."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_until_signalled(settings, sockets))


def main(settings: Settings) -> None:
    """Run the router in the foreground until SIGINT or SIGTERM: one process, or
    ``router.workers`` processes sharing the ports."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
    count = settings.router.worker_count
    if count <= 1:
        run_worker(settings)
        return
    from dockyard.router.workers import run_workers

    run_workers(settings, listeners(settings), count, run_worker)
