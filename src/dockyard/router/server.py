"""Run the router: listen, keep the route table fresh, flush the router log, stop cleanly.

``main(settings)`` is the foreground entry point (uvloop when installed, until SIGINT or SIGTERM).
``serve(settings, route_source)`` and ``RouterServer`` are what it is made of, for tests and
embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import Callable
from types import TracebackType

from dockyard.errors import ConflictError, UnavailableError
from dockyard.logs.store import FileLogStore
from dockyard.router.accesslog import RouterLog
from dockyard.router.proxy import Proxy, ProxyOptions
from dockyard.router.routes import (
    CACHE_FILE,
    ApiRouteSource,
    RouteCache,
    RouteRefresher,
    RouteSource,
)
from dockyard.settings import RouterSettings, Settings

logger = logging.getLogger("dockyard.router")

LOG_FLUSH_INTERVAL = 0.25
"""Seconds between two writes of the buffered ``heroku[router]`` lines."""
SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish when the router stops."""


def proxy_options(settings: RouterSettings) -> ProxyOptions:
    """The proxy's timeouts as the operator set them (``DOCKYARD_ROUTER_*``, ``[router]``)."""
    return ProxyOptions(
        connect_timeout=settings.connect_timeout,
        first_byte_timeout=settings.first_byte_timeout,
        keepalive_timeout=settings.idle_timeout,
        boot_wait=settings.boot_wait,
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
    ) -> None:
        self.settings = settings
        self.options = options or proxy_options(settings.router)
        self.poll = poll
        self.log = RouterLog(log_store or FileLogStore(settings.logs_dir))
        self.proxy = Proxy(domain=settings.domain, options=self.options, log=self.log)
        self.refresher = RouteRefresher(
            source,
            self.proxy.set_table,
            cache=cache or RouteCache(settings.state_dir / CACHE_FILE),
            interval=settings.router.refresh_interval,
        )
        self.host = settings.router.host
        self.port = settings.router.port
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self.refresher.load_cache()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self.proxy.connection, self.host, self.port, backlog=2048, reuse_address=True
            )
        except OSError as exc:
            where = f"{self.host}:{self.port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(
                    f"the router cannot listen on {where}: the port is in use — stop the other "
                    "server or choose another port (DOCKYARD_ROUTER_PORT)"
                ) from exc
            raise UnavailableError(
                f"the router cannot listen on {where}: {exc.strerror or exc} — check "
                "DOCKYARD_ROUTER_HOST and DOCKYARD_ROUTER_PORT (ports below 1024 need root)"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [
            loop.create_task(self.proxy.run_sweeper()),
            loop.create_task(self.log.run(LOG_FLUSH_INTERVAL)),
        ]
        if self.poll:
            self._tasks.append(loop.create_task(self.refresher.run()))

    async def refresh(self) -> bool:
        """Poll the route source now; True when a new table was applied."""
        return await self.refresher.refresh()

    async def flush_logs(self) -> None:
        await self.log.flush()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let requests in flight finish for up to ``grace`` seconds, then close."""
        if self._server is not None:
            self._server.close()
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
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
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
) -> None:
    """Serve until ``stop`` is set or the task is cancelled; ``ready`` is called once listening."""
    router = RouterServer(settings, route_source, options=options)
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


async def _serve_until_signalled(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    source = ApiRouteSource.from_settings(settings)
    try:
        await serve(settings, source, stop=stop, options=proxy_options(settings.router))
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


def main(settings: Settings) -> None:
    """Run the router in the foreground until SIGINT or SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_until_signalled(settings))
