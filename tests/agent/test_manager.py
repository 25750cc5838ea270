"""DynoManager rounds with a fake control plane and the real ProcessRuntime."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dockyard._util.clock import SystemClock
from dockyard.agent.manager import DynoManager
from dockyard.agent.memory import Usage
from dockyard.agent.reconcile import RestartPolicy
from dockyard.agent.wake import RequestLog, WakeServer
from dockyard.client.dataplane import Versioned
from dockyard.domain.dataplane import DesiredDyno, DynoReport
from dockyard.errors import InvalidError, UnavailableError
from dockyard.logs.store import FileLogStore
from dockyard.runtime.base import DynoSpec, RunningDyno, load_runtime
from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import AgentSettings, Settings, load_settings
from dockyard.slug.store import SlugStore
from dockyard.types import AppId, AppName, ProcessType, ReleaseVersion, SlugDigest
from tests.runtime.slugs import build_slug, clean_up

APP_ID = "3f1c0d5e-0000-4000-8000-000000000001"
HOST = "host-1"


class ShiftedClock(SystemClock):
    """Real time, plus a jump the test makes (dynos are real processes started at real times)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FakeDataPlane:
    """The two calls of DataPlaneClient the agent makes, with an ETag and an outage switch."""

    def __init__(self) -> None:
        self.desired: list[DesiredDyno] = []
        self.down = False
        self.reports: list[list[DynoReport]] = []

    async def desired_dynos(
        self, host: str, etag: str | None = None, *, wait: float = 0.0
    ) -> Versioned[list[DesiredDyno]] | None:
        assert host == HOST
        if self.down:
            raise UnavailableError("cannot reach the Dockyard API: connection refused")
        body = json.dumps([d.to_json() for d in self.desired], sort_keys=True)
        current = hashlib.sha256(body.encode()).hexdigest()
        if etag == current:
            return None
        return Versioned(list(self.desired), current)

    async def report_dynos(self, host: str, dynos: Sequence[DynoReport]) -> None:
        assert host == HOST
        if self.down:
            raise UnavailableError("cannot reach the Dockyard API: connection refused")
        self.reports.append(list(dynos))

    @property
    def last(self) -> dict[str, DynoReport]:
        return {r.name: r for r in self.reports[-1]} if self.reports else {}


@pytest.fixture
def agent_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        agent=AgentSettings(
            runtime="process", refresh_interval=0.02, boot_timeout=60, stop_timeout=2
        ),
    )


@pytest.fixture
def slug(tmp_path: Path, agent_settings: Settings) -> str:
    return build_slug(tmp_path, SlugStore(agent_settings.slugs_dir))


@pytest.fixture
def runtime(agent_settings: Settings) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(agent_settings)
    yield runtime
    clean_up(runtime)


@pytest.fixture
def plane() -> FakeDataPlane:
    return FakeDataPlane()


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


def want(
    slug: str,
    index: int = 1,
    *,
    kind: str = "web",
    command: str = "python3 app.py",
    release: int = 1,
    env: Mapping[str, str] | None = None,
) -> DesiredDyno:
    return DesiredDyno(
        app_id=AppId(APP_ID),
        app_name=AppName("demo"),
        process_type=ProcessType(kind),
        index=index,
        release_version=ReleaseVersion(release),
        slug_digest=SlugDigest(slug),
        command=command,
        env=dict(env or {"GREETING": "hi"}),
        size="standard-1x",
    )


def manager_for(
    settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane | None,
    clock: ShiftedClock,
    policy: RestartPolicy | None = None,
) -> DynoManager:
    return DynoManager(settings, runtime, plane, clock, host=HOST, policy=policy)


async def rounds_until(
    manager: DynoManager,
    condition: Callable[[], bool],
    timeout: float = 15.0,
    each: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run rounds until ``condition`` holds; real processes need real time to boot and exit."""
    deadline = time.monotonic() + timeout
    while True:
        await manager.tick()
        if each is not None:
            await each()
        if condition():
            return
        if time.monotonic() > deadline:
            pytest.fail("the agent did not get there in time")
        await asyncio.sleep(0.02)


def log_text(settings: Settings) -> str:
    lines = FileLogStore(settings.logs_dir).tail(APP_ID, 1000)
    return "\n".join(f"{line.source}[{line.dyno}]: {line.message}" for line in lines)


def http_ok(address: str) -> bool:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def state_of(plane: FakeDataPlane, name: str) -> str:
    """The last reported state of a dyno (a plain string: it changes between two reads)."""
    return plane.last[name].state


def all_up(plane: FakeDataPlane, *names: str) -> bool:
    last = plane.last
    return sorted(last) == sorted(names) and all(last[n].state == "up" for n in names)


def test_two_desired_web_dynos_run_answer_and_are_reported_up(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, 1), want(slug, 2)]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "web.1", "web.2"))
        await manager.close()

    asyncio.run(scenario())
    reports = plane.last
    assert all(r.address is not None and http_ok(r.address) for r in reports.values())
    assert reports["web.1"].address != reports["web.2"].address
    assert {r.release_version for r in reports.values()} == {1}
    assert len(runtime.list()) == 2
    text = log_text(agent_settings)
    for name in ("web.1", "web.2"):
        assert f"heroku[{name}]: Starting process with command `python3 app.py`" in text
        assert f"heroku[{name}]: State changed from starting to up" in text
        port = reports[name].address.rpartition(":")[2]  # type: ignore[union-attr]
        assert f"app[{name}]: listening on {port}" in text


def test_emptied_formation_stops_the_dynos(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, 1), want(slug, 1, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "web.1", "worker.1"))
        plane.desired = []
        await manager.tick()
        await manager.settle()
        await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert runtime.list() == []
    assert plane.last == {}
    assert runtime.mounter.mounted() == set()  # the slug is released once nobody uses it
    text = log_text(agent_settings)
    assert "heroku[web.1]: Stopping all processes with SIGTERM" in text
    assert "heroku[worker.1]: Stopping all processes with SIGTERM" in text


def test_crashes_are_logged_restarted_at_once_then_backed_off(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="echo boom; exit 3")]
    policy = RestartPolicy(backoff=(0, 3600), boot_timeout=60)

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock, policy)
        await rounds_until(
            manager, lambda: log_text(agent_settings).count("Process exited with status 3") == 2
        )
        for _ in range(5):  # the second crash waits an hour: no third start
            await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    assert text.count("heroku[worker.1]: Starting process with command") == 2
    assert text.count("app[worker.1]: boom") == 2
    assert "heroku[worker.1]: State changed from starting to crashed" in text  # never seen up
    assert "heroku[worker.1]: State changed from crashed to starting" in text
    assert plane.last["worker.1"].state == "crashed"
    assert plane.last["worker.1"].address is None


def test_web_dyno_that_never_binds_gets_r10_and_is_reported_crashed(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, command="exec sleep 300")]
    policy = RestartPolicy(backoff=(3600,), boot_timeout=60)

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock, policy)
        await rounds_until(manager, lambda: plane.last.get("web.1") is not None)
        assert plane.last["web.1"].state == "starting"
        clock.advance(61)
        await manager.tick()
        await manager.settle()
        await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert runtime.list() == []
    assert plane.last["web.1"].state == "crashed"
    text = log_text(agent_settings)
    assert (
        "heroku[web.1]: Error R10 (Boot timeout) -> Web process failed to bind to $PORT "
        "within 60 seconds of launch"
    ) in text
    assert "heroku[web.1]: Stopping process with SIGKILL" in text
    assert "heroku[web.1]: State changed from starting to crashed" in text


def test_new_release_replaces_web_dynos_without_a_gap(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, release=1)]
    gaps: list[str] = []

    async def check_serving() -> None:
        answering = [d for d in runtime.list() if d.state == "running" and http_ok(d.address)]
        if not answering:
            gaps.append("no web dyno answered")

    def only_v2_up() -> bool:
        dynos = runtime.list()
        return [d.spec.release_version for d in dynos] == [2] and all_up(plane, "web.1")

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        plane.desired = [want(slug, release=2, env={"GREETING": "v2"})]
        await rounds_until(manager, only_v2_up, each=check_serving)
        await manager.close()

    asyncio.run(scenario())
    assert gaps == []
    text = log_text(agent_settings)
    second_start = text.rindex("Starting process with command")
    assert second_start < text.index("Stopping all processes with SIGTERM")


def test_while_the_api_is_down_the_cache_keeps_dynos_running_and_restarted(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plane.desired = [want(slug, 1)]

    async def scenario() -> None:
        first = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(first, lambda: all_up(plane, "web.1"))
        await first.close()
        plane.down = True
        # a restarted agent, with the control plane away: it adopts the dyno from the cache
        restarted = manager_for(agent_settings, second_runtime, plane, clock)
        for _ in range(3):
            await restarted.tick()
        assert [d.state for d in runtime.list()] == ["running"]
        (dyno,) = runtime.list()
        pid = json.loads((runtime.root / dyno.spec.id / "dyno.json").read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)

        def replaced() -> bool:
            dynos = restarted.runtime.list()
            return (
                len(dynos) == 1 and dynos[0].spec.id != dyno.spec.id and http_ok(dynos[0].address)
            )

        await rounds_until(restarted, replaced)
        await restarted.close()

    second_runtime = ProcessRuntime(agent_settings)
    try:
        with caplog.at_level(logging.WARNING, logger="dockyard.agent.manager"):
            asyncio.run(scenario())
    finally:
        clean_up(second_runtime)  # it started the replacement: it reaps it
    cache = json.loads((agent_settings.state_dir / "desired-dynos.json").read_text())
    assert [d["index"] for d in cache["dynos"]] == [1]
    assert oct((agent_settings.state_dir / "desired-dynos.json").stat().st_mode & 0o777) == "0o600"
    fetch_warnings = [r for r in caplog.records if "cannot fetch the desired dynos" in r.message]
    report_warnings = [r for r in caplog.records if "cannot report dynos" in r.message]
    assert len(fetch_warnings) == 1
    assert len(report_warnings) == 1
    text = log_text(agent_settings)
    assert "heroku[web.1]: State changed from up to crashed" in text
    # the restarted agent resumed the first dyno's output where the first agent stopped
    assert text.count("app[web.1]: listening on") == 2


def test_without_any_desired_state_nothing_is_stopped(
    agent_settings: Settings, runtime: ProcessRuntime, clock: ShiftedClock, slug: str
) -> None:
    spec = DynoSpec(
        id="adopted-1",
        app_id=APP_ID,
        app_name="demo",
        name="worker.1",
        process_type="worker",
        release_version=1,
        slug_digest=slug,
        command="exec sleep 300",
        env={},
        size="standard-1x",
    )
    runtime.start(spec)

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, None, clock)
        for _ in range(3):
            await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert [(d.spec.id, d.state) for d in runtime.list()] == [("adopted-1", "running")]


def test_runtime_is_chosen_by_name(agent_settings: Settings) -> None:
    assert isinstance(load_runtime(agent_settings), ProcessRuntime)
    default = load_settings({"DOCKYARD_CONFIG": os.devnull}).agent.runtime
    assert default == ("runc" if os.geteuid() == 0 else "process")  # sandboxed where root allows
    bad = Settings(data_dir=agent_settings.data_dir, agent=AgentSettings(runtime="docker"))
    with pytest.raises(InvalidError, match="unknown runtime 'docker'"):
        load_runtime(bad)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_main_warns_it_is_unsandboxed_and_leaves_dynos_running_on_sigterm(
    tmp_path: Path, slug: str, agent_settings: Settings
) -> None:
    env = {
        **os.environ,
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_DATA_DIR": str(agent_settings.data_dir),
        "DOCKYARD_API_PORT": str(_closed_port()),  # the control plane is away: the cache is used
        "DOCKYARD_AGENT_REFRESH_INTERVAL": "0.05",
        "DOCKYARD_AGENT_RUNTIME": "process",
    }
    settings = load_settings(env)
    cache = {"etag": "", "dynos": [want(slug, 1).to_json()]}
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / "desired-dynos.json").write_text(json.dumps(cache))
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from dockyard.settings import load_settings;"
        "from dockyard.agent.manager import main; main(load_settings())"
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    runtime = ProcessRuntime(settings)
    try:
        deadline = time.monotonic() + 30
        while not any(http_ok(d.address) for d in runtime.list()):
            assert agent.poll() is None, "the agent died"
            assert time.monotonic() < deadline, "the agent started no dyno"
            time.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=20)
        assert agent.returncode == 0
        assert b"NOT SANDBOXED" in stderr
        (dyno,) = runtime.list()
        assert dyno.state == "running"
        assert http_ok(dyno.address)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
        clean_up(runtime)


# -- lifecycle: back-off, R12, R14/R15, cycling, idling ---------------------------------------------


class MeteredRuntime(ProcessRuntime):
    """The process runtime plus the optional ``usage`` method, answering what the test sets."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.memory: dict[str, int] = {}
        self.oom_kills: dict[str, int] = {}
        self.default_memory = 100 << 20

    def usage(self, dyno_id: str) -> Usage:
        return Usage(
            memory_bytes=self.memory.get(dyno_id, self.default_memory),
            oom_kills=self.oom_kills.get(dyno_id, 0),
        )


@pytest.fixture
def metered(agent_settings: Settings) -> Iterator[MeteredRuntime]:
    runtime = MeteredRuntime(agent_settings)
    yield runtime
    clean_up(runtime)


def only_dyno(runtime: ProcessRuntime) -> RunningDyno:
    (dyno,) = [d for d in runtime.list() if d.state == "running"]
    return dyno


def dyno_pid(runtime: ProcessRuntime, dyno_id: str) -> int:
    return int(json.loads((runtime.root / dyno_id / "dyno.json").read_text())["pid"])


def test_a_crash_loop_is_reported_crashed_with_the_time_of_the_next_retry(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exit 3")]
    policy = replace(RestartPolicy(), backoff=(0, 1200))

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock, policy)
        await rounds_until(
            manager, lambda: log_text(agent_settings).count("Process exited with status 3") == 2
        )
        await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    report = plane.last["worker.1"]
    assert report.state == "crashed"
    assert report.next_retry_at is not None
    wait = datetime.fromisoformat(report.next_retry_at) - clock.now()
    assert timedelta(minutes=19) < wait <= timedelta(minutes=20)


def test_a_process_that_ignores_sigterm_gets_r12_and_sigkill(
    tmp_path: Path, plane: FakeDataPlane, clock: ShiftedClock
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        agent=AgentSettings(refresh_interval=0.02, stop_timeout=0.5),
    )
    digest = build_slug(tmp_path, SlugStore(settings.slugs_dir))
    runtime = ProcessRuntime(settings)
    plane.desired = [want(digest, kind="worker", command="trap '' TERM; echo ready; sleep 300")]

    async def scenario() -> None:
        manager = manager_for(settings, runtime, plane, clock)
        await rounds_until(manager, lambda: "app[worker.1]: ready" in log_text(settings))
        plane.desired = []
        await manager.tick()
        await manager.settle()
        await manager.close()

    try:
        asyncio.run(scenario())
        assert runtime.list() == []
    finally:
        clean_up(runtime)
    text = log_text(settings)
    expected = [
        "heroku[worker.1]: Stopping all processes with SIGTERM",
        "heroku[worker.1]: Error R12 (Exit timeout) -> At least one process failed to exit within "
        "0.5 seconds of SIGTERM",
        "heroku[worker.1]: Stopping remaining processes with SIGKILL",
        "heroku[worker.1]: Process exited with status 137",
    ]
    positions = [text.index(line) for line in expected]
    assert positions == sorted(positions)


def test_a_process_that_stops_on_sigterm_gets_no_r12(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "worker.1"))
        plane.desired = []
        await manager.tick()
        await manager.settle()
        await manager.close()

    asyncio.run(scenario())
    assert "R12" not in log_text(agent_settings)


def test_memory_over_quota_logs_r14_once_per_episode(
    agent_settings: Settings,
    metered: MeteredRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, metered, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "worker.1"))
        dyno_id = only_dyno(metered).spec.id
        for memory_mb in (600, 700, 650, 400, 530):  # over, still over, over, under, over again
            metered.memory[dyno_id] = memory_mb << 20
            clock.advance(agent_settings.agent.memory_check_interval)
            await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    assert text.count("heroku[worker.1]: Error R14 (Memory quota exceeded)") == 2
    assert "heroku[worker.1]: Process running mem=600M(117.2%)" in text
    assert "heroku[worker.1]: Process running mem=530M(103.5%)" in text
    assert "mem=700M" not in text


def test_a_dyno_killed_while_over_its_quota_gets_r15_and_is_restarted(
    agent_settings: Settings,
    metered: MeteredRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, metered, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "worker.1"))
        first = only_dyno(metered).spec.id
        metered.memory[first] = 1030 << 20
        clock.advance(agent_settings.agent.memory_check_interval)
        await manager.tick()
        os.killpg(dyno_pid(metered, first), signal.SIGKILL)  # as the kernel's OOM killer does

        def replaced() -> bool:
            running = [d for d in metered.list() if d.state == "running"]
            return len(running) == 1 and running[0].spec.id != first

        await rounds_until(manager, replaced)
        await manager.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    expected = [
        "heroku[worker.1]: Error R14 (Memory quota exceeded)",
        "heroku[worker.1]: Process running mem=1030M(201.2%)",
        "heroku[worker.1]: Error R15 (Memory quota vastly exceeded)",
        "heroku[worker.1]: Stopping process with SIGKILL",
        "heroku[worker.1]: Process exited with status 137",
        "heroku[worker.1]: State changed from up to crashed",
        "heroku[worker.1]: State changed from crashed to starting",
    ]
    positions = [text.rindex(line) for line in expected]
    assert positions == sorted(positions)


def test_a_dyno_its_cgroup_saw_killed_for_memory_gets_r15_even_if_the_last_sample_was_low(
    agent_settings: Settings,
    metered: MeteredRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, metered, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "worker.1"))
        dyno_id = only_dyno(metered).spec.id
        metered.oom_kills[dyno_id] = 1  # grew fast between two samples; the kernel counted it
        os.killpg(dyno_pid(metered, dyno_id), signal.SIGKILL)
        await rounds_until(
            manager, lambda: "Process exited with status 137" in log_text(agent_settings)
        )
        await manager.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    assert "heroku[worker.1]: Error R15 (Memory quota vastly exceeded)" in text
    assert "R14" not in text


def test_a_killed_dyno_that_was_within_its_quota_gets_no_r15(
    agent_settings: Settings,
    metered: MeteredRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, kind="worker", command="exec sleep 300")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, metered, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "worker.1"))
        os.killpg(dyno_pid(metered, only_dyno(metered).spec.id), signal.SIGKILL)
        await rounds_until(
            manager, lambda: "Process exited with status 137" in log_text(agent_settings)
        )
        await manager.close()

    asyncio.run(scenario())
    assert "R15" not in log_text(agent_settings)


def test_a_dyno_is_cycled_after_a_day_plus_its_jitter(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [want(slug, 1)]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        old = only_dyno(runtime)
        clock.advance(manager.policy.cycle_after(old.spec.id) - 60)
        await manager.tick()
        assert "Cycling" not in log_text(agent_settings)
        clock.advance(60)

        def replaced() -> bool:
            dynos = runtime.list()
            return len(dynos) == 1 and dynos[0].spec.id != old.spec.id and all_up(plane, "web.1")

        await rounds_until(manager, replaced)
        await manager.settle()
        await manager.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    expected = [
        "heroku[web.1]: Cycling",
        "heroku[web.1]: State changed from up to starting",
        "heroku[web.1]: Starting process with command `python3 app.py`",
        "heroku[web.1]: Stopping all processes with SIGTERM",
    ]
    positions = [text.rindex(line) for line in expected]
    assert positions == sorted(positions)
    assert text.count("heroku[web.1]: Cycling") == 1


def test_an_idle_eco_web_dyno_sleeps_and_a_wake_starts_it_again(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [replace(want(slug, 1), size="eco")]
    woken: list[list[dict[str, str]]] = []

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        RequestLog(agent_settings.last_request_dir).touch(APP_ID, clock.now())
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        clock.advance(29 * 60)
        await manager.tick()
        assert state_of(plane, "web.1") == "up"
        clock.advance(2 * 60)
        await manager.tick()
        await manager.settle()
        await manager.tick()
        assert runtime.list() == []
        assert state_of(plane, "web.1") == "idle"
        clock.advance(3600)
        for _ in range(3):
            await manager.tick()
        assert runtime.list() == []  # no request, no dyno
        server = WakeServer(agent_settings.agent_socket, manager.wake)
        await server.start()
        running = asyncio.create_task(manager.run())
        reader, writer = await asyncio.open_unix_connection(str(agent_settings.agent_socket))
        writer.write(f"wake {APP_ID}\n".encode())
        answer = json.loads(await asyncio.wait_for(reader.readline(), 20))
        writer.close()
        woken.append(answer["backends"])
        manager.request_stop()
        await running
        await server.close()

    asyncio.run(scenario())
    (backends,) = woken
    assert [b["dyno"] for b in backends] == ["web.1"]
    assert http_ok(backends[0]["address"])
    text = log_text(agent_settings)
    expected = [
        "heroku[web.1]: Idling",
        "heroku[web.1]: State changed from up to idle",
        "heroku[web.1]: Stopping all processes with SIGTERM",
        "heroku[web.1]: Unidling",
        "heroku[web.1]: State changed from idle to starting",
        "heroku[web.1]: State changed from starting to up",
    ]
    positions = [text.rindex(line) for line in expected]
    assert positions == sorted(positions)


# -- one-off dynos -----------------------------------------------------------------------------------

ONE_OFF_ID = "5d7c1c0e-0000-4000-8000-000000004821"


def one_off(
    slug: str, command: str, *, ttl: float = 3600, attach: bool = False, tty: bool = True
) -> DesiredDyno:
    return replace(
        want(slug, 4821, kind="run", command=command, env={"COLUMNS": "100", "LINES": "30"}),
        kind="one-off",
        dyno_id=ONE_OFF_ID,
        time_to_live=ttl,
        attach=attach,
        tty=tty,
    )


def test_a_detached_one_off_dyno_runs_once_and_its_output_goes_to_the_logs(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [one_off(slug, "echo hello from $DYNO; exit 0")]
    reports: list[DynoReport] = []

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: plane.last.get("run.4821", None) is not None)
        await rounds_until(manager, lambda: plane.last["run.4821"].state == "down")
        for _ in range(5):
            await manager.tick()
        await manager.close()
        reports.append(plane.last["run.4821"])
        # a restarted agent does not run it again either, even after the runtime forgot it
        runtime.stop(ONE_OFF_ID, timeout=1)
        restarted = manager_for(agent_settings, runtime, plane, clock)
        for _ in range(3):
            await restarted.tick()
        await restarted.close()

    asyncio.run(scenario())
    text = log_text(agent_settings)
    assert text.count("heroku[run.4821]: Starting process with command") == 1
    assert "app[run.4821]: hello from run.4821" in text
    assert "heroku[run.4821]: Process exited with status 0" in text
    assert "heroku[run.4821]: State changed from starting to complete" in text
    (report,) = reports
    assert (report.id, report.kind, report.state) == (ONE_OFF_ID, "one-off", "down")
    assert report.command == "echo hello from $DYNO; exit 0"
    assert runtime.list() == []


def test_a_one_off_dyno_that_is_no_longer_wanted_is_forgotten(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [one_off(slug, "exit 4")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(
            manager, lambda: getattr(plane.last.get("run.4821"), "state", "") == "crashed"
        )
        plane.desired = []  # the control plane saw it end
        await manager.tick()
        await manager.settle()
        await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert runtime.list() == []
    assert plane.last == {}
    assert "heroku[run.4821]: State changed from starting to crashed" in log_text(agent_settings)


def test_a_one_off_dyno_is_stopped_at_its_time_to_live_and_reported_down(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [one_off(slug, "exec sleep 300", ttl=600)]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "run.4821"))
        clock.advance(600)
        await manager.tick()
        await manager.settle()
        await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert runtime.list() == []
    assert plane.last["run.4821"].state == "down"
    text = log_text(agent_settings)
    assert "heroku[run.4821]: Time to live of 600 seconds reached" in text
    assert "heroku[run.4821]: Stopping all processes with SIGTERM" in text


class FakeRendezvous:
    """The rendezvous service's Unix socket: takes the terminal the agent hands over."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)

    def take(self) -> tuple[str, int]:
        conn, _ = self.sock.accept()
        with conn:
            message, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            conn.sendall(b"ok\n")
        return message.decode().strip(), fds[0]

    def close(self) -> None:
        self.sock.close()


def read_until(fd: int, marker: bytes, timeout: float = 15) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, f"no {marker!r} in {data!r}"
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the dyno's side is closed
                break
            if not chunk:
                break
            data += chunk
    return data


def test_an_attached_one_off_dyno_talks_through_the_terminal_it_hands_over(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    rendezvous = FakeRendezvous(agent_settings.rendezvous_socket)
    command = 'read -r name; echo "hello $name on $(tty) size $(stty size)"; exit 7'
    plane.desired = [one_off(slug, command, attach=True)]
    seen: dict[str, bytes] = {}

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        taking = asyncio.create_task(asyncio.to_thread(rendezvous.take))
        await rounds_until(manager, taking.done)
        message, master = taking.result()
        assert message == f"attach {ONE_OFF_ID}"
        os.write(master, b"dyno\n")
        await rounds_until(
            manager, lambda: getattr(plane.last.get("run.4821"), "state", "") == "crashed"
        )
        seen["output"] = await asyncio.to_thread(read_until, master, b"size")
        seen["end"] = await asyncio.to_thread(read_until, master, b"never")  # EIO once it ended
        os.close(master)
        await manager.close()

    try:
        asyncio.run(scenario())
    finally:
        rendezvous.close()
    assert b"dyno\r\n" in seen["output"]  # echoed: it is a terminal
    assert b"hello dyno on /dev/pts/" in seen["output"]
    assert b"size 30 100" in seen["output"] + seen["end"]
    text = log_text(agent_settings)
    assert "app[run.4821]" not in text  # attached: only start and stop reach the logs
    assert "heroku[run.4821]: Process exited with status 7" in text
    assert plane.last["run.4821"].command == command


def test_an_attached_one_off_dyno_whose_client_leaves_is_stopped(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    rendezvous = FakeRendezvous(agent_settings.rendezvous_socket)
    plane.desired = [one_off(slug, "trap '' HUP; exec sleep 300", attach=True)]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        taking = asyncio.create_task(asyncio.to_thread(rendezvous.take))
        await rounds_until(manager, lambda: taking.done() and all_up(plane, "run.4821"))
        _, master = taking.result()
        os.close(master)  # the client went away: the rendezvous service closes the terminal
        await rounds_until(manager, lambda: plane.last["run.4821"].state == "down")
        await manager.settle()
        await manager.close()

    try:
        asyncio.run(scenario())
    finally:
        rendezvous.close()
    assert runtime.list() == []
    text = log_text(agent_settings)
    assert "heroku[run.4821]: The attached client went away" in text


def test_an_attached_one_off_dyno_without_a_rendezvous_service_fails_to_start(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    plane.desired = [one_off(slug, "bash", attach=True)]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        for _ in range(4):
            await manager.tick()
        await manager.close()

    asyncio.run(scenario())
    assert runtime.list() == []
    assert plane.last["run.4821"].state == "crashed"
    assert log_text(agent_settings).count("heroku[run.4821]: Starting process") == 1


def test_a_release_phase_process_is_left_to_whoever_started_it(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    """The release phase runs in the same runtime; the agent neither stops it nor ships its output."""
    spec = DynoSpec(
        id="5d7c1c0e-0000-4000-8000-00000000beef",
        app_id=APP_ID,
        app_name="shop",
        name="release.7",
        process_type="release",
        release_version=7,
        slug_digest=slug,
        command="echo migrating; sleep 30",
        env={},
        size="standard-1x",
        labels={"dockyard.kind": "release"},
    )
    runtime.start(spec)
    plane.desired = []

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        for _ in range(4):
            await manager.tick()
            await asyncio.sleep(0.1)
        await manager.close()

    try:
        asyncio.run(scenario())
        (seen,) = runtime.list()
        assert (seen.spec.id, seen.state) == (spec.id, "running")
        assert "migrating" not in log_text(agent_settings)
        assert "release.7" not in json.dumps([r.to_json() for r in plane.last.values()])
    finally:
        runtime.stop(spec.id, timeout=1)


class HoldingDataPlane(FakeDataPlane):
    """A control plane that holds a poll whose ETag is current until ``publish`` changes the
    desired dynos, as the API's long polls do."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0
        self._changed = asyncio.Event()

    def publish(self, desired: list[DesiredDyno]) -> None:
        self.desired = desired
        self._changed.set()
        self._changed = asyncio.Event()

    async def desired_dynos(
        self, host: str, etag: str | None = None, *, wait: float = 0.0
    ) -> Versioned[list[DesiredDyno]] | None:
        self.polls += 1
        answer = await super().desired_dynos(host, etag)
        if answer is not None or wait <= 0:
            return answer
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), wait)
        return await super().desired_dynos(host, etag)


def test_a_new_dyno_starts_and_is_reported_up_without_waiting_for_a_round(
    tmp_path: Path, runtime: ProcessRuntime, clock: ShiftedClock, slug: str
) -> None:
    """Rounds are 30 s apart here: only the long poll (new desired dynos) and the starting dyno's
    own probe (it answers) can start the rounds that start it and report it up."""
    settings = Settings(
        data_dir=tmp_path / "data",
        agent=AgentSettings(refresh_interval=30, boot_timeout=60, stop_timeout=2),
    )
    plane = HoldingDataPlane()

    async def scenario() -> None:
        manager = manager_for(settings, runtime, plane, clock)
        running = asyncio.create_task(manager.run())
        try:
            while plane.polls < 2:  # the first answer came at once, the second poll is held
                await asyncio.sleep(0.01)
            plane.publish([want(slug)])
            deadline = time.monotonic() + 15
            while not all_up(plane, "web.1"):
                assert time.monotonic() < deadline, "the dyno was not reported up in time"
                await asyncio.sleep(0.01)
        finally:
            manager.request_stop()
            await running

    asyncio.run(scenario())
    assert plane.polls <= 4, "held polls, no polling"
    (dyno,) = runtime.list()
    assert http_ok(dyno.address)
    text = log_text(settings)
    assert "heroku[web.1]: State changed from starting to up" in text


# -- starts prepared ahead ---------------------------------------------------------------------------


class PreparingRuntime(ProcessRuntime):
    """The process runtime with the optional ``prepare``/``prepared`` of runtimes that can do part of a
    start ahead (runc): a prepared spec is only noted, and ``start`` says which starts were prepared."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.ahead: dict[str, DynoSpec] = {}
        self.started_prepared: list[str] = []
        self.discarded: list[str] = []

    def prepare(self, spec: DynoSpec) -> None:
        self.ahead[spec.id] = spec

    def prepared(self) -> list[DynoSpec]:
        return list(self.ahead.values())

    def start(self, spec: DynoSpec) -> RunningDyno:
        if self.ahead.pop(spec.id, None) == spec:
            self.started_prepared.append(spec.id)
        return super().start(spec)

    def stop(self, dyno_id: str, *, timeout: float) -> None:
        if self.ahead.pop(dyno_id, None) is not None:
            self.discarded.append(dyno_id)
        super().stop(dyno_id, timeout=timeout)


def test_a_sleeping_dyno_is_prepared_ahead_and_its_wake_starts_the_prepared_one(
    agent_settings: Settings, plane: FakeDataPlane, clock: ShiftedClock, slug: str
) -> None:
    runtime = PreparingRuntime(agent_settings)
    plane.desired = [replace(want(slug, 1), size="eco")]

    async def scenario() -> None:
        manager = manager_for(agent_settings, runtime, plane, clock)
        RequestLog(agent_settings.last_request_dir).touch(APP_ID, clock.now())
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        assert runtime.ahead == {}  # nothing is foreseen while it runs
        clock.advance(31 * 60)
        await rounds_until(manager, lambda: plane.last["web.1"].state == "idle")
        await manager.settle()
        await manager.tick()
        (first,) = runtime.prepared()
        assert (first.name, first.size, dict(first.env)) == ("web.1", "eco", {"GREETING": "hi"})
        plane.desired = [replace(want(slug, 1, env={"GREETING": "hello"}), size="eco")]
        await manager.tick()  # a config change while asleep: prepared again as wanted now
        (second,) = runtime.prepared()
        assert runtime.discarded == [first.id]
        assert dict(second.env) == {"GREETING": "hello"}
        RequestLog(agent_settings.last_request_dir).touch(APP_ID, clock.now())
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        assert runtime.started_prepared == [second.id]
        assert [d.spec.id for d in runtime.list()] == [second.id]
        assert runtime.prepared() == []
        await manager.close()

    try:
        asyncio.run(scenario())
    finally:
        clean_up(runtime)


def test_a_replaced_web_dyno_is_reported_gone_then_drains_before_sigterm(
    agent_settings: Settings,
    runtime: ProcessRuntime,
    plane: FakeDataPlane,
    clock: ShiftedClock,
    slug: str,
) -> None:
    settings = replace(agent_settings, agent=replace(agent_settings.agent, drain_seconds=0.5))
    plane.desired = [want(slug, release=1)]
    seen: dict[str, object] = {}

    async def scenario() -> None:
        manager = manager_for(settings, runtime, plane, clock)
        await rounds_until(manager, lambda: all_up(plane, "web.1"))
        old = only_dyno(runtime)
        plane.desired = [want(slug, release=2, env={"GREETING": "v2"})]

        def reported() -> list[tuple[str, int, str]]:
            return [(r.name, r.release_version, r.state) for r in plane.reports[-1]]

        await rounds_until(manager, lambda: reported() == [("web.1", 2, "up")])
        seen["reported"] = reported()
        seen["old answers"] = http_ok(old.address)
        seen["sigterm logged"] = "Stopping all processes with SIGTERM" in log_text(settings)
        await manager.settle()
        seen["old listed"] = old.spec.id in {d.spec.id for d in runtime.list()}
        await manager.close()

    asyncio.run(scenario())
    assert seen == {
        "reported": [("web.1", 2, "up")],
        "old answers": True,
        "sigterm logged": False,
        "old listed": False,
    }
    assert "heroku[web.1]: Stopping all processes with SIGTERM" in log_text(settings)
