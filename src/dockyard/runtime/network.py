"""Per-dyno networking: a network namespace, a veth pair and a routed /32 address for every dyno.

There is no shared bridge. The host end of each dyno's veth pair (``dy-<short id>``) carries the host address
(the first address of ``network.private_range``, e.g. ``10.88.0.1/32``) and a route to the dyno's own /32; the
dyno end (``eth0`` inside ``/run/netns/dy-<short id>``) carries the dyno's /32 and a default route through the
host address. The router reaches a dyno at ``<address>:<port>`` and its packets leave from the host address
(``router_source()``); the nftables table (``dockyard.runtime.nftables``) lets only that source reach the
dyno's ``$PORT`` and keeps dynos away from each other and from the host.

Addresses are leased per dyno in ``<data dir>/state/network-leases.json`` (written atomically, under a file
lock), so a restarted agent finds its dynos' addresses again; ``detach`` frees the lease. Addresses are
handed out round-robin and an address in the port-scan block set is skipped, so a freed address is not
reused at once and a blocked address never goes to a new dyno while its block lasts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard._util import proc
from dockyard.errors import ConflictError, DockyardError, DynoError
from dockyard.runtime.nftables import (
    DynoRule,
    FirewallConfig,
    Nftables,
    render_attach,
    render_detach,
    render_table,
)
from dockyard.settings import Settings

DEFAULT_PORT = 5000
"""``$PORT`` of a web dyno unless the runtime asks for another: every dyno has its own namespace."""
NETNS_DIR = Path("/run/netns")
SYS_NET = Path("/sys/class/net")
PROC_SYS = Path("/proc/sys")
LEASE_FILE = "network-leases.json"
LOCK_FILE = "network-leases.lock"
NAME_PREFIX = "dy-"
DYNO_INTERFACE = "eth0"
_SHORT = 12  # "dy-" + 12 characters = 15, the longest interface name Linux allows


@dataclass(frozen=True)
class Attachment:
    """A dyno's place on the network, as the runtime needs it."""

    netns_path: Path
    """``/run/netns/dy-<short id>``: the network namespace the dyno's container joins."""
    address: str
    """The dyno's IPv4 address; the router connects to ``<address>:<port>``."""
    host_veth: str
    """The host end of the dyno's veth pair (``dy-<short id>``)."""
    port: int | None
    """The one port the router may open, ``None`` for a dyno nobody connects to (one-off, worker)."""
    gateway: str
    """The host address: the dyno's default gateway and the router's source address."""


@dataclass(frozen=True)
class Lease:
    dyno_id: str
    app_id: str
    address: ipaddress.IPv4Address
    name: str
    """Name of the network namespace and of the host end of the veth pair."""
    port: int | None

    def rule(self) -> DynoRule:
        return DynoRule(self.name, self.address, self.port)


def short_name(dyno_id: str, taken: set[str]) -> str:
    """``dy-`` and the first 12 letters or digits of the dyno id (a UUID's first 12 hex digits), or a hash of
    the id when that is too short or already used by another dyno."""
    cleaned = re.sub(r"[^a-z0-9]", "", dyno_id.lower())
    name = NAME_PREFIX + cleaned[:_SHORT]
    if len(cleaned) < 8 or name in taken:
        name = NAME_PREFIX + hashlib.sha256(dyno_id.encode()).hexdigest()[:_SHORT]
    if name in taken:
        raise ConflictError(f"dyno id {dyno_id!r} maps to a network name that is already in use")
    return name


class Leases:
    """Address leases of this host's dynos, kept in a small JSON file."""

    def __init__(self, state_dir: Path, network: ipaddress.IPv4Network) -> None:
        self.path = state_dir / LEASE_FILE
        self._lock_path = state_dir / LOCK_FILE
        self.network = network
        self._first = 2  # .0 is the network, .1 the host
        self._count = network.num_addresses - 3  # nor the last (the broadcast address)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
                os.replace(tmp, self.path)

    def _read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "cursor": self._first, "leases": {}}
        except ValueError as exc:
            raise DynoError(
                f"the address lease file {self.path} is not valid JSON ({exc}) — restore it from a backup, "
                "or stop every dyno and remove it"
            ) from exc
        return data

    @staticmethod
    def _lease(dyno_id: str, raw: dict[str, Any]) -> Lease:
        port = raw.get("port")
        return Lease(
            dyno_id,
            str(raw["app_id"]),
            ipaddress.IPv4Address(raw["address"]),
            str(raw["name"]),
            int(port) if port is not None else None,
        )

    def all(self) -> dict[str, Lease]:
        """Every lease, by dyno id."""
        raw = self._read().get("leases", {})
        return {dyno_id: self._lease(dyno_id, item) for dyno_id, item in raw.items()}

    def get(self, dyno_id: str) -> Lease | None:
        return self.all().get(dyno_id)

    def acquire(
        self,
        dyno_id: str,
        app_id: str,
        port: int | None,
        *,
        avoid: frozenset[ipaddress.IPv4Address] = frozenset(),
    ) -> Lease:
        """The dyno's lease: the one it already has, or a new one with the next free address that is not in
        ``avoid``. Raises ``DynoError`` when the range is full."""
        with self._locked() as data:
            leases: dict[str, Any] = data.setdefault("leases", {})
            if dyno_id in leases:
                lease = self._lease(dyno_id, leases[dyno_id])
                if lease.port != port or lease.app_id != app_id:
                    raise ConflictError(
                        f"dyno {dyno_id} is already attached for app {lease.app_id} with port "
                        f"{lease.port}; detach it before attaching it again differently"
                    )
                return lease
            used = {ipaddress.IPv4Address(item["address"]) for item in leases.values()}
            names = {str(item["name"]) for item in leases.values()}
            cursor = int(data.get("cursor", self._first))
            for step in range(max(self._count, 0)):
                offset = self._first + (cursor - self._first + step) % self._count
                address = self.network.network_address + offset
                if address in used or address in avoid:
                    continue
                lease = Lease(dyno_id, app_id, address, short_name(dyno_id, names), port)
                leases[dyno_id] = {
                    "app_id": app_id,
                    "address": str(address),
                    "name": lease.name,
                    "port": port,
                }
                data["cursor"] = offset + 1
                return lease
        raise DynoError(
            f"no free dyno address left in {self.network} ({len(used)} leased) — stop some dynos or set "
            "network.private_range to a larger range"
        )

    def release(self, dyno_id: str) -> Lease | None:
        """Free the dyno's lease; returns it, or ``None`` when it had none."""
        with self._locked() as data:
            raw = data.setdefault("leases", {}).pop(dyno_id, None)
            return None if raw is None else self._lease(dyno_id, raw)


def _write_sysctl(key: str, value: str) -> None:
    path = PROC_SYS / key.replace(".", "/")
    try:
        path.write_text(value, encoding="ascii")
    except OSError as exc:
        raise DynoError(
            f"cannot set {key} = {value}: {exc.strerror or exc} (Dockyard must run as root)"
        ) from exc


class DynoNetwork:
    """Creates and removes dyno network namespaces and keeps Dockyard's nftables table in step."""

    def __init__(self, settings: Settings) -> None:
        self.config = FirewallConfig.from_settings(settings.network)
        self.nftables = Nftables(self.config)
        self.leases = Leases(settings.state_dir, self.config.network)

    # -- host -----------------------------------------------------------------------------------------------

    def setup_host(self) -> None:
        """Install (or refresh) Dockyard's nftables table with every leased dyno and the blocks still in force,
        in one transaction; enable IPv4 forwarding when the egress policy allows traffic out. Idempotent: run
        it at every agent start."""
        if self.config.egress == "allow":
            _write_sysctl("net.ipv4.ip_forward", "1")
        leases = self.leases.all().values()
        strays = [lease for lease in leases if lease.address not in self.config.network]
        if strays:
            raise DynoError(
                f"dyno {strays[0].dyno_id} holds the address {strays[0].address}, outside "
                f"network.private_range {self.config.network} — stop every dyno before changing the range"
            )
        blocks = self.nftables.blocks()
        self.nftables.apply(render_table(self.config, [lease.rule() for lease in leases], blocks))

    def teardown_host(self) -> None:
        """Remove Dockyard's nftables table (dynos lose their firewall: stop them first). Leaves
        ``net.ipv4.ip_forward`` as it is, since other software may rely on it."""
        self.nftables.delete()

    def router_source(self) -> str:
        """The address the router's connections to dynos come from (the host end of every dyno link)."""
        return str(self.config.host_address)

    # -- dynos ----------------------------------------------------------------------------------------------

    def attachment(self, dyno_id: str) -> Attachment | None:
        lease = self.leases.get(dyno_id)
        return None if lease is None else self._attachment(lease)

    def attachments(self) -> dict[str, Attachment]:
        """Every dyno with a lease, by dyno id (for a restarted agent to adopt, or to detach orphans)."""
        return {dyno_id: self._attachment(lease) for dyno_id, lease in self.leases.all().items()}

    def attach(self, dyno_id: str, app_id: str, *, port: int | None = DEFAULT_PORT) -> Attachment:
        """Give a dyno its namespace, veth pair, address and firewall entries. Calling it again for an
        attached dyno returns the same attachment (and repairs a namespace or link that went missing, e.g.
        after a reboot). Raises ``DynoError`` when the dyno cannot be attached; nothing is left behind."""
        avoid = frozenset(b.address for b in self.nftables.blocks())
        lease = self.leases.acquire(dyno_id, app_id, port, avoid=avoid)
        if self._complete(lease):
            return self._attachment(lease)
        try:
            self._remove_links(lease)
            # Firewall entries first: the interface is never up without them.
            self.nftables.apply(render_attach(self.config, lease.rule()))
            self._create_links(lease)
        except DockyardError as exc:
            self._undo(lease)
            raise DynoError(
                f"cannot attach dyno {dyno_id} to the network: {exc.message} — Dockyard needs root, "
                "iproute2 and nftables, and `dockyard up` must have set up the host"
            ) from exc
        return self._attachment(lease)

    def detach(self, dyno_id: str) -> None:
        """Remove the dyno's namespace, veth pair and firewall entries, and free its address. Unknown ids
        are ignored. Stop the dyno's processes first: a namespace in use lives on until they exit."""
        lease = self.leases.get(dyno_id)
        if lease is None:
            return
        self._remove_links(lease)
        if self.nftables.exists():
            self.nftables.apply(render_detach(self.config, lease.rule()))
        self.leases.release(dyno_id)

    # -- internals ------------------------------------------------------------------------------------------

    def _attachment(self, lease: Lease) -> Attachment:
        return Attachment(
            netns_path=NETNS_DIR / lease.name,
            address=str(lease.address),
            host_veth=lease.name,
            port=lease.port,
            gateway=str(self.config.host_address),
        )

    @staticmethod
    def _complete(lease: Lease) -> bool:
        return (NETNS_DIR / lease.name).exists() and (SYS_NET / lease.name).exists()

    def _create_links(self, lease: Lease) -> None:
        name, host, address = lease.name, self.config.host_address, lease.address
        self._ip(
            [],
            [
                f"netns add {name}",
                f"link add {name} type veth peer name {DYNO_INTERFACE} netns {name}",
            ],
        )
        # No IPv6 on the host end; the firewall drops any IPv6 from or to a dyno anyway.
        with contextlib.suppress(FileNotFoundError):
            (PROC_SYS / "net/ipv6/conf" / name / "disable_ipv6").write_text("1", encoding="ascii")
        self._ip(
            [],
            [
                f"addr add {host}/32 dev {name}",
                f"link set {name} up",
                f"route add {address}/32 dev {name} src {host}",
            ],
        )
        self._ip(
            ["-n", name],
            [
                "link set lo up",
                f"addr add {address}/32 dev {DYNO_INTERFACE}",
                f"link set {DYNO_INTERFACE} up",
                f"route add {host}/32 dev {DYNO_INTERFACE} scope link",
                f"route add default via {host} dev {DYNO_INTERFACE} src {address}",
            ],
        )

    @staticmethod
    def _ip(options: list[str], commands: list[str]) -> None:
        proc.run(["ip", *options, "-batch", "-"], input="\n".join(commands).encode(), timeout=30)

    @staticmethod
    def _remove_links(lease: Lease) -> None:
        if (SYS_NET / lease.name).exists():
            proc.run(["ip", "link", "del", lease.name], check=False, timeout=30)
        if (NETNS_DIR / lease.name).exists():
            proc.run(["ip", "netns", "del", lease.name], timeout=30)

    def _undo(self, lease: Lease) -> None:
        with contextlib.suppress(DockyardError):
            self._remove_links(lease)
        with contextlib.suppress(DockyardError):
            if self.nftables.exists():
                self.nftables.apply(render_detach(self.config, lease.rule()))
        self.leases.release(lease.dyno_id)
