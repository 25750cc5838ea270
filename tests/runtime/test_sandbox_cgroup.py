"""A build's cgroup on cgroup v1 and v2 file layouts (plain directories standing for the cgroup file systems):
the limits it writes and how it tells that a command ran out of memory. The real kernel is exercised by
test_sandbox.py."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.runtime.buildcgroup import BuildCgroup

BUILD = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def v1_root(tmp_path: Path) -> Path:
    memory = tmp_path / "memory" / "dockyard-build" / BUILD
    memory.mkdir(parents=True)
    (memory / "memory.memsw.limit_in_bytes").write_text("-1")  # the host accounts swap
    return tmp_path


def v2_root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    return tmp_path


def test_v1_limits_go_to_each_controller(tmp_path: Path) -> None:
    cgroup = BuildCgroup(BUILD, v1_root(tmp_path))

    cgroup.create(memory_bytes=1 << 30, pids=512, cpus=1.5)

    build = Path("dockyard-build") / BUILD
    assert (tmp_path / "memory" / build / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (tmp_path / "memory" / build / "memory.memsw.limit_in_bytes").read_text() == str(1 << 30)
    assert (tmp_path / "pids" / build / "pids.max").read_text() == "512"
    assert (tmp_path / "cpu" / build / "cpu.shares").read_text() == "1024"
    quota = int(min(1.5, os.cpu_count() or 1) * 100_000)
    assert (tmp_path / "cpu" / build / "cpu.cfs_quota_us").read_text() == str(quota)
    assert cgroup.path == f"/dockyard-build/{BUILD}"


def test_v2_limits_go_to_one_directory_with_the_controllers_enabled(tmp_path: Path) -> None:
    cgroup = BuildCgroup(BUILD, v2_root(tmp_path))

    cgroup.create(memory_bytes=1 << 30, pids=512, cpus=0)

    own = tmp_path / "dockyard-build" / BUILD
    assert (own / "memory.max").read_text() == str(1 << 30)
    assert (own / "memory.swap.max").read_text() == "0"
    assert (own / "pids.max").read_text() == "512"
    assert (own / "cpu.max").read_text() == "max 100000"  # no quota
    for directory in (tmp_path, tmp_path / "dockyard-build", own):
        assert (directory / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_v2_counts_oom_kills_of_the_builds_commands(tmp_path: Path) -> None:
    cgroup = BuildCgroup(BUILD, v2_root(tmp_path))
    cgroup.create(memory_bytes=1 << 30, pids=512, cpus=0)
    events = tmp_path / "dockyard-build" / BUILD / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")

    before = cgroup.start_command()
    assert not cgroup.ran_out_of_memory(before, killed=True)
    events.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert cgroup.ran_out_of_memory(before, killed=True)


def test_v1_takes_a_sigkill_at_the_memory_peak_for_an_oom_kill(tmp_path: Path) -> None:
    cgroup = BuildCgroup(BUILD, v1_root(tmp_path))
    cgroup.create(memory_bytes=64 << 20, pids=512, cpus=0)
    peak = tmp_path / "memory" / "dockyard-build" / BUILD / "memory.max_usage_in_bytes"
    peak.write_text(str(64 << 20))

    before = cgroup.start_command()
    assert peak.read_text() == "0"  # the peak starts over with each command
    peak.write_text(str(64 << 20))
    assert cgroup.ran_out_of_memory(before, killed=True)
    assert not cgroup.ran_out_of_memory(before, killed=False)  # it failed on its own
    peak.write_text(str(10 << 20))
    assert not cgroup.ran_out_of_memory(before, killed=True)  # killed by something else
