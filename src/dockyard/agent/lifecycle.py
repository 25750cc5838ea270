"""Heroku's dyno lifecycle rules that depend only on numbers and time: the crash back-off schedule,
daily cycling with a per-dyno jitter, and when an idle dyno may sleep. Pure; time is handed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dockyard.errors import InvalidError
from dockyard.settings import Settings

MINUTE = 60.0
HEROKU_BACKOFF: tuple[float, ...] = (
    0.0,
    20 * MINUTE,
    40 * MINUTE,
    60 * MINUTE,
    180 * MINUTE,
    320 * MINUTE,
)
"""Seconds before the restart after the 1st, 2nd, … consecutive crash (Heroku's Common Runtime): at
once, then cool-offs of 20, 40, 60, 180 and 320 minutes; the last repeats."""
DAY = 24 * 60 * MINUTE
CYCLE_JITTER = 216 * MINUTE
IDLE_TIMEOUT = 30 * MINUTE


@dataclass(frozen=True)
class RestartPolicy:
    """The lifecycle rules the planner applies; every duration in seconds."""

    backoff: tuple[float, ...] = HEROKU_BACKOFF
    """Seconds before restarting after the 1st, 2nd, … consecutive crash; the last value repeats."""
    clean_run: float = 60.0
    """A dyno that ran this long before it crashed starts the count over."""
    boot_timeout: float = 60.0
    """Seconds a web dyno has to answer on ``$PORT`` (R10); the longest a replaced one waits."""
    cycle_period: float = DAY
    """Every dyno is restarted after this long, plus its jitter (Heroku's daily cycling)."""
    cycle_jitter: float = CYCLE_JITTER
    """Up to this much is added to ``cycle_period``, a fixed amount per dyno, so dynos started
    together are not all cycled at the same moment."""
    idle_timeout: float = IDLE_TIMEOUT
    """Web dynos of the ``idle_sizes`` sleep after this long without a request."""
    idle_sizes: frozenset[str] = field(default_factory=lambda: frozenset({"eco"}))

    def delay(self, crashes: int) -> float:
        if crashes <= 0 or not self.backoff:
            return 0.0
        return self.backoff[min(crashes, len(self.backoff)) - 1]

    def cycle_after(self, dyno_id: str) -> float:
        """Seconds after its start when the dyno ``dyno_id`` is cycled: the period plus a jitter
        drawn from the dyno's id, so it is the same in every round and after an agent restart."""
        digest = hashlib.sha256(f"cycle:{dyno_id}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / float(1 << 64)
        return self.cycle_period + fraction * self.cycle_jitter

    def cycle_due_at(self, dyno_id: str, started_at: datetime) -> datetime:
        return started_at + timedelta(seconds=self.cycle_after(dyno_id))


def parse_durations(text: str, *, name: str) -> tuple[float, ...]:
    """``"20m, 40m, 1h, 30s, 90"`` → seconds. Used for ``agent.crash_backoff``."""
    units = {"s": 1.0, "m": MINUTE, "h": 60 * MINUTE}
    values: list[float] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        scale = units.get(item[-1], 1.0)
        number = item[:-1] if item[-1] in units else item
        try:
            value = float(number) * scale
        except ValueError:
            value = -1.0
        if not value >= 0:  # also NaN
            raise InvalidError(
                f"setting {name}: {raw.strip()!r} is not a duration — write seconds or minutes, "
                "e.g. 20m, 40m, 60m, 180m, 320m",
                field=name,
            )
        values.append(value)
    return tuple(values)


def restart_policy(
    *,
    crash_cooloffs: Iterable[float],
    boot_timeout: float,
    cycle_period: float,
    cycle_jitter: float,
    idle_timeout: float,
) -> RestartPolicy:
    """The policy from the agent's settings: the first crash restarts at once, then the cool-offs."""
    return RestartPolicy(
        backoff=(0.0, *crash_cooloffs),
        boot_timeout=boot_timeout,
        cycle_period=cycle_period,
        cycle_jitter=cycle_jitter,
        idle_timeout=idle_timeout,
    )


def policy_of(settings: Settings) -> RestartPolicy:
    """The policy the agent's settings describe."""
    agent = settings.agent
    return restart_policy(
        crash_cooloffs=parse_durations(agent.crash_backoff, name="agent.crash_backoff"),
        boot_timeout=agent.boot_timeout,
        cycle_period=agent.cycle_period,
        cycle_jitter=agent.cycle_jitter,
        idle_timeout=agent.idle_timeout,
    )
