"""Dyno cgroup limits from the dyno size (pure) and reading a dyno's usage from cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.domain.formation import DYNO_SIZES
from dockyard.errors import DynoError
from dockyard.runtime import cgroups


def test_standard_1x_gets_512_mb_a_1_gb_hard_line_256_pids_and_one_cpu() -> None:
    limits = cgroups.limits_for(DYNO_SIZES["standard-1x"], host_cpus=4)
    assert limits.memory_bytes == 512 << 20
    assert limits.memory_swap_bytes == 1024 << 20
    assert limits.pids == 256
    assert (limits.cpu_shares, limits.cpu_quota_us) == (1024, 100_000)


def test_standard_2x_gets_twice_the_memory_pids_and_cpu() -> None:
    limits = cgroups.limits_for(DYNO_SIZES["standard-2x"], host_cpus=4)
    assert (limits.memory_bytes, limits.pids) == (1024 << 20, 512)
    assert (limits.cpu_shares, limits.cpu_quota_us) == (2048, 200_000)


def test_the_cpu_quota_never_exceeds_the_host_and_dedicated_sizes_have_none() -> None:
    assert cgroups.limits_for(DYNO_SIZES["standard-2x"], host_cpus=1).cpu_quota_us == 100_000
    performance = cgroups.limits_for(DYNO_SIZES["performance-l"], host_cpus=2)
    assert performance.cpu_quota_us is None
    assert performance.cpu_shares == 50 * 1024
    assert "quota" not in performance.to_oci()["cpu"]


def test_sizes_are_looked_up_case_insensitively_and_unknown_ones_refused() -> None:
    assert cgroups.size_of("Standard-2X").memory_mb == 1024
    with pytest.raises(DynoError, match="unknown dyno size 'huge'"):
        cgroups.size_of("huge")


def write_cgroup(root: Path, dyno_id: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        controller = "pids" if name.startswith("pids.") else "memory"
        path = root / controller / "dockyard" / dyno_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_usage_adds_rss_swap_and_tmpfs_pages_and_counts_oom_kills(tmp_path: Path) -> None:
    write_cgroup(
        tmp_path,
        "d1",
        {
            "memory.stat": "cache 100\nrss 5\ntotal_cache 4096\ntotal_rss 1000\ntotal_swap 20\n"
            "total_shmem 300\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "memory.limit_in_bytes": "536870912\n",
            "memory.memsw.limit_in_bytes": "1073741824\n",
            "memory.failcnt": "7\n",
            "pids.current": "12\n",
            "pids.max": "256\n",
        },
    )
    usage = cgroups.read_usage("d1", root=tmp_path)
    assert usage == cgroups.Usage(
        memory_bytes=1320,
        memory_limit_bytes=512 << 20,
        memory_swap_limit_bytes=1 << 30,
        swap_bytes=20,
        limit_hits=7,
        oom_kills=2,
        pids=12,
        pids_limit=256,
    )


def test_usage_of_a_dyno_without_a_cgroup_is_none(tmp_path: Path) -> None:
    assert cgroups.read_usage("gone", root=tmp_path) is None


def test_an_unlimited_pids_cgroup_has_no_limit(tmp_path: Path) -> None:
    write_cgroup(
        tmp_path,
        "d2",
        {
            "memory.stat": "total_rss 1\n",
            "memory.oom_control": "oom_kill 0\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.failcnt": "0\n",
            "pids.current": "1\n",
            "pids.max": "max\n",
        },
    )
    usage = cgroups.read_usage("d2", root=tmp_path)
    assert usage is not None
    assert usage.pids_limit is None
    assert usage.memory_swap_limit_bytes == -1


def test_usage_with_peak_reports_the_most_the_cgroup_held(tmp_path: Path) -> None:
    """For a dyno whose processes have ended (killed at its hard line): what R15 reports."""
    write_cgroup(
        tmp_path,
        "d3",
        {
            "memory.stat": "total_rss 4096\n",
            "memory.oom_control": "oom_kill 1\n",
            "memory.limit_in_bytes": "1073741824\n",
            "memory.max_usage_in_bytes": "1073700000\n",
            "memory.failcnt": "3\n",
            "pids.current": "0\n",
            "pids.max": "256\n",
        },
    )
    ended = cgroups.read_usage("d3", root=tmp_path, peak=True)
    running = cgroups.read_usage("d3", root=tmp_path)
    assert ended is not None and running is not None
    assert (ended.memory_bytes, running.memory_bytes) == (1073700000, 4096)


def test_swap_and_swap_accounting_are_read_from_the_host(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
    assert not cgroups.swap_active(swaps)
    swaps.write_text(swaps.read_text() + "/swapfile\tfile\t1048572\t0\t-2\n")
    assert cgroups.swap_active(swaps)
    assert not cgroups.memsw_supported(tmp_path)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("max\n")
    assert cgroups.memsw_supported(tmp_path)
