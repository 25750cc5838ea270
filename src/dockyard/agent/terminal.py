"""Terminals of attached one-off dynos (``dockyard run``, ``heroku run``).

The agent gives an attached one-off dyno a pseudo-terminal and hands the terminal's master side to
the rendezvous service, which joins it to the client; the agent is then out of the byte path.

A runtime that can start a dyno on a terminal itself offers ``start_attached(spec, *, tty, size)
-> (RunningDyno, master_fd)`` (runc: ``process.terminal`` and ``--console-socket``; the terminal
lives in the dyno's own ``/dev/pts``); the caller owns the returned fd, and the agent opens the
slave through the master (``TIOCGPTPEER``). For runtimes without it (the ``process`` runtime) the
agent opens the pty here and wraps the dyno's command so that its shell, the leader of the dyno's
session, opens the pty's slave by path as stdin, stdout and stderr (and so as its controlling
terminal: Ctrl-C reaches the dyno's foreground processes). Either way the agent keeps one slave fd
open until the dyno has ended, so the master never reads ``EIO`` before the dyno has even opened its
side, and closes it then, so the rendezvous service sees the end at once. A hang-up on that slave fd
means the client went away.

Hand-over protocol (Unix socket ``<data dir>/run/rendezvous.sock``): send ``attach <dyno id>\\n``
with the master fd as ``SCM_RIGHTS``; the answer is ``ok\\n`` or ``error <reason>\\n``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shlex
import socket
import termios
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dockyard.errors import DockyardError, DynoError
from dockyard.runtime.base import DynoSpec, RunningDyno, Runtime

HANDOVER_TIMEOUT = 5.0
TIOCGPTPEER = 0x5441
"""ioctl: open the slave of a pty master (Linux 4.13+), also one whose slave is in another mount
namespace's ``/dev/pts``."""


@dataclass
class Terminal:
    """The agent's end of an attached dyno's pty: the slave, held until the dyno has ended."""

    slave: int | None
    path: str

    def close(self) -> None:
        if self.slave is not None:
            os.close(self.slave)
            self.slave = None

    def hung_up(self) -> bool:
        """Whether the master side is closed: the client went away or never came."""
        if self.slave is None:
            return True
        poller = select.poll()
        poller.register(self.slave, select.POLLHUP)
        return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))


def window_size(env: Mapping[str, str]) -> tuple[int, int] | None:
    """``(lines, columns)`` from the ``LINES`` and ``COLUMNS`` the client sent, if both are sane."""
    try:
        lines, columns = int(env.get("LINES", "")), int(env.get("COLUMNS", ""))
    except ValueError:
        return None
    if 0 < lines <= 10000 and 0 < columns <= 10000:
        return lines, columns
    return None


def open_terminal(*, tty: bool, size: tuple[int, int] | None) -> tuple[int, Terminal]:
    """A new pty: its master fd (for the rendezvous service) and the agent's end. Without ``tty``
    (the client's ``--no-tty``) it neither echoes input nor turns ``\\n`` into ``\\r\\n``, so
    output passes byte for byte; Ctrl-D still ends the input."""
    master, slave = os.openpty()
    try:
        if size is not None:
            termios.tcsetwinsize(slave, size)
        if not tty:
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.OPOST
            attrs[3] &= ~(
                termios.ECHO | termios.ECHOE | termios.ECHOK | termios.ECHONL | termios.ECHOCTL
            )
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        return master, Terminal(slave, os.ttyname(slave))
    except OSError:
        os.close(master)
        os.close(slave)
        raise


def peer_of(master: int) -> Terminal:
    """The agent's end of a terminal a runtime made (its slave, opened through the master)."""
    try:
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise DynoError(f"cannot open the dyno's terminal: {exc.strerror or exc}") from exc
    return Terminal(slave, "")


def attach_command(command: str, path: str) -> str:
    """``command`` run with the terminal at ``path`` as stdin, stdout, stderr and controlling
    terminal. The runtime's launcher evaluates it after ``.profile.d``, in the dyno's session leader."""
    return f"exec 0<>{shlex.quote(path)} 1>&0 2>&0 || exit 126\n{command}"


def hand_over(socket_path: Path, dyno_id: str, fd: int) -> None:
    """Give the terminal ``fd`` of dyno ``dyno_id`` to the rendezvous service (the caller still
    closes its own copy). Raises ``DynoError`` when the service does not take it."""
    try:
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(HANDOVER_TIMEOUT)
            sock.connect(str(socket_path))
            socket.send_fds(sock, [f"attach {dyno_id}\n".encode()], [fd])
            answer = sock.recv(1024)
    except OSError as exc:
        raise DynoError(
            f"cannot reach the rendezvous service at {socket_path}: {exc.strerror or exc} — "
            "is `dockyard.serve rendezvous` running?"
        ) from exc
    if not answer.startswith(b"ok"):
        reason = answer.decode("utf-8", "replace").strip() or "no answer"
        raise DynoError(f"the rendezvous service refused the terminal: {reason}")


def start_on_terminal(
    runtime: Runtime,
    spec: DynoSpec,
    *,
    tty: bool,
    size: tuple[int, int] | None,
    socket_path: Path,
) -> tuple[RunningDyno, Terminal]:
    """Start an attached one-off dyno on a terminal whose master goes to the rendezvous service.
    Returns the agent's end of the terminal, to keep until the dyno has ended."""
    start_attached = getattr(runtime, "start_attached", None)
    if callable(start_attached):  # the runtime sets the terminal up itself (runc)
        dyno, master = start_attached(spec, tty=tty, size=size)
        try:
            terminal = peer_of(master)
            try:
                hand_over(socket_path, spec.id, master)
            except DockyardError:
                terminal.close()
                raise
        except DockyardError:
            runtime.stop(spec.id, timeout=0)
            raise
        finally:
            os.close(master)
        return dyno, terminal
    if runtime.sandboxed:  # a sandboxed dyno cannot open a terminal of the host by its path
        raise DynoError(
            f"the {runtime.name} runtime cannot give one-off dynos a terminal yet (it has no "
            "start_attached); run the command with run:detached instead"
        )
    master, terminal = open_terminal(tty=tty, size=size)
    try:
        try:
            hand_over(socket_path, spec.id, master)
        finally:
            os.close(master)
        wrapped = replace(spec, command=attach_command(spec.command, terminal.path))
        return runtime.start(wrapped), terminal
    except BaseException:
        terminal.close()
        raise
