"""The agent's side of the dyno network: port-scan blocks reported in the logs, and the address leases
of dynos that no longer exist detached.

The kernel detects and blocks port scans (``dockyard.runtime.nftables``); ``ScanGuard.poll()`` turns new
entries of the block set into ``BlockEvent``s, once each. The agent asks it every round and writes each
event's message to the platform log and, when the address is a dyno's, to that dyno's app log as
``heroku[<dyno>]``.

A lease outlives its dyno only when something went wrong between ``attach`` and the dyno's record (an agent
killed at the wrong moment, a record removed by hand): ``sweep`` detaches every lease whose dyno the runtime
does not know, at the agent's first round (so after a restart too) and every ``SWEEP_EVERY`` seconds. Leases
of builds (``build-<build id>``, held by the build sandbox in another process) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from dockyard.errors import DockyardError
from dockyard.runtime.base import Runtime
from dockyard.runtime.sandbox import is_build_lease
from dockyard.runtime.scanguard import BlockEvent, ScanGuard
from dockyard.settings import Settings

log = logging.getLogger(__name__)

SWEEP_EVERY = 60.0
"""Seconds between two looks for leases whose dyno is gone."""


class ScanEvents(Protocol):
    """``ScanGuard``: new port-scan blocks, each once."""

    def poll(self) -> list[BlockEvent]: ...


class LeasedNetwork(Protocol):
    """``DynoNetwork``: the leases it holds, by dyno id, and how to give one back."""

    def attachments(self) -> Mapping[str, object]: ...

    def detach(self, dyno_id: str) -> None: ...


class NetworkWatch:
    """Port-scan events and stale leases, for the dyno manager's rounds."""

    def __init__(self, scans: ScanEvents | None, network: LeasedNetwork | None) -> None:
        self.scans = scans
        self.network = network
        self._next_sweep = float("-inf")
        self._failing = False

    @classmethod
    def for_runtime(cls, settings: Settings, runtime: Runtime) -> NetworkWatch | None:
        """The watch for a runtime with a dyno network (``runc``); None for the others."""
        if runtime.name != "runc":
            return None
        network = getattr(runtime, "network", None)
        leased = network if callable(getattr(network, "attachments", None)) else None
        return cls(ScanGuard(settings), leased)

    def blocks(self) -> list[BlockEvent]:
        """New port-scan blocks (an ``nft`` failure is logged once and yields none)."""
        if self.scans is None:
            return []
        try:
            events = self.scans.poll()
        except DockyardError as exc:
            if not self._failing:
                log.warning("cannot read the port-scan block set: %s", exc.message)
                self._failing = True
            return []
        self._failing = False
        for event in events:
            log.warning("%s", event.message)
        return events

    def sweep(self, now: float, known: Callable[[], Iterable[str]]) -> list[str]:
        """Detach the leases whose dyno ``known()`` (the ids the runtime has records of) does not name;
        at most every ``SWEEP_EVERY`` seconds of ``now`` (monotonic). Returns the ids detached.

        The leases are read before ``known()`` is called: a runtime writes a dyno's record before it
        attaches it, so a dyno being started at the same time is never taken for a stale lease."""
        if self.network is None or now < self._next_sweep:
            return []
        self._next_sweep = now + SWEEP_EVERY
        leased = set(self.network.attachments())
        if not leased:
            return []
        # Builds lease addresses on the same network; they are the build sandbox's to release.
        stale = sorted(i for i in leased - set(known()) if not is_build_lease(i))
        for dyno_id in stale:
            try:
                self.network.detach(dyno_id)
            except DockyardError as exc:
                log.warning("could not detach the stale lease of dyno %s: %s", dyno_id, exc.message)
                continue
            log.info("detached the network lease of dyno %s, which no longer exists", dyno_id)
        return stale
