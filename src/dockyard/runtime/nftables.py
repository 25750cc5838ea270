"""Dockyard's nftables table: the dyno firewall and the port-scan block set, rendered as text.

Dockyard owns one table (``inet dockyard`` by default) and never touches another. The rendering functions are
pure: they turn a ``FirewallConfig`` and the attached dynos into an ``nft -f`` script, and ``Nftables`` applies
such a script atomically (one transaction: the table is replaced as a whole or not at all).

What the table does — everything is scoped to Dockyard's dyno interfaces and range; other host traffic is only
counted for port scans, never dropped unless its source is in the block set:

- ``prerouting`` (priority raw): drops everything from a blocked source; drops non-IPv4 from dyno interfaces;
  drops a packet from a dyno interface whose source is not that interface's leased address, and a packet with
  a source in the dyno range that arrives on any other interface (but ``lo``); both count in ``spoofed``.
- ``output``: the host may open a connection to a dyno only from the router's source address (the host side
  of the range) and only to the dyno's ``$PORT``; replies of such connections pass.
- ``input``: a dyno may not open any connection to the host (API, database, agent, anything listening).
- ``forward``: a dyno may not reach another dyno, the dyno range, private, link-local (metadata),
  loopback, multicast or reserved addresses; egress to other addresses follows the platform policy
  (``allow``: accepted and masqueraded; ``deny``: dropped). Nothing from outside may open a connection to a dyno.

Port scans: every new TCP or UDP flow the firewall refuses (a dyno probing the host, another dyno or a forbidden
address; an outside address probing a dyno) and every new flow from outside to a host port where no socket
listens is a *probe*. Probes are de-duplicated per ``source . destination . port`` in the ``probes`` set (one
entry per window), and counted per source by a token bucket of ``threshold`` tokens that lives ``window``
seconds from the first probe (``scanners``); the probe that finds the bucket empty adds the source to
``blocked`` for ``block_duration``. Everything from a blocked source is dropped until the entry expires.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dockyard._util import proc
from dockyard.errors import CommandError, InvalidError
from dockyard.settings import NetworkSettings

Egress = Literal["allow", "deny"]

FORBIDDEN_DESTINATIONS: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private (RFC 1918): other tenants, host management
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services
    "172.16.0.0/12",  # private (RFC 1918)
    "192.168.0.0/16",  # private (RFC 1918)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)
"""Destinations a dyno may never reach, on top of the dyno range itself."""

SET_SIZE = 65536
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


@dataclass(frozen=True)
class FirewallConfig:
    """The settings the ruleset depends on."""

    table: str
    network: ipaddress.IPv4Network
    """The dyno range; its first host address is the host's side (the router's source)."""
    egress: Egress
    scan_window: int
    """Seconds a source's probe count lives, from its first probe."""
    scan_threshold: int
    """Distinct probes allowed per window; one more blocks the source."""
    block_duration: int
    """Seconds a blocked source stays blocked."""

    def __post_init__(self) -> None:
        if not _TABLE.match(self.table):
            raise InvalidError(f"nftables table name {self.table!r}: use letters, digits and _")
        if self.network.prefixlen > 30:
            raise InvalidError(f"dyno range {self.network} is too small: use a /30 or larger")
        if min(self.scan_window, self.scan_threshold, self.block_duration) < 1:
            raise InvalidError("scan window, threshold and block duration must be at least 1")

    @classmethod
    def from_settings(cls, settings: NetworkSettings) -> FirewallConfig:
        return cls(
            table=settings.table,
            network=ipaddress.IPv4Network(settings.private_range),
            egress="deny" if settings.egress == "deny" else "allow",
            scan_window=max(1, math.ceil(settings.scan_window)),
            scan_threshold=settings.scan_threshold,
            block_duration=max(1, math.ceil(settings.block_duration)),
        )

    @property
    def host_address(self) -> ipaddress.IPv4Address:
        """The host's address on every dyno link: the router's source, the dynos' gateway."""
        return self.network.network_address + 1


@dataclass(frozen=True)
class DynoRule:
    """One attached dyno as the firewall sees it."""

    interface: str
    """The host side of the dyno's veth pair."""
    address: ipaddress.IPv4Address
    port: int | None
    """The dyno's ``$PORT``, the only port the router may open; ``None`` for dynos without one."""


@dataclass(frozen=True)
class Block:
    """An entry of the block set."""

    address: ipaddress.IPv4Address
    timeout: int
    """Seconds the block lasts in all."""
    expires: int
    """Seconds left."""


def _check_dyno(config: FirewallConfig, dyno: DynoRule) -> None:
    if not _IFNAME.match(dyno.interface):
        raise InvalidError(f"interface name {dyno.interface!r} is not a valid Linux interface name")
    if dyno.address not in config.network or dyno.address == config.host_address:
        raise InvalidError(f"dyno address {dyno.address} is not a dyno address of {config.network}")
    if dyno.port is not None and not 0 < dyno.port < 65536:
        raise InvalidError(f"dyno port {dyno.port} is not a TCP port")


def _elements(items: Iterable[str]) -> str:
    listed = sorted(set(items))
    return f"elements = {{ {', '.join(listed)} }}" if listed else ""


def _set(name: str, kind: str, *attrs: str) -> str:
    body = "; ".join(a for a in (f"type {kind}", *attrs) if a)
    return f"  set {name} {{ {body}; }}"


def _forbidden(config: FirewallConfig) -> list[str]:
    nets = [ipaddress.IPv4Network(n) for n in FORBIDDEN_DESTINATIONS] + [config.network]
    return [str(n) for n in ipaddress.collapse_addresses(nets)]


def render_table(
    config: FirewallConfig, dynos: Sequence[DynoRule], blocks: Sequence[Block] = ()
) -> str:
    """The whole table as an ``nft -f`` script that replaces Dockyard's table (and only it) atomically."""
    for dyno in dynos:
        _check_dyno(config, dyno)
    t = config.table
    host = config.host_address
    rng = config.network
    # A bucket of `threshold` tokens that refills by one a day: in effect, the element's lifetime is the window.
    probe = (
        "meta l4proto { tcp, udp } ct state new "
        "ip saddr . ip daddr . th dport != @probes "
        "add @probes { ip saddr . ip daddr . th dport } "
        f"add @scanners {{ ip saddr limit rate over 1/day burst {config.scan_threshold} packets }} "
        "add @blocked { ip saddr }"
    )
    blocked = [f"{b.address} timeout {b.timeout}s expires {max(1, b.expires)}s" for b in blocks]
    egress = (
        ["    accept"]
        if config.egress == "allow"
        else ['    counter name "dropped" drop  # egress policy: deny']
    )
    lines = [
        f"table inet {t}",
        f"delete table inet {t}",
        f"table inet {t} {{",
        '  comment "Dockyard dyno firewall: generated, do not edit"',
        '  counter spoofed { comment "packets with a forged source address"; }',
        '  counter dropped { comment "dyno traffic refused by policy"; }',
        '  counter blocked_packets { comment "packets from blocked sources"; }',
        _set("dyno_ifaces", "ifname", _elements(f'"{d.interface}"' for d in dynos)),
        _set(
            "dyno_sources",
            "ifname . ipv4_addr",
            _elements(f'"{d.interface}" . {d.address}' for d in dynos),
        ),
        _set(
            "dyno_ports",
            "ipv4_addr . inet_service",
            _elements(f"{d.address} . {d.port}" for d in dynos if d.port is not None),
        ),
        _set("forbidden", "ipv4_addr", "flags interval", _elements(_forbidden(config))),
        _set(
            "blocked",
            "ipv4_addr",
            "flags dynamic, timeout",
            f"timeout {config.block_duration}s",
            f"size {SET_SIZE}",
            _elements(blocked),
        ),
        _set(
            "probes",
            "ipv4_addr . ipv4_addr . inet_service",
            "flags dynamic, timeout",
            f"timeout {config.scan_window}s",
            f"size {SET_SIZE}",
        ),
        _set(
            "scanners",
            "ipv4_addr",
            "flags dynamic, timeout",
            f"timeout {config.scan_window}s",
            f"size {SET_SIZE}",
        ),
        "  chain prerouting {",
        "    type filter hook prerouting priority raw; policy accept;",
        '    ip saddr @blocked counter name "blocked_packets" drop',
        "    iifname @dyno_ifaces meta nfproto != ipv4 drop",
        '    iifname @dyno_ifaces iifname . ip saddr != @dyno_sources counter name "spoofed" drop',
        f'    iifname != @dyno_ifaces iifname != "lo" ip saddr {rng} counter name "spoofed" drop',
        "  }",
        "  chain probe {",
        f"    {probe}",
        "  }",
        "  chain refuse {",
        "    jump probe",
        '    counter name "dropped" drop',
        "  }",
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        "    oifname @dyno_ifaces jump host_to_dyno",
        "  }",
        "  chain host_to_dyno {",
        "    meta nfproto != ipv4 drop",
        "    ct state established,related accept",
        f"    ip saddr {host} ip daddr . tcp dport @dyno_ports ct state new accept",
        '    counter name "dropped" drop',
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        "    iifname @dyno_ifaces jump dyno_to_host",
        '    iifname != "lo" jump outside_to_host',
        "  }",
        "  chain dyno_to_host {",
        "    ct state established,related accept",
        "    goto refuse",
        "  }",
        "  chain outside_to_host {",
        "    # Counts probes of closed host ports (no socket listens); drops nothing.",
        "    meta pkttype != host return",
        "    meta l4proto != { tcp, udp } return",
        "    ct state != new return",
        "    socket transparent 0 return",
        "    socket transparent 1 return",
        "    jump probe",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        "    iifname @dyno_ifaces jump from_dyno",
        "    oifname @dyno_ifaces jump to_dyno",
        "  }",
        "  chain from_dyno {",
        "    oifname @dyno_ifaces goto refuse",
        "    ip daddr @forbidden goto refuse",
        "    ct state established,related accept",
        *egress,
        "  }",
        "  chain to_dyno {",
        "    ct state established,related accept",
        "    goto refuse",
        "  }",
    ]
    if config.egress == "allow":
        lines += [
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            "    iifname @dyno_ifaces oifname != @dyno_ifaces masquerade",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _element_lines(config: FirewallConfig, dyno: DynoRule, verb: str) -> list[str]:
    _check_dyno(config, dyno)
    t = config.table
    lines = [
        f'{verb} element inet {t} dyno_ifaces {{ "{dyno.interface}" }}',
        f'{verb} element inet {t} dyno_sources {{ "{dyno.interface}" . {dyno.address} }}',
    ]
    if dyno.port is not None:
        lines.append(f"{verb} element inet {t} dyno_ports {{ {dyno.address} . {dyno.port} }}")
    return lines


def render_attach(config: FirewallConfig, dyno: DynoRule) -> str:
    """Add one dyno's interface, source address and port to the table's sets."""
    return "\n".join(_element_lines(config, dyno, "add")) + "\n"


def render_detach(config: FirewallConfig, dyno: DynoRule) -> str:
    """Remove one dyno from the table's sets. ``add`` first makes each deletion safe when the element is
    already gone, so the script never fails halfway."""
    lines = _element_lines(config, dyno, "add") + _element_lines(config, dyno, "delete")
    return "\n".join(lines) + "\n"


def render_delete(config: FirewallConfig) -> str:
    """Remove Dockyard's table, whether or not it exists."""
    return f"table inet {config.table}\ndelete table inet {config.table}\n"


def render_block(config: FirewallConfig, address: ipaddress.IPv4Address, seconds: int) -> str:
    """Add one address to the block set with a timeout of its own."""
    if seconds < 1:
        raise InvalidError(f"a block lasts at least one second, not {seconds}")
    return f"add element inet {config.table} blocked {{ {address} timeout {seconds}s }}\n"


def parse_blocks(document: str, default_timeout: int) -> list[Block]:
    """The entries of the block set from ``nft -j list set`` output. An entry that carries no timeout of its
    own has the set's (``default_timeout``, or the set's timeout when the document names it)."""
    try:
        data: Any = json.loads(document)
        items = data["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"nft printed output that is not its JSON listing: {exc}") from exc
    blocks: list[Block] = []
    for item in items:
        nft_set = item.get("set") if isinstance(item, dict) else None
        if not isinstance(nft_set, dict):
            continue
        timeout = int(nft_set.get("timeout", default_timeout))
        for elem in nft_set.get("elem", []):
            entry = elem.get("elem", elem) if isinstance(elem, dict) else {"val": elem}
            value = entry.get("val") if isinstance(entry, dict) else None
            if not isinstance(value, str):
                continue
            own = int(entry.get("timeout", timeout))
            expires = int(entry.get("expires", own))
            blocks.append(Block(ipaddress.IPv4Address(value), own, expires))
    return blocks


class Nftables:
    """Runs scripts and listings against Dockyard's table with the ``nft`` command."""

    def __init__(self, config: FirewallConfig) -> None:
        self.config = config

    def apply(self, script: str) -> None:
        """Apply a script as one transaction: all of it or nothing."""
        proc.run(["nft", "-f", "-"], input=script.encode(), timeout=30)

    def check(self, script: str) -> None:
        """Check a script against the kernel without applying it (``nft -c``)."""
        proc.run(["nft", "-c", "-f", "-"], input=script.encode(), timeout=30)

    def exists(self) -> bool:
        result = proc.run(["nft", "list", "table", "inet", self.config.table], check=False)
        return result.returncode == 0

    def delete(self) -> None:
        self.apply(render_delete(self.config))

    def blocks(self) -> list[Block]:
        """The block set's entries; empty when the table does not exist."""
        result = proc.run(
            ["nft", "-j", "list", "set", "inet", self.config.table, "blocked"],
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            if not self.exists():
                return []
            raise CommandError(
                f"nft could not list the block set: {result.stderr.decode(errors='replace')}"
            )
        return parse_blocks(result.text, self.config.block_duration)

    def block(self, address: ipaddress.IPv4Address, seconds: int) -> None:
        """Put an address in the block set for ``seconds`` (the router's probe detection feeds it
        this way); an address already blocked keeps its entry. Raises ``CommandError`` when the
        table does not exist (no dyno firewall on this host) or nft is missing."""
        self.apply(render_block(self.config, address, seconds))

    def unblock(self, address: ipaddress.IPv4Address) -> None:
        """Remove an address from the block set, if it is there."""
        t = self.config.table
        script = (
            f"add element inet {t} blocked {{ {address} }}\n"
            f"delete element inet {t} blocked {{ {address} }}\n"
        )
        self.apply(script)

    def counter(self, name: str) -> int:
        """Packets counted so far by one of the table's named counters."""
        result = proc.run(["nft", "-j", "list", "counter", "inet", self.config.table, name])
        try:
            for item in json.loads(result.text)["nftables"]:
                if "counter" in item:
                    return int(item["counter"]["packets"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"nft printed an unexpected counter listing: {exc}") from exc
        raise CommandError(f"nft listed no counter {name!r} in table {self.config.table!r}")
