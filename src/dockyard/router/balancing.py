"""Which web dyno gets a request: at random (Heroku's way) or the one with the fewest in flight.

Both skip dynos in quarantine (they refused a connection or did not accept one in time, a few
seconds ago) and dynos that already have ``cap`` requests in flight (Heroku's 50 per dyno per
router; 0 for no cap). ``None`` means no dyno can take the request now: ``all_quarantined`` tells
whether to fail it (every dyno is quarantined) or to queue it (they are all busy).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from dockyard.router.exchange import Endpoint

Balancing = Literal["random", "fewest-in-flight"]
BALANCING: tuple[Balancing, ...] = ("random", "fewest-in-flight")

_random = random.random

Picker = Callable[[tuple[Endpoint, ...], float, int], Endpoint | None]


def pick_random(backends: tuple[Endpoint, ...], now: float, cap: int) -> Endpoint | None:
    """A dyno chosen at random among those that can take a request."""
    count = len(backends)
    if count == 1:
        ep = backends[0]
        if ep.quarantined <= now and (cap <= 0 or ep.inflight < cap):
            return ep
        return None
    start = int(_random() * count)
    for i in range(count):
        ep = backends[(start + i) % count]
        if ep.quarantined <= now and (cap <= 0 or ep.inflight < cap):
            return ep
    return None


def pick_fewest(backends: tuple[Endpoint, ...], now: float, cap: int) -> Endpoint | None:
    """The dyno with the fewest requests in flight (ties broken at random)."""
    count = len(backends)
    start = 0 if count == 1 else int(_random() * count)
    best: Endpoint | None = None
    for i in range(count):
        ep = backends[(start + i) % count]
        if ep.quarantined <= now and (best is None or ep.inflight < best.inflight):
            best = ep
    if best is None or (cap > 0 and best.inflight >= cap):
        return None
    return best


def picker(balancing: Balancing) -> Picker:
    return pick_fewest if balancing == "fewest-in-flight" else pick_random


def all_quarantined(backends: tuple[Endpoint, ...], now: float) -> bool:
    return all(ep.quarantined > now for ep in backends)


def next_untried(backends: tuple[Endpoint, ...], tried: set[str], now: float) -> Endpoint | None:
    """After a failed connection: another dyno not yet tried for this request and not quarantined,
    the least busy first."""
    best: Endpoint | None = None
    for ep in backends:
        if ep.address in tried or ep.quarantined > now:
            continue
        if best is None or ep.inflight < best.inflight:
            best = ep
    return best
