"""What every connection of a router process shares: the route table, the dynos and their load,
the upstream pool, waiting requests, tunnels, the log buffer, the clock, and the hooks of the cache
and the protections.

The route table is one dict keyed by the lowercased ``Host`` without its port, swapped whole when
the table changes; dynos (``Endpoint``) and apps (``AppState``) carry over from one table to the
next, so in-flight counts, quarantines, backlogs and wake-ups survive a change. A dyno that leaves
the table gets no new request; the requests it is serving finish, and its connections close.
``sweep`` runs about once a second and enforces every deadline (no timer per request).

Hooks (each ``None`` unless set by ``server``):

- ``guard`` (``Guard``): sees each connection open and close and each request before it is routed
  (``before_route`` may answer it instead, e.g. H22 or 429), each finished request, and every sweep;
- ``cache`` (``Cache``): ``lookup`` before a request is sent to a dyno (a stored response answers
  it); on a miss it sets ``Exchange.cache_entry``, and then sees the response's head, body and end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dockyard.domain.dataplane import Backend, RouteTable
from dockyard.errors import UnavailableError
from dockyard.router.accesslog import RouterLog
from dockyard.router.balancing import Balancing, picker
from dockyard.router.client import ClientConnection
from dockyard.router.errors import RouterError
from dockyard.router.exchange import AppState, Endpoint, Exchange, Target
from dockyard.router.requestid import RequestIds
from dockyard.router.tunnel import Tunnel
from dockyard.router.upstream import UpstreamConnection, UpstreamPool
from dockyard.router.wake import AgentWaker, touch_last_requests

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("dockyard.router")

_monotonic = time.monotonic
_time = time.time

_INFO = b"at=info"
_LOG_LINE = (
    b'%b method=%b path="%b" host=%b request_id=%b fwd="%b" dyno=%b connect=%dms service=%dms '
    b"status=%d bytes=%d protocol=%b"
)
WOKEN_TTL = 60.0
"""Seconds the dynos a wake-up returned are used while the route table does not list them yet."""


@dataclass(frozen=True)
class ProxyOptions:
    """Timeouts and limits; the defaults are Heroku's."""

    connect_timeout: float = 5.0
    """Seconds to open a connection to a dyno before trying the next (H19 when all time out)."""
    first_byte_timeout: float = 30.0
    """Seconds from the end of the request to the first response byte (H12)."""
    keepalive_timeout: float = 55.0
    """Seconds of silence after which an idle client connection is closed, a response is cut
    (H15), a request whose body stalls is cut (H28) and a tunnel is closed."""
    boot_wait: float = 75.0
    """Seconds a request waits for a web dyno to come up (woken or starting) when web dynos are
    scaled but none is up, then H20. When the route says the app crashed, H10 comes at once."""
    sweep_interval: float = 1.0
    """Seconds between two checks of all timeouts."""
    upstream_idle_timeout: float = 50.0
    """Seconds an idle pooled connection to a dyno is kept."""
    max_idle_per_backend: int = 256
    quarantine: float = 5.0
    """Seconds a dyno that refused a connection or did not accept one in time gets no request."""
    max_inflight: int = 50
    """Requests in flight per dyno; more wait in the app's backlog, up to this many per dyno, and
    beyond that are answered H11 (Heroku's 50). 0: no limit, no backlog."""
    balancing: Balancing = "random"
    max_body_bytes: int = 0
    """Largest request body accepted (413 beyond); 0 for no limit (Heroku sets none)."""
    max_head_bytes: int = 1 << 20
    """Largest request or response head (each line is limited on its own too)."""


class Guard(Protocol):
    """The protections' hook (per-address limits, slow clients, per-app connection limits)."""

    def connection_made(self, client: ClientConnection) -> bool:
        """False closes the connection at once."""
        ...

    def connection_lost(self, client: ClientConnection) -> None: ...

    def before_route(self, ex: Exchange) -> RouterError | None:
        """An answer instead of routing (``ex.target`` is None for an unknown host)."""
        ...

    def finished(self, ex: Exchange) -> None:
        """A request was answered (``ex.status``), by a dyno or by the router."""
        ...

    def sweep(self, proxy: Proxy, now: float) -> None: ...


class Cache(Protocol):
    """The response cache's hook."""

    def lookup(self, ex: Exchange) -> tuple[int, bytes] | None:
        """A stored response for ``ex`` as (status, the whole response), or None; on a miss whose
        response may be stored, set ``ex.cache_entry``."""
        ...

    def response_head(self, ex: Exchange, status: int, head: list[bytes]) -> None:
        """The response head for an exchange with a ``cache_entry``, as ``[status line, name,
        b": ", value, b"\\r\\n", ...]`` without the final blank line: headers may be appended,
        and ``ex.cache_entry`` set to None not to store the response."""
        ...

    def response_body(self, ex: Exchange, body: bytes) -> None: ...

    def response_end(self, ex: Exchange, complete: bool) -> None: ...


class Proxy:
    """What all connections of one router process share."""

    def __init__(
        self,
        *,
        domain: str,
        options: ProxyOptions,
        log: RouterLog,
        waker: AgentWaker | None = None,
        last_request_dir: Path | None = None,
    ) -> None:
        self.domain = domain.lower().rstrip(".")
        self.options = options
        self.log = log
        self.waker = waker
        self.last_request_dir = last_request_dir
        self.guard: Guard | None = None
        self.cache: Cache | None = None
        self.routes: dict[bytes, Target] = {}
        self.endpoints: dict[str, Endpoint] = {}
        """Every dyno requests may go to, by address (the table's, and woken ones)."""
        self.apps: dict[str, AppState] = {}
        self.pick = picker(options.balancing)
        self.pool = UpstreamPool(options.max_idle_per_backend)
        self.clients: set[ClientConnection] = set()
        self.tunnels: set[Tunnel] = set()
        self.waiting: set[Exchange] = set()
        """Requests waiting for a web dyno to come up (H20 at their deadline)."""
        self.requested: list[AppState] = []
        """Apps with a request since the last-request files were last touched."""
        self.ids = RequestIds()
        self.now = _monotonic()
        """A coarse clock, advanced by each sweep, for the timeouts that do not need precision."""
        self.first_byte_window = options.first_byte_timeout + options.sweep_interval
        """H12 comes this long after the coarse clock's reading (never early)."""
        self.idle_deadline = self.now + options.keepalive_timeout + options.sweep_interval
        """H15 for a response that is silent from now on (moved by each sweep)."""
        self.closing = False
        self.drained = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()

    def connection(self) -> ClientConnection:
        """The protocol factory for ``loop.create_server`` (plain HTTP)."""
        return ClientConnection(self)

    def connection_factory(self, scheme: str) -> Callable[[], ClientConnection]:
        """The protocol factory of a listener whose clients speak ``scheme`` (http or https)."""
        encoded = scheme.encode("ascii")
        return lambda: ClientConnection(self, encoded)

    # the route table

    def set_table(self, table: RouteTable) -> None:
        routes: dict[bytes, Target] = {}
        endpoints: dict[str, Endpoint] = {}
        apps: dict[str, AppState] = {}
        now = self.now
        for route in table.routes:
            app_id = str(route.app_id)
            app = self.apps.get(app_id) or AppState(app_id)
            apps[app_id] = app
            backends = tuple(self._endpoints(route.backends, app, endpoints))
            if backends or now - app.woken_at > WOKEN_TTL:
                app.woken = ()
            for ep in app.woken:
                endpoints.setdefault(ep.address, ep)
            target = Target(route, app, backends)
            default = f"{route.app_name}.{self.domain}"
            for hostname in (default, *route.hostnames):
                routes[hostname.lower().rstrip(".").encode("utf-8")] = target
        stranded = [ex for app in self.apps.values() for ex in app.backlog]
        for app in self.apps.values():
            app.backlog.clear()
        self.routes = routes
        self.endpoints = endpoints
        self.apps = apps
        self.pool.retain(set(endpoints))
        for ex in stranded:
            if not (ex.abandoned or ex.resp_done):
                self._reroute(ex)
        if self.waiting:
            self._retry_waiting()

    def _endpoints(
        self, backends: tuple[Backend, ...], app: AppState, into: dict[str, Endpoint]
    ) -> list[Endpoint]:
        found = []
        for backend in backends:
            ep = self.endpoints.get(backend.address)
            name = (backend.dyno or backend.address).encode()
            if ep is None or ep.app is not app or ep.name != name:
                try:
                    ep = Endpoint(backend, app)
                except ValueError:
                    continue  # a malformed address is skipped, not fatal for the other dynos
            into[ep.address] = ep
            found.append(ep)
        return found

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
            if ex.abandoned or ex.resp_done:
                self.waiting.discard(ex)
                continue
            target = self.lookup(ex.host)
            if target is None or target.backends or target.app.woken or target.crashed:
                self.waiting.discard(ex)
                self._reroute(ex)

    def _reroute(self, ex: Exchange) -> None:
        """Route a waiting request again, against the current table."""
        client = ex.client
        target = self.lookup(ex.host)
        if target is None:
            ex.target = None
            client.start(ex)
        else:
            client.route(ex, target)
        if ex.upstream is not None:
            client.flush_upstream(ex)
        client.advance()

    # load

    def release(self, ex: Exchange) -> None:
        """``ex`` no longer counts against its dyno; a request waiting in the backlog may go."""
        ep = ex.endpoint
        if ep is None:
            return
        ex.endpoint = None
        ep.inflight -= 1
        backlog = ep.app.backlog
        if backlog:
            self._drain_backlog(ep.app)

    def _drain_backlog(self, app: AppState) -> None:
        backlog = app.backlog
        cap = self.options.max_inflight
        while backlog:
            ex = backlog[0]
            target = ex.target
            backends = (target.backends or app.woken) if target is not None else ()
            ep = self.pick(backends, self.now, cap) if backends else None
            if ep is None:
                return
            backlog.popleft()
            client = ex.client
            client.send_to(ex, ep)
            if ex.upstream is not None:
                client.flush_upstream(ex)

    # waking sleeping apps

    def wake(self, target: Target) -> None:
        """Ask the agent to wake the app (once for every request that waits for it)."""
        app = target.app
        if app.waking is None and self.waker is not None:
            app.waking = asyncio.get_running_loop().create_task(self._wake(app))

    async def _wake(self, app: AppState) -> None:
        assert self.waker is not None  # noqa: S101 - wake() checks
        try:
            backends = await self.waker.wake(app.app_id)
        except UnavailableError as exc:
            logger.info("waking app %s: %s", app.app_id, exc)
            return
        finally:
            app.waking = None
        if self.apps.get(app.app_id) is not app:
            return
        woken = []
        for backend in backends:
            try:
                ep = Endpoint(backend, app)
            except ValueError:
                continue
            ep = self.endpoints.setdefault(ep.address, ep)
            woken.append(ep)
        app.woken = tuple(woken)
        app.woken_at = self.now
        if self.waiting:
            self._retry_waiting()

    # tunnels

    def open_tunnel(self, client: ClientConnection, upstream: UpstreamConnection) -> None:
        """Relay bytes between a client and a dyno that switched protocols (after the 101)."""
        self.clients.discard(client)
        if self.closing and not self.clients:
            self.drained.set()
        tunnel = Tunnel(self, client, client.transport, upstream.transport)
        self.tunnels.add(tunnel)
        if upstream.paused:
            upstream.paused = False
            upstream.transport.resume_reading()
        client.resume_for_tunnel()

    # timeouts

    def sweep(self, now: float) -> None:
        """Enforce every deadline; called about once a second."""
        self.now = now
        options = self.options
        idle = options.keepalive_timeout
        self.idle_deadline = now + idle + options.sweep_interval
        for client in list(self.clients):
            ex = client.active
            if ex is None:
                if not client.queue and now - client.idle_since > idle:
                    client.transport.close()
            elif ex.resp_done:
                continue
            elif ex.deadline and now >= ex.deadline:
                client.timeout(ex)
            elif (
                not ex.req_done
                and ex.upstream is not None
                and not client.paused
                and now - client.last_read > idle
            ):
                client.client_idle(ex)
        for tunnel in list(self.tunnels):
            if now - tunnel.last_active > idle:
                tunnel.close()
        self.pool.sweep(now, options.upstream_idle_timeout)
        if self.requested:
            self._touch_requested()
        if self.guard is not None:
            self.guard.sweep(self, now)

    def _touch_requested(self) -> None:
        requested, self.requested = self.requested, []
        for app in requested:
            app.requested = False
        if self.last_request_dir is None:
            return
        ids = [app.app_id for app in requested]
        future = asyncio.get_running_loop().run_in_executor(
            None, touch_last_requests, self.last_request_dir, ids, _time()
        )
        self._background.add(future)
        future.add_done_callback(self._background.discard)

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
        for tunnel in list(self.tunnels):
            tunnel.close()
        for app in self.apps.values():
            if app.waking is not None:
                app.waking.cancel()
        self.pool.close()

    # logging

    def log_request(self, ex: Exchange, err: RouterError | None) -> None:
        """Queue the ``heroku[router]`` line of a finished exchange."""
        if self.guard is not None:
            self.guard.finished(ex)
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
                ex.client.scheme,
            ),
        )
