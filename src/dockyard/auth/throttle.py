"""Login throttling: pure decisions over the failure records the store keeps, at a given time.

Rules (docs/security.md), counted per email address whether or not an account has it (so the answers
do not tell known and unknown addresses apart):

- Per account: up to ``ACCOUNT_FREE_FAILURES`` (10) failures within ``ACCOUNT_WINDOW`` (10 minutes) are
  answered normally. From the 10th on, each failure earns a delay — 30 s, then twice as long after each
  further failure, at most an hour — during which every attempt, even with the right password, gets
  429 and ``Retry-After``. A success forgets the failures before it.
- ``LOCK_AFTER`` (100) consecutive failures lock the account until its password is reset (by email).
- Per source address (an IPv6 address counts with its whole /64): ``SOURCE_LIMIT`` (30) failures across
  any accounts within ``SOURCE_WINDOW`` (10 minutes) get 429 until the oldest of them is 10 minutes old.
- The source address is the socket's peer; ``X-Forwarded-For`` is believed only from configured proxies.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from dockyard.store.credentials import ThrottleState

ACCOUNT_WINDOW = timedelta(minutes=10)
ACCOUNT_FREE_FAILURES = 10
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
LOCK_AFTER = 100
SOURCE_WINDOW = timedelta(minutes=10)
SOURCE_LIMIT = 30

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Verdict:
    """May the attempt go ahead? If not: for how long not, and why."""

    allowed: bool
    retry_after: int = 0
    """Seconds until an attempt may be made again (0 when allowed or locked)."""
    why: Literal["", "account", "source", "locked"] = ""


ALLOWED = Verdict(True)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def delay_after(consecutive: int) -> timedelta:
    """The wait a failure earns once 10 failures fell within the window: 30 s at the 10th consecutive
    one, doubling with each further one, at most an hour."""
    doublings = max(0, consecutive - ACCOUNT_FREE_FAILURES)
    if doublings >= 16:
        return MAX_DELAY
    return min(MAX_DELAY, FIRST_DELAY * (1 << doublings))


def check_account(state: ThrottleState | None, now: datetime) -> Verdict:
    if state is None:
        return ALLOWED
    if state.locked_at is not None:
        return Verdict(False, 0, "locked")
    if state.retry_at is not None and now < state.retry_at:
        return Verdict(False, _seconds_until(state.retry_at, now), "account")
    return ALLOWED


def check_source(failures: Sequence[datetime], now: datetime) -> Verdict:
    """``failures``: times of the source's failures within the window, oldest first."""
    recent = sorted(t for t in failures if t > now - SOURCE_WINDOW)
    if len(recent) < SOURCE_LIMIT:
        return ALLOWED
    frees_at = recent[len(recent) - SOURCE_LIMIT] + SOURCE_WINDOW
    return Verdict(False, _seconds_until(frees_at, now), "source")


def window_start(state: ThrottleState | None, now: datetime) -> datetime:
    """Failures after this moment count for the account's window (a success forgets older ones)."""
    start = now - ACCOUNT_WINDOW
    if state is not None and state.last_success_at is not None:
        start = max(start, state.last_success_at)
    return start


def after_failure(
    state: ThrottleState | None, email: str, recent_failures: int, now: datetime
) -> ThrottleState:
    """The state after one more failure; ``recent_failures`` counts those in the window, this one
    included."""
    state = state or ThrottleState(email, 0, None, None, None, None)
    consecutive = state.consecutive + 1
    retry_at = state.retry_at
    if recent_failures >= ACCOUNT_FREE_FAILURES:
        retry_at = now + delay_after(max(consecutive, recent_failures))
    locked_at = state.locked_at or (now if consecutive >= LOCK_AFTER else None)
    return replace(
        state, consecutive=consecutive, last_failure_at=now, retry_at=retry_at, locked_at=locked_at
    )


def just_locked(before: ThrottleState | None, after: ThrottleState) -> bool:
    return after.locked_at is not None and (before is None or before.locked_at is None)


def after_success(state: ThrottleState | None, email: str, now: datetime) -> ThrottleState:
    return ThrottleState(email, 0, None, now, None, None)


def unlocked(state: ThrottleState | None, email: str) -> ThrottleState:
    """The state after a password reset: no lock, no delay, no failures counted."""
    last_success = state.last_success_at if state else None
    return ThrottleState(email, 0, None, last_success, None, None)


# -- where a request comes from -------------------------------------------------------------------------


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/24"`` → networks (settings are validated when loaded)."""
    return tuple(
        ipaddress.ip_network(item, strict=False) for item in text.replace(",", " ").split()
    )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The client's address: the socket's peer, unless the peer is a trusted proxy, in which case the
    nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (read from the right, as
    each proxy appends the address it saw)."""
    current = _address(peer)
    if current is None:
        return peer
    if not forwarded_for or not _trusted(current, proxies):
        return str(current)
    for item in reversed(forwarded_for.split(",")):
        hop = _address(item)
        if hop is None:
            break  # garbage from the client: stop at the last proxy we trust
        current = hop
        if not _trusted(hop, proxies):
            break
    return str(current)


def source_key(address: str) -> str:
    """What per-source limits count: an IPv4 address, or the /64 of an IPv6 address."""
    parsed = _address(address)
    if parsed is None:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)
