"""Terminals of attached dynos: runc sends the pty master of a container it creates over a Unix socket
(``--console-socket``); the caller sets it up as ``dockyard run`` expects and owns it."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_POLL = 0.02


@dataclass(frozen=True)
class Console:
    """An attached dyno's terminal, as asked for."""

    tty: bool
    size: tuple[int, int] | None
    """``(lines, columns)``."""


def listen(path: Path) -> socket.socket:
    """The Unix socket runc sends the terminal's master to (root only: it is a dyno's terminal)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(1)
    except OSError:
        listener.close()
        raise
    return listener


def close_listener(listener: socket.socket) -> None:
    path = listener.getsockname()
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


def receive_console(
    listener: socket.socket, runc_ended: Callable[[], int | None], timeout: float
) -> int | None:
    """The pty master runc's init sends while it creates the container; None when runc ended first
    (it failed: its log says why) or sent nothing in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([listener], [], [], _POLL)
        if ready:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                _message, fds, _flags, _address = socket.recv_fds(conn, 4096, 1)
            for extra in fds[1:]:
                os.close(extra)
            return fds[0] if fds else None
        if runc_ended() is not None:
            return None
    return None


def set_terminal(master: int, *, tty: bool, size: tuple[int, int] | None) -> None:
    """A terminal as ``dockyard run`` expects it: with ``tty`` echo and ``\\n`` → ``\\r\\n``; without,
    neither (bytes pass as they are); and the client's window size."""
    if size is not None:
        termios.tcsetwinsize(master, size)
    attrs = termios.tcgetattr(master)
    echo = termios.ECHO | termios.ECHOE | termios.ECHOK | termios.ECHOCTL
    if tty:
        attrs[1] |= termios.OPOST | termios.ONLCR
        attrs[3] |= echo
    else:
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(echo | termios.ECHONL)
    termios.tcsetattr(master, termios.TCSANOW, attrs)
