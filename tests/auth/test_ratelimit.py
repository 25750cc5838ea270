from __future__ import annotations

from dockyard._util.clock import FakeClock
from dockyard.auth.ratelimit import RateLimiter


def test_the_bucket_empties_and_refills_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4500, clock)
    results = [limiter.take("a") for _ in range(4501)]
    assert results[0] == (True, 4499)
    assert results[4499] == (True, 0)
    assert results[4500] == (False, 0)
    assert limiter.retry_after("a") == 1  # 75 per minute: one back in 0.8 s
    clock.advance(60)
    assert limiter.remaining("a") == 75
    assert limiter.take("b") == (True, 4499)  # accounts do not share a bucket
