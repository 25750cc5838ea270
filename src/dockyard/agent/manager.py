"""``DynoManager``: the per-host agent that keeps the desired dynos running (Heroku's dyno manager).

Every ``agent.refresh_interval`` seconds one round:

1. fetches the dynos this host should run from the control plane (``If-None-Match``), caching the
   last answer in ``<state dir>/desired-dynos.json``; while the API is away the cache is used, so
   dynos keep running and crashed ones keep being restarted;
2. lists what the runtime runs and probes web dynos (a TCP connect to ``$PORT``: ``starting`` until
   it answers, then ``up``);
3. copies new output lines of each dyno into its app's log stream (``app[web.1]``) and writes the
   dyno manager's own lines (``heroku[web.1]``);
4. plans with ``reconcile.plan`` and carries the plan out: starts first, stops in the background
   (SIGTERM, then SIGKILL after ``agent.stop_timeout``), R10 for web dynos that do not bind in time;
5. reports every dyno to the control plane; a failed report is logged once per outage, never fatal.
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
from pathlib import Path
from typing import Any, Protocol

from dockyard._util.clock import Clock, SystemClock
from dockyard._util.secretfile import ensure_secret_file
from dockyard.agent.reconcile import (
    Observed,
    RestartPolicy,
    SlotKey,
    SlotState,
    StopReason,
    plan,
    record_crash,
    slot_of,
)
from dockyard.agent.tail import OutputTail
from dockyard.client.dataplane import DataPlaneClient, Versioned
from dockyard.client.http import AsyncApiClient
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


class DataPlane(Protocol):
    """What the manager needs of ``DataPlaneClient``."""

    async def desired_dynos(
        self, host: str, etag: str | None = None
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
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.client = client
        self.clock = clock
        self.host = host or socket.gethostname()
        self.policy = policy or RestartPolicy(boot_timeout=settings.agent.boot_timeout)
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
        self._last_report: list[dict[str, Any]] | None = None
        self._last_report_at = float("-inf")
        self._released_once = False
        self._load_cache()
        self._load_offsets()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run rounds until ``request_stop``; the dynos are left running."""
        while not self._stop_event.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("a dyno manager round failed; trying again in the next one")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop_event.wait(), timeout=self.settings.agent.refresh_interval
                )
        await self.close()

    def request_stop(self) -> None:
        self._stop_event.set()

    async def close(self) -> None:
        """Wait for the stops under way, then close the output files."""
        await self.settle()
        for tail in self._tails.values():
            tail.close()
        self._tails.clear()
        self._save_offsets()

    async def settle(self) -> None:
        """Wait until every stop begun so far has finished."""
        while self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def tick(self) -> None:
        """One round: fetch, look, log, plan, act, report."""
        await self._refresh_desired()
        listed = await asyncio.to_thread(self.runtime.list)
        dynos = [d for d in listed if d.spec.id not in self._stopping]
        self._ship_logs(dynos)
        await self._observe(dynos)
        if self.desired is not None:
            await self._reconcile(self.desired, dynos)
        self._save_offsets()
        await self._report([d for d in dynos if d.spec.id not in self._stopping])

    # -- desired state ---------------------------------------------------------------------------

    async def _refresh_desired(self) -> None:
        if self.client is None:
            return
        try:
            answer = await self.client.desired_dynos(self.host, self._etag)
        except Exception as exc:
            if not self._api_down:
                known = "no desired state yet" if self.desired is None else "the cached state"
                log.warning("cannot fetch the desired dynos (%s); running %s", exc, known)
                self._api_down = True
            return
        if self._api_down:
            log.info("the control plane answers again")
            self._api_down = False
        if answer is None:
            return
        self.desired = list(answer.value)
        self._etag = answer.etag or None
        _write_json(
            self.cache_path, {"etag": answer.etag, "dynos": [d.to_json() for d in self.desired]}
        )
        wanted = {d.key for d in self.desired}
        self._tombstones = {k: v for k, v in self._tombstones.items() if k in wanted}

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
        for dyno in dynos:
            before = self._states.get(dyno.spec.id)
            after: DynoState
            if dyno.state == "exited":
                after = "crashed"
            elif dyno.spec.process_type != "web" or dyno.spec.id in answering or before == "up":
                after = "up"
            else:
                after = "starting"
            self._states[dyno.spec.id] = after
            if before == after or (before is None and after != "crashed"):
                continue  # a dyno adopted from an earlier agent starts its story silently
            if after == "up":
                self._system(dyno.spec, "State changed from starting to up")
            elif after == "crashed":
                if dyno.exit_code is None:
                    self._system(dyno.spec, "Process exited")
                else:
                    self._system(dyno.spec, f"Process exited with status {dyno.exit_code}")
                self._system(dyno.spec, f"State changed from {before or 'up'} to crashed")

    # -- acting ----------------------------------------------------------------------------------

    async def _reconcile(self, desired: list[DesiredDyno], dynos: Sequence[RunningDyno]) -> None:
        observed = [Observed(d, self._states.get(d.spec.id) == "up") for d in dynos]
        result = plan(desired, observed, self._slots, self.clock.now(), self.policy)
        self._slots = dict(result.slots)
        crashed = {slot_of(d.spec) for d in dynos if d.state == "exited"} | set(self._tombstones)
        by_id = {d.spec.id: d for d in dynos}
        for stop in result.stop:
            self._begin_stop(by_id[stop.dyno_id], stop.reason)
        for want in result.start:
            await self._start(want, restarted=want.key in crashed)
        if not self._released_once:
            self._released_once = True
            await self._release_unused()

    async def _start(self, want: DesiredDyno, *, restarted: bool) -> None:
        spec = DynoSpec(
            id=str(uuid.uuid4()),
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
        )
        self._tombstones.pop(want.key, None)
        if restarted:
            self._system(spec, "State changed from crashed to starting")
        self._system(spec, f"Starting process with command `{spec.command}`")
        try:
            async with self._runtime_lock:
                dyno = await asyncio.to_thread(self.runtime.start, spec)
        except Exception as exc:  # a start that fails must not stop the other dynos' rounds
            reason = exc.message if isinstance(exc, DockyardError) else repr(exc)
            log.error("cannot start %s of %s: %s", spec.name, spec.app_name, reason)
            self._system(spec, "Process failed to start (the platform's agent log says why)")
            self._system(spec, "State changed from starting to crashed")
            now = self.clock.now()
            self._slots[want.key] = record_crash(
                self._slots[want.key], spec.id, 0.0, now, self.policy
            )
            self._tombstones[want.key] = self._report_of_spec(spec, "crashed", now.isoformat())
            return
        self._states[spec.id] = "starting"
        if dyno.output_path is not None:
            tail = OutputTail.open(dyno.output_path)
            if tail is not None:
                self._tails[spec.id] = tail

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
            self._system(spec, "Stopping all processes with SIGTERM")
        self._stopping[spec.id] = asyncio.create_task(self._stop(dyno, timeout))

    async def _stop(self, dyno: RunningDyno, timeout: float) -> None:
        dyno_id = dyno.spec.id
        try:
            await asyncio.to_thread(self.runtime.stop, dyno_id, timeout=timeout)
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
            command=spec.command,
            size=spec.size,
            started_at=started_at,
        )

    async def _report(self, dynos: Sequence[RunningDyno]) -> None:
        if self.client is None:
            return
        reports = [self._report_of(d) for d in dynos] + list(self._tombstones.values())
        payload = sorted((r.to_json() for r in reports), key=lambda r: str(r["id"]))
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

    api = AsyncApiClient(settings.api_url, token)
    manager = DynoManager(settings, runtime, DataPlaneClient(api), SystemClock())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, manager.request_stop)
    log.info("dyno manager of %s running (runtime %s)", manager.host, runtime.name)
    try:
        await manager.run()
    finally:
        await api.aclose()
        log.info("dyno manager stopped; its dynos keep running")
