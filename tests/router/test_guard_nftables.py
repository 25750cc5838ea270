"""Probing addresses go into the dyno firewall's nftables block set: a real table of this test's
own (never Dockyard's), checked with ``nft``; and the router blocks on its own without one."""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator

import pytest

from dockyard.errors import CommandError
from dockyard.router.guard import NftablesBlocker
from dockyard.runtime.nftables import FirewallConfig, Nftables, render_table
from dockyard.settings import NetworkSettings

needs_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None,
    reason="nftables tables need root and the nft command",
)


@pytest.fixture
def network() -> Iterator[NetworkSettings]:
    """Settings naming a table of this test process, created empty of dynos, then removed."""
    settings = NetworkSettings(
        private_range="10.251.0.0/24", table=f"dockyard_guard{os.getpid()}", block_duration=600
    )
    nft = Nftables(FirewallConfig.from_settings(settings))
    nft.apply(render_table(nft.config, []))
    try:
        yield settings
    finally:
        nft.delete()


@needs_nft
def test_a_blocked_address_lands_in_the_block_set_with_its_own_timeout(
    network: NetworkSettings,
) -> None:
    blocker = NftablesBlocker(network)
    blocker.block("203.0.113.7", 120)
    blocks = blocker.nftables.blocks()
    assert [b.address for b in blocks] == [ipaddress.IPv4Address("203.0.113.7")]
    assert blocks[0].timeout == 120
    assert 0 < blocks[0].expires <= 120


@needs_nft
def test_an_ipv4_mapped_address_is_blocked_as_ipv4_and_plain_ipv6_only_in_the_router(
    network: NetworkSettings,
) -> None:
    blocker = NftablesBlocker(network)
    blocker.block("::ffff:203.0.113.8", 60)
    blocker.block("2001:db8::1", 60)
    assert [str(b.address) for b in blocker.nftables.blocks()] == ["203.0.113.8"]


@needs_nft
def test_loopback_never_goes_into_the_kernels_block_set(network: NetworkSettings) -> None:
    blocker = NftablesBlocker(network)
    blocker.block("127.0.0.1", 60)
    blocker.block("::1", 60)
    assert blocker.nftables.blocks() == []


@needs_nft
def test_without_the_table_blocking_fails_with_a_command_error() -> None:
    settings = NetworkSettings(table=f"dockyard_absent{os.getpid()}")
    with pytest.raises(CommandError):
        NftablesBlocker(settings).block("203.0.113.9", 60)
