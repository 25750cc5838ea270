"""A token bucket per account, as Heroku's API has: 4,500 calls, refilled evenly over an hour."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard._util.clock import Clock


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, capacity: int, clock: Clock, *, period: float = 3600.0) -> None:
        self.capacity = capacity
        self.rate = capacity / period
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refill(self, key: str) -> _Bucket:
        now = self.clock.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def take(self, key: str) -> tuple[bool, int]:
        """Spend one token; returns (allowed, tokens remaining)."""
        bucket = self._refill(key)
        if bucket.tokens < 1:
            return False, 0
        bucket.tokens -= 1
        return True, int(bucket.tokens)

    def remaining(self, key: str) -> int:
        return int(self._refill(key).tokens)

    def retry_after(self, key: str) -> int:
        """Seconds until one token is back."""
        bucket = self._refill(key)
        missing = max(0.0, 1 - bucket.tokens)
        return max(1, int(missing / self.rate + 0.999))
