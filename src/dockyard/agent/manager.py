"""``DynoManager``: the per-host agent that keeps the desired dynos running (Heroku's dyno manager).

Every ``agent.refresh_interval`` seconds one round, and at once when the desired dynos change or a
starting web dyno answers:

1. takes the dynos this host should run from the control plane, long-polled meanwhile
   (``If-None-Match`` and ``wait``: the API answers when they change), caching the last answer in
   ``<state dir>/desired-dynos.json``; while the API is away the cache is used, so dynos keep running
   and crashed ones keep being restarted;
2. lists what the runtime runs and probes web dynos (a TCP connect to ``$PORT``: ``starting`` until
   it answers, then ``up``); a starting one is also probed every ``PROBE_EVERY`` by a task of its
   own, which starts a round (and so the report) as soon as it answers;
3. copies new output lines of each dyno into its app's log stream (``app[web.1]``) and writes the
   dyno manager's own lines (``heroku[web.1]``); with a dyno network (runc), logs new port-scan
   blocks and detaches leases of dynos that are gone (``agent.network``);
4. every ``agent.memory_check_interval`` reads each dyno's memory use from the runtime (R14 once
   per episode above the quota; R15 when a dyno that was over it dies of SIGKILL);
5. plans with ``reconcile.plan`` and carries the plan out: starts first, stops in the background
   (SIGTERM, then SIGKILL and R12 after ``agent.stop_timeout``; a web dyno that may still be serving
   is left out of the round's report first and gets SIGTERM ``agent.drain_seconds`` after it, once
   the routers have dropped it: ``reconcile.drains``), R10 for web dynos that do not bind
   in time, daily cycling, ``eco`` web dynos put to sleep after ``agent.idle_timeout`` without a
   request and woken by the next one, one-off dynos run once and stopped at their time to live;
6. reports every dyno to the control plane, with the time of the next retry of crashed ones; a failed
   report is logged once per outage, never fatal.

Attached one-off dynos get a terminal that goes to the rendezvous service (``agent.terminal``);
``wake <app id>`` on ``<data dir>/run/agent.sock`` starts a sleeping app at once (``agent.wake``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dockyard._util.clock import Clock, SystemClock
from dockyard._util.secretfile import ensure_secret_file
from dockyard.agent.lifecycle import policy_of
from dockyard.agent.memory import SIGKILL_STATUS, MemoryWatch, Usage, read_usage
from dockyard.agent.network import NetworkWatch
from dockyard.agent.reconcile import (
    ONE_OFF_LABEL,
    Observed,
    RestartPolicy,
    SlotKey,
    SlotState,
    StopReason,
    drains,
    fingerprint,
    foreseen,
    is_managed_elsewhere,
    is_one_off,
    plan,
    record_crash,
    slot_of,
)
from dockyard.agent.tail import OutputTail
from dockyard.agent.terminal import Terminal, start_on_terminal, window_size
from dockyard.agent.wake import RequestLog, WakeServer
from dockyard.client.dataplane import LONG_POLL, DataPlaneClient, Versioned
from dockyard.domain.dataplane import DesiredDyno, DynoReport
from dockyard.errors import DockyardError
from dockyard.logs.line import make_lines
from dockyard.logs.store import FileLogStore
from dockyard.runtime.base import DynoSpec, RunningDyno, Runtime, load_runtime
from dockyard.settings import Settings
from dockyard.types import AppId, DynoName, DynoState, ProcessType, ReleaseVersion

log = logging.getLogger(__name__)

REPORT_EVERY = 10.0
"""Seconds between two reports when nothing changed (a heartbeat for the control plane)."""
PROBE_TIMEOUT = 0.25
PROBE_EVERY = 0.05
"""Seconds between two probes of a starting web dyno (each its own task until the dyno answers)."""
WAKE_POLL = 0.05
"""Seconds between rounds while a wake request waits for its app's web dyno."""
COMMAND_LABEL = "dockyard.command"
"""The ``DynoSpec.labels`` key holding a one-off dyno's command as asked (its spec may wrap it)."""
ATTACH_LABEL = "dockyard.attach"
TTL_LABEL = "dockyard.time-to-live"
PREPARE_AHEAD = 10.0
"""Seconds before a crashed dyno's back-off ends that the runtime prepares its start."""
PREPARED_MAX = 8
"""Dynos prepared ahead at once on this host (with runc each holds about 10 MB: runc's waiting init)."""


class DataPlane(Protocol):
    """What the manager needs of ``DataPlaneClient``."""

    async def desired_dynos(
        self, host: str, etag: str | None = None, *, wait: float = 0.0
    ) -> Versioned[list[DesiredDyno]] | None: ...

    async def report_dynos(self, host: str, dynos: Sequence[DynoReport]) -> None: ...


class DynoManager:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        client: DataPlane | None,
        clock: Clock,
        *,
        host: str | None = None,
        policy: RestartPolicy | None = None,
        network_watch: NetworkWatch | None = None,
    ) -> None:
        self.settings = settings
        self.network_watch = network_watch
        """Port-scan events to log and stale address leases to detach (the runc runtime's network)."""
        self.runtime = runtime
        self.client = client
        self.clock = clock
        self.host = host or socket.gethostname()
        self.policy = policy or policy_of(settings)
        self.requests = RequestLog(settings.last_request_dir)
        self.memory = MemoryWatch()
        self.logs = FileLogStore(settings.logs_dir)
        self.cache_path = settings.state_dir / "desired-dynos.json"
        self.offsets_path = settings.state_dir / "dyno-log-offsets.json"
        self.desired: list[DesiredDyno] | None = None
        """None until known: with no answer and no cache, nothing is stopped."""
        self._etag: str | None = None
        self._slots: dict[SlotKey, SlotState] = {}
        self._states: dict[str, DynoState] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._tails: dict[str, OutputTail] = {}
        self._offsets: dict[str, int] = {}
        self._saved_offsets: dict[str, int] = {}
        self._tombstones: dict[SlotKey, DynoReport] = {}
        self._runtime_lock = asyncio.Lock()
        self._stop_event = asyncio.Event()
        self._api_down = False
        self._report_failing = False
        self._last_report: list[DynoReport] | None = None
        self._last_report_at = float("-inf")
        self._released_once = False
        self._next_memory_check = float("-inf")
        self._terminals: dict[str, Terminal] = {}
        self._cycling_logged: set[str] = set()
        self._started_at: dict[str, datetime] = {}
        self._round_now = asyncio.Event()
        self._reported = asyncio.Event()
        """Set once the current round has reported (or tried to): drains count from then."""
        self._watching = False
        self._probing: dict[str, asyncio.Task[None]] = {}
        self._wake_waiters: dict[str, list[asyncio.Future[list[dict[str, str]]]]] = {}
        self.one_offs_path = settings.state_dir / "one-offs-started.json"
        self._one_offs_started: set[str] = set()
        self._saved_one_offs: set[str] = set()
        self._prepared: dict[SlotKey, DynoSpec] | None = None
        """Dynos the runtime prepared for a foreseen start (``_keep_prepared``); None until adopted."""
        self._unpreparable: dict[SlotKey, Any] = {}
        """Slots whose preparation failed, with the fingerprint it failed for (not tried again)."""
        self._load_cache()
        self._load_offsets()
        self._load_one_offs()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run rounds until ``request_stop``; the dynos are left running. Meanwhile the desired
        dynos are long-polled (``_watch_desired``): a change starts a round at once."""
        watch = asyncio.create_task(self._watch_desired()) if self.client is not None else None
        try:
            await self._rounds()
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
        await self.close()

    async def _rounds(self) -> None:
        while not self._stop_event.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("a dyno manager round failed; trying again in the next one")
            pause = WAKE_POLL if self._wake_waiters else self.settings.agent.refresh_interval
            waits = [
                asyncio.ensure_future(self._stop_event.wait()),
                asyncio.ensure_future(self._round_now.wait()),
            ]
            await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def request_stop(self) -> None:
        self._stop_event.set()

    async def close(self) -> None:
        """Wait for the stops under way, then close the output files."""
        for probe in self._probing.values():
            probe.cancel()
        await asyncio.gather(*self._probing.values(), return_exceptions=True)
        self._probing.clear()
        await self.settle()
        for tail in self._tails.values():
            tail.close()
        self._tails.clear()
        for terminal in self._terminals.values():
            terminal.close()  # the dynos keep their own end
        self._terminals.clear()
        self._save_offsets()
        self._save_one_offs()

    async def settle(self) -> None:
        """Wait until every stop begun so far has finished."""
        while self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def tick(self) -> None:
        """One round: fetch, look, log, plan, act, report."""
        self._round_now.clear()
        self._reported = reported = asyncio.Event()
        try:
            await self._round()
        finally:
            reported.set()

    async def _round(self) -> None:
        if not self._watching:
            await self._refresh_desired()
        everything = await asyncio.to_thread(self.runtime.list)
        listed = self._on_our_clock([d for d in everything if not is_managed_elsewhere(d.spec)])
        dynos = [d for d in listed if d.spec.id not in self._stopping]
        self._ship_logs(dynos)
        await self._watch_network(everything)
        await self._watch_memory(dynos)
        await self._observe(dynos)
        self._stop_abandoned(dynos)
        self._release_terminals(listed)  # before starting: a new dyno's terminal is not listed yet
        if self.desired is not None:
            await self._reconcile(self.desired, dynos)
            await self._keep_prepared(self.desired)
        self._save_offsets()
        self._save_one_offs()
        await self._report([d for d in dynos if d.spec.id not in self._stopping])
        self._answer_wakes(dynos)

    def _on_our_clock(self, listed: list[RunningDyno]) -> list[RunningDyno]:
        """Dynos this agent started carry the start time of its clock (ages, cycling, time to live
        and idling all count on it); adopted ones keep the runtime's."""
        ids = {d.spec.id for d in listed}
        self._started_at = {k: v for k, v in self._started_at.items() if k in ids}
        return [
            replace(d, started_at=self._started_at[d.spec.id])
            if d.spec.id in self._started_at
            else d
            for d in listed
        ]

    async def wake(self, app_id: str) -> list[dict[str, str]]:
        """Count a request for ``app_id``, start its sleeping web dynos now, and return its web
        dynos that are up (``[{"dyno": "web.1", "address": "host:port"}]``) once there is one.
        Raises ``TimeoutError`` when none is up within the boot timeout."""
        self.requests.touch(app_id, self.clock.now())
        answer: asyncio.Future[list[dict[str, str]]] = asyncio.get_running_loop().create_future()
        self._wake_waiters.setdefault(app_id, []).append(answer)
        self._round_now.set()
        try:
            return await asyncio.wait_for(answer, self.policy.boot_timeout)
        finally:
            waiting = self._wake_waiters.get(app_id, [])
            if answer in waiting:
                waiting.remove(answer)
            if not waiting:
                self._wake_waiters.pop(app_id, None)

    def _answer_wakes(self, dynos: Sequence[RunningDyno]) -> None:
        for app_id in list(self._wake_waiters):
            backends = [
                {"dyno": d.spec.name, "address": d.address}
                for d in dynos
                if d.spec.app_id == app_id
                and d.spec.process_type == "web"
                and self._states.get(d.spec.id) == "up"
            ]
            if backends:
                for waiting in self._wake_waiters.pop(app_id):
                    if not waiting.done():
                        waiting.set_result(backends)

    # -- desired state ---------------------------------------------------------------------------

    async def _watch_desired(self) -> None:
        """Long-poll the desired dynos and start a round when they change. While the API is away
        it is asked every ``agent.refresh_interval``; an unchanged answer that comes sooner (an API
        that does not hold polls) is paced to one an interval."""
        loop = asyncio.get_running_loop()
        interval = self.settings.agent.refresh_interval
        self._watching = True
        try:
            while True:
                started = loop.time()
                if await self._refresh_desired(wait=LONG_POLL):
                    self._round_now.set()
                    continue
                pause = interval if self._api_down else started + interval - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            self._watching = False

    async def _refresh_desired(self, wait: float = 0.0) -> bool:
        """Fetch the desired dynos (holding up to ``wait`` s); True when they changed."""
        if self.client is None:
            return False
        try:
            answer = await self.client.desired_dynos(self.host, self._etag, wait=wait)
        except Exception as exc:
            if not self._api_down:
                known = "no desired state yet" if self.desired is None else "the cached state"
                log.warning("cannot fetch the desired dynos (%s); running %s", exc, known)
                self._api_down = True
            return False
        if self._api_down:
            log.info("the control plane answers again")
            self._api_down = False
        if answer is None or (answer.etag and answer.etag == self._etag):
            return False
        self.desired = list(answer.value)
        self._etag = answer.etag or None
        _write_json(
            self.cache_path, {"etag": answer.etag, "dynos": [d.to_json() for d in self.desired]}
        )
        wanted = {d.key for d in self.desired}
        self._tombstones = {k: v for k, v in self._tombstones.items() if k in wanted}
        return True

    def _load_cache(self) -> None:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
            dynos = [DesiredDyno.from_json(d) for d in data["dynos"]]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable cache %s: %s", self.cache_path, exc)
            return
        self.desired = dynos
        self._etag = str(data.get("etag") or "") or None

    # -- observing -----------------------------------------------------------------------------

    async def _observe(self, dynos: Sequence[RunningDyno]) -> None:
        """Probe web dynos that are not up yet, and log every change of state."""
        probes = [
            d
            for d in dynos
            if d.state == "running"
            and d.spec.process_type == "web"
            and self._states.get(d.spec.id) != "up"
        ]
        answers = await asyncio.gather(*(_answers(d.address) for d in probes))
        answering = {d.spec.id for d, ok in zip(probes, answers, strict=True) if ok}
        self._probe_starting([d for d in probes if d.spec.id not in answering])
        for dyno in dynos:
            before = self._states.get(dyno.spec.id)
            after: DynoState
            if dyno.state == "exited":
                completed = is_one_off(dyno.spec) and dyno.exit_code == 0
                after = "down" if completed else "crashed"
            elif dyno.spec.process_type != "web" or dyno.spec.id in answering or before == "up":
                after = "up"
            else:
                after = "starting"
            self._states[dyno.spec.id] = after
            if before == after or (before is None and after not in ("crashed", "down")):
                continue  # a dyno adopted from an earlier agent starts its story silently
            if after == "up":
                self._system(dyno.spec, "State changed from starting to up")
            else:
                self._log_exit(dyno, before or "up", after)

    def _probe_starting(
        self, starting: Sequence[RunningDyno], *, keep_others: bool = False
    ) -> None:
        """Keep one probe task per starting web dyno, so it is seen up within ``PROBE_EVERY``
        of binding instead of at the next round; drop the tasks of the dynos no longer starting
        (all but ``starting``, unless ``keep_others``)."""
        wanted = {d.spec.id: d.address for d in starting}
        for dyno_id in set() if keep_others else set(self._probing) - set(wanted):
            self._probing.pop(dyno_id).cancel()
        for dyno_id, address in wanted.items():
            if dyno_id not in self._probing or self._probing[dyno_id].done():
                self._probing[dyno_id] = asyncio.create_task(self._probe_until_up(address))

    async def _probe_until_up(self, address: str) -> None:
        while not await _answers(address):
            await asyncio.sleep(PROBE_EVERY)
        self._round_now.set()  # the round marks it up and reports it at once

    def _log_exit(self, dyno: RunningDyno, before: str, after: DynoState) -> None:
        spec = dyno.spec
        for line in self.memory.killed_for_memory(spec.id, spec.size, dyno.exit_code):
            self._system(spec, line)  # R15
        if dyno.exit_code is None:
            self._system(spec, "Process exited")
        else:
            self._system(spec, f"Process exited with status {dyno.exit_code}")
        self._system(
            spec, f"State changed from {before} to {'complete' if after == 'down' else after}"
        )

    async def _watch_memory(self, dynos: Sequence[RunningDyno]) -> None:
        """R14 once per episode above the quota. The samples also tell R15 from other kills: a dyno
        that just died of SIGKILL is read once more (its cgroup may have counted an OOM kill)."""
        reader = getattr(self.runtime, "usage", None)
        if not callable(reader):
            return
        now = self.clock.monotonic()
        due = now >= self._next_memory_check
        if due:
            self._next_memory_check = now + self.settings.agent.memory_check_interval
        killed = [
            d
            for d in dynos
            if d.state == "exited"
            and d.exit_code == SIGKILL_STATUS
            and self._states.get(d.spec.id) not in ("crashed", "down")
        ]
        wanted = [d for d in dynos if d.state == "running"] if due else []

        def sample(which: Sequence[RunningDyno]) -> list[tuple[RunningDyno, Usage | None]]:
            found = []
            for dyno in which:
                try:
                    found.append((dyno, read_usage(reader, dyno.spec.id)))
                except Exception as exc:  # a runtime's failure must not stop the round
                    log.debug("no memory use for %s: %s", dyno.spec.id, exc)
            return found

        if wanted or killed:
            for dyno, usage in await asyncio.to_thread(sample, [*wanted, *killed]):
                if usage is None:
                    continue
                if dyno.state == "exited":
                    self.memory.record(dyno.spec.id, usage)
                    continue
                for line in self.memory.observe(dyno.spec.id, dyno.spec.size, usage):
                    self._system(dyno.spec, line)
        self.memory.forget_all_but(d.spec.id for d in dynos)

    async def _watch_network(self, everything: Sequence[RunningDyno]) -> None:
        """Port-scan blocks to the platform log and the scanning dyno's app log; stale leases
        detached (``agent.network``)."""
        watch = self.network_watch
        if watch is None:
            return
        specs = {d.spec.id: d.spec for d in everything}
        for event in await asyncio.to_thread(watch.blocks):
            spec = specs.get(event.dyno_id or "")
            if spec is not None:
                self._system(spec, event.message)

        def known() -> set[str]:
            prepared = getattr(self.runtime, "prepared", None)
            ahead = {s.id for s in prepared()} if callable(prepared) else set()
            return {d.spec.id for d in self.runtime.list()} | ahead | set(self._stopping)

        await asyncio.to_thread(watch.sweep, self.clock.monotonic(), known)

    # -- acting ----------------------------------------------------------------------------------

    async def _reconcile(self, desired: list[DesiredDyno], dynos: Sequence[RunningDyno]) -> None:
        observed = [Observed(d, self._states.get(d.spec.id) == "up") for d in dynos]
        sleepy = {
            d.app_id
            for d in desired
            if d.kind == "formation"
            and d.process_type == "web"
            and d.size in self.policy.idle_sizes
        }
        result = plan(
            desired,
            observed,
            self._slots,
            self.clock.now(),
            self.policy,
            requests=self.requests.last_requests(sleepy),
            one_offs_started=frozenset(self._one_offs_started),
        )
        self._slots = dict(result.slots)
        crashed = {slot_of(d.spec) for d in dynos if d.state == "exited"} | {
            key for key, report in self._tombstones.items() if report.state == "crashed"
        }
        by_id = {d.spec.id: d for d in dynos}
        for dyno_id in result.cycling:
            if dyno_id not in self._cycling_logged:
                self._cycling_logged.add(dyno_id)
                self._system(by_id[dyno_id].spec, "Cycling")
                self._system(by_id[dyno_id].spec, "State changed from up to starting")
        self._cycling_logged &= set(by_id)
        for stop in result.stop:
            self._begin_stop(by_id[stop.dyno_id], stop.reason)
        for want in result.start:
            woken = want.key in result.woken
            await self._start(want, restarted=want.key in crashed and not woken, woken=woken)
        self._one_offs_started &= {d.dyno_id for d in desired if d.kind == "one-off"}
        if not self._released_once:
            self._released_once = True
            await self._release_unused()

    async def _start(self, want: DesiredDyno, *, restarted: bool, woken: bool = False) -> None:
        one_off = want.kind == "one-off"
        spec = await self._take_prepared(want) or _spec_of(want)
        self._tombstones.pop(want.key, None)
        if one_off:
            self._one_offs_started.add(spec.id)
            self._save_one_offs()  # before the start: a one-off dyno never runs twice
        if woken:
            self._system(spec, "Unidling")
            self._system(spec, "State changed from idle to starting")
        elif restarted:
            self._system(spec, "State changed from crashed to starting")
        self._system(spec, f"Starting process with command `{spec.command}`")
        try:
            async with self._runtime_lock:
                dyno, terminal = await asyncio.to_thread(self._start_in_runtime, spec, want)
        except Exception as exc:  # a start that fails must not stop the other dynos' rounds
            reason = exc.message if isinstance(exc, DockyardError) else repr(exc)
            log.error("cannot start %s of %s: %s", spec.name, spec.app_name, reason)
            self._system(spec, "Process failed to start (the platform's agent log says why)")
            self._system(spec, "State changed from starting to crashed")
            now = self.clock.now()
            if not one_off:
                self._slots[want.key] = record_crash(
                    self._slots[want.key], spec.id, 0.0, now, self.policy
                )
            self._tombstones[want.key] = self._report_of_spec(spec, "crashed", now.isoformat())
            return
        self._states[spec.id] = "starting"
        self._started_at[spec.id] = self.clock.now()
        if spec.process_type == "web":
            self._probe_starting([dyno], keep_others=True)
        if terminal is not None:
            self._terminals[spec.id] = terminal
        if dyno.output_path is not None and not _attached(spec):
            tail = OutputTail.open(dyno.output_path)
            if tail is not None:
                self._tails[spec.id] = tail

    # -- prepared ahead ------------------------------------------------------------------------------

    async def _keep_prepared(self, desired: Sequence[DesiredDyno]) -> None:
        """Have the runtime prepare (its optional ``prepare``) the dynos whose start is foreseen
        (``reconcile.foreseen``: a crashed one shortly before its back-off ends, sleeping ones), so
        that their start is quick, and discard the prepared ones no longer foreseen as they are. One
        new preparation a round; one that fails is not tried again for that slot and fingerprint."""
        prepare = getattr(self.runtime, "prepare", None)
        listed = getattr(self.runtime, "prepared", None)
        if not callable(prepare) or not callable(listed):
            return
        if self._prepared is None:  # adopt what an earlier agent prepared
            self._prepared = {}
            for spec in await asyncio.to_thread(listed):
                if slot_of(spec) in self._prepared:
                    await self._discard(spec)
                else:
                    self._prepared[slot_of(spec)] = spec
        now = self.clock.now()
        waiting = {  # asleep, or crashed and waiting: the few slots that can be foreseen
            key: slot.idle_since is not None
            for key, slot in self._slots.items()
            if slot.idle_since is not None
            or (slot.restart_at is not None and slot.restart_at > now)
        }
        if not waiting and not self._prepared:
            return
        wanted = {
            w.key: w
            for w in foreseen(
                [d for d in desired if d.key in waiting],
                self._slots,
                now,
                lead=PREPARE_AHEAD,
                limit=PREPARED_MAX,
                requests=self.requests.last_requests(
                    {k[0] for k, asleep in waiting.items() if asleep}
                ),
            )
        }
        for key, spec in list(self._prepared.items()):
            if key not in wanted or fingerprint(spec) != fingerprint(wanted[key]):
                del self._prepared[key]
                await self._discard(spec)
        for key, want in wanted.items():
            if key in self._prepared or self._unpreparable.get(key) == fingerprint(want):
                continue
            spec = _spec_of(want)
            try:
                async with self._runtime_lock:
                    await asyncio.to_thread(prepare, spec)
            except Exception as exc:
                reason = exc.message if isinstance(exc, DockyardError) else repr(exc)
                log.warning("cannot prepare %s of %s: %s", spec.name, spec.app_name, reason)
                self._unpreparable[key] = fingerprint(want)
            else:
                self._prepared[key] = spec
            break
        self._unpreparable = {k: v for k, v in self._unpreparable.items() if k in wanted}

    async def _take_prepared(self, want: DesiredDyno) -> DynoSpec | None:
        """The dyno prepared for ``want``'s slot, when it was prepared as ``want`` is now."""
        spec = (self._prepared or {}).pop(want.key, None)
        if spec is None or (want.kind == "formation" and fingerprint(spec) == fingerprint(want)):
            return spec
        await self._discard(spec)
        return None

    async def _discard(self, spec: DynoSpec) -> None:
        """Remove a prepared dyno (it never ran: nothing to log)."""
        try:
            async with self._runtime_lock:
                await asyncio.to_thread(self.runtime.stop, spec.id, timeout=0)
        except Exception:
            log.exception("could not discard the prepared dyno %s (%s)", spec.name, spec.id)

    def _start_in_runtime(
        self, spec: DynoSpec, want: DesiredDyno
    ) -> tuple[RunningDyno, Terminal | None]:
        """Start the dyno (in a worker thread); an attached one-off dyno on a terminal."""
        if not (want.kind == "one-off" and want.attach):
            return self.runtime.start(spec), None
        return start_on_terminal(
            self.runtime,
            spec,
            tty=want.tty,
            size=window_size(want.env),
            socket_path=self.settings.rendezvous_socket,
        )

    def _begin_stop(self, dyno: RunningDyno, reason: StopReason) -> None:
        spec = dyno.spec
        if spec.id in self._stopping:
            return
        timeout = self.settings.agent.stop_timeout
        if reason == "boot_timeout":
            self._system(
                spec,
                "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within "
                f"{self.policy.boot_timeout:g} seconds of launch",
            )
            self._system(spec, "Stopping process with SIGKILL")
            self._system(spec, "State changed from starting to crashed")
            self._tombstones[slot_of(spec)] = self._report_of(dyno, "crashed")
            timeout = 0.0
        elif reason != "exited":
            for line in _STOP_LINES.get(reason, ()):
                self._system(spec, line.format(ttl=spec.labels.get(TTL_LABEL, "")))
            if reason == "idle":
                self._tombstones[slot_of(spec)] = self._report_of(dyno, "idle")
            elif reason in ("ttl", "hangup"):
                self._tombstones[slot_of(spec)] = self._report_of(dyno, "down")
            drain = self.settings.agent.drain_seconds if drains(spec, reason) else 0.0
            self._stopping[spec.id] = asyncio.create_task(
                self._stop(dyno, timeout, drain=drain, after=self._reported, announce=True)
            )
            return
        self._stopping[spec.id] = asyncio.create_task(self._stop(dyno, timeout))

    async def _stop(
        self,
        dyno: RunningDyno,
        timeout: float,
        *,
        drain: float = 0.0,
        after: asyncio.Event | None = None,
        announce: bool = False,
    ) -> None:
        """Stop ``dyno``; with ``drain``, first wait until the round has reported it gone
        (``after``), then ``drain`` seconds, while the routers drop it and it finishes what it
        serves; ``announce`` logs the SIGTERM."""
        dyno_id = dyno.spec.id
        try:
            if drain > 0:
                if after is not None:
                    await after.wait()
                await asyncio.sleep(drain)
            if announce:
                self._system(dyno.spec, "Stopping all processes with SIGTERM")
            stopping = asyncio.ensure_future(
                asyncio.to_thread(self.runtime.stop, dyno_id, timeout=timeout)
            )
            killed = False
            if timeout > 0 and not (await asyncio.wait({stopping}, timeout=timeout))[0]:
                killed = True  # the runtime sends SIGKILL now
                self._system(
                    dyno.spec,
                    "Error R12 (Exit timeout) -> At least one process failed to exit within "
                    f"{timeout:g} seconds of SIGTERM",
                )
                self._system(dyno.spec, "Stopping remaining processes with SIGKILL")
            await stopping
            if killed:
                self._system(dyno.spec, "Process exited with status 137")
        except Exception:
            log.exception("could not stop dyno %s (%s); will try again", dyno.spec.name, dyno_id)
        finally:
            tail = self._tails.pop(dyno_id, None)
            if tail is not None:
                self._emit(dyno.spec, tail.read_lines(final=True))
                tail.close()
            self._offsets.pop(dyno_id, None)
            self._states.pop(dyno_id, None)
            self._stopping.pop(dyno_id, None)
        await self._release_unused()

    async def _release_unused(self) -> None:
        in_use = {str(d.slug_digest) for d in self.desired or ()}
        try:
            async with self._runtime_lock:
                await asyncio.to_thread(self.runtime.release_unused, in_use)
        except Exception:
            log.exception("could not release unused slugs")

    # -- logs --------------------------------------------------------------------------------------

    def _ship_logs(self, dynos: Sequence[RunningDyno]) -> None:
        listed = set()
        for dyno in dynos:
            if _attached(dyno.spec):
                continue  # its output goes to the client; only its start and stop are logged
            listed.add(dyno.spec.id)
            tail = self._tails.get(dyno.spec.id)
            if tail is None and dyno.output_path is not None:
                tail = OutputTail.open(dyno.output_path, self._offsets.get(dyno.spec.id, 0))
                if tail is not None:
                    self._tails[dyno.spec.id] = tail
            if tail is not None:
                self._emit(dyno.spec, tail.read_lines())
                self._offsets[dyno.spec.id] = tail.offset
        for dyno_id in set(self._tails) - listed - set(self._stopping):
            self._tails.pop(dyno_id).close()  # stopped by someone else
            self._offsets.pop(dyno_id, None)

    def _emit(self, spec: DynoSpec, raw_lines: Iterable[bytes]) -> None:
        now = self.clock.now()
        lines = [line for raw in raw_lines for line in make_lines("app", spec.name, raw, now)]
        self._append(spec, lines)

    def _system(self, spec: DynoSpec, message: str) -> None:
        self._append(spec, make_lines("heroku", spec.name, message, self.clock.now()))

    def _append(self, spec: DynoSpec, lines: Sequence[Any]) -> None:
        try:
            self.logs.append(spec.app_id, lines)
        except (OSError, ValueError) as exc:
            log.warning("cannot write log lines of %s: %s", spec.app_name, exc)

    def _load_offsets(self) -> None:
        try:
            data = json.loads(self.offsets_path.read_text(encoding="utf-8"))
            self._offsets = {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._offsets = {}
        self._saved_offsets = dict(self._offsets)

    def _save_offsets(self) -> None:
        if self._offsets != self._saved_offsets:
            _write_json(self.offsets_path, self._offsets)
            self._saved_offsets = dict(self._offsets)

    # -- one-off dynos ------------------------------------------------------------------------------

    def _load_one_offs(self) -> None:
        try:
            data = json.loads(self.one_offs_path.read_text(encoding="utf-8"))
            self._one_offs_started = {str(d) for d in data}
        except (OSError, ValueError, TypeError):
            self._one_offs_started = set()
        self._saved_one_offs = set(self._one_offs_started)

    def _save_one_offs(self) -> None:
        if self._one_offs_started != self._saved_one_offs:
            _write_json(self.one_offs_path, sorted(self._one_offs_started))
            self._saved_one_offs = set(self._one_offs_started)

    def _stop_abandoned(self, dynos: Sequence[RunningDyno]) -> None:
        """Stop attached one-off dynos whose client went away (or never came): their terminal
        hung up. Most processes end on the SIGHUP the kernel sends; this also ends the others."""
        for dyno in dynos:
            terminal = self._terminals.get(dyno.spec.id)
            if dyno.state == "running" and terminal is not None and terminal.hung_up():
                self._begin_stop(dyno, "hangup")

    def _release_terminals(self, listed: Sequence[RunningDyno]) -> None:
        """Close the agent's end of the terminals of dynos that ended, so the rendezvous service
        sees the end of the output and disconnects the client."""
        running = {d.spec.id for d in listed if d.state == "running"}
        for dyno_id in list(self._terminals):
            if dyno_id not in running:
                self._terminals.pop(dyno_id).close()

    # -- reporting -------------------------------------------------------------------------

    def _report_of(self, dyno: RunningDyno, state: DynoState | None = None) -> DynoReport:
        if state is None:
            default: DynoState = "crashed" if dyno.state == "exited" else "starting"
            state = self._states.get(dyno.spec.id, default)
        report = self._report_of_spec(dyno.spec, state, dyno.started_at.isoformat())
        return replace(report, address=dyno.address) if state == "up" else report

    @staticmethod
    def _report_of_spec(spec: DynoSpec, state: DynoState, started_at: str) -> DynoReport:
        return DynoReport(
            id=spec.id,
            app_id=AppId(spec.app_id),
            name=DynoName(spec.name),
            process_type=ProcessType(spec.process_type),
            release_version=ReleaseVersion(spec.release_version),
            state=state,
            command=spec.labels.get(COMMAND_LABEL, spec.command),
            size=spec.size,
            started_at=started_at,
            kind="one-off" if is_one_off(spec) else "formation",
        )

    def _with_retry(self, report: DynoReport) -> DynoReport:
        """A crashed formation dyno waiting out its back-off says when it is restarted."""
        slot = self._slots.get((report.app_id, report.name))
        if report.state != "crashed" or report.kind != "formation" or slot is None:
            return report
        if slot.restart_at is None or slot.restart_at <= self.clock.now():
            return report
        return replace(report, next_retry_at=slot.restart_at.isoformat())

    async def _report(self, dynos: Sequence[RunningDyno]) -> None:
        if self.client is None:
            return
        current = [self._report_of(d) for d in dynos] + list(self._tombstones.values())
        reports = [self._with_retry(r) for r in current]
        payload = sorted(reports, key=lambda r: r.id)  # compared as records: cheaper than JSON
        now = self.clock.monotonic()
        if payload == self._last_report and now - self._last_report_at < REPORT_EVERY:
            return
        try:
            await self.client.report_dynos(self.host, reports)
        except Exception as exc:
            if not self._report_failing:
                log.warning("cannot report dynos to the control plane (%s); retrying", exc)
                self._report_failing = True
            return
        if self._report_failing:
            log.info("reporting dynos to the control plane works again")
            self._report_failing = False
        self._last_report = payload
        self._last_report_at = now


_STOP_LINES: dict[str, tuple[str, ...]] = {
    "idle": ("Idling", "State changed from up to idle"),
    "ttl": ("Time to live of {ttl} seconds reached",),
    "hangup": ("The attached client went away",),
}
"""What the dyno manager logs before ``Stopping all processes with SIGTERM``, by reason."""


def _spec_of(want: DesiredDyno) -> DynoSpec:
    """A new dyno for ``want`` (a one-off dyno keeps the id the control plane gave it)."""
    return DynoSpec(
        id=want.dyno_id if want.kind == "one-off" else str(uuid.uuid4()),
        app_id=want.app_id,
        app_name=want.app_name,
        name=want.name,
        process_type=want.process_type,
        release_version=int(want.release_version),
        slug_digest=want.slug_digest,
        command=want.command,
        env=dict(want.env),
        size=want.size,
        generation=want.generation,
        labels=_labels(want),
    )


def _labels(want: DesiredDyno) -> dict[str, str]:
    if want.kind != "one-off":
        return {}
    labels = {ONE_OFF_LABEL: "one-off", COMMAND_LABEL: want.command}
    if want.attach:
        labels[ATTACH_LABEL] = "1"
    if want.time_to_live is not None:
        labels[TTL_LABEL] = f"{want.time_to_live:g}"
    return labels


def _attached(spec: DynoSpec) -> bool:
    return spec.labels.get(ATTACH_LABEL) == "1"


async def _answers(address: str) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), PROBE_TIMEOUT)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _write_json(path: Path, data: object) -> None:
    """Replace ``path`` atomically; readable by its owner only (the cache holds config vars)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def main(settings: Settings) -> None:
    """Run this host's dyno manager in the foreground until SIGINT or SIGTERM.

    Stopping the agent does NOT stop the dynos: they keep running (and serving) while no agent
    runs, and the next agent adopts them through ``Runtime.list()``. Stops already under way are
    finished before it exits. To stop every dyno, use ``python -m dockyard.serve stop-dynos``.
    """
    runtime = load_runtime(settings)
    if not runtime.sandboxed:
        log.warning(
            "THE %r RUNTIME IS NOT SANDBOXED: dynos run as plain processes of user %d with full "
            "access to this host, its files and its network. Run only code you trust.",
            runtime.name,
            os.geteuid(),
        )
    token = ensure_secret_file(settings.internal_token_file)
    asyncio.run(_serve(settings, runtime, token))


async def _serve(settings: Settings, runtime: Runtime, token: str) -> None:
    import signal

    api = DataPlaneClient.connect(settings.api_url, token)
    manager = DynoManager(
        settings,
        runtime,
        api,
        SystemClock(),
        network_watch=NetworkWatch.for_runtime(settings, runtime),
    )
    wake = WakeServer(settings.agent_socket, manager.wake)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, manager.request_stop)
    await wake.start()
    log.info("dyno manager of %s running (runtime %s)", manager.host, runtime.name)
    try:
        await manager.run()
    finally:
        await wake.close()
        await api.aclose()
        log.info("dyno manager stopped; its dynos keep running")
