"""Shared by the build sandbox tests (``tests/runtime/test_sandbox.py``, ``tests/build/test_sandbox_*.py``).

The build stack image (``<stack>-build``) is built once per machine next to the run image the runtime tests
share (``runc_support.stacks_dir``, one debootstrap per variant), and reused by every later run. Each test
module gets a network of its own (an nftables table and an address range named after the process), removed
with everything it leased afterwards; runc's run directory lives under ``/var/tmp`` (``reachable_dir``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.runtime.network import DynoNetwork
from dockyard.runtime.stack import StackImages
from dockyard.settings import Settings
from tests.conftest import make_settings
from tests.runtime.runc_support import cache_root, missing_requirements, stacks_dir

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
UID_BASE = 3_600_000_000
UID_SLOTS = 8

requires_build_sandbox = pytest.mark.skipif(
    missing_requirements() is not None, reason=missing_requirements() or ""
)


def build_stacks_dir() -> Path:
    """The shared stacks directory, with the build stack image built in it on first use."""
    directory = stacks_dir()
    settings = make_settings(cache_root() / "data", DOCKYARD_RUNTIME_STACKS_DIR=str(directory))
    images = StackImages(settings)
    if images.current("build") is None:
        # As for the run image: the one build of a machine does not count against a test's timeout.
        remaining, _interval = signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            images.build("build", deb_cache=cache_root() / "debs")
        finally:
            if remaining:
                signal.setitimer(signal.ITIMER_REAL, remaining)
    return directory


def network_names(module: str) -> tuple[str, str]:
    """An nftables table and an address range for one test module of this process."""
    pid = os.getpid()
    number = sum(module.encode()) % 50
    return f"dysb{pid}x{number}", f"10.94.{(pid + number) % 200 + 20}.0/24"


def sandbox_settings(data_dir: Path, run_dir: Path, module: str, **env: str) -> Settings:
    """Settings for build containers: the shared stack images, ``run_dir`` for runc and the mounts, and the
    module's own table, range and host uids (so that "no process of the build's user is left" never counts
    the dynos of other tests, whose first app gets the first range of the default base too)."""
    table, private_range = network_names(module)
    values = {
        "DOCKYARD_RUNTIME_STACKS_DIR": str(build_stacks_dir()),
        "DOCKYARD_RUNTIME_RUN_DIR": str(run_dir),
        "DOCKYARD_NETWORK_TABLE": table,
        "DOCKYARD_NETWORK_PRIVATE_RANGE": private_range,
        "DOCKYARD_RUNTIME_UID_BASE": str(UID_BASE + sum(module.encode()) % 50 * UID_SLOTS * 65536),
        "DOCKYARD_RUNTIME_UID_SLOTS": str(UID_SLOTS),
    }
    values.update(env)
    return make_settings(data_dir, **values)


@contextlib.contextmanager
def module_network(settings: Settings) -> Iterator[None]:
    """Afterwards: every lease detached (by name too), the module's table deleted, ``ip_forward`` restored."""
    forward = IP_FORWARD.read_text()
    try:
        yield
    finally:
        network = DynoNetwork(settings)
        for lease_id, attachment in network.attachments().items():
            with contextlib.suppress(Exception):
                network.detach(lease_id)
            subprocess.run(
                ["ip", "link", "del", attachment.host_veth], capture_output=True, check=False
            )
            subprocess.run(
                ["ip", "netns", "del", attachment.netns_path.name], capture_output=True, check=False
            )
        network.teardown_host()
        IP_FORWARD.write_text(forward)


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

CLIENT = """\
import socket, sys
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            print(target, sock.recv(100).decode() or "connected")
    except OSError as exc:
        print(target, "refused", type(exc).__name__)
"""
"""Run in a build: tries each ``host:port`` argument and prints what it got."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - a port free on every address of the host
        return int(sock.getsockname()[1])


def serve(netns: str | None, address: str, port: int) -> subprocess.Popen[str]:
    """A greeting TCP server on ``address:port`` (in ``netns``, or on the host)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    process = subprocess.Popen(
        [*prefix, sys.executable, "-c", SERVER, address, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class Outside:
    """A namespace standing for the internet (198.51.100.x, TEST-NET-2) with a server on port 8000."""

    netns: str
    address: str
    host_address: str


@contextlib.contextmanager
def outside_world(number: int) -> Iterator[Outside]:
    subnet = ipaddress.IPv4Network(f"198.51.100.{4 * number + 128}/30")
    host_address, address = (str(a) for a in subnet.hosts())
    pid = os.getpid()
    name, link = f"dysb-out-{pid}-{number}", f"dysbo{pid % 100000}x{number}"

    def ip(*argv: str, check: bool = True) -> None:
        subprocess.run(["ip", *argv], capture_output=True, timeout=30, check=check)

    server = None
    try:
        ip("netns", "add", name)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name)
        ip("addr", "add", f"{host_address}/30", "dev", link)
        ip("link", "set", link, "up")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{address}/30", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "route", "add", "default", "via", host_address)
        server = serve(name, "0.0.0.0", 8000)  # noqa: S104
        yield Outside(name, address, host_address)
    finally:
        if server is not None:
            stop(server)
        ip("link", "del", link, check=False)
        ip("netns", "del", name, check=False)
