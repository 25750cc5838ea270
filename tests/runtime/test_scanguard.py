"""ScanGuard: each block of the nftables block set becomes one event, attributed to its dyno.

The blocks come from a fake block set here; ``tests/e2e/test_network_isolation.py`` makes real ones by scanning.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from dockyard._util.clock import FakeClock
from dockyard.runtime.network import Leases
from dockyard.runtime.nftables import Block
from dockyard.runtime.scanguard import ScanGuard
from dockyard.settings import Settings

A = ipaddress.IPv4Address


class FakeBlocks:
    """The block set as a dict address → expiry instant, read through a clock."""

    def __init__(self, clock: FakeClock, timeout: int = 3600) -> None:
        self.clock = clock
        self.timeout = timeout
        self.expiry: dict[ipaddress.IPv4Address, float] = {}

    def block(self, address: str) -> None:
        self.expiry[A(address)] = self.clock.monotonic() + self.timeout

    def blocks(self) -> list[Block]:
        now = self.clock.monotonic()
        return [
            Block(address, self.timeout, int(until - now))
            for address, until in self.expiry.items()
            if until > now
        ]

    def unblock(self, address: ipaddress.IPv4Address) -> None:
        self.expiry.pop(address, None)


@pytest.fixture
def blocks(clock: FakeClock) -> FakeBlocks:
    return FakeBlocks(clock)


@pytest.fixture
def guard(settings: Settings, clock: FakeClock, blocks: FakeBlocks) -> ScanGuard:
    return ScanGuard(settings, clock=clock, source=blocks)


def test_a_new_block_of_a_dyno_is_one_event_naming_the_dyno_and_app(
    guard: ScanGuard, blocks: FakeBlocks, settings: Settings, clock: FakeClock
) -> None:
    lease = Leases(settings.state_dir, ipaddress.IPv4Network(settings.network.private_range))
    dyno = lease.acquire("dyno-1", "app-1", 5000)
    assert guard.poll() == []
    blocks.block(str(dyno.address))
    clock.advance(10)
    [event] = guard.poll()
    assert (event.address, event.dyno_id, event.app_id) == (str(dyno.address), "dyno-1", "app-1")
    assert event.blocked_at == clock.now() - timedelta(seconds=10)
    assert event.until == event.blocked_at + timedelta(hours=1)
    assert event.message.startswith(f"Port scan blocked: {dyno.address} (dyno dyno-1) probed more")
    assert "more than 20 closed ports or dyno addresses within 60 s" in event.message


def test_a_block_is_reported_once_even_across_agent_restarts(
    guard: ScanGuard, blocks: FakeBlocks, settings: Settings, clock: FakeClock
) -> None:
    blocks.block("203.0.113.9")
    assert len(guard.poll()) == 1
    clock.advance(30)
    assert guard.poll() == []
    restarted = ScanGuard(settings, clock=clock, source=blocks)
    assert restarted.poll() == []


def test_an_outside_address_is_reported_without_a_dyno(
    guard: ScanGuard, blocks: FakeBlocks
) -> None:
    blocks.block("203.0.113.9")
    [event] = guard.poll()
    assert (event.dyno_id, event.app_id) == (None, None)
    assert "(an address outside Dockyard)" in event.message


def test_blocking_again_after_the_block_expired_is_a_new_event(
    guard: ScanGuard, blocks: FakeBlocks, clock: FakeClock
) -> None:
    blocks.block("203.0.113.9")
    first = guard.poll()
    clock.advance(3600 + 60)
    assert guard.poll() == []  # expired: nothing new
    blocks.block("203.0.113.9")
    [second] = guard.poll()
    assert second.blocked_at > first[0].blocked_at


def test_several_blocks_come_oldest_first(
    guard: ScanGuard, blocks: FakeBlocks, clock: FakeClock
) -> None:
    blocks.block("203.0.113.2")
    clock.advance(20)
    blocks.block("203.0.113.1")
    assert [e.address for e in guard.poll()] == ["203.0.113.2", "203.0.113.1"]


def test_unblock_lifts_a_block_and_a_later_one_is_reported(
    guard: ScanGuard, blocks: FakeBlocks, clock: FakeClock
) -> None:
    blocks.block("203.0.113.9")
    guard.poll()
    guard.unblock("203.0.113.9")
    assert blocks.blocks() == []
    assert guard.poll() == []
    clock.advance(60)
    blocks.block("203.0.113.9")
    assert len(guard.poll()) == 1


def test_a_damaged_state_file_means_blocks_are_reported_again(
    guard: ScanGuard, blocks: FakeBlocks, settings: Settings
) -> None:
    blocks.block("203.0.113.9")
    guard.poll()
    (settings.state_dir / "network-blocks.json").write_text("{")
    assert len(guard.poll()) == 1
