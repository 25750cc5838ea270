"""The router's protections: per-address limits, slow clients, probing, and the per-app limit (H22).

- **Connections per address**: a client address may hold ``max_connections_per_address`` open
  connections; one more is answered ``429 Too Many Requests`` and closed.
- **Request rate per address**: a token bucket of ``request_burst`` requests refilled at
  ``request_rate`` a second; a request that finds it empty is answered 429.
- **Slow clients** (slowloris): a request head must arrive whole within ``header_timeout`` seconds
  of its first byte, and a body within ``body_timeout`` seconds plus one second per
  ``body_min_rate`` bytes (time the router itself stops reading does not count); otherwise the
  client gets ``408 Request Timeout`` (logged as H28) and its connection is closed.
- **Per-app limit**: an app may have ``app_connection_limit`` requests in flight (its own
  ``connection_limit`` when it set one); more are answered H22.
- **Probing**: more than ``probe_threshold`` requests for unknown hosts or paths (404s) from one
  address within ``probe_window`` seconds block the address for ``block_duration`` seconds: the
  router refuses its connections at once, and IPv4 addresses go into the dyno firewall's nftables
  block set (``runtime.nftables``), where the kernel drops their packets and the agent's
  ``ScanGuard`` reports them. Without that table (no firewall on this host, not root) the router
  blocks on its own.

Addresses in ``exempt`` (loopback by default: put a load balancer in front of Dockyard there) are
never limited or blocked. Counters live in memory, per router process; the clock is the proxy's
coarse one, handed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dockyard.errors import DockyardError
from dockyard.router import errors
from dockyard.router.errors import RouterError
from dockyard.router.tls import redirect
from dockyard.runtime.nftables import FirewallConfig, Nftables
from dockyard.settings import NetworkSettings, Settings

if TYPE_CHECKING:
    from dockyard.router.client import ClientConnection
    from dockyard.router.exchange import Exchange
    from dockyard.router.proxy import Proxy

logger = logging.getLogger("dockyard.router")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ADMIT = 0
BLOCKED = 1
"""The address is blocked: close the connection without a word."""
TOO_MANY = 2
"""The address has its fill of connections: answer 429 and close."""

_EXEMPT_MEMO = 4096
"""Addresses whose exemption is remembered (then the memo starts over)."""


def _page(title: str, message: str) -> bytes:
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>{message}</p></body></html>\n"
    ).encode()


_TOO_MANY = "Too many requests"
TOO_MANY_REQUESTS = RouterError(
    "",
    429,
    _TOO_MANY,
    "warning",
    _TOO_MANY,
    "",
    _page(_TOO_MANY, "This address sends more requests than the router accepts. Slow down."),
    b"at=warning",
    False,
)
"""The answer to a request over its address's rate, or a connection over its address's count."""
_SLOW = "Request timeout"
SLOW_CLIENT = RouterError(
    "H28",
    408,
    "Client Connection Idle",
    "warning",
    _SLOW,
    "",
    _page(_SLOW, "The request did not arrive in time. Send it again, faster."),
    b'at=warning code=H28 desc="Client Connection Idle"',
    False,
)
"""The answer to a client too slow to send its request (slowloris), logged as H28."""


@dataclass(frozen=True)
class GuardOptions:
    max_connections_per_address: int = 256
    request_rate: float = 100.0
    request_burst: int = 200
    app_connection_limit: int = 10000
    header_timeout: float = 20.0
    body_timeout: float = 20.0
    body_min_rate: float = 500.0
    probe_threshold: int = 100
    probe_window: float = 60.0
    block_duration: float = 3600.0
    exempt: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardOptions:
        router = settings.router
        return cls(
            max_connections_per_address=router.max_connections_per_address,
            request_rate=router.request_rate_per_address,
            request_burst=max(1, router.request_burst_per_address),
            app_connection_limit=router.app_connection_limit,
            header_timeout=router.header_timeout,
            body_timeout=router.body_timeout,
            body_min_rate=float(router.body_min_rate),
            probe_threshold=router.probe_threshold,
            probe_window=router.probe_window,
            block_duration=settings.network.block_duration,
            exempt=router.exempt_networks,
        )


class Blocker(Protocol):
    """Where blocked addresses go besides the router's own list."""

    def block(self, address: str, seconds: int) -> None:
        """Block ``address`` for ``seconds``; raises ``DockyardError`` when it cannot."""
        ...


class NftablesBlocker:
    """The dyno firewall's block set (IPv4 only: the set holds ``ipv4_addr``)."""

    def __init__(self, network: NetworkSettings) -> None:
        self.nftables = Nftables(FirewallConfig.from_settings(network))

    def block(self, address: str, seconds: int) -> None:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is None:
                return  # the router's own block is all there is for IPv6
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified or ip.is_link_local:
            return  # never in the kernel: it would cut the host off from itself
        self.nftables.block(ip, max(1, int(seconds)))


class Guard:
    """The proxy's ``guard`` hook: counters and verdicts at each step of a connection."""

    def __init__(
        self,
        options: GuardOptions,
        *,
        blocker: Blocker | None = None,
        https_port: int = 0,
    ) -> None:
        self.options = options
        self.blocker = blocker
        self.https_port = https_port
        """Where plain-HTTP requests of apps that ask for it are redirected; 0: no HTTPS."""
        self.connections: dict[bytes, int] = {}
        self.buckets: dict[bytes, list[float]] = {}
        """Address → [tokens, time of the last refill]."""
        self.probes: dict[bytes, list[float]] = {}
        """Address → [count, start of the window]."""
        self.blocked: dict[bytes, float] = {}
        """Address → when its block ends."""
        self.inflight: dict[str, int] = {}
        """App id → requests in flight."""
        self.guarded: set[ClientConnection] = set()
        """Open connections the limits apply to (not exempt, admitted)."""
        self.heads: dict[ClientConnection, float] = {}
        """Connections with a request head under way → when the sweep first saw it."""
        self.bodies: dict[ClientConnection, list[float]] = {}
        """Connections sending a request body → [its start (less paused time), bytes at start]."""
        self._app_limit = options.app_connection_limit
        self._counted: dict[Exchange, str] = {}
        """Requests counted in ``inflight``, with their app."""
        self._exempt: dict[bytes, bool] = {}
        self._firewall = blocker is not None
        self._tasks: set[asyncio.Task[None]] = set()
        self._swept = 0.0

    # -- the proxy's hook -----------------------------------------------------------------------

    def connection_made(self, client: ClientConnection) -> bool:
        address = client.client_ip
        if self.exempt(address):
            return True
        verdict = self.admit(address, client.proxy.now)
        if verdict == BLOCKED:
            client.transport.abort()
            return False
        if verdict == TOO_MANY:
            client.transport.write(TOO_MANY_REQUESTS.response(keep_alive=False))
            return False
        self.guarded.add(client)
        return True

    def connection_lost(self, client: ClientConnection) -> None:
        if client in self.guarded:
            self.guarded.discard(client)
            self.heads.pop(client, None)
            self.bodies.pop(client, None)
            self.release(client.client_ip)

    def before_route(self, ex: Exchange) -> RouterError | None:
        client = ex.client
        if client in self.guarded and not self.allow(client.client_ip, client.proxy.now):
            ex.keep_alive = False
            return TOO_MANY_REQUESTS
        target = ex.target
        if target is None:
            return None
        route = target.route
        if route.https_redirect and client.scheme == b"http" and self.https_port:
            moved = redirect(route, ex.host, ex.path, self.https_port)
            if moved is not None:
                return moved
        limit = route.connection_limit or self._app_limit
        if limit:  # enter(), inline: this runs for every request
            app_id = target.app_id
            inflight = self.inflight
            count = inflight.get(app_id, 0)
            if count >= limit:
                return errors.H22
            inflight[app_id] = count + 1
            self._counted[ex] = app_id
        return None

    def finished(self, ex: Exchange) -> None:
        app_id = self._counted.pop(ex, None)
        if app_id is not None:
            self.inflight[app_id] -= 1  # zeros are dropped by the sweep
        if ex.status == 404:
            client = ex.client
            if client in self.guarded:
                self.probe(client.client_ip, client.proxy.now)

    def sweep(self, proxy: Proxy, now: float) -> None:
        gap = now - self._swept if self._swept else 0.0
        self._swept = now
        for client in list(self.guarded):
            self._check_head(client, now, gap)
            self._check_body(client, now, gap)
        self.tidy(now)

    def _check_head(self, client: ClientConnection, now: float, gap: float) -> None:
        if client.head_bytes <= 0:
            self.heads.pop(client, None)
            return
        started = self.heads.get(client)
        if started is None:
            self.heads[client] = now
            return
        if client.paused:  # the router is not reading (an earlier request's turn): not counted
            self.heads[client] = started + gap
            return
        if self.head_late(started, now):
            self.heads.pop(client, None)
            transport = client.transport
            if not transport.is_closing():
                transport.write(SLOW_CLIENT.response(keep_alive=False))
                transport.close()

    def _check_body(self, client: ClientConnection, now: float, gap: float) -> None:
        ex = client.active
        if ex is None or ex.req_done or ex.resp_done or ex.upstream is None:
            self.bodies.pop(client, None)
            return
        received = float(client.received)
        body = self.bodies.get(client)
        if body is None:
            self.bodies[client] = [now, received]
            return
        if client.paused:  # the router is not reading: the time does not count
            body[0] += gap
            return
        if self.body_late(body[0], int(received - body[1]), now):
            self.bodies.pop(client, None)
            self._cut_body(client, ex)

    def _cut_body(self, client: ClientConnection, ex: Exchange) -> None:
        if ex.head_sent:
            client.client_idle(ex)
            return
        up = ex.upstream
        if up is not None:
            up.exchange = None
            ex.upstream = None
            up.transport.close()
        ex.keep_alive = False
        client.answer(ex, SLOW_CLIENT)
        client.transport.close()

    # -- connections ----------------------------------------------------------------------------

    def exempt(self, address: bytes) -> bool:
        known = self._exempt.get(address)
        if known is None:
            if len(self._exempt) >= _EXEMPT_MEMO:
                self._exempt.clear()
            known = self._exempt[address] = self._is_exempt(address)
        return known

    def _is_exempt(self, address: bytes) -> bool:
        try:
            ip = ipaddress.ip_address(address.decode("ascii").partition("%")[0])
        except ValueError:
            return False  # a Unix socket or something else without an address: guarded
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.options.exempt)

    def admit(self, address: bytes, now: float) -> int:
        """A new connection from ``address``: ``ADMIT`` (counted until ``release``), ``BLOCKED``
        or ``TOO_MANY``."""
        until = self.blocked.get(address)
        if until is not None:
            if until > now:
                return BLOCKED
            del self.blocked[address]
        count = self.connections.get(address, 0)
        limit = self.options.max_connections_per_address
        if limit and count >= limit:
            return TOO_MANY
        self.connections[address] = count + 1
        return ADMIT

    def release(self, address: bytes) -> None:
        count = self.connections.get(address, 0) - 1
        if count > 0:
            self.connections[address] = count
        else:
            self.connections.pop(address, None)

    # -- requests -------------------------------------------------------------------------------

    def allow(self, address: bytes, now: float) -> bool:
        """One request from ``address``: whether its rate allows it."""
        rate = self.options.request_rate
        if not rate:
            return True
        bucket = self.buckets.get(address)
        burst = float(self.options.request_burst)
        if bucket is None:
            self.buckets[address] = [burst - 1.0, now]
            return True
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def enter(self, app_id: str, limit: int) -> bool:
        """A request for an app is about to go to its dynos: False when the app already has its
        limit in flight (``limit`` 0: the router's default)."""
        limit = limit or self.options.app_connection_limit
        count = self.inflight.get(app_id, 0)
        if limit and count >= limit:
            return False
        self.inflight[app_id] = count + 1
        return True

    def leave(self, app_id: str) -> None:
        count = self.inflight.get(app_id, 0)
        if count > 0:
            self.inflight[app_id] = count - 1

    # -- slow clients ---------------------------------------------------------------------------

    def head_late(self, started: float, now: float) -> bool:
        """Whether a request head begun at ``started`` should be complete by now."""
        return now - started > self.options.header_timeout

    def body_late(self, started: float, received: int, now: float) -> bool:
        """Whether a request body begun at ``started`` of which ``received`` bytes came is too
        slow."""
        allowed = self.options.body_timeout
        if self.options.body_min_rate:
            allowed += received / self.options.body_min_rate
        return now - started > allowed

    # -- probing --------------------------------------------------------------------------------

    def probe(self, address: bytes, now: float) -> bool:
        """A request for an unknown host or path from ``address``: True when it is one too many
        and the address is now blocked."""
        threshold = self.options.probe_threshold
        if not threshold:
            return False
        counter = self.probes.get(address)
        if counter is None or now - counter[1] > self.options.probe_window:
            self.probes[address] = [1.0, now]
            return False
        counter[0] += 1
        if counter[0] <= threshold:
            return False
        del self.probes[address]
        self.block(address, now)
        return True

    def block(self, address: bytes, now: float) -> None:
        """Block an address in the router now, and in the firewall as soon as ``nft`` answers."""
        duration = self.options.block_duration
        self.blocked[address] = now + duration
        text = address.decode("ascii", "replace")
        logger.warning(
            "blocking %s for %d s: more than %d requests for unknown hosts or paths within %g s",
            text,
            duration,
            self.options.probe_threshold,
            self.options.probe_window,
        )
        for client in [c for c in self.guarded if c.client_ip == address]:
            client.transport.abort()
        if self._firewall and self.blocker is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: the router's block stands
                task = asyncio.get_running_loop().create_task(
                    self._block_in_firewall(text, int(duration))
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _block_in_firewall(self, address: str, seconds: int) -> None:
        assert self.blocker is not None  # noqa: S101 - only scheduled with a blocker
        try:
            await asyncio.to_thread(self.blocker.block, address, seconds)
        except (DockyardError, OSError, ValueError) as exc:
            if self._firewall:
                self._firewall = False
                logger.warning(
                    "cannot add %s to the nftables block set (%s); the router blocks probing "
                    "addresses on its own from now on",
                    address,
                    exc,
                )

    async def settle(self) -> None:
        """Wait for the firewall blocks under way (for tests and shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def firewall(self) -> bool:
        """Whether blocks still go to the nftables block set."""
        return self._firewall

    # -- housekeeping ---------------------------------------------------------------------------

    def tidy(self, now: float) -> None:
        """Forget what no longer matters: full buckets, old probe counts, ended blocks."""
        rate = self.options.request_rate
        if rate:
            refill = self.options.request_burst / rate
            for address in [a for a, b in self.buckets.items() if now - b[1] > refill]:
                del self.buckets[address]
        window = self.options.probe_window
        for address in [a for a, c in self.probes.items() if now - c[1] > window]:
            del self.probes[address]
        for address in [a for a, until in self.blocked.items() if until <= now]:
            del self.blocked[address]
        for app_id in [a for a, count in self.inflight.items() if count <= 0]:
            del self.inflight[app_id]
