"""Planning: from the dynos the control plane wants and the dynos that run, what to start and stop.

Pure functions: time comes in as an argument and the bookkeeping between two rounds (crash counts,
when a slot may restart, whether it sleeps) is a value handed in and handed back, so every rule is
testable without a clock.

The rules, per formation slot (an app's ``web.1``):

- one dyno per desired slot; a dyno whose slot is no longer desired is stopped;
- a dyno whose release, slug, command, config, size or generation differs from the desired one is
  replaced: the new dyno starts first and the old one is stopped once the new one is up, or once the
  boot timeout has passed since the change, so web traffic never has a gap;
- a web dyno stopped while it may still be serving (replaced, cycled, a duplicate, scaled away or
  put to sleep: ``drains``) leaves the routers first: the agent reports it gone, lets it drain for
  ``agent.drain_seconds``, then sends SIGTERM, so no request reaches a dyno that is going away;
- a web dyno that does not answer on ``$PORT`` within the boot timeout is stopped (Heroku's R10) and
  counts as a crash;
- an exited dyno is restarted: the first crash at once, then after the next delay of the back-off
  schedule (Heroku's 20, 40, 60, 180, 320 minutes, then every 320). The count starts over when the
  crashed dyno had run cleanly for a while, and when the release, a restart or anything else about
  the slot changes, or when the slot was scaled to 0 and back up;
- daily cycling: a dyno older than ``cycle_period`` plus its own jitter is replaced like a dyno of an
  old release (the new one first), and the manager logs ``Cycling``;
- idling: a web dyno of an ``idle_sizes`` size (``eco``) that is up and has had no request for
  ``idle_timeout`` is stopped and the slot sleeps until a request newer than that moment arrives.
  Apps the router has never reported a request for never sleep.

One-off dynos (``run.1234``) are not slots: each is started once under the id the control plane
gave it, never restarted, and stopped when its time to live has passed or it is no longer desired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from dockyard.agent.lifecycle import RestartPolicy
from dockyard.domain.dataplane import DesiredDyno
from dockyard.runtime.base import DynoSpec, RunningDyno

__all__ = [
    "ONE_OFF_LABEL",
    "Fingerprint",
    "Observed",
    "Plan",
    "RestartPolicy",
    "SlotKey",
    "SlotState",
    "Stop",
    "StopReason",
    "drains",
    "fingerprint",
    "foreseen",
    "is_one_off",
    "plan",
    "record_crash",
    "slot_of",
]

SlotKey = tuple[str, str]
"""``(app_id, dyno name)``."""
Fingerprint = tuple[int, str, str, tuple[tuple[str, str], ...], str, str]
StopReason = Literal[
    "unwanted", "replaced", "duplicate", "exited", "boot_timeout", "cycled", "idle", "ttl", "hangup"
]
ONE_OFF_LABEL = "dockyard.kind"
"""The ``DynoSpec.labels`` key whose value ``one-off`` marks a one-off dyno."""
DRAINED: frozenset[StopReason] = frozenset({"replaced", "cycled", "duplicate", "unwanted", "idle"})
"""Reasons to stop a dyno that may still be serving requests (not one that exited, never came up,
or was one-off)."""


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
    idle_since: datetime | None = None
    """The slot sleeps since then: no dyno until a request newer than this."""


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
    cycling: tuple[str, ...] = ()
    """Ids of dynos due for their daily cycle whose replacement starts in this plan."""
    woken: tuple[SlotKey, ...] = ()
    """Sleeping slots started again in this plan because a request came."""


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


def is_one_off(spec: DynoSpec) -> bool:
    return spec.labels.get(ONE_OFF_LABEL) == "one-off"


def drains(spec: DynoSpec, reason: StopReason) -> bool:
    """Whether a dyno stopped for ``reason`` first leaves the routers and drains: a formation web
    dyno that may still be serving."""
    return spec.process_type == "web" and not is_one_off(spec) and reason in DRAINED


def is_managed_elsewhere(spec: DynoSpec) -> bool:
    """Processes of another kind (a release phase, a postdeploy script) run in the same runtime but are
    supervised, logged and stopped by whoever started them; the agent leaves them alone."""
    return spec.labels.get(ONE_OFF_LABEL) not in (None, "one-off")


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
    *,
    requests: Mapping[str, datetime] | None = None,
    one_offs_started: frozenset[str] = frozenset(),
) -> Plan:
    """``requests``: the time of each app's last request, for the apps the router reports on.
    ``one_offs_started``: ids of one-off dynos already started once (they never start again)."""
    wanted: dict[SlotKey, DesiredDyno] = {}
    one_offs: dict[str, DesiredDyno] = {}
    for dyno in desired:
        if dyno.kind == "one-off":
            one_offs.setdefault(dyno.dyno_id, dyno)
        else:
            wanted.setdefault(dyno.key, dyno)
    by_slot: dict[SlotKey, list[Observed]] = {}
    seen_one_offs: list[Observed] = []
    for seen in observed:
        if is_one_off(seen.dyno.spec):
            seen_one_offs.append(seen)
        else:
            by_slot.setdefault(slot_of(seen.dyno.spec), []).append(seen)

    starts: list[DesiredDyno] = []
    stops: list[Stop] = []
    cycling: list[str] = []
    woken: list[SlotKey] = []
    next_slots: dict[SlotKey, SlotState] = {}
    for key, seen_in_slot in sorted(by_slot.items()):
        if key not in wanted:
            stops.extend(Stop(o.dyno.spec.id, _gone_or(o, "unwanted")) for o in seen_in_slot)
    last_requests = requests or {}
    for key, want in sorted(wanted.items()):
        slot = slots.get(key)
        if slot is None or slot.fingerprint != fingerprint(want):
            slot = SlotState(fingerprint(want), since=now, idle_since=_idle_since(slot))
        result = _plan_slot(
            want, by_slot.get(key, []), slot, now, policy, last_requests.get(want.app_id)
        )
        next_slots[key] = result.slot
        if result.start:
            starts.append(want)
            cycling.extend(result.cycling)
            if result.woken:
                woken.append(key)
        stops.extend(result.stops)
    one_off_starts, one_off_stops = _plan_one_offs(one_offs, seen_one_offs, one_offs_started, now)
    return Plan(
        tuple(starts + one_off_starts),
        tuple(stops + one_off_stops),
        next_slots,
        tuple(cycling),
        tuple(woken),
    )


def _idle_since(previous: SlotState | None) -> datetime | None:
    """A sleeping slot keeps sleeping through a new release or a restart: it wakes on a request."""
    return None if previous is None else previous.idle_since


def _gone_or(seen: Observed, reason: StopReason) -> StopReason:
    return "exited" if seen.dyno.state == "exited" else reason


def _age(dyno: RunningDyno, now: datetime) -> float:
    return (now - dyno.started_at).total_seconds()


@dataclass(frozen=True)
class _SlotResult:
    start: bool
    stops: list[Stop]
    slot: SlotState
    cycling: list[str]
    woken: bool


@dataclass
class _Sorted:
    """The dyno of a slot sorted by what becomes of them in this round."""

    slot: SlotState
    stops: list[Stop] = field(default_factory=list)
    running: list[Observed] = field(default_factory=list)
    exited: list[Observed] = field(default_factory=list)
    due: list[Observed] = field(default_factory=list)
    """Running, but due for their daily cycle."""


def _sort(
    current: Sequence[Observed], slot: SlotState, now: datetime, policy: RestartPolicy
) -> _Sorted:
    result = _Sorted(slot)
    for o in current:
        dyno = o.dyno
        if dyno.state == "exited":
            result.exited.append(o)
            if dyno.spec.id not in result.slot.counted:
                result.slot = record_crash(result.slot, dyno.spec.id, _age(dyno, now), now, policy)
        elif _missed_boot(o, now, policy):
            result.stops.append(Stop(dyno.spec.id, "boot_timeout"))
            result.slot = record_crash(result.slot, dyno.spec.id, 0.0, now, policy)  # never ran
        elif now >= policy.cycle_due_at(dyno.spec.id, dyno.started_at):
            result.due.append(o)
        else:
            result.running.append(o)
    return result


def _plan_slot(
    want: DesiredDyno,
    seen: Sequence[Observed],
    slot: SlotState,
    now: datetime,
    policy: RestartPolicy,
    last_request: datetime | None,
) -> _SlotResult:
    still_here = {o.dyno.spec.id for o in seen}
    stale = [o for o in seen if fingerprint(o.dyno.spec) != slot.fingerprint]
    current = [o for o in seen if fingerprint(o.dyno.spec) == slot.fingerprint]
    found = _sort(current, slot, now, policy)
    slot, stops = replace(found.slot, counted=found.slot.counted & still_here), found.stops
    keep = _best(found.running)
    stops.extend(Stop(o.dyno.spec.id, "duplicate") for o in found.running if o is not keep)

    woken = False
    if slot.idle_since is not None:
        if last_request is None or last_request <= slot.idle_since:
            # asleep: nothing starts, and whatever still runs of the slot goes
            stops.extend(Stop(o.dyno.spec.id, _gone_or(o, "idle")) for o in seen)
            return _SlotResult(False, stops, slot, [], False)
        slot, woken = replace(slot, idle_since=None, crashes=0, restart_at=None), True
    elif keep is not None and _idle_due(want, keep, now, policy, last_request):
        others = [keep, *found.due, *stale, *found.exited]
        stops.extend(Stop(o.dyno.spec.id, _gone_or(o, "idle")) for o in others)
        return _SlotResult(False, stops, replace(slot, idle_since=now), [], False)

    start = keep is None and (
        bool(found.due) or woken or slot.restart_at is None or now >= slot.restart_at
    )
    if start:
        stops.extend(Stop(o.dyno.spec.id, "exited") for o in found.exited)
    new_is_up = keep is not None and keep.up
    replaced = new_is_up or _age_of_change(slot, now) >= policy.boot_timeout
    for o in stale:
        if o.dyno.state == "exited":
            stops.append(Stop(o.dyno.spec.id, "exited"))
        elif replaced:
            stops.append(Stop(o.dyno.spec.id, "replaced"))
    for o in found.due:
        overdue = (now - policy.cycle_due_at(o.dyno.spec.id, o.dyno.started_at)).total_seconds()
        if new_is_up or overdue >= policy.boot_timeout:
            stops.append(Stop(o.dyno.spec.id, "cycled"))
    cycling = [o.dyno.spec.id for o in found.due] if start else []
    return _SlotResult(start, stops, slot, cycling, woken)


def _idle_due(
    want: DesiredDyno,
    keep: Observed,
    now: datetime,
    policy: RestartPolicy,
    last_request: datetime | None,
) -> bool:
    if want.process_type != "web" or want.size not in policy.idle_sizes or not keep.up:
        return False
    if last_request is None:
        return False  # the router has never reported on this app: never put it to sleep
    quiet_since = max(last_request, keep.dyno.started_at)
    return (now - quiet_since).total_seconds() >= policy.idle_timeout


def _plan_one_offs(
    wanted: Mapping[str, DesiredDyno],
    seen: Sequence[Observed],
    started: frozenset[str],
    now: datetime,
) -> tuple[list[DesiredDyno], list[Stop]]:
    stops: list[Stop] = []
    present = set()
    for o in seen:
        spec = o.dyno.spec
        present.add(spec.id)
        want = wanted.get(spec.id)
        if want is None:
            stops.append(Stop(spec.id, _gone_or(o, "unwanted")))
        elif (
            o.dyno.state == "running"
            and want.time_to_live is not None
            and _age(o.dyno, now) >= want.time_to_live
        ):
            stops.append(Stop(spec.id, "ttl"))
    starts = [
        want
        for dyno_id, want in sorted(wanted.items())
        if dyno_id not in present and dyno_id not in started
    ]
    return starts, stops


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


def foreseen(
    desired: Iterable[DesiredDyno],
    slots: Mapping[SlotKey, SlotState],
    now: datetime,
    *,
    lead: float,
    limit: int,
    requests: Mapping[str, datetime] | None = None,
) -> list[DesiredDyno]:
    """The formation dynos whose next start can be foreseen, so that a runtime can prepare them ahead
    (``RuncRuntime.prepare``), at most ``limit``: first the slots whose crash back-off ends within
    ``lead`` seconds, then the sleeping slots (they start at their app's next request), the app with
    the newest request first (``requests``). Only slots as they are wanted now (same fingerprint)."""
    due: list[DesiredDyno] = []
    sleeping: list[DesiredDyno] = []
    for want in desired:
        slot = slots.get(want.key)
        if want.kind == "one-off" or slot is None or slot.fingerprint != fingerprint(want):
            continue
        if slot.idle_since is not None:
            sleeping.append(want)
        elif slot.restart_at is not None and 0 < (slot.restart_at - now).total_seconds() <= lead:
            due.append(want)
    last = requests or {}
    oldest = datetime.min.replace(tzinfo=now.tzinfo)
    sleeping.sort(key=lambda w: (-(last.get(w.app_id, oldest) - oldest).total_seconds(), w.key))
    return (sorted(due, key=lambda w: w.key) + sleeping)[: max(limit, 0)]
