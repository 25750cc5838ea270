"""``RendezvousServer``: joins a client to its attached one-off dyno's terminal.

Two sides meet here, by the dyno's id:

- the **client** (``heroku run``, ``dockyard run``) connects with TLS to ``rendezvous.port`` and
  sends one line, the path of its ``attach_url`` without the leading ``/``: the secret, and maybe a
  ``?sha256=…`` query that is ignored. The secret names the dyno and carries a MAC under the
  rendezvous key (``domain.dataplane.attach_secret``), so nothing is stored to check it. A wrong
  secret closes the connection. Once the dyno's terminal is there the service sends
  ``rendezvous\\r\\n`` (the Heroku CLI drops the first chunk it receives) and then relays raw bytes
  both ways;
- the **agent** connects to the Unix socket ``<data dir>/run/rendezvous.sock`` (mode 0600, same
  user only) and sends ``attach <dyno id>\\n`` with the dyno's terminal (a pty master) as an
  ``SCM_RIGHTS`` file descriptor; the answer is ``ok\\n``. From then on this service holds the
  terminal: the agent is not in the byte path, and restarting it does not cut the session.

Either side waits up to ``rendezvous.attach_timeout`` for the other. The session ends when the dyno
ends (reading its terminal fails with ``EIO`` once no process holds the other end): the client's
connection is closed after the last output. When the client goes away first, the terminal is closed,
which hangs the dyno up (``SIGHUP``), as closing a terminal window does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from dockyard._util.secretfile import ensure_secret_file
from dockyard.domain.dataplane import dyno_of_attach_secret
from dockyard.rendezvous.tls import ensure_certificate, server_context
from dockyard.settings import Settings

log = logging.getLogger(__name__)

GREETING = b"rendezvous\r\n"
SECRET_LIMIT = 1024
SECRET_TIMEOUT = 30.0
CHUNK = 65536


class Terminal:
    """Asynchronous reads and writes on a pty master (or any non-blocking byte fd)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._loop = asyncio.get_running_loop()
        self.closed = False

    async def read(self) -> bytes:
        """Some bytes, or ``b""`` once the dyno has closed its end (``EIO`` on a pty master)."""
        while True:
            try:
                return os.read(self.fd, CHUNK)
            except BlockingIOError:
                await _ready(self._loop.add_reader, self._loop.remove_reader, self.fd)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return b""
                raise

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await _ready(self._loop.add_writer, self._loop.remove_writer, self.fd)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class RendezvousServer:
    def __init__(
        self,
        key: str,
        context: ssl.SSLContext,
        *,
        host: str,
        port: int,
        socket_path: Path,
        attach_timeout: float,
    ) -> None:
        self.key = key
        self.context = context
        self.host = host
        self.port = port
        self.socket_path = socket_path
        self.attach_timeout = attach_timeout
        self._tls: asyncio.Server | None = None
        self._agent_socket: socket.socket | None = None
        self._terminals: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._clients: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tls = await asyncio.start_server(
            self._on_client, self.host, self.port, ssl=self.context, ssl_handshake_timeout=15
        )
        self.port = int(self._tls.sockets[0].getsockname()[1])
        self._agent_socket = _listen_unix(self.socket_path)
        asyncio.get_running_loop().add_reader(self._agent_socket.fileno(), self._accept_agent)
        log.info(
            "rendezvous listening on %s:%d (TLS); agents hand terminals over on %s",
            self.host,
            self.port,
            self.socket_path,
        )

    async def close(self) -> None:
        if self._agent_socket is not None:
            asyncio.get_running_loop().remove_reader(self._agent_socket.fileno())
            self._agent_socket.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            self._agent_socket = None
        if self._tls is not None:
            self._tls.close()
            await self._tls.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for fd, timer in self._terminals.values():
            timer.cancel()
            os.close(fd)
        self._terminals.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the agent's side ------------------------------------------------------------------------

    def _accept_agent(self) -> None:
        if self._agent_socket is None:
            return
        try:
            conn, _ = self._agent_socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        self._spawn(self._on_agent(conn))

    async def _on_agent(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            if not _same_user(conn):
                log.warning("refused a terminal hand-over from another user")
                return
            message, fds = await asyncio.wait_for(_recv_fds(loop, conn), SECRET_TIMEOUT)
            reply = self._register(message, fds)
            await loop.sock_sendall(conn, reply)
        except (OSError, TimeoutError) as exc:
            log.warning("a terminal hand-over failed: %s", exc)
        finally:
            conn.close()

    def _register(self, message: bytes, fds: list[int]) -> bytes:
        verb, _, dyno_id = message.decode("ascii", "replace").strip().partition(" ")
        if verb != "attach" or not dyno_id or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return b"error expected: attach <dyno id> with one file descriptor\n"
        fd = fds[0]
        waiting = self._clients.pop(dyno_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(fd)
            return b"ok\n"
        previous = self._terminals.pop(dyno_id, None)
        if previous is not None:
            previous[1].cancel()
            os.close(previous[0])
        timer = asyncio.get_running_loop().call_later(
            self.attach_timeout, self._expire_terminal, dyno_id
        )
        self._terminals[dyno_id] = (fd, timer)
        return b"ok\n"

    def _expire_terminal(self, dyno_id: str) -> None:
        entry = self._terminals.pop(dyno_id, None)
        if entry is not None:
            log.info("no client attached to dyno %s in time; hanging it up", dyno_id)
            os.close(entry[0])

    # -- the client's side -----------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fd: int | None = None
        try:
            dyno_id = await self._read_secret(reader)
            if dyno_id is None:
                return
            fd = await self._terminal_for(dyno_id)
            if fd is None:
                return
            writer.write(GREETING)
            await writer.drain()
            terminal, fd = Terminal(fd), None
            await _relay(reader, writer, terminal)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("rendezvous session ended: %s", exc)
        finally:
            if fd is not None:
                os.close(fd)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _read_secret(self, reader: asyncio.StreamReader) -> str | None:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), SECRET_TIMEOUT)
        if len(line) > SECRET_LIMIT:
            return None
        secret = line.decode("ascii", "replace").strip().lstrip("/").partition("?")[0]
        dyno_id = dyno_of_attach_secret(self.key, secret)
        if dyno_id is None:
            log.warning("refused a rendezvous client with a wrong secret")
        return dyno_id

    async def _terminal_for(self, dyno_id: str) -> int | None:
        entry = self._terminals.pop(dyno_id, None)
        if entry is not None:
            entry[1].cancel()
            return entry[0]
        if dyno_id in self._clients:
            log.warning("refused a second client for dyno %s", dyno_id)
            return None
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._clients[dyno_id] = future
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.attach_timeout)
        except TimeoutError:
            _close_arrived(future)
            log.info("dyno %s did not come up for its client in time", dyno_id)
            return None
        except asyncio.CancelledError:
            _close_arrived(future)
            raise
        finally:
            if self._clients.get(dyno_id) is future:
                del self._clients[dyno_id]


def _close_arrived(future: asyncio.Future[int]) -> None:
    """A terminal that arrived just as its client gave up is closed (the dyno is hung up)."""
    if future.done() and not future.cancelled():
        os.close(future.result())
    else:
        future.cancel()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, terminal: Terminal
) -> None:
    async def dyno_to_client() -> None:
        while data := await terminal.read():
            writer.write(data)
            await writer.drain()

    async def client_to_dyno() -> None:
        while data := await reader.read(CHUNK):
            await terminal.write(data)

    output = asyncio.create_task(dyno_to_client())
    typing = asyncio.create_task(client_to_dyno())
    try:
        await asyncio.wait({output, typing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (output, typing):
            task.cancel()
        await asyncio.gather(output, typing, return_exceptions=True)
        terminal.close()  # the client left first: this hangs the dyno up


def _listen_unix(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)


async def _recv_fds(
    loop: asyncio.AbstractEventLoop, conn: socket.socket
) -> tuple[bytes, list[int]]:
    """One message and the file descriptors sent with it."""
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(conn, 1024, 4)
            return message, fds
        except BlockingIOError:
            await _ready(loop.add_reader, loop.remove_reader, conn.fileno())


async def _ready(add: Callable[..., object], remove: Callable[[int], bool], fd: int) -> None:
    """Wait until ``fd`` is readable (``add_reader``) or writable (``add_writer``)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


def main(settings: Settings) -> None:
    """Run the rendezvous service in the foreground until SIGINT or SIGTERM. Creates the attach key
    and the self-signed certificate under ``<data dir>/secrets`` on first start."""
    key = ensure_secret_file(settings.rendezvous_key_file)
    ensure_certificate(
        settings.rendezvous_cert_file,
        settings.rendezvous_tls_key_file,
        settings.rendezvous_public_host,
    )
    context = server_context(settings.rendezvous_cert_file, settings.rendezvous_tls_key_file)
    server = RendezvousServer(
        key,
        context,
        host=settings.rendezvous.host,
        port=settings.rendezvous.port,
        socket_path=settings.rendezvous_socket,
        attach_timeout=settings.rendezvous.attach_timeout,
    )
    asyncio.run(_serve(server))


async def _serve(server: RendezvousServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.close()
        log.info("rendezvous stopped; attached sessions were closed")
