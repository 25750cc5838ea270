"""DynoNetwork: address leases (plain files), the network settings, and namespaces on the real kernel (root).

The firewall's behaviour (who reaches whom) is tested in ``tests/e2e/test_network_isolation.py``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import ConflictError, DynoError, InvalidError
from dockyard.runtime.network import DynoNetwork, Leases, short_name
from dockyard.settings import NetworkSettings, Settings
from tests.conftest import make_settings

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="namespaces and nftables need root, iproute2 and nftables",
)

A = ipaddress.IPv4Address
NET = ipaddress.IPv4Network("10.88.0.0/29")  # .2 … .6 for dynos


@pytest.fixture
def leases(tmp_path: Path) -> Leases:
    return Leases(tmp_path / "state", NET)


# -- leases -------------------------------------------------------------------------------------------------


def test_leases_start_after_the_host_address_and_persist(tmp_path: Path, leases: Leases) -> None:
    first = leases.acquire("d1", "app", 5000)
    second = leases.acquire("d2", "app", None)
    assert (first.address, second.address) == (A("10.88.0.2"), A("10.88.0.3"))
    reopened = Leases(tmp_path / "state", NET)
    assert reopened.get("d1") == first
    assert reopened.get("d2") == second
    assert reopened.acquire("d1", "app", 5000) == first  # asking again gives the same lease


def test_a_freed_address_is_not_handed_out_again_at_once(leases: Leases) -> None:
    first = leases.acquire("d1", "app", 5000)
    assert leases.release("d1") == first
    assert leases.get("d1") is None
    assert leases.acquire("d2", "app", 5000).address == A("10.88.0.3")
    assert leases.release("unknown") is None


def test_addresses_to_avoid_are_skipped(leases: Leases) -> None:
    lease = leases.acquire("d1", "app", 5000, avoid=frozenset({A("10.88.0.2"), A("10.88.0.3")}))
    assert lease.address == A("10.88.0.4")


def test_a_full_range_is_a_clear_error(leases: Leases) -> None:
    for n in range(5):
        leases.acquire(f"d{n}", "app", 5000)
    with pytest.raises(DynoError, match=r"no free dyno address left in 10\.88\.0\.0/29"):
        leases.acquire("d5", "app", 5000)
    leases.release("d2")
    assert leases.acquire("d5", "app", 5000).address == A(
        "10.88.0.4"
    )  # wraps around to the free one


def test_attaching_a_dyno_again_differently_is_a_conflict(leases: Leases) -> None:
    leases.acquire("d1", "app", 5000)
    with pytest.raises(ConflictError):
        leases.acquire("d1", "app", 5001)
    with pytest.raises(ConflictError):
        leases.acquire("d1", "other-app", 5000)


def test_a_damaged_lease_file_is_reported_not_overwritten(leases: Leases) -> None:
    leases.path.parent.mkdir(parents=True)
    leases.path.write_text("{not json")
    with pytest.raises(DynoError, match="not valid JSON"):
        leases.acquire("d1", "app", 5000)
    assert leases.path.read_text() == "{not json"


def test_names_come_from_the_dyno_id_and_fit_an_interface_name() -> None:
    assert short_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", set()) == "dy-0f1e2d3c4b5a"
    hashed = short_name("w1", set())  # too short to be recognisable: hashed
    assert hashed.startswith("dy-") and len(hashed) == 15
    taken = {"dy-0f1e2d3c4b5a"}
    other = short_name("0f1e2d3c-4b5a-0000-0000-000000000000", taken)
    assert other not in taken and len(other) == 15


# -- settings -----------------------------------------------------------------------------------------------


def test_network_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        DOCKYARD_NETWORK_PRIVATE_RANGE="10.50.0.0/20",
        DOCKYARD_NETWORK_EGRESS="deny",
        DOCKYARD_NETWORK_SCAN_THRESHOLD="5",
        DOCKYARD_NETWORK_BLOCK_DURATION="600",
    )
    assert settings.network == NetworkSettings(
        private_range="10.50.0.0/20", egress="deny", scan_threshold=5, block_duration=600.0
    )
    assert make_settings(tmp_path).network.block_duration == 3600.0  # an hour by default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIVATE_RANGE", "10.88.0.1/16"),
        ("PRIVATE_RANGE", "fd00::/64"),
        ("PRIVATE_RANGE", "10.88.0.0/31"),
        ("EGRESS", "maybe"),
        ("SCAN_WINDOW", "0"),
        ("SCAN_THRESHOLD", "0"),
        ("BLOCK_DURATION", "0.5"),
        ("TABLE", "dockyard; flush ruleset"),
    ],
)
def test_bad_network_settings_are_refused_with_the_variable_named(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(InvalidError, match=f"DOCKYARD_NETWORK_{name}"):
        make_settings(tmp_path, **{f"DOCKYARD_NETWORK_{name}": value})


# -- namespaces (root) --------------------------------------------------------------------------------------


@pytest.fixture
def network_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        DOCKYARD_NETWORK_TABLE=f"dyunit{os.getpid()}",
        DOCKYARD_NETWORK_PRIVATE_RANGE=f"10.89.{os.getpid() % 200 + 20}.0/29",
        DOCKYARD_NETWORK_EGRESS="deny",  # leaves ip_forward alone
    )


@pytest.fixture
def network(network_settings: Settings) -> Iterator[DynoNetwork]:
    net = DynoNetwork(network_settings)
    try:
        net.setup_host()
        yield net
    finally:
        for dyno_id, attachment in net.attachments().items():
            try:
                net.detach(dyno_id)
            finally:
                subprocess.run(["ip", "link", "del", attachment.host_veth], capture_output=True)
                subprocess.run(
                    ["ip", "netns", "del", attachment.netns_path.name], capture_output=True
                )
        net.teardown_host()


def ip_json(*argv: str) -> str:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout


@needs_root
def test_attach_gives_a_namespace_a_veth_pair_an_address_and_routes(network: DynoNetwork) -> None:
    dyno_id = str(uuid.uuid4())
    attachment = network.attach(dyno_id, "app-1")
    netns = attachment.netns_path.name
    assert attachment.netns_path == Path("/run/netns", netns) and attachment.netns_path.exists()
    assert attachment.host_veth == netns == "dy-" + dyno_id.replace("-", "")[:12]
    assert attachment.gateway == network.router_source()
    assert f"{attachment.address}/32" in ip_json("-n", netns, "addr", "show", "dev", "eth0")
    assert f"default via {attachment.gateway}" in ip_json("-n", netns, "route")
    assert f"{network.router_source()}/32" in ip_json("addr", "show", "dev", attachment.host_veth)
    host_route = ip_json("route", "show", f"{attachment.address}/32")
    assert f"dev {attachment.host_veth}" in host_route and f"src {attachment.gateway}" in host_route


@needs_root
def test_a_restarted_agent_gets_the_same_attachment_and_repairs_a_lost_namespace(
    network: DynoNetwork, network_settings: Settings
) -> None:
    dyno_id = str(uuid.uuid4())
    attachment = network.attach(dyno_id, "app-1")
    restarted = DynoNetwork(network_settings)
    restarted.setup_host()  # idempotent: re-renders the table from the leases
    assert restarted.attachment(dyno_id) == attachment
    assert restarted.attach(dyno_id, "app-1") == attachment
    subprocess.run(["ip", "netns", "del", attachment.netns_path.name], check=True)  # e.g. a reboot
    assert restarted.attach(dyno_id, "app-1") == attachment
    assert attachment.netns_path.exists()
    assert f"{attachment.address}/32" in ip_json("-n", attachment.netns_path.name, "addr")


@needs_root
def test_detach_removes_namespace_link_and_lease(network: DynoNetwork) -> None:
    dyno_id = str(uuid.uuid4())
    attachment = network.attach(dyno_id, "app-1")
    network.detach(dyno_id)
    network.detach(dyno_id)  # twice is fine
    assert not attachment.netns_path.exists()
    assert not Path("/sys/class/net", attachment.host_veth).exists()
    assert network.attachments() == {}
    table = subprocess.run(
        ["nft", "list", "table", "inet", network.config.table], capture_output=True, text=True
    )
    assert table.returncode == 0 and attachment.host_veth not in table.stdout
    assert attachment.address not in table.stdout


@needs_root
def test_attaching_without_the_host_set_up_fails_and_leaves_nothing(
    network_settings: Settings,
) -> None:
    network = DynoNetwork(network_settings)  # no setup_host(): the table is missing
    dyno_id = str(uuid.uuid4())
    with pytest.raises(DynoError, match="must have set up the host"):
        network.attach(dyno_id, "app-1")
    assert network.attachments() == {}
    name = short_name(dyno_id, set())
    assert not Path("/run/netns", name).exists()
    assert not Path("/sys/class/net", name).exists()


@needs_root
def test_changing_the_range_under_running_dynos_is_refused_with_advice(
    network: DynoNetwork, tmp_path: Path
) -> None:
    network.attach(str(uuid.uuid4()), "app-1")
    moved = make_settings(
        tmp_path / "data",
        DOCKYARD_NETWORK_TABLE=network.config.table,
        DOCKYARD_NETWORK_PRIVATE_RANGE="10.89.252.0/29",
        DOCKYARD_NETWORK_EGRESS="deny",
    )
    with pytest.raises(DynoError, match="stop every dyno before changing the range"):
        DynoNetwork(moved).setup_host()
