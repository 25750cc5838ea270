"""RuncRuntime against the real runc, a real stack image and real slugs (root; loopback-only dynos)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.errors import DynoError
from dockyard.runtime import cgroups
from dockyard.runtime.runc import RuncRuntime, listening_ports, memory_limits, swap_active
from dockyard.slug.mount import mount_points
from tests.runtime.runc_support import (
    current,
    output_of,
    pids_of,
    reachable_dir,
    requires_runc,
    run_to_end,
    runc_runtime,
    runc_settings,
    spec,
    wait_for,
)

pytestmark = [requires_runc, pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture
def env() -> Iterator[tuple[RuncRuntime, str]]:
    with runc_runtime() as pair:
        yield pair


def test_a_web_dyno_listens_on_its_port_inside_its_own_network_namespace(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno = runtime.start(spec(slug, "python3 app.py"))
    assert dyno.state == "running"
    assert dyno.address == ""  # no network attached: the host cannot reach $PORT
    assert 5000 <= dyno.port < 6000
    wait_for(lambda: runtime.listening(dyno.spec.id), what="the app binding $PORT")
    assert f"listening on {dyno.port}" in output_of(runtime, dyno.spec.id)
    assert dyno.port not in listening_ports(1)  # not in the host's network namespace


def test_the_environment_is_heroku_s(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    command = (
        'echo "PORT=$PORT DYNO=$DYNO HOME=$HOME PWD=$PWD GREETING=$GREETING"; '
        'echo "PROFILE=$FROM_PROFILE_D"; echo "HOSTNAME=$(hostname) UID=$(id -u) USER=$(id -un)"'
    )
    code, output = run_to_end(runtime, spec(slug, command, name="worker.2"))
    assert code == 0
    lines = output.splitlines()
    assert lines[0].startswith("PORT=5")
    assert "DYNO=worker.2 HOME=/app PWD=/app GREETING=hello world" in lines[0]
    assert lines[1] == "PROFILE=sourced from /app"
    assert lines[2] == "HOSTNAME=worker.2 UID=1000 USER=dyno"


def test_the_exit_status_of_the_command_is_reported(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    code, output = run_to_end(runtime, spec(slug, "echo bye; exit 3"))
    assert (code, output) == (3, "bye\n")


def test_app_is_writable_and_each_dyno_starts_from_the_slug(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    write = (
        "echo scratch > /app/new.txt && mkdir -p /app/.profile.d/sub/dir && echo made && "
        "cat /app/new.txt && test -f /app/app.py && echo slug-visible"
    )
    code, output = run_to_end(runtime, spec(slug, write))
    assert code == 0, output
    assert output.split() == ["made", "scratch", "slug-visible"]
    code, output = run_to_end(runtime, spec(slug, "ls -a /app /app/.profile.d"))
    assert code == 0
    assert "new.txt" not in output and "sub" not in output  # ephemeral: a new dyno, a fresh /app


def test_the_slug_s_own_files_stay_read_only(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    code, output = run_to_end(runtime, spec(slug, "echo x >> /app/app.py"))
    assert code != 0
    assert "Permission denied" in output


def test_writes_beyond_the_scratch_and_tmp_caps_fail_with_enospc() -> None:
    with runc_runtime(DOCKYARD_RUNTIME_SCRATCH_SIZE_MB="8", DOCKYARD_RUNTIME_TMP_SIZE_MB="8") as (
        runtime,
        slug,
    ):
        fill = (
            "head -c 20M /dev/zero > /app/big; echo app=$?; "
            "head -c 20M /dev/zero > /tmp/big; echo tmp=$?"
        )
        code, output = run_to_end(runtime, spec(slug, fill))
        assert code == 0
        assert output.count("No space left on device") == 2
        assert "app=1" in output and "tmp=1" in output


def test_without_swap_the_ram_limit_is_the_r15_line_and_with_swap_the_quota(
    tmp_path: Path,
) -> None:
    quota = cgroups.limits_for(cgroups.size_of("standard-1x"))
    assert memory_limits(quota, swap=True).memory_bytes == 512 << 20
    assert memory_limits(quota, swap=False).memory_bytes == 1024 << 20
    assert memory_limits(quota, swap=False).memory_swap_bytes == 1024 << 20
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
    assert not swap_active(swaps)
    swaps.write_text(swaps.read_text() + "/swapfile\tfile\t1048572\t0\t-2\n")
    assert swap_active(swaps)
    assert not swap_active(tmp_path / "missing")


@pytest.mark.parametrize(
    ("size", "memory", "pids"),
    [("standard-1x", 512 << 20, 256), ("standard-2x", 1024 << 20, 512)],
)
def test_the_dyno_size_sets_its_cgroup_limits(
    env: tuple[RuncRuntime, str], size: str, memory: int, pids: int
) -> None:
    runtime, slug = env
    show = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
        "ulimit -n; ulimit -c; exec sleep 60"
    )
    dyno = runtime.start(spec(slug, show, size=size))
    wait_for(lambda: len(output_of(runtime, dyno.spec.id).split()) == 4, what="the limits printed")
    ram = memory if swap_active() else 2 * memory  # without swap the R14 zone is in RAM
    assert output_of(runtime, dyno.spec.id).split() == [str(ram), str(pids), "10000", "0"]
    usage = runtime.usage(dyno.spec.id)
    assert usage is not None
    assert (usage.memory_limit_bytes, usage.pids_limit) == (ram, pids)
    assert usage.memory_swap_limit_bytes in (2 * memory, -1)  # 2x where the host accounts swap
    assert usage.pids >= 2 and usage.oom_kills == 0


def test_stop_sends_sigterm_to_every_process_of_the_dyno(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    dyno = runtime.start(spec(slug, "sleep 600 & sleep 600 & wait"))
    wait_for(lambda: pids_of(runtime, dyno.spec.id) >= 4, what="4 processes")
    started = time.monotonic()
    runtime.stop(dyno.spec.id, timeout=20)
    assert time.monotonic() - started < 10  # every sleep got SIGTERM; none needed the SIGKILL
    assert runtime.list() == []
    assert runtime.usage(dyno.spec.id) is None  # the cgroup is gone


def test_stop_kills_a_dyno_that_ignores_sigterm_after_the_timeout(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno = runtime.start(spec(slug, "trap '' TERM; echo ready; while :; do sleep 0.1; done"))
    wait_for(lambda: "ready" in output_of(runtime, dyno.spec.id), what="the trap set")
    started = time.monotonic()
    runtime.stop(dyno.spec.id, timeout=1)
    assert time.monotonic() - started >= 1
    assert runtime.list() == []
    assert not (runtime.root / dyno.spec.id).exists()


def test_a_new_runtime_adopts_running_dynos_and_can_stop_them(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno = runtime.start(spec(slug, "python3 app.py"))
    adopter = RuncRuntime(runtime.settings, network="none")
    [adopted] = adopter.list()
    assert (adopted.spec, adopted.port, adopted.state) == (dyno.spec, dyno.port, "running")
    adopter.stop(dyno.spec.id, timeout=5)
    assert runtime.list() == []


def test_dynos_of_one_slug_share_its_mount_and_release_unused_drops_it(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    first = runtime.start(spec(slug, "exec sleep 60"))
    second = runtime.start(spec(slug, "exec sleep 60", name="web.2"))
    assert runtime.mounter.mounted() == {slug}
    owner_layers = list(runtime.owners_root.iterdir())
    assert len(owner_layers) == 1  # one per slug and app
    runtime.release_unused(set())
    assert runtime.mounter.mounted() == {slug}  # still used by running dynos
    for dyno in (first, second):
        runtime.stop(dyno.spec.id, timeout=5)
    runtime.release_unused(set())
    assert runtime.mounter.mounted() == set()
    assert list(runtime.owners_root.iterdir()) == []


def test_an_unknown_size_is_refused_and_leaves_nothing(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    with pytest.raises(DynoError, match="unknown dyno size 'huge'"):
        runtime.start(spec(slug, "true", size="huge"))
    assert leftovers(runtime) == []


def test_a_missing_slug_fails_the_start_and_leaves_no_mount(env: tuple[RuncRuntime, str]) -> None:
    runtime, _slug = env
    with pytest.raises(DynoError, match=r"cannot start web\.1"):
        runtime.start(spec("0" * 64, "true"))
    assert leftovers(runtime) == []
    mounted = {p for p in mount_points() if runtime.settings.data_dir.parent in p.parents}
    assert mounted == {runtime.stacks.mount_point(runtime.stacks.require())}  # the stack alone


def test_without_a_stack_image_the_start_says_how_to_build_one() -> None:
    with reachable_dir() as base:
        settings = runc_settings(base, DOCKYARD_RUNTIME_STACKS_DIR=str(base / "no-stacks"))
        runtime = RuncRuntime(settings, network="none")
        with pytest.raises(DynoError, match=r"dockyard stack:build"):
            runtime.start(spec("0" * 64, "true"))
        assert leftovers(runtime) == []


def test_a_second_dyno_with_the_same_id_is_refused(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    dyno = spec(slug, "exec sleep 60")
    runtime.start(dyno)
    with pytest.raises(DynoError, match="already exists"):
        runtime.start(dyno)
    assert current(runtime, dyno.id).state == "running"


def leftovers(runtime: RuncRuntime) -> list[str]:
    """What the runtime keeps in its dynos directory (nothing, after a failed start)."""
    return sorted(p.name for p in runtime.root.iterdir()) if runtime.root.is_dir() else []


# -- prepared ahead ----------------------------------------------------------------------------------


def runc_status(runtime: RuncRuntime, dyno_id: str) -> str:
    result = proc.run(["runc", "--root", runtime.runc_root, "state", dyno_id], check=False)
    return str(json.loads(result.stdout)["status"]) if result.returncode == 0 else "gone"


def test_a_prepared_dyno_runs_nothing_until_started_then_runs_as_any_dyno(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno = spec(slug, "echo started; exec python3 app.py")
    runtime.prepare(dyno)
    assert (runtime.list(), runtime.prepared()) == ([], [dyno])
    assert runc_status(runtime, dyno.id) == "created"
    assert (runtime.root / dyno.id / "output.log").read_text() == ""
    started = runtime.start(dyno)
    assert (started.spec, started.state) == (dyno, "running")
    assert runtime.prepared() == []
    assert runc_status(runtime, dyno.id) == "running"
    wait_for(lambda: runtime.listening(dyno.id), what="the app binding $PORT")
    assert output_of(runtime, dyno.id).startswith("started\n")


def test_a_prepared_dyno_reports_its_command_s_exit_status(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    dyno = spec(slug, "echo bye; exit 3")
    runtime.prepare(dyno)
    assert run_to_end(runtime, dyno) == (3, "bye\n")


def test_prepared_dynos_are_discarded_by_stop_and_by_release_unused_of_their_slug(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    first, second = spec(slug, "exec sleep 60"), spec(slug, "exec sleep 60", name="web.2")
    runtime.prepare(first)
    runtime.prepare(second)
    runtime.stop(first.id, timeout=5)
    assert runtime.prepared() == [second]
    runtime.release_unused({slug})
    assert runtime.prepared() == [second]  # its slug is still wanted
    runtime.release_unused(set())
    assert runtime.prepared() == []
    assert leftovers(runtime) == []
    assert runtime.mounter.mounted() == set()
    assert [p for p in mount_points() if runtime.run_root in p.parents] == [
        runtime.stacks.mount_point(runtime.stacks.require())
    ]
    assert runc_status(runtime, second.id) == "gone"


def test_a_prepared_dyno_whose_container_was_killed_starts_from_scratch(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno = spec(slug, "python3 app.py")
    runtime.prepare(dyno)
    os.kill(int((runtime.root / dyno.id / "pid").read_text()), signal.SIGKILL)
    wait_for(lambda: runc_status(runtime, dyno.id) == "stopped", what="the container's end")
    assert runtime.start(dyno).state == "running"
    wait_for(lambda: runtime.listening(dyno.id), what="the app binding $PORT")
