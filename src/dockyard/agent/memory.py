"""Memory quotas: R14 once per episode above the size's quota, R15 when the kernel killed a dyno for
going over its hard limit (twice the quota).

The runtime says how much memory a dyno uses through an optional ``usage(dyno_id)`` method that
returns an object with ``memory_bytes`` (and, where the runtime can tell, ``oom_kills``, the
number of processes the kernel killed for memory in the dyno's cgroup), or None when it does not
know. A runtime without the method is simply not watched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dockyard.domain.formation import DYNO_SIZES

MIB = 1 << 20
SIGKILL_STATUS = 128 + 9


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    oom_kills: int = 0


UsageReader = Callable[[str], object]


def read_usage(reader: UsageReader, dyno_id: str) -> Usage | None:
    """The runtime's answer as a ``Usage``; None when it has none or answers something else."""
    answer = reader(dyno_id)
    memory = getattr(answer, "memory_bytes", None)
    if not isinstance(memory, int):
        return None
    oom_kills = getattr(answer, "oom_kills", 0)
    return Usage(memory, oom_kills if isinstance(oom_kills, int) else 0)


def quota_bytes(size: str) -> int | None:
    found = DYNO_SIZES.get(size)
    return None if found is None else found.memory_mb * MIB


def describe(usage: Usage, quota: int) -> str:
    """Heroku's ``Process running mem=1028M(100.6%)``."""
    return (
        f"Process running mem={usage.memory_bytes // MIB}M({100 * usage.memory_bytes / quota:.1f}%)"
    )


class MemoryWatch:
    """What the agent remembers about each dyno's memory between two samples."""

    def __init__(self) -> None:
        self._last: dict[str, Usage] = {}
        self._over: set[str] = set()

    def observe(self, dyno_id: str, size: str, usage: Usage) -> list[str]:
        """Record a sample; the lines to log (R14 when an episode above the quota begins)."""
        self._last[dyno_id] = usage
        quota = quota_bytes(size)
        if quota is None:
            return []
        if usage.memory_bytes <= quota:
            self._over.discard(dyno_id)
            return []
        if dyno_id in self._over:
            return []
        self._over.add(dyno_id)
        return [describe(usage, quota), "Error R14 (Memory quota exceeded)"]

    def record(self, dyno_id: str, usage: Usage) -> None:
        """Add a sample of a dyno that has just ended, for ``killed_for_memory``: the highest use
        and OOM kill count seen are kept (its memory may already be freed)."""
        previous = self._last.get(dyno_id, usage)
        self._last[dyno_id] = Usage(
            max(previous.memory_bytes, usage.memory_bytes), max(previous.oom_kills, usage.oom_kills)
        )

    def killed_for_memory(self, dyno_id: str, size: str, exit_code: int | None) -> list[str]:
        """For a dyno that exited: the R15 lines when the kernel killed it for its memory (it died
        of SIGKILL and its cgroup counted an OOM kill, or its last sample was over the quota)."""
        last = self._last.get(dyno_id)
        quota = quota_bytes(size)
        if exit_code != SIGKILL_STATUS or last is None or quota is None:
            return []
        if last.oom_kills == 0 and last.memory_bytes <= quota:
            return []
        return [
            describe(last, quota),
            "Error R15 (Memory quota vastly exceeded)",
            "Stopping process with SIGKILL",
        ]

    def forget_all_but(self, dyno_ids: Iterable[str]) -> None:
        keep = set(dyno_ids)
        self._last = {k: v for k, v in self._last.items() if k in keep}
        self._over &= keep
