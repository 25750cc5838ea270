"""Dyno network isolation on the real kernel: namespaces, veth pairs, routes and Dockyard's nftables table.

Dynos are network namespaces made by ``DynoNetwork.attach`` with small TCP servers started in them through
``ip netns exec``; "outside" is another namespace behind a veth pair that is not a dyno's. The test process
itself plays the router (it is on the host). Every test uses a table and an address range of its own module,
so it never touches another Dockyard's table, and everything is removed even when a test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.runtime.network import Attachment, DynoNetwork
from dockyard.runtime.scanguard import ScanGuard
from dockyard.settings import Settings
from tests.conftest import make_settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.root,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
        reason="needs root, nftables and iproute2 (scripts/bootstrap installs them)",
    ),
]

PID = os.getpid()
TABLE = f"dytest{PID}"
RANGE = f"10.89.{PID % 200 + 20}.0/24"
THRESHOLD = 10
REFUSED = 0.5  # seconds a connection that the firewall drops is given before it counts as refused
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

SERVER = textwrap.dedent(
    """
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        conn.sendall(f"hello {peer[0]}".encode())
        conn.close()
    """
)

CLIENT = textwrap.dedent(
    """
    import socket, sys
    host, port, source, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    sock = socket.socket()
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    try:
        sock.connect((host, port))
        print(sock.recv(100).decode())
    except OSError as exc:
        print(f"refused: {exc}")
    """
)

# Opens one connection to each port at once (SYNs only) and gives up on all of them.
SCANNER = textwrap.dedent(
    """
    import socket, sys, time
    host, ports = sys.argv[1], [int(port) for port in sys.argv[2].split(",")]
    socks = []
    for port in ports:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex((host, port))
        socks.append(sock)
    time.sleep(0.3)
    """
)


def netns_exec(netns: str | None, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def connect(netns: str | None, host: str, port: int, source: str = "") -> str:
    """What a client in ``netns`` (the host when None) gets from ``host:port``: the server's greeting, or
    ``refused: ...`` when the connection fails or times out."""
    result = subprocess.run(
        netns_exec(netns, sys.executable, "-c", CLIENT, host, str(port), source, str(REFUSED)),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def scan(netns: str, host: str, ports: Iterable[int]) -> None:
    listed = ",".join(str(port) for port in ports)
    subprocess.run(
        netns_exec(netns, sys.executable, "-c", SCANNER, host, listed),
        timeout=30,
        check=True,
    )


def ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], capture_output=True, timeout=30, check=check)


@dataclass
class Dyno:
    id: str
    attachment: Attachment

    @property
    def netns(self) -> str:
        return self.attachment.netns_path.name

    @property
    def address(self) -> str:
        return self.attachment.address


@dataclass
class Outside:
    netns: str
    address: str
    host_address: str


@pytest.fixture(scope="module")
def module_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("network")


def network_settings(data: Path, table: str, private_range: str, egress: str) -> Settings:
    return make_settings(
        data,
        DOCKYARD_NETWORK_TABLE=table,
        DOCKYARD_NETWORK_PRIVATE_RANGE=private_range,
        DOCKYARD_NETWORK_EGRESS=egress,
        DOCKYARD_NETWORK_SCAN_THRESHOLD=str(THRESHOLD),
    )


@contextlib.contextmanager
def host_network(settings: Settings) -> Iterator[DynoNetwork]:
    """A set-up host that is torn down afterwards, whatever happened: every leased dyno detached (and its
    namespace and link removed by name if detaching failed), the table deleted, ``ip_forward`` restored."""
    forward = IP_FORWARD.read_text()
    network = DynoNetwork(settings)
    try:
        network.setup_host()
        yield network
    finally:
        for dyno_id, attachment in network.attachments().items():
            try:
                network.detach(dyno_id)
            finally:
                ip("link", "del", attachment.host_veth, check=False)
                ip("netns", "del", attachment.netns_path.name, check=False)
        network.teardown_host()
        IP_FORWARD.write_text(forward)


@pytest.fixture(scope="module")
def network(module_data: Path) -> Iterator[DynoNetwork]:
    with host_network(network_settings(module_data / "data", TABLE, RANGE, "allow")) as net:
        yield net


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def make_dyno(
    network: DynoNetwork, processes: list[subprocess.Popen[str]]
) -> Iterator[Callable[..., Dyno]]:
    """Attach a dyno (detached again after the test) and, unless ``serve=False``, start a server on its
    ``$PORT``."""
    made: list[str] = []

    def make(app_id: str = "app-1", *, serve: bool = True) -> Dyno:
        dyno_id = str(uuid.uuid4())
        made.append(dyno_id)
        dyno = Dyno(dyno_id, network.attach(dyno_id, app_id))
        if serve:
            start_server(processes, dyno.netns, "0.0.0.0", dyno.attachment.port or 0)  # noqa: S104
        return dyno

    yield make
    for dyno_id in made:
        network.detach(dyno_id)


def start_server(
    processes: list[subprocess.Popen[str]], netns: str | None, address: str, port: int
) -> None:
    process = subprocess.Popen(
        netns_exec(netns, sys.executable, "-c", SERVER, address, str(port)),
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"


_outside_numbers = itertools.count()


@pytest.fixture
def outside(processes: list[subprocess.Popen[str]]) -> Iterator[Outside]:
    """A namespace standing for the outside world (198.51.100.x, TEST-NET-2), its own /30 per test, with a
    server on port 8000."""
    number = next(_outside_numbers)
    subnet = ipaddress.IPv4Network(f"198.51.100.{4 * number}/30")
    host_address, address = (str(a) for a in subnet.hosts())
    name, link = f"dytest-out-{PID}-{number}", f"dyo{PID % 100000}x{number}"
    try:
        ip("netns", "add", name)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name)
        ip("addr", "add", f"{host_address}/30", "dev", link)
        ip("link", "set", link, "up")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{address}/30", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "route", "add", "default", "via", host_address)
        start_server(processes, name, "0.0.0.0", 8000)  # noqa: S104
        yield Outside(name, address, host_address)
    finally:
        for process in processes:
            stop(process)
        ip("link", "del", link, check=False)
        ip("netns", "del", name, check=False)


# -- reachability --------------------------------------------------------------------------------------------


def test_the_router_source_reaches_a_dynos_port(
    network: DynoNetwork, make_dyno: Callable[..., Dyno]
) -> None:
    web = make_dyno()
    assert connect(None, web.address, 5000) == f"hello {network.router_source()}"


def test_the_host_cannot_reach_a_dyno_from_another_source_or_on_another_port(
    make_dyno: Callable[..., Dyno], processes: list[subprocess.Popen[str]], outside: Outside
) -> None:
    web = make_dyno()
    start_server(processes, web.netns, "0.0.0.0", 6000)  # noqa: S104
    assert connect(None, web.address, 6000).startswith("refused")
    # Another address of the host (here: its end of the link to the outside).
    assert connect(None, web.address, 5000, source=outside.host_address).startswith("refused")


def test_a_dyno_cannot_reach_another_dyno_of_another_or_the_same_app(
    make_dyno: Callable[..., Dyno],
) -> None:
    target = make_dyno("app-1")
    stranger, sibling = make_dyno("app-2", serve=False), make_dyno("app-1", serve=False)
    assert connect(stranger.netns, target.address, 5000).startswith("refused")
    assert connect(sibling.netns, target.address, 5000).startswith("refused")
    assert connect(None, target.address, 5000).startswith("hello")  # still up for the router


def test_a_dyno_cannot_reach_a_port_of_the_host(
    network: DynoNetwork, make_dyno: Callable[..., Dyno], processes: list[subprocess.Popen[str]]
) -> None:
    dyno = make_dyno(serve=False)
    with socket.socket() as probe:  # a free port on the host
        probe.bind(("0.0.0.0", 0))  # noqa: S104
        port = probe.getsockname()[1]
    start_server(processes, None, "0.0.0.0", port)  # noqa: S104
    assert connect(None, network.router_source(), port).startswith("hello")
    assert connect(dyno.netns, network.router_source(), port).startswith("refused")
    assert connect(dyno.netns, "169.254.169.254", 80).startswith("refused")


def test_a_dyno_reaches_the_outside_under_the_allow_policy(
    make_dyno: Callable[..., Dyno], outside: Outside
) -> None:
    dyno = make_dyno(serve=False)
    # Masqueraded: the outside sees the host's address, never the dyno's.
    assert connect(dyno.netns, outside.address, 8000) == f"hello {outside.host_address}"
    assert connect(outside.netns, dyno.address, 5000).startswith("refused")


def test_the_deny_policy_keeps_dynos_from_the_outside(
    module_data: Path, outside: Outside, processes: list[subprocess.Popen[str]]
) -> None:
    settings = network_settings(module_data / "deny", f"{TABLE}d", "10.89.250.0/24", "deny")
    with host_network(settings) as denying:
        dyno = denying.attach(str(uuid.uuid4()), "app-1")
        start_server(processes, dyno.netns_path.name, "0.0.0.0", 5000)  # noqa: S104
        assert connect(dyno.netns_path.name, outside.address, 8000).startswith("refused")
        assert connect(None, dyno.address, 5000).startswith("hello")


def test_a_dyno_sending_from_an_address_it_was_not_given_is_dropped(
    network: DynoNetwork, make_dyno: Callable[..., Dyno], outside: Outside
) -> None:
    dyno = make_dyno(serve=False)
    forged = str(ipaddress.IPv4Address(dyno.address) + 100)
    ip("-n", dyno.netns, "addr", "add", f"{forged}/32", "dev", "eth0")
    before = network.nftables.counter("spoofed")
    assert connect(dyno.netns, outside.address, 8000, source=forged).startswith("refused")
    assert network.nftables.counter("spoofed") > before
    assert connect(dyno.netns, outside.address, 8000).startswith("hello")  # its own address works


# -- port scans ----------------------------------------------------------------------------------------------


def test_a_dyno_scanning_ports_is_blocked_and_reported(
    network: DynoNetwork, make_dyno: Callable[..., Dyno], module_data: Path
) -> None:
    guard = ScanGuard(network_settings(module_data / "data", TABLE, RANGE, "allow"))
    guard.poll()  # forget blocks of earlier tests
    bystander, scanner = make_dyno("app-1"), make_dyno("app-scan")
    scan(scanner.netns, network.router_source(), range(20000, 20000 + THRESHOLD))
    assert guard.poll() == []  # up to the threshold is not a scan
    assert connect(None, scanner.address, 5000).startswith("hello")
    scan(scanner.netns, bystander.address, range(1, 2))  # one more probe: a dyno address
    events = guard.poll()
    assert [(e.address, e.dyno_id, e.app_id) for e in events] == [
        (scanner.address, scanner.id, "app-scan")
    ]
    assert "Port scan blocked" in events[0].message
    assert 3500 < (events[0].until - events[0].blocked_at).total_seconds() <= 3600
    assert guard.poll() == []  # reported once
    assert connect(None, scanner.address, 5000).startswith("refused")  # all its traffic is dropped
    assert connect(None, bystander.address, 5000).startswith("hello")


def test_an_outside_address_scanning_closed_host_ports_is_blocked(
    network: DynoNetwork, outside: Outside, module_data: Path
) -> None:
    guard = ScanGuard(network_settings(module_data / "data", TABLE, RANGE, "allow"))
    guard.poll()
    listeners = []
    try:
        for _ in range(THRESHOLD + 5):  # open ports are not probes, however many are tried
            sock = socket.socket()
            sock.bind((outside.host_address, 0))
            sock.listen()
            listeners.append(sock)
        scan(outside.netns, outside.host_address, [s.getsockname()[1] for s in listeners])
        assert guard.poll() == []
    finally:
        for sock in listeners:
            sock.close()
    scan(outside.netns, outside.host_address, range(20000, 20000 + THRESHOLD + 1))
    events = guard.poll()
    assert [(e.address, e.dyno_id, e.app_id) for e in events] == [(outside.address, None, None)]
    guard.unblock(outside.address)
    assert [b.address for b in network.nftables.blocks()].count(
        ipaddress.IPv4Address(outside.address)
    ) == 0


# -- clean-up ------------------------------------------------------------------------------------------------


def test_detach_and_teardown_leave_no_namespace_link_table_or_lease(module_data: Path) -> None:
    table = f"{TABLE}c"
    settings = network_settings(module_data / "cleanup", table, "10.89.251.0/24", "allow")
    with host_network(settings) as net:
        attached = [net.attach(str(uuid.uuid4()), "app-1") for _ in range(2)]
        assert all(a.netns_path.exists() for a in attached)
        assert all(Path("/sys/class/net", a.host_veth).exists() for a in attached)
        for dyno_id in list(net.attachments()):
            net.detach(dyno_id)
        assert net.attachments() == {}
        assert not any(a.netns_path.exists() for a in attached)
        assert not any(Path("/sys/class/net", a.host_veth).exists() for a in attached)
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
        assert "10.89.251." not in routes
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    assert table not in tables.stdout
