"""The cgroup of a build in the runc build sandbox: ``/dockyard-build/<build id>``, holding the limits of all the
build's commands together — memory (no swap), processes and threads, CPU — while each command's container is a
child cgroup of it that runc makes and removes. Its counters tell the sandbox how many tasks the build runs and
whether the kernel killed one of its processes for want of memory. Cgroup v1 (one directory per controller)
and v2 (one directory) are both handled; ``runtime.sandbox`` uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from dockyard.errors import DynoError
from dockyard.runtime import cgroups

log = logging.getLogger(__name__)

CGROUP_PARENT = "/dockyard-build"
PAGE_SLACK = 1 << 20
"""How close to its memory limit a build's peak use must come to count as having reached it."""


class BuildCgroup:
    """The build's cgroup (``/dockyard-build/<build id>``) with the limits of all its commands; cgroup v1
    (one directory per controller) or v2 (one directory)."""

    def __init__(self, build_id: str, root: Path = cgroups.CGROUP_ROOT) -> None:
        self.root = root
        self.relative = f"{CGROUP_PARENT.strip('/')}/{build_id}"
        self.unified = (root / "cgroup.controllers").is_file()

    @property
    def path(self) -> str:
        """As runc's ``cgroupsPath`` names it."""
        return "/" + self.relative

    def _dir(self, controller: str) -> Path:
        return self.root / self.relative if self.unified else self.root / controller / self.relative

    def create(self, *, memory_bytes: int, pids: int, cpus: float) -> None:
        cpu_count = os.cpu_count() or 1
        quota = None if cpus <= 0 else int(min(cpus, cpu_count) * cgroups.CPU_PERIOD_US)
        try:
            if self.unified:
                self._create_v2(memory_bytes, pids, quota)
            else:
                self._create_v1(memory_bytes, pids, quota)
        except OSError as exc:
            self.remove()
            raise DynoError(f"cannot set up the build's cgroup {self.path}: {exc}") from exc

    def _create_v1(self, memory_bytes: int, pids: int, quota: int | None) -> None:
        memory = self._dir("memory")
        memory.mkdir(parents=True, exist_ok=True)
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(memory_bytes))  # memory plus swap: no swap at all
        self._dir("pids").mkdir(parents=True, exist_ok=True)
        (self._dir("pids") / "pids.max").write_text(str(pids))
        cpu = self._dir("cpu")
        cpu.mkdir(parents=True, exist_ok=True)
        (cpu / "cpu.shares").write_text(str(cgroups.SHARES_PER_COMPUTE))
        if quota is not None:
            (cpu / "cpu.cfs_period_us").write_text(str(cgroups.CPU_PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))

    def _create_v2(self, memory_bytes: int, pids: int, quota: int | None) -> None:
        enable = "+memory +pids +cpu"
        parent = self.root / CGROUP_PARENT.strip("/")
        (self.root / "cgroup.subtree_control").write_text(enable)
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(enable)
        own = self._dir("")
        own.mkdir(exist_ok=True)
        (own / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(FileNotFoundError):
            (own / "memory.swap.max").write_text("0")
        (own / "pids.max").write_text(str(pids))
        period = cgroups.CPU_PERIOD_US
        (own / "cpu.max").write_text(f"{quota if quota is not None else 'max'} {period}")
        (own / "cgroup.subtree_control").write_text(enable)

    def tasks(self) -> int | None:
        """Processes and threads of the build right now."""
        try:
            return int((self._dir("pids") / "pids.current").read_text().strip())
        except (OSError, ValueError):
            return None

    def start_command(self) -> int:
        """Before each command: the OOM kills counted so far (cgroup v2, where the build's cgroup
        counts its commands' too); on cgroup v1, which counts an OOM kill only in the victim's own
        cgroup (gone with its command), the peak of memory use is reset instead."""
        if not self.unified:
            with contextlib.suppress(OSError):
                (self._dir("memory") / "memory.max_usage_in_bytes").write_text("0")
            return 0
        return self._v2_oom_kills()

    def ran_out_of_memory(self, kills_before: int, killed: bool) -> bool:
        """After a command: whether the kernel killed a process of it for want of memory (cgroup v2:
        an OOM kill was counted; v1: ``killed`` by SIGKILL after the use reached the limit)."""
        if self.unified:
            return self._v2_oom_kills() > kills_before
        memory = self._dir("memory")
        try:
            peak = int((memory / "memory.max_usage_in_bytes").read_text().strip())
            limit = int((memory / "memory.limit_in_bytes").read_text().strip())
        except (OSError, ValueError):
            return False
        return killed and peak >= limit - PAGE_SLACK

    def _v2_oom_kills(self) -> int:
        with contextlib.suppress(OSError):
            for line in (self._dir("memory") / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return 0

    def remove(self) -> None:
        """Remove the build's cgroup in every hierarchy (runc made some of them for the commands), deepest
        directories first; tolerant of what is already gone."""
        if self.unified:
            tops = [self.root / self.relative]
        else:
            tops = [
                entry / self.relative
                for entry in self.root.iterdir()
                if entry.is_dir() and not entry.is_symlink()
            ]
        for top in tops:
            if not top.is_dir():
                continue
            for dirpath, _dirnames, _files in sorted(
                os.walk(top), key=lambda item: len(item[0]), reverse=True
            ):
                try:
                    os.rmdir(dirpath)
                except OSError as exc:
                    log.warning("could not remove the build cgroup %s: %s", dirpath, exc)
