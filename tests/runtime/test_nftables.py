"""The nftables rendering: pure text, checked by the kernel with ``nft -c`` where nft is installed."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil

import pytest

from dockyard.errors import CommandError, InvalidError
from dockyard.runtime.nftables import (
    Block,
    DynoRule,
    FirewallConfig,
    Nftables,
    parse_blocks,
    render_attach,
    render_delete,
    render_detach,
    render_table,
)
from dockyard.settings import NetworkSettings

needs_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None,
    reason="nft -c needs root and the nftables package (scripts/bootstrap installs it)",
)

A = ipaddress.IPv4Address


def config(**changes: object) -> FirewallConfig:
    values: dict[str, object] = {
        "table": "dockyard",
        "network": ipaddress.IPv4Network("10.88.0.0/16"),
        "egress": "allow",
        "scan_window": 60,
        "scan_threshold": 20,
        "block_duration": 3600,
    }
    values.update(changes)
    return FirewallConfig(**values)  # type: ignore[arg-type]


WEB = DynoRule("dy-0123456789ab", A("10.88.0.2"), 5000)
WORKER = DynoRule("dy-ba9876543210", A("10.88.0.3"), None)


def test_the_script_replaces_only_dockyards_own_table() -> None:
    script = render_table(config(table="dyx"), [WEB])
    tables = [line for line in script.splitlines() if line.startswith(("table", "delete"))]
    assert tables == ["table inet dyx", "delete table inet dyx", "table inet dyx {"]
    assert "flush ruleset" not in script


def test_every_dyno_is_in_the_interface_source_and_port_sets() -> None:
    script = render_table(config(), [WEB, WORKER])
    assert 'elements = { "dy-0123456789ab", "dy-ba9876543210" }' in script
    assert '"dy-0123456789ab" . 10.88.0.2' in script
    assert '"dy-ba9876543210" . 10.88.0.3' in script
    assert "10.88.0.2 . 5000" in script
    assert "10.88.0.3 ." not in script  # a dyno without $PORT accepts no connection at all


def test_only_the_host_address_may_open_a_connection_to_a_dyno_port() -> None:
    rule = DynoRule("dy-x", A("10.77.0.2"), 5000)
    script = render_table(config(network=ipaddress.IPv4Network("10.77.0.0/24")), [rule])
    assert "ip saddr 10.77.0.1 ip daddr . tcp dport @dyno_ports ct state new accept" in script


def test_egress_allow_accepts_and_masquerades_traffic_out() -> None:
    script = render_table(config(egress="allow"), [])
    assert "masquerade" in script
    assert "ip daddr @forbidden goto refuse" in script


def test_egress_deny_drops_traffic_out_and_needs_no_nat() -> None:
    script = render_table(config(egress="deny"), [])
    assert "masquerade" not in script
    assert "nat" not in script
    assert "drop  # egress policy: deny" in script


def test_forbidden_destinations_include_the_dyno_range_without_overlaps() -> None:
    inside = render_table(config(), [])
    assert inside.count("10.0.0.0/8") == 1  # 10.88.0.0/16 is merged into it: nft refuses overlaps
    outside = render_table(config(network=ipaddress.IPv4Network("198.18.0.0/24")), [])
    assert "198.18.0.0/24" in outside
    assert "169.254.0.0/16" in outside


def test_the_scan_threshold_is_the_bucket_and_the_window_the_lifetime_of_a_count() -> None:
    script = render_table(config(scan_threshold=7, scan_window=30, block_duration=90), [])
    assert "burst 7 packets" in script
    assert "set scanners { type ipv4_addr; flags dynamic, timeout; timeout 30s;" in script
    assert "set blocked { type ipv4_addr; flags dynamic, timeout; timeout 90s;" in script


def test_blocks_in_force_are_carried_over_with_their_remaining_time() -> None:
    script = render_table(config(), [], [Block(A("198.51.100.7"), 3600, 1200)])
    assert "198.51.100.7 timeout 3600s expires 1200s" in script


@pytest.mark.parametrize(
    "rule",
    [
        DynoRule('dy-x" accept', A("10.88.0.2"), 5000),
        DynoRule("dy-0123456789abcdef", A("10.88.0.2"), 5000),
        DynoRule("dy-x", A("10.99.0.2"), 5000),
        DynoRule("dy-x", A("10.88.0.1"), 5000),
        DynoRule("dy-x", A("10.88.0.2"), 70000),
    ],
    ids=["quote", "too-long", "outside-range", "host-address", "bad-port"],
)
def test_unsafe_or_impossible_dynos_are_refused(rule: DynoRule) -> None:
    with pytest.raises(InvalidError):
        render_table(config(), [rule])
    with pytest.raises(InvalidError):
        render_attach(config(), rule)


def test_attach_and_detach_touch_only_the_dynos_elements() -> None:
    attach = render_attach(config(), WEB).splitlines()
    assert attach == [
        'add element inet dockyard dyno_ifaces { "dy-0123456789ab" }',
        'add element inet dockyard dyno_sources { "dy-0123456789ab" . 10.88.0.2 }',
        "add element inet dockyard dyno_ports { 10.88.0.2 . 5000 }",
    ]
    detach = render_detach(config(), WEB).splitlines()
    assert detach[3:] == [line.replace("add", "delete", 1) for line in attach]


@pytest.mark.parametrize(
    "changes",
    [
        {"table": "1bad"},
        {"table": "bad table"},
        {"network": ipaddress.IPv4Network("10.88.0.0/31")},
        {"scan_threshold": 0},
        {"scan_window": 0},
    ],
)
def test_impossible_configurations_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidError):
        config(**changes)


def test_the_configuration_comes_from_the_network_settings() -> None:
    settings = NetworkSettings(
        private_range="10.60.0.0/20",
        egress="deny",
        scan_window=2.5,
        scan_threshold=5,
        block_duration=30,
        table="dytest",
    )
    cfg = FirewallConfig.from_settings(settings)
    assert cfg.host_address == A("10.60.0.1")
    assert (cfg.table, cfg.egress, cfg.scan_window, cfg.scan_threshold) == ("dytest", "deny", 3, 5)


def test_block_listings_are_parsed_with_the_set_timeout_as_default() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {
                "set": {
                    "name": "blocked",
                    "timeout": 3600,
                    "elem": [
                        {"elem": {"val": "10.88.0.9", "expires": 565}},
                        {"elem": {"val": "198.51.100.2", "timeout": 90, "expires": 89}},
                    ],
                }
            },
        ]
    }
    assert parse_blocks(json.dumps(listing), 60) == [
        Block(A("10.88.0.9"), 3600, 565),
        Block(A("198.51.100.2"), 90, 89),
    ]
    empty = {"nftables": [{"set": {"name": "blocked", "timeout": 3600}}]}
    assert parse_blocks(json.dumps(empty), 60) == []


def test_a_listing_that_is_not_nfts_json_is_an_error() -> None:
    with pytest.raises(CommandError):
        parse_blocks("Error: No such file or directory", 60)


@needs_nft
@pytest.mark.parametrize("egress", ["allow", "deny"])
def test_the_kernel_accepts_the_whole_table_with_dynos_and_blocks(egress: str) -> None:
    cfg = config(table="dockyard_check", egress=egress)
    script = render_table(cfg, [WEB, WORKER], [Block(A("203.0.113.5"), 3600, 10)])
    Nftables(cfg).check(script + render_attach(cfg, DynoRule("dy-new", A("10.88.0.4"), 5000)))
    Nftables(cfg).check(script + render_detach(cfg, WEB) + render_delete(cfg))
    assert not Nftables(cfg).exists()  # a check changes nothing


@needs_nft
def test_the_kernel_refuses_a_broken_script_with_a_command_error() -> None:
    with pytest.raises(CommandError, match="nft failed"):
        Nftables(config(table="dockyard_check")).check(
            "table inet dockyard_check { chain x { bogus } }"
        )
