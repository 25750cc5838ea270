"""One request/response pair passing through the router, and what the route table compiles to.

All plain ``__slots__`` classes: one ``Exchange`` is allocated per request; an ``Endpoint`` per dyno
and an ``AppState`` per app live as long as the dyno or the app is in the table (so in-flight counts,
quarantines, backlogs and wake-ups carry over from one table to the next); a ``Target`` is made per
route each time the table changes, never per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from dockyard.domain.dataplane import Backend, Route
from dockyard.router.errors import RouterError, custom_page

if TYPE_CHECKING:
    from dockyard.router.client import ClientConnection
    from dockyard.router.upstream import UpstreamConnection

# Phases of an exchange; the sweep reads ``deadline`` according to the phase.
QUEUED = 0
"""Parsed, waiting for the response to an earlier pipelined request."""
BOOTING = 1
"""Web dynos are scaled and none is up: wait for one (woken, starting) to come up (H20 at the
deadline)."""
CONNECTING = 2
"""Opening a new connection to a dyno (H19 at the deadline, after trying the others)."""
WAITING = 3
"""Request sent, no response byte yet (H12 at the deadline, counted from the end of the request)."""
RESPONDING = 4
"""The response is coming: each chunk from the dyno moves the deadline (H15 at the deadline)."""
DONE = 5
BACKLOG = 6
"""Every dyno has its fill of requests in flight: wait in the app's backlog (H12 at the deadline)."""


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"backend address {address!r} is not host:port")
    return host.strip("[]"), int(port)


class AppState:
    """What the router keeps per app across route tables."""

    __slots__ = ("app_id", "backlog", "requested", "waking", "woken", "woken_at")

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.backlog: deque[Exchange] = deque()
        """Requests waiting for a dyno with room (every dyno has ``max_inflight`` in flight)."""
        self.requested = False
        """A request came since the last-request file was last touched."""
        self.waking: asyncio.Task[None] | None = None
        """The wake-up asked of the agent, shared by every request that waits for it."""
        self.woken: tuple[Endpoint, ...] = ()
        """Dynos the agent said are up after a wake-up, used until the table lists some."""
        self.woken_at = 0.0


class Endpoint:
    """A web dyno: where it listens, what it is called, how busy it is, whether it is usable."""

    __slots__ = ("address", "app", "failure", "host", "inflight", "name", "port", "quarantined")

    def __init__(self, backend: Backend, app: AppState) -> None:
        self.address = backend.address
        self.host, self.port = parse_address(backend.address)
        self.name = (backend.dyno or backend.address).encode()
        """What the log line says as ``dyno=`` (the dyno's name, or its address when unknown)."""
        self.app = app
        self.inflight = 0
        """Requests sent to this dyno (or being connected to it) and not finished."""
        self.quarantined = 0.0
        """Monotonic time until which no request goes to this dyno (it refused or timed out)."""
        self.failure: RouterError | None = None
        """H21 or H19: why it was last quarantined."""


class Target:
    """What the proxy needs of a ``Route``, prepared once per table."""

    __slots__ = (
        "app",
        "app_id",
        "backends",
        "crashed",
        "error_page",
        "maintenance",
        "maintenance_page",
        "released",
        "route",
        "web_quantity",
    )

    def __init__(self, route: Route, app: AppState, backends: tuple[Endpoint, ...]) -> None:
        self.route = route
        self.app = app
        self.app_id = str(route.app_id)
        self.backends = backends
        self.maintenance = route.maintenance
        self.released = route.released
        self.web_quantity = route.web_quantity
        self.crashed = route.crashed
        self.error_page = custom_page(route.error_page_url, "Application error")
        self.maintenance_page = custom_page(route.maintenance_page_url, "Offline for maintenance")


class Exchange:
    __slots__ = (
        "abandoned",
        "backend",
        "body_budget",
        "cache_entry",
        "chunked",
        "client",
        "connect_ms",
        "connect_task",
        "deadline",
        "discard",
        "endpoint",
        "error",
        "fwd",
        "head",
        "head_only",
        "head_sent",
        "host",
        "http10",
        "keep_alive",
        "method",
        "out",
        "path",
        "phase",
        "req_done",
        "request_id",
        "resp_bytes",
        "resp_done",
        "retried",
        "sent_at",
        "started",
        "status",
        "target",
        "timed_out",
        "upgrade",
        "upstream",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        path: bytes,
        host: bytes,
        request_id: bytes,
        fwd: bytes,
        started: float,
    ) -> None:
        self.client = client
        self.method = method
        self.path = path
        self.host = host
        self.request_id = request_id
        self.fwd = fwd
        self.started = started
        """``time.time()`` when the request head was read (``X-Request-Start``)."""
        self.keep_alive = True
        self.http10 = False
        self.chunked = False
        self.head_only = False
        self.upgrade: bytes | None = None
        """The ``Upgrade`` value of a request asking to switch protocols (WebSocket)."""
        self.head: bytes | None = None
        """The request head, kept only when the request may be replayed on a fresh connection."""
        self.out: list[bytes] = []
        """Request bytes not yet written to the dyno."""
        self.body_budget = -1
        """Request body bytes still allowed (-1: no limit)."""
        self.error: RouterError | None = None
        self.target: Target | None = None
        self.endpoint: Endpoint | None = None
        """The dyno this request counts against (in flight) until it is finished."""
        self.backend = b""
        """The dyno's name (or address), as logged (``dyno=``)."""
        self.upstream: UpstreamConnection | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.cache_entry: object | None = None
        """Set by the cache hook on a miss whose response it may store."""
        self.phase = QUEUED
        self.deadline = 0.0
        """Monotonic time at which the sweep acts on the current phase; 0 for none."""
        self.sent_at = 0.0
        """``time.time()`` when the request went to the dyno (``service=`` counts from here)."""
        self.connect_ms = 0
        self.status = 0
        self.resp_bytes = 0
        self.req_done = False
        self.resp_done = False
        self.head_sent = False
        self.discard = False
        self.abandoned = False
        self.timed_out = False
        self.retried = False
