"""The agent's side of the dyno network: port-scan blocks reach the platform log and the scanning dyno's app
log once each; leases of dynos the runtime does not know are detached, also at a new agent's first round.

Real dynos (the process runtime), a real ``ScanGuard`` over a fake block set and real address leases; the
kernel's side (nftables blocking a real scan) is tested in ``tests/e2e/test_network_isolation.py`` and,
through a whole platform, in ``tests/e2e/test_runc_dynos.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.agent.manager import DynoManager
from dockyard.agent.network import SWEEP_EVERY, NetworkWatch
from dockyard.errors import CommandError
from dockyard.logs.store import FileLogStore
from dockyard.runtime.network import Lease, Leases
from dockyard.runtime.nftables import Block
from dockyard.runtime.process import ProcessRuntime
from dockyard.runtime.sandbox import LEASE_PREFIX
from dockyard.runtime.scanguard import BlockEvent, ScanGuard
from dockyard.settings import AgentSettings, Settings
from dockyard.slug.store import SlugStore
from tests.agent.test_manager import APP_ID, HOST, FakeDataPlane, ShiftedClock, want
from tests.runtime.slugs import build_slug, clean_up


class FakeBlockSet:
    """The kernel's block set: addresses blocked for an hour from when the test says so."""

    def __init__(self) -> None:
        self.blocked: list[ipaddress.IPv4Address] = []

    def blocks(self) -> list[Block]:
        return [Block(address, 3600, 3599) for address in self.blocked]

    def unblock(self, address: ipaddress.IPv4Address) -> None:
        self.blocked.remove(address)


class FakeNetwork:
    """``DynoNetwork`` without namespaces: its leases are real, detaching gives the lease back."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.detached: list[str] = []

    def attachments(self) -> Mapping[str, Lease]:
        return self.leases.all()

    def detach(self, dyno_id: str) -> None:
        self.detached.append(dyno_id)
        self.leases.release(dyno_id)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        agent=AgentSettings(runtime="process", refresh_interval=0.02, stop_timeout=2),
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(settings)
    yield runtime
    clean_up(runtime)


@pytest.fixture
def leases(settings: Settings) -> Leases:
    return Leases(settings.state_dir, ipaddress.IPv4Network(settings.network.private_range))


def app_log(settings: Settings) -> list[str]:
    lines = FileLogStore(settings.logs_dir).tail(APP_ID, 1000)
    return [f"{line.source}[{line.dyno}]: {line.message}" for line in lines]


async def start_one_web_dyno(manager: DynoManager, runtime: ProcessRuntime) -> str:
    for _ in range(200):
        await manager.tick()
        if runtime.list():
            return runtime.list()[0].spec.id
        await asyncio.sleep(0.02)
    pytest.fail("the agent started no dyno")


def test_a_scanning_dyno_s_block_reaches_the_platform_log_and_its_app_log_once(
    settings: Settings,
    runtime: ProcessRuntime,
    leases: Leases,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plane = FakeDataPlane()
    plane.desired = [want(build_slug(tmp_path, SlugStore(settings.slugs_dir)), 1)]
    block_set = FakeBlockSet()
    guard = ScanGuard(settings, clock=FakeClock(), source=block_set)
    watch = NetworkWatch(guard, FakeNetwork(leases))
    manager = DynoManager(settings, runtime, plane, ShiftedClock(), host=HOST, network_watch=watch)

    async def scenario() -> None:
        dyno_id = await start_one_web_dyno(manager, runtime)
        lease = leases.acquire(dyno_id, APP_ID, None)  # what the runc runtime's attach leaves
        block_set.blocked.append(lease.address)
        with caplog.at_level(logging.WARNING, logger="dockyard.agent.network"):
            await manager.tick()
            await manager.tick()
        blocked = [r.getMessage() for r in caplog.records if "Port scan blocked" in r.getMessage()]
        assert len(blocked) == 1
        assert blocked[0].startswith(f"Port scan blocked: {lease.address} (dyno {dyno_id}) probed")
        in_app_log = [line for line in app_log(settings) if "Port scan blocked" in line]
        assert in_app_log == [f"heroku[web.1]: {blocked[0]}"]
        await manager.close()

    asyncio.run(scenario())


def test_leases_of_dynos_the_runtime_does_not_know_are_detached_at_the_first_round(
    settings: Settings, runtime: ProcessRuntime, leases: Leases, tmp_path: Path
) -> None:
    plane = FakeDataPlane()
    plane.desired = [want(build_slug(tmp_path, SlugStore(settings.slugs_dir)), 1)]
    network = FakeNetwork(leases)
    clock = ShiftedClock()

    async def scenario() -> None:
        first = DynoManager(
            settings, runtime, plane, clock, host=HOST, network_watch=NetworkWatch(None, network)
        )
        dyno_id = await start_one_web_dyno(first, runtime)
        leases.acquire(dyno_id, APP_ID, 5000)
        leases.acquire("left-by-a-killed-agent", APP_ID, 5000)
        leases.acquire(LEASE_PREFIX + "a-running-build", APP_ID, None)
        # A new agent (as after a restart) looks at once; the running dyno keeps its lease.
        second = DynoManager(
            settings, runtime, plane, clock, host=HOST, network_watch=NetworkWatch(None, network)
        )
        await second.tick()
        assert network.detached == ["left-by-a-killed-agent"]
        # A build's lease is the build sandbox's to release, not a stale dyno's.
        assert set(leases.all()) == {dyno_id, LEASE_PREFIX + "a-running-build"}
        leases.acquire("another-orphan", APP_ID, None)
        await second.tick()  # not looked for again before SWEEP_EVERY
        assert "another-orphan" in leases.all()
        clock.advance(SWEEP_EVERY)
        await second.tick()
        assert set(leases.all()) == {dyno_id, LEASE_PREFIX + "a-running-build"}
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_only_a_runtime_with_a_dyno_network_gets_a_watch(
    settings: Settings, runtime: ProcessRuntime
) -> None:
    assert NetworkWatch.for_runtime(settings, runtime) is None


class UnreadableBlockSet:
    def poll(self) -> list[BlockEvent]:
        raise CommandError("nft could not list the block set: no such table")


def test_a_block_set_that_cannot_be_read_yields_no_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = NetworkWatch(UnreadableBlockSet(), None)
    assert watch.blocks() == watch.blocks() == []
    assert [r.getMessage() for r in caplog.records] == [
        "cannot read the port-scan block set: nft could not list the block set: no such table"
    ]  # once per outage
    assert watch.sweep(0.0, list) == []
