"""WebSockets and other protocol switches: after a dyno's 101, a byte relay between two sockets.

Both connections get a ``TunnelEnd`` protocol (``transport.set_protocol``), which writes what it
reads to the other side; a full write buffer on one side pauses reading on the other. An end of
file is passed on as a half-close; the tunnel closes when both sides have ended, when either
connection is lost, or when no byte has passed either way for the idle window (Heroku's 55 s,
checked by the proxy's sweep).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.router.client import ClientConnection
    from dockyard.router.proxy import Proxy


class TunnelEnd(asyncio.Protocol):
    __slots__ = ("eof", "peer", "transport", "tunnel")

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport, peer: asyncio.Transport):
        self.tunnel = tunnel
        self.transport = transport
        self.peer = peer
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)
        self.tunnel.last_active = self.tunnel.proxy.now

    def eof_received(self) -> bool:
        self.eof = True
        tunnel = self.tunnel
        if tunnel.client_end.eof and tunnel.dyno_end.eof:
            tunnel.close()
            return False
        if self.peer.can_write_eof():
            self.peer.write_eof()
            return True
        tunnel.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close()

    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class Tunnel:
    __slots__ = ("client", "client_end", "closed", "dyno_end", "last_active", "proxy")

    def __init__(
        self,
        proxy: Proxy,
        client: ClientConnection,
        client_transport: asyncio.Transport,
        dyno_transport: asyncio.Transport,
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.last_active = proxy.now
        self.closed = False
        self.client_end = TunnelEnd(self, client_transport, dyno_transport)
        self.dyno_end = TunnelEnd(self, dyno_transport, client_transport)
        client_transport.set_protocol(self.client_end)
        dyno_transport.set_protocol(self.dyno_end)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client_end.transport.close()
        self.dyno_end.transport.close()
        proxy = self.proxy
        proxy.tunnels.discard(self)
        if proxy.guard is not None:
            proxy.guard.connection_lost(self.client)
