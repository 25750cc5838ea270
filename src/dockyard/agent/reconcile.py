"""Planning: from the dynos the control plane wants and the dynos that run, what to start and stop.

Pure functions: time comes in as an argument and the bookkeeping between two rounds (crash counts,
when a slot may restart) is a value handed in and handed back, so every rule is testable without a
clock.

The rules, per slot (an app's ``web.1``):

- one dyno per desired slot; a dyno whose slot is no longer desired is stopped;
- a dyno whose release, slug, command, config, size or generation differs from the desired one is
  replaced: the new dyno starts first and the old one is stopped once the new one is up, or once the
  boot timeout has passed since the change, so web traffic never has a gap;
- a web dyno that does not answer on ``$PORT`` within the boot timeout is stopped (Heroku's R10) and
  counts as a crash;
- an exited dyno is restarted: the first crash at once, then after the next delay of the back-off
  schedule. The count starts over when the crashed dyno had run cleanly for a while, and when the
  release (or anything else about the slot) changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from dockyard.domain.dataplane import DesiredDyno
from dockyard.runtime.base import DynoSpec, RunningDyno

SlotKey = tuple[str, str]
"""``(app_id, dyno name)``."""
Fingerprint = tuple[int, str, str, tuple[tuple[str, str], ...], str, str]
StopReason = Literal["unwanted", "replaced", "duplicate", "exited", "boot_timeout"]


@dataclass(frozen=True)
class RestartPolicy:
    backoff: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
    """Seconds before restarting after the 1st, 2nd, … consecutive crash; the last value repeats."""
    clean_run: float = 60.0
    """A dyno that ran this long before it crashed starts the count over."""
    boot_timeout: float = 60.0
    """Seconds a web dyno has to answer on ``$PORT`` (R10); the longest a replaced one waits."""

    def delay(self, crashes: int) -> float:
        if crashes <= 0 or not self.backoff:
            return 0.0
        return self.backoff[min(crashes, len(self.backoff)) - 1]


@dataclass(frozen=True)
class Observed:
    """A dyno as the agent sees it."""

    dyno: RunningDyno
    up: bool
    """A web dyno answers on its port; a dyno of another type simply runs."""


@dataclass(frozen=True)
class SlotState:
    """What the planner remembers about one slot between two rounds."""

    fingerprint: Fingerprint
    since: datetime
    """When the slot was first wanted as it is now (start of a replacement)."""
    crashes: int = 0
    """Consecutive crashes, for the back-off."""
    restart_at: datetime | None = None
    """No new dyno for this slot before this time."""
    counted: frozenset[str] = frozenset()
    """Ids of crashed dynos already counted."""


@dataclass(frozen=True)
class Stop:
    dyno_id: str
    reason: StopReason


@dataclass(frozen=True)
class Plan:
    start: tuple[DesiredDyno, ...] = ()
    stop: tuple[Stop, ...] = ()
    slots: Mapping[SlotKey, SlotState] = field(default_factory=dict)
    """The bookkeeping to hand to the next round."""


def fingerprint(dyno: DesiredDyno | DynoSpec) -> Fingerprint:
    """Everything that, when it changes, means the dyno must be replaced."""
    return (
        int(dyno.release_version),
        str(dyno.slug_digest),
        dyno.command,
        tuple(sorted(dyno.env.items())),
        dyno.size,
        dyno.generation,
    )


def slot_of(spec: DynoSpec) -> SlotKey:
    return (spec.app_id, spec.name)


def record_crash(
    slot: SlotState, dyno_id: str, ran: float, now: datetime, policy: RestartPolicy
) -> SlotState:
    """Count a crash (a dyno that exited, missed its boot timeout, or could not start) that came
    after ``ran`` seconds of running; returns the slot with its next allowed restart time."""
    crashes = 1 if ran >= policy.clean_run else slot.crashes + 1
    return replace(
        slot,
        crashes=crashes,
        restart_at=now + timedelta(seconds=policy.delay(crashes)),
        counted=slot.counted | {dyno_id},
    )


def plan(
    desired: Iterable[DesiredDyno],
    observed: Iterable[Observed],
    slots: Mapping[SlotKey, SlotState],
    now: datetime,
    policy: RestartPolicy,
) -> Plan:
    wanted: dict[SlotKey, DesiredDyno] = {}
    for dyno in desired:
        wanted.setdefault(dyno.key, dyno)
    by_slot: dict[SlotKey, list[Observed]] = {}
    for seen in observed:
        by_slot.setdefault(slot_of(seen.dyno.spec), []).append(seen)

    starts: list[DesiredDyno] = []
    stops: list[Stop] = []
    next_slots: dict[SlotKey, SlotState] = {}
    for key, seen_in_slot in sorted(by_slot.items()):
        if key not in wanted:
            stops.extend(Stop(o.dyno.spec.id, _gone_or(o, "unwanted")) for o in seen_in_slot)
    for key, want in sorted(wanted.items()):
        slot = slots.get(key)
        if slot is None or slot.fingerprint != fingerprint(want):
            slot = SlotState(fingerprint(want), since=now)
        start, slot_stops, next_slots[key] = _plan_slot(by_slot.get(key, []), slot, now, policy)
        if start:
            starts.append(want)
        stops.extend(slot_stops)
    return Plan(tuple(starts), tuple(stops), next_slots)


def _gone_or(seen: Observed, reason: StopReason) -> StopReason:
    return "exited" if seen.dyno.state == "exited" else reason


def _age(dyno: RunningDyno, now: datetime) -> float:
    return (now - dyno.started_at).total_seconds()


def _plan_slot(
    seen: Sequence[Observed], slot: SlotState, now: datetime, policy: RestartPolicy
) -> tuple[bool, list[Stop], SlotState]:
    current = [o for o in seen if fingerprint(o.dyno.spec) == slot.fingerprint]
    stale = [o for o in seen if fingerprint(o.dyno.spec) != slot.fingerprint]
    stops: list[Stop] = []
    running: list[Observed] = []
    exited: list[Observed] = []
    for o in current:
        dyno = o.dyno
        if dyno.state == "exited":
            exited.append(o)
            if dyno.spec.id not in slot.counted:
                slot = record_crash(slot, dyno.spec.id, _age(dyno, now), now, policy)
        elif _missed_boot(o, now, policy):
            stops.append(Stop(dyno.spec.id, "boot_timeout"))
            slot = record_crash(slot, dyno.spec.id, 0.0, now, policy)  # never ran cleanly
        else:
            running.append(o)

    keep = _best(running)
    stops.extend(Stop(o.dyno.spec.id, "duplicate") for o in running if o is not keep)
    start = False
    if keep is None and (slot.restart_at is None or now >= slot.restart_at):
        start = True
        stops.extend(Stop(o.dyno.spec.id, "exited") for o in exited)

    replaced = (keep is not None and keep.up) or _age_of_change(slot, now) >= policy.boot_timeout
    for o in stale:
        if o.dyno.state == "exited":
            stops.append(Stop(o.dyno.spec.id, "exited"))
        elif replaced:
            stops.append(Stop(o.dyno.spec.id, "replaced"))

    still_here = {o.dyno.spec.id for o in seen}
    return start, stops, replace(slot, counted=slot.counted & still_here)


def _missed_boot(seen: Observed, now: datetime, policy: RestartPolicy) -> bool:
    return (
        seen.dyno.spec.process_type == "web"
        and not seen.up
        and _age(seen.dyno, now) >= policy.boot_timeout
    )


def _best(running: Sequence[Observed]) -> Observed | None:
    """The dyno to keep among several of the same slot: one that is up, then the newest."""
    if not running:
        return None
    return max(running, key=lambda o: (o.up, o.dyno.started_at, o.dyno.spec.id))


def _age_of_change(slot: SlotState, now: datetime) -> float:
    return (now - slot.since).total_seconds()
