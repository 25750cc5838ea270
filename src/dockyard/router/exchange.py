"""One request/response pair passing through the router, and the compiled form of a route.

Both are plain ``__slots__`` classes: one ``Exchange`` is allocated per request, and a ``Target``
per route each time the table changes, never per request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dockyard.domain.dataplane import Backend, Route
from dockyard.router.errors import RouterError

if TYPE_CHECKING:
    from dockyard.router.proxy import ClientConnection
    from dockyard.router.upstream import UpstreamConnection

Endpoint = tuple[str, str, int, bytes]
"""``("10.0.0.5:5000", "10.0.0.5", 5000, b"web.1")``: the address as published, host and port, and
what the log line says as ``dyno=`` (the dyno's name, or its address when the name is unknown)."""

# Phases of an exchange; the sweep reads ``deadline`` according to the phase.
QUEUED = 0
"""Parsed, waiting for the response to an earlier pipelined request."""
BOOTING = 1
"""Web dynos are scaled, none is up and one is starting: wait for the table to show one up (H20 at
the deadline)."""
CONNECTING = 2
"""Opening a new connection to a dyno (H19 at the deadline, after trying the others)."""
WAITING = 3
"""Request sent, no response byte yet (H12 at the deadline)."""
RESPONDING = 4
DONE = 5


def parse_backend(backend: Backend) -> Endpoint:
    address = backend.address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"backend address {address!r} is not host:port")
    return (address, host.strip("[]"), int(port), (backend.dyno or address).encode())


class Target:
    """What the proxy needs of a ``Route``, prepared once per table."""

    __slots__ = (
        "app_id",
        "backends",
        "crashed",
        "maintenance",
        "released",
        "route",
        "web_quantity",
    )

    def __init__(self, route: Route) -> None:
        self.route = route
        self.app_id = str(route.app_id)
        backends = []
        for backend in route.backends:
            try:
                backends.append(parse_backend(backend))
            except ValueError:
                continue  # a malformed address is skipped, not fatal for the other dynos
        self.backends: tuple[Endpoint, ...] = tuple(backends)
        self.maintenance = route.maintenance
        self.released = route.released
        self.web_quantity = route.web_quantity
        self.crashed = route.crashed


class Exchange:
    __slots__ = (
        "abandoned",
        "backend",
        "chunked",
        "client",
        "connect_ms",
        "connect_task",
        "deadline",
        "discard",
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
        self.head: bytes | None = None
        """The request head, kept only when the request may be replayed on a fresh connection."""
        self.out: list[bytes] = []
        """Request bytes not yet written to the dyno."""
        self.error: RouterError | None = None
        self.target: Target | None = None
        self.backend = b""
        """The dyno's name (or address), as logged (``dyno=``)."""
        self.upstream: UpstreamConnection | None = None
        self.connect_task: asyncio.Task[None] | None = None
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
