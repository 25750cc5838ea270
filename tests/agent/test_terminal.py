"""Attached one-off dynos on a terminal the runtime makes itself (runc's ``start_attached``): the agent hands the
master to the rendezvous service, holds the slave through the master (``TIOCGPTPEER``), and stops the dyno when
the client goes away. Real runc dynos (root, the real stack image), a fake control plane and a fake rendezvous
socket; the process runtime's terminals are tested in ``test_manager.py``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import pytest

from dockyard.agent.manager import DynoManager
from dockyard.agent.terminal import peer_of
from dockyard.logs.store import FileLogStore
from dockyard.runtime.runc import RuncRuntime
from tests.agent.test_manager import (
    APP_ID,
    HOST,
    FakeDataPlane,
    FakeRendezvous,
    ShiftedClock,
    one_off,
    read_until,
)
from tests.runtime.runc_support import requires_runc, runc_runtime


@pytest.fixture
def env() -> Iterator[tuple[RuncRuntime, str]]:
    with runc_runtime(DOCKYARD_AGENT_REFRESH_INTERVAL="0.05") as pair:
        yield pair


def log_text(runtime: RuncRuntime) -> str:
    lines = FileLogStore(runtime.settings.logs_dir).tail(APP_ID, 1000)
    return "\n".join(f"{line.source}[{line.dyno}]: {line.message}" for line in lines)


async def until(manager: DynoManager, condition: Callable[[], bool], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the agent did not get there in time"
        await manager.tick()
        await asyncio.sleep(0.05)


@requires_runc
@pytest.mark.root
def test_a_runc_dyno_talks_through_its_own_terminal_and_ends_the_session_when_it_exits(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    rendezvous = FakeRendezvous(runtime.settings.rendezvous_socket)
    plane = FakeDataPlane()
    command = 'read -r name; echo "hello $name on $(tty) size $(stty size)"; exit 7'
    plane.desired = [one_off(slug, command, attach=True)]
    seen: dict[str, bytes] = {}

    async def scenario() -> None:
        manager = DynoManager(runtime.settings, runtime, plane, ShiftedClock(), host=HOST)
        taking = asyncio.create_task(asyncio.to_thread(rendezvous.take))
        await until(manager, taking.done)
        _, master = taking.result()
        os.write(master, b"dyno\n")
        seen["output"] = await asyncio.to_thread(read_until, master, b"size")
        await until(manager, lambda: getattr(plane.last.get("run.4821"), "state", "") == "crashed")
        seen["end"] = await asyncio.to_thread(read_until, master, b"never")  # EIO: it ended
        os.close(master)
        await manager.settle()
        await manager.close()

    try:
        asyncio.run(scenario())
    finally:
        rendezvous.close()
    assert b"dyno\r\n" in seen["output"]  # echoed: it is a terminal
    assert b"hello dyno on /dev/pts/0" in seen["output"]  # the dyno's own /dev/pts
    assert b"size 30 100" in seen["output"] + seen["end"]  # LINES and COLUMNS of the client
    assert "heroku[run.4821]: Process exited with status 7" in log_text(runtime)


@requires_runc
@pytest.mark.root
def test_a_runc_dyno_whose_client_went_away_is_stopped(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    rendezvous = FakeRendezvous(runtime.settings.rendezvous_socket)
    plane = FakeDataPlane()
    plane.desired = [one_off(slug, "exec sleep 300", attach=True)]

    async def scenario() -> None:
        manager = DynoManager(runtime.settings, runtime, plane, ShiftedClock(), host=HOST)
        taking = asyncio.create_task(asyncio.to_thread(rendezvous.take))
        await until(manager, lambda: taking.done() and runtime.list() != [])
        _, master = taking.result()
        os.close(master)  # the client went away: the service closes the terminal
        await until(manager, lambda: getattr(plane.last.get("run.4821"), "state", "") == "down")
        await manager.settle()
        await manager.close()

    try:
        asyncio.run(scenario())
    finally:
        rendezvous.close()
    assert (
        runtime.list() == []
    )  # the launcher, PID 1 of the dyno, ignores the hang-up: the agent ends it
    assert "heroku[run.4821]: The attached client went away" in log_text(runtime)


def test_the_peer_of_a_master_is_its_slave() -> None:
    master, slave = os.openpty()
    try:
        terminal = peer_of(master)
        assert terminal.slave is not None
        os.write(terminal.slave, b"ping\n")
        assert read_until(master, b"ping").startswith(b"ping")
        assert not terminal.hung_up()
        os.close(master)
        master = -1
        assert terminal.hung_up()
        terminal.close()
    finally:
        os.close(slave)
        if master >= 0:
            os.close(master)
