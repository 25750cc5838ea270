"""Cgroup limits of a dyno from its size, and reading what a dyno uses.

Limits (``limits_for``, pure) become the OCI ``linux.resources`` object that runc writes into the dyno's
cgroup ``/dockyard/<dyno id>``:

- memory: ``memory.limit_in_bytes`` is the size's quota (what an app reading its cgroup sees, 512 MB for
  standard-1x) and ``memory.memsw.limit_in_bytes`` (memory plus swap) is twice the quota, Heroku's R15 line.
  On a host with swap a dyno above its quota swaps (the agent's R14) and is killed by the kernel at 2x (R15).
  On a host without swap there is nothing to swap to, so the kernel reclaims page cache and then kills the
  dyno at the quota itself. On a cgroup v2 host the same two numbers map to ``memory.max`` and
  ``memory.swap.max`` (= quota).
- pids: ``pids.max`` is the size's process/thread cap (256 for standard-1x), which stops fork bombs.
- CPU: ``cpu.shares`` is 1024 per compute unit, so a busy dyno gets its fair part of a busy host; shared
  (non-dedicated) sizes are also capped by a CFS quota of ``compute`` CPUs (never more than the host has),
  dedicated sizes may use the whole host.

``read_usage`` reads the dyno's cgroup v1 files (memory, pids) for the agent's R14/R15 checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dockyard.domain.formation import DYNO_SIZES, DynoSize
from dockyard.errors import DynoError

MB = 1 << 20
CPU_PERIOD_US = 100_000
SHARES_PER_COMPUTE = 1024
MAX_SHARES = 262_144
SWAP_FACTOR = 2
"""The hard memory limit (memory plus swap) as a multiple of the quota: Heroku's R15 line for shared sizes."""
CGROUP_PARENT = "/dockyard"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    memory_swap_bytes: int
    """Memory plus swap (the OCI ``swap`` field), the hard line."""
    pids: int
    cpu_shares: int
    cpu_quota_us: int | None
    """``None``: no CFS quota (dedicated sizes)."""
    cpu_period_us: int = CPU_PERIOD_US

    def to_oci(self) -> dict[str, Any]:
        """The OCI ``linux.resources`` object (devices are added by the bundle)."""
        cpu: dict[str, Any] = {"shares": self.cpu_shares}
        if self.cpu_quota_us is not None:
            cpu.update(quota=self.cpu_quota_us, period=self.cpu_period_us)
        return {
            "memory": {
                "limit": self.memory_bytes,
                "swap": self.memory_swap_bytes,
                "disableOOMKiller": False,
            },
            "pids": {"limit": self.pids},
            "cpu": cpu,
        }


def size_of(name: str) -> DynoSize:
    size = DYNO_SIZES.get(name.lower())
    if size is None:
        raise DynoError(f"unknown dyno size {name!r}: use one of {', '.join(DYNO_SIZES)}")
    return size


def limits_for(size: DynoSize, host_cpus: int | None = None) -> Limits:
    """The cgroup limits of a dyno of ``size`` on a host with ``host_cpus`` CPUs."""
    cpus = host_cpus or os.cpu_count() or 1
    quota = None if size.dedicated else min(size.compute, cpus) * CPU_PERIOD_US
    return Limits(
        memory_bytes=size.memory_mb * MB,
        memory_swap_bytes=size.memory_mb * MB * SWAP_FACTOR,
        pids=size.pids,
        cpu_shares=min(MAX_SHARES, SHARES_PER_COMPUTE * size.compute),
        cpu_quota_us=quota,
    )


def memsw_supported(root: Path = CGROUP_ROOT) -> bool:
    """Whether the memory cgroup can limit memory plus swap (``memory.memsw.*``: swap accounting)."""
    return (root / "memory" / "memory.memsw.limit_in_bytes").exists()


def swap_active(swaps: Path = Path("/proc/swaps")) -> bool:
    """Whether the host has any swap space switched on (``/proc/swaps`` lists more than its header)."""
    try:
        return len(swaps.read_text(encoding="ascii").strip().splitlines()) > 1
    except OSError:
        return False


def memory_limits(limits: Limits, *, swap: bool) -> Limits:
    """Heroku's memory rules on this host. With swap, the quota is the RAM limit and memory plus swap
    stops at twice the quota: above the quota the dyno swaps (R14), at twice it is killed (R15). Without
    swap there is nothing to push into, so the RAM limit itself becomes twice the quota: the dyno may use
    the R14 zone in RAM (the agent logs R14 above the quota) and the kernel kills it at twice the quota
    (R15), instead of at the quota."""
    if swap:
        return limits
    return replace(limits, memory_bytes=limits.memory_swap_bytes)


def cgroup_path(dyno_id: str) -> str:
    """The dyno's cgroup, the same in every v1 hierarchy (absolute: not below the agent's own cgroup)."""
    return f"{CGROUP_PARENT}/{dyno_id}"


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    """Resident memory plus swap plus tmpfs pages (the dyno's ``/tmp`` and ``/app`` scratch) — Heroku's
    "memory usage" that R14 compares with the quota."""
    memory_limit_bytes: int
    memory_swap_limit_bytes: int
    swap_bytes: int
    limit_hits: int
    """How often the dyno reached its memory limit (``memory.failcnt``): the kernel had to reclaim."""
    oom_kills: int
    """Processes the kernel killed in this dyno for want of memory (R15)."""
    pids: int
    pids_limit: int | None


def _read_int(path: Path) -> int:
    text = path.read_text(encoding="ascii").strip()
    return -1 if text == "max" else int(text)


def _stat(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def read_usage(dyno_id: str, root: Path = CGROUP_ROOT, *, peak: bool = False) -> Usage | None:
    """The dyno's memory and pids figures, or ``None`` when its cgroup is gone. With ``peak`` (for a dyno
    whose processes have all ended, e.g. killed at its hard line: R15) ``memory_bytes`` is the most its
    cgroup ever held (``memory.max_usage_in_bytes``), rather than the nothing it holds now."""
    memory = root / "memory" / cgroup_path(dyno_id).lstrip("/")
    pids = root / "pids" / cgroup_path(dyno_id).lstrip("/")
    try:
        stat = _stat(memory / "memory.stat")
        oom = _stat(memory / "memory.oom_control")
        swap_limit_file = memory / "memory.memsw.limit_in_bytes"
        pids_limit = _read_int(pids / "pids.max")
        used = stat.get("total_rss", 0) + stat.get("total_swap", 0) + stat.get("total_shmem", 0)
        if peak:
            used = max(used, _read_int(memory / "memory.max_usage_in_bytes"))
        return Usage(
            memory_bytes=used,
            memory_limit_bytes=_read_int(memory / "memory.limit_in_bytes"),
            memory_swap_limit_bytes=_read_int(swap_limit_file) if swap_limit_file.exists() else -1,
            swap_bytes=stat.get("total_swap", 0),
            limit_hits=_read_int(memory / "memory.failcnt"),
            oom_kills=oom.get("oom_kill", 0),
            pids=_read_int(pids / "pids.current"),
            pids_limit=None if pids_limit < 0 else pids_limit,
        )
    except (OSError, ValueError):
        return None
