"""ProcessRuntime against real slugs and real processes."""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import DynoError
from dockyard.runtime.base import DynoSpec, RunningDyno, Runtime
from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import Settings
from dockyard.slug.mount import SlugMounter
from dockyard.slug.store import SlugStore
from tests.runtime.slugs import clean_up

WEB = "python3 app.py"


def make_spec(
    slug: str, command: str = WEB, *, name: str = "web.1", env: Mapping[str, str] | None = None
) -> DynoSpec:
    return DynoSpec(
        id=str(uuid.uuid4()),
        app_id="app-1",
        app_name="demo",
        name=name,
        process_type=name.split(".")[0],
        release_version=3,
        slug_digest=slug,
        command=command,
        env=dict(env or {"GREETING": "hello world"}),
        size="standard-1x",
        labels={"origin": "test"},
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a real process to get somewhere (boot, exit); fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.02)


def get_json(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        result: dict[str, Any] = json.loads(response.read())
        return result
    finally:
        conn.close()


def answers(port: int) -> bool:
    try:
        get_json(port)
    except OSError:
        return False
    return True


def only(runtime: ProcessRuntime, dyno_id: str) -> RunningDyno:
    matches = [d for d in runtime.list() if d.spec.id == dyno_id]
    assert len(matches) == 1
    return matches[0]


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def test_process_runtime_is_a_runtime_and_says_it_is_not_sandboxed(
    runtime: ProcessRuntime,
) -> None:
    as_protocol: Runtime = runtime
    assert as_protocol.name == "process"
    assert as_protocol.sandboxed is False


def test_started_web_dyno_answers_on_its_port_and_is_listed_running(
    runtime: ProcessRuntime, slug: str
) -> None:
    spec = make_spec(slug)
    dyno = runtime.start(spec)
    assert dyno.address == f"127.0.0.1:{dyno.port}"
    wait_for(lambda: answers(dyno.port))
    listed = only(runtime, spec.id)
    assert listed.state == "running"
    assert listed.spec == spec
    assert listed.port == dyno.port
    assert listed.exit_code is None


def test_dyno_sees_port_dyno_home_config_vars_and_profile_d(
    runtime: ProcessRuntime, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug, name="web.2"))
    wait_for(lambda: answers(dyno.port))
    seen = get_json(dyno.port)
    home = str(runtime.mounter.path(slug))
    assert seen["cwd"] == home
    assert seen["env"]["PORT"] == str(dyno.port)
    assert seen["env"]["DYNO"] == "web.2"
    assert seen["env"]["HOME"] == home
    assert seen["env"]["GREETING"] == "hello world"
    assert seen["env"]["FROM_PROFILE_D"] == f"sourced from {home}"
    assert "/usr/bin" in seen["env"]["PATH"]


def test_output_goes_to_the_dyno_output_file(runtime: ProcessRuntime, slug: str) -> None:
    dyno = runtime.start(make_spec(slug))
    assert dyno.output_path is not None
    output = dyno.output_path
    wait_for(lambda: output.exists() and b"listening on" in output.read_bytes())
    assert output.read_text().strip() == f"listening on {dyno.port}"


def test_command_quoting_is_passed_to_the_shell_intact(runtime: ProcessRuntime, slug: str) -> None:
    command = """echo "it's \\"quoted\\"" $GREETING 'a  b' && echo second; exit 0"""
    dyno = runtime.start(make_spec(slug, command, name="worker.1"))
    wait_for(lambda: only(runtime, dyno.spec.id).state == "exited")
    assert dyno.output_path is not None
    assert dyno.output_path.read_text() == 'it\'s "quoted" hello world a  b\nsecond\n'
    assert only(runtime, dyno.spec.id).exit_code == 0


def test_stop_kills_the_whole_group_and_forgets_the_dyno(
    runtime: ProcessRuntime, slug: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    command = f'sleep 300 & echo $! > "$PIDFILE"; {WEB}'
    dyno = runtime.start(make_spec(slug, command, env={"PIDFILE": str(pidfile)}))
    wait_for(lambda: answers(dyno.port))
    grandchild = int(pidfile.read_text())
    assert not process_gone(grandchild)
    runtime.stop(dyno.spec.id, timeout=5)
    assert process_gone(grandchild)
    assert not answers(dyno.port)
    assert runtime.list() == []
    assert not (runtime.root / dyno.spec.id).exists()


def test_stop_sends_sigkill_after_the_timeout_when_sigterm_is_ignored(
    runtime: ProcessRuntime, slug: str
) -> None:
    command = "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done"
    dyno = runtime.start(make_spec(slug, command, name="worker.1"))
    path = dyno.output_path
    assert path is not None
    wait_for(lambda: b"ready" in path.read_bytes())
    with path.open("rb") as output:  # stays readable after the directory is removed
        began = time.monotonic()
        runtime.stop(dyno.spec.id, timeout=0.5)
        waited = time.monotonic() - began
        assert b"got TERM" in output.read()
    assert waited >= 0.5
    assert runtime.list() == []


def test_crashing_command_is_listed_exited_with_its_code(
    runtime: ProcessRuntime, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug, "echo boom; exit 3"))
    wait_for(lambda: only(runtime, dyno.spec.id).state == "exited")
    listed = only(runtime, dyno.spec.id)
    assert listed.exit_code == 3
    runtime.stop(dyno.spec.id, timeout=1)
    assert runtime.list() == []


def test_killed_dyno_reports_128_plus_the_signal(runtime: ProcessRuntime, slug: str) -> None:
    dyno = runtime.start(make_spec(slug, "exec sleep 300", name="worker.1"))
    wait_for(lambda: "sleep" in Path(f"/proc/{only_pid(runtime, dyno)}/cmdline").read_text())
    os.kill(only_pid(runtime, dyno), 9)
    wait_for(lambda: only(runtime, dyno.spec.id).state == "exited")
    assert only(runtime, dyno.spec.id).exit_code == 137


def only_pid(runtime: ProcessRuntime, dyno: RunningDyno) -> int:
    state = json.loads((runtime.root / dyno.spec.id / "dyno.json").read_text())
    return int(state["pid"])


def test_a_new_runtime_adopts_running_dynos(
    runtime: ProcessRuntime, settings: Settings, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug))
    wait_for(lambda: answers(dyno.port))
    adopter = ProcessRuntime(settings)
    adopted = only(adopter, dyno.spec.id)
    assert adopted.state == "running"
    assert adopted.port == dyno.port
    assert adopted.spec == dyno.spec
    adopter.stop(dyno.spec.id, timeout=5)
    assert not answers(dyno.port)
    assert runtime.list() == []


def test_an_adopted_dyno_that_dies_is_exited_with_an_unknown_code(
    runtime: ProcessRuntime, settings: Settings, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug, "exec sleep 300", name="worker.1"))
    adopter = ProcessRuntime(settings)
    pid = only_pid(adopter, dyno)
    wait_for(lambda: "sleep" in Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(pid, 9)
    wait_for(lambda: only(adopter, dyno.spec.id).state == "exited")
    assert only(adopter, dyno.spec.id).exit_code is None


def test_a_reused_pid_is_not_mistaken_for_the_dyno(
    runtime: ProcessRuntime, settings: Settings, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug, "exec sleep 300", name="worker.1"))
    state_file = runtime.root / dyno.spec.id / "dyno.json"
    state = json.loads(state_file.read_text())
    real_pid = state["pid"]
    state["pid"] = os.getpid()  # a living process, but not the one that was started
    state_file.write_text(json.dumps(state))
    adopter = ProcessRuntime(settings)
    assert only(adopter, dyno.spec.id).state == "exited"
    adopter.stop(dyno.spec.id, timeout=1)  # must not signal this test process
    assert adopter.list() == []
    os.kill(real_pid, 9)
    wait_for(lambda: not runtime.list() and process_gone(real_pid))


def test_stop_of_an_unknown_dyno_is_ignored(runtime: ProcessRuntime) -> None:
    runtime.stop("no-such-dyno", timeout=1)
    assert runtime.list() == []


def test_start_with_a_missing_slug_is_a_dyno_error(runtime: ProcessRuntime) -> None:
    with pytest.raises(DynoError, match="not in the slug store"):
        runtime.start(make_spec("f" * 64))
    assert runtime.list() == []


def test_two_dynos_get_different_ports(runtime: ProcessRuntime, slug: str) -> None:
    first = runtime.start(make_spec(slug, name="web.1"))
    second = runtime.start(make_spec(slug, name="web.2"))
    assert first.port != second.port
    wait_for(lambda: answers(first.port) and answers(second.port))


def test_release_unused_unmounts_only_slugs_no_dyno_uses(
    runtime: ProcessRuntime, slug: str
) -> None:
    dyno = runtime.start(make_spec(slug, "exec sleep 300", name="worker.1"))
    runtime.release_unused(set())
    assert runtime.mounter.mounted() == {slug}
    runtime.stop(dyno.spec.id, timeout=1)
    runtime.release_unused({slug})
    assert runtime.mounter.mounted() == {slug}
    runtime.release_unused(set())
    assert runtime.mounter.mounted() == set()


def test_runtime_works_on_unpacked_slugs_as_without_root(settings: Settings, slug: str) -> None:
    mounter = SlugMounter(settings.data_dir / "unpacked", SlugStore(settings.slugs_dir), loop=False)
    runtime = ProcessRuntime(settings, mounter=mounter)
    try:
        dyno = runtime.start(make_spec(slug))
        wait_for(lambda: answers(dyno.port))
        assert get_json(dyno.port)["cwd"] == str(mounter.path(slug))
    finally:
        clean_up(runtime)
    assert mounter.mounted() == set()
