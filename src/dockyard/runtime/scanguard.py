"""Port-scan blacklisting: turns new entries of the nftables block set into events for the logs.

Detection and blocking happen in the kernel (see ``dockyard.runtime.nftables``): a source that makes more than
``network.scan_threshold`` distinct probes (refused or closed ``destination . port`` pairs) within
``network.scan_window`` seconds lands in the ``blocked`` set for ``network.block_duration`` seconds, and every
packet from it is dropped meanwhile. No Dockyard process sits in the packet path.

``ScanGuard.poll()`` reads the set and returns one ``BlockEvent`` per block it has not reported yet, naming the
dyno and app when the address is a dyno's. What it reported is kept in ``<data dir>/state/network-blocks.json``,
so a restarted agent does not report a block twice.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from dockyard._util.clock import Clock, SystemClock
from dockyard.runtime.network import Leases
from dockyard.runtime.nftables import Block, FirewallConfig, Nftables
from dockyard.settings import Settings

STATE_FILE = "network-blocks.json"
_SAME_BLOCK = 5.0  # seconds of clock jitter between two readings of one block's start


class BlockSource(Protocol):
    """Where blocks are read from and removed: ``Nftables`` on a host, a fake in tests."""

    def blocks(self) -> list[Block]: ...

    def unblock(self, address: ipaddress.IPv4Address) -> None: ...


@dataclass(frozen=True)
class BlockEvent:
    """A source was put in the block set."""

    address: str
    blocked_at: datetime
    until: datetime
    dyno_id: str | None
    """The dyno whose address it is, when it is a dyno's."""
    app_id: str | None
    reason: str

    @property
    def message(self) -> str:
        """One log line for the app's log and the platform log."""
        who = f"dyno {self.dyno_id}" if self.dyno_id else "an address outside Dockyard"
        return (
            f"Port scan blocked: {self.address} ({who}) {self.reason}; all its traffic is dropped until "
            f"{self.until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )


class ScanGuard:
    """Reports new port-scan blocks once each."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        source: BlockSource | None = None,
    ) -> None:
        config = FirewallConfig.from_settings(settings.network)
        self.clock = clock or SystemClock()
        self.source: BlockSource = source or Nftables(config)
        self.leases = Leases(settings.state_dir, config.network)
        self.path = settings.state_dir / STATE_FILE
        self._same_block = min(_SAME_BLOCK, config.block_duration / 2)
        self.reason = (
            f"probed more than {config.scan_threshold} closed ports or dyno addresses within "
            f"{config.scan_window} s"
        )

    def poll(self) -> list[BlockEvent]:
        """Blocks made since the last call (by any ``ScanGuard`` on this data directory), oldest first. Cheap
        enough for every agent loop: one ``nft -j list set``."""
        now = self.clock.now()
        reported = self._load()
        current: dict[str, dict[str, str]] = {}
        events: list[BlockEvent] = []
        dynos = {lease.address: lease for lease in self.leases.all().values()}
        for block in self.source.blocks():
            address = str(block.address)
            started = now - timedelta(seconds=block.timeout - block.expires)
            until = now + timedelta(seconds=block.expires)
            seen = reported.get(address)
            if seen is not None:
                seen_at = datetime.fromisoformat(seen["blocked_at"])
                if abs((started - seen_at).total_seconds()) <= self._same_block:
                    current[address] = seen
                    continue
            current[address] = {"blocked_at": started.isoformat(), "until": until.isoformat()}
            lease = dynos.get(block.address)
            events.append(
                BlockEvent(
                    address=address,
                    blocked_at=started,
                    until=until,
                    dyno_id=lease.dyno_id if lease else None,
                    app_id=lease.app_id if lease else None,
                    reason=self.reason,
                )
            )
        if current != reported:
            self._save(current)
        events.sort(key=lambda e: e.blocked_at)
        return events

    def unblock(self, address: str) -> None:
        """Lift a block before it expires (an operator's decision)."""
        self.source.unblock(ipaddress.IPv4Address(address))

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        blocks = data.get("blocks") if isinstance(data, dict) else None
        return blocks if isinstance(blocks, dict) else {}

    def _save(self, blocks: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp: Path = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "blocks": blocks}, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)
