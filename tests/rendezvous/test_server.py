"""The rendezvous service with real TLS clients (Python's ssl) and real ptys."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
import tty
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dockyard.agent.terminal import hand_over
from dockyard.domain.dataplane import attach_secret
from dockyard.errors import DynoError
from dockyard.rendezvous.server import RendezvousServer
from dockyard.rendezvous.tls import ensure_certificate, fingerprint, server_context

KEY = "test-rendezvous-key"
DYNO_ID = "7a1f0c3e-0000-4000-8000-000000001234"


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.cert = tmp_path / "secrets" / "rendezvous.crt"
        self.key = tmp_path / "secrets" / "rendezvous.key"
        ensure_certificate(self.cert, self.key, "localhost")
        self.socket_path = tmp_path / "run" / "rendezvous.sock"
        self.secret = attach_secret(KEY, DYNO_ID)

    def server(self, attach_timeout: float = 10) -> RendezvousServer:
        return RendezvousServer(
            KEY,
            server_context(self.cert, self.key),
            host="127.0.0.1",
            port=0,
            socket_path=self.socket_path,
            attach_timeout=attach_timeout,
        )

    def client_context(self) -> ssl.SSLContext:
        """What Node does with NODE_EXTRA_CA_CERTS: trust the certificate, check the host name."""
        return ssl.create_default_context(cafile=str(self.cert))

    async def connect(
        self, server: RendezvousServer, line: str | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=self.client_context(), server_hostname="localhost"
        )
        writer.write(((line if line is not None else self.secret) + "\r\n").encode())
        await writer.drain()
        return reader, writer

    async def hand_over_pty(self) -> int:
        """A pty whose master goes to the service; returns the slave (raw: bytes pass unchanged)."""
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            await asyncio.to_thread(hand_over, self.socket_path, DYNO_ID, master)
        finally:
            os.close(master)
        return slave


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def served(
    setup: Setup, scenario: Callable[[RendezvousServer], Awaitable[None]], **kw: float
) -> None:
    async def main() -> None:
        server = setup.server(**kw)
        await server.start()
        try:
            await asyncio.wait_for(scenario(server), 20)
        finally:
            await server.close()

    asyncio.run(main())


def read_slave(slave: int, count: int) -> bytes:
    data = b""
    while len(data) < count:
        ready, _, _ = select.select([slave], [], [], 10)
        assert ready, f"only {data!r} arrived"
        data += os.read(slave, count - len(data))
    return data


def hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLHUP)
    return bool(poller.poll(0))


def test_a_client_and_its_dyno_talk_both_ways_until_the_dyno_ends(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        slave = await setup.hand_over_pty()
        reader, writer = await setup.connect(server, f"{setup.secret}?sha256=ignored")
        assert await reader.readline() == b"rendezvous\r\n"
        os.write(slave, b"hello\n")
        assert await reader.readexactly(6) == b"hello\n"
        writer.write(b"typed\x03\n")
        await writer.drain()
        assert await asyncio.to_thread(read_slave, slave, 7) == b"typed\x03\n"
        os.close(slave)  # the dyno ended
        assert await reader.read() == b""
        writer.close()

    served(setup, scenario)


def test_a_client_that_comes_first_waits_for_its_dyno(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        reader, writer = await setup.connect(server)
        await asyncio.sleep(0.2)
        slave = await setup.hand_over_pty()
        assert await reader.readline() == b"rendezvous\r\n"
        os.write(slave, b"late\n")
        assert await reader.readexactly(5) == b"late\n"
        os.close(slave)
        writer.close()

    served(setup, scenario)


@pytest.mark.parametrize(
    "line",
    [
        attach_secret("another key", DYNO_ID),
        attach_secret(KEY, DYNO_ID)[:-1] + "0",
        DYNO_ID,
        "",
    ],
    ids=["other key", "tampered", "no mac", "empty"],
)
def test_a_wrong_secret_is_disconnected_without_a_word(setup: Setup, line: str) -> None:
    async def scenario(server: RendezvousServer) -> None:
        slave = await setup.hand_over_pty()
        reader, writer = await setup.connect(server, line)
        assert await reader.read() == b""
        assert not hung_up(slave)  # the dyno is still there for the right client
        os.close(slave)
        writer.close()

    served(setup, scenario)


def test_when_the_client_leaves_the_dyno_is_hung_up(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        slave = await setup.hand_over_pty()
        reader, writer = await setup.connect(server)
        assert await reader.readline() == b"rendezvous\r\n"
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            if hung_up(slave):
                break
            await asyncio.sleep(0.05)
        assert hung_up(slave)
        os.close(slave)

    served(setup, scenario)


def test_a_dyno_nobody_attaches_to_is_hung_up_after_the_attach_timeout(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        slave = await setup.hand_over_pty()
        assert not hung_up(slave)
        await asyncio.sleep(0.6)
        assert hung_up(slave)
        os.close(slave)

    served(setup, scenario, attach_timeout=0.3)


def test_a_second_client_with_the_same_secret_is_refused(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        first_reader, first = await setup.connect(server)
        await asyncio.sleep(0.1)
        second_reader, second = await setup.connect(server)
        assert await second_reader.read() == b""
        slave = await setup.hand_over_pty()
        assert await first_reader.readline() == b"rendezvous\r\n"
        os.close(slave)
        first.close()
        second.close()

    served(setup, scenario)


def test_a_malformed_hand_over_is_refused(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        def send() -> bytes:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(setup.socket_path))
                sock.sendall(b"attach\n")  # no id, no file descriptor
                return sock.recv(100)

        assert (await asyncio.to_thread(send)).startswith(b"error")

    served(setup, scenario)


def test_hand_over_without_the_service_says_what_to_do(setup: Setup) -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(DynoError, match=r"is `dockyard\.serve rendezvous` running"):
            hand_over(setup.socket_path, DYNO_ID, master)
    finally:
        os.close(master)
        os.close(slave)


def test_the_socket_is_for_the_platform_user_only(setup: Setup) -> None:
    async def scenario(server: RendezvousServer) -> None:
        assert setup.socket_path.stat().st_mode & 0o777 == 0o600
        assert setup.socket_path.parent.stat().st_mode & 0o777 == 0o700

    served(setup, scenario)


def test_a_pinned_client_checks_the_fingerprint(setup: Setup) -> None:
    """What `dockyard run` does with the ``sha256`` of the attach URL."""

    async def scenario(server: RendezvousServer) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        import hashlib

        assert hashlib.sha256(der).hexdigest() == fingerprint(setup.cert.read_text())
        writer.close()

    served(setup, scenario)
