"""Several router processes on the same ports (``router.workers``).

The parent binds every listener once per worker, each socket with ``SO_REUSEPORT`` (so the kernel
spreads new connections over the workers' accept queues), then forks the workers; worker ``i``
keeps set ``i`` of sockets and closes the others. Each worker is a whole router: its own event
loop, route table poll, upstream pool and log buffer. The parent keeps its copies of the sockets,
so connections that reach a worker that died wait in its queue until the parent has forked its
replacement (one second later) instead of being refused. SIGTERM or SIGINT to the parent is passed
to every worker, which finishes its requests in flight (up to its shutdown grace) and exits; a
worker still running ``STOP_TIMEOUT`` seconds later is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from dockyard.settings import Settings

if TYPE_CHECKING:
    from dockyard.router.server import Bound, Listener

logger = logging.getLogger("dockyard.router")

RESTART_DELAY = 1.0
STOP_TIMEOUT = 15.0

Worker = Callable[[Settings, "Sequence[Bound]"], None]
Handlers = dict[signal.Signals, "signal._HANDLER"]


def bind_sets(listeners: Sequence[Listener], count: int) -> list[list[Bound]]:
    """``count`` sets of listening sockets, one socket per listener in each, all on the same
    ports (a port of 0 is chosen by the first bind, then reused)."""
    from dockyard.router.server import Listener, bind

    sets: list[list[Bound]] = [[] for _ in range(count)]
    try:
        for listener in listeners:
            first = bind(listener, reuse_port=True)
            sets[0].append((listener, first))
            port = first.getsockname()[1]
            same = Listener(listener.host, port, listener.scheme, listener.ssl)
            for i in range(1, count):
                sets[i].append((listener, bind(same, reuse_port=True)))
    except BaseException:
        for bound in sets:
            for _, sock in bound:
                sock.close()
        raise
    return sets


def run_workers(
    settings: Settings, listeners: Sequence[Listener], count: int, worker: Worker
) -> None:
    """Fork ``count`` workers running ``worker(settings, sockets)``; supervise them until SIGTERM
    or SIGINT, then stop them."""
    sets = bind_sets(listeners, count)
    ports = ", ".join(str(sock.getsockname()[1]) for _, sock in sets[0])
    logger.info("Dockyard router: %d workers sharing port(s) %s", count, ports)
    stopping = False
    pids: dict[int, int] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in pids:  # waitpid goes on after a handler: the workers' exits end it
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            pids[_fork(settings, sets, index, worker, previous)] = index
        while not stopping:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            index = pids.pop(pid, -1)
            if index < 0 or stopping:
                continue
            logger.warning(
                "router worker %d (pid %d) exited with status %s; starting it again",
                index,
                pid,
                os.waitstatus_to_exitcode(status),
            )
            time.sleep(RESTART_DELAY)
            if not stopping:
                pids[_fork(settings, sets, index, worker, previous)] = index
    finally:
        _stop(pids)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for bound in sets:
            for _, sock in bound:
                sock.close()


def _fork(
    settings: Settings,
    sets: list[list[Bound]],
    index: int,
    worker: Worker,
    handlers: Handlers,
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the worker: its own sockets only, the default signal handlers back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for i, bound in enumerate(sets):
            if i != index:
                for _, sock in bound:
                    sock.close()
        worker(settings, sets[index])
    except BaseException:
        logger.exception("router worker %d failed", index)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _stop(pids: dict[int, int]) -> None:
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            pids.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in pids:
        logger.warning("router worker (pid %d) did not stop in time: killing it", pid)
        _signal(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            continue


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
