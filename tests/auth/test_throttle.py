"""Throttling decisions, at given times, and the client address behind proxies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.auth import throttle
from dockyard.store.credentials import ThrottleState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fail(state: ThrottleState | None, times: list[datetime], now: datetime) -> ThrottleState:
    times.append(now)
    start = throttle.window_start(state, now)
    return throttle.after_failure(state, "a@example.com", sum(t > start for t in times), now)


def test_ten_failures_pass_and_the_next_attempt_waits_30_seconds() -> None:
    state, times = None, []
    for i in range(10):
        assert throttle.check_account(state, T0 + timedelta(seconds=i)).allowed
        state = fail(state, times, T0 + timedelta(seconds=i))
    verdict = throttle.check_account(state, T0 + timedelta(seconds=10))
    assert not verdict.allowed and verdict.why == "account"
    assert verdict.retry_after == 29
    assert throttle.check_account(state, T0 + timedelta(seconds=39)).allowed


def test_delays_double_and_stop_at_an_hour() -> None:
    assert [throttle.delay_after(c).total_seconds() for c in (10, 11, 12, 16, 17, 99)] == [
        30,
        60,
        120,
        1920,
        3600,
        3600,
    ]


def test_failures_spread_over_more_than_ten_minutes_earn_no_delay() -> None:
    state, times = None, []
    for i in range(30):
        now = T0 + timedelta(minutes=2 * i)
        assert throttle.check_account(state, now).allowed
        state = fail(state, times, now)
    assert state.consecutive == 30 and state.retry_at is None


def test_a_success_forgets_earlier_failures() -> None:
    state, times = None, []
    for i in range(9):
        state = fail(state, times, T0 + timedelta(seconds=i))
    state = throttle.after_success(state, "a@example.com", T0 + timedelta(seconds=9))
    state = fail(state, times, T0 + timedelta(seconds=10))
    assert state.consecutive == 1 and state.retry_at is None


def test_one_hundred_consecutive_failures_lock() -> None:
    state = ThrottleState("a@example.com", 99, T0, None, None, None)
    locked = throttle.after_failure(state, "a@example.com", 1, T0)
    assert throttle.just_locked(state, locked)
    verdict = throttle.check_account(locked, T0 + timedelta(days=30))
    assert not verdict.allowed and verdict.why == "locked"
    assert throttle.check_account(throttle.unlocked(locked, "a@example.com"), T0).allowed


def test_thirty_failures_from_one_source_in_ten_minutes() -> None:
    failures = [T0 + timedelta(seconds=10 * i) for i in range(29)]
    assert throttle.check_source(failures, T0 + timedelta(minutes=5)).allowed
    failures.append(T0 + timedelta(seconds=290))
    verdict = throttle.check_source(failures, T0 + timedelta(seconds=300))
    assert not verdict.allowed and verdict.why == "source"
    assert verdict.retry_after == 300  # until the oldest is ten minutes old
    assert throttle.check_source(failures, T0 + timedelta(minutes=10, seconds=1)).allowed


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = throttle.parse_networks("10.0.0.1, 192.168.0.0/24")
    assert throttle.client_address("127.0.0.9", "1.2.3.4", proxies) == "127.0.0.9"
    assert throttle.client_address("10.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # the client's own header value is kept at the left; the proxies append on the right
    assert (
        throttle.client_address("10.0.0.1", "6.6.6.6, 1.2.3.4, 192.168.0.7", proxies) == "1.2.3.4"
    )
    assert throttle.client_address("10.0.0.1", "garbage, 192.168.0.7", proxies) == "192.168.0.7"
    assert throttle.client_address("10.0.0.1", None, proxies) == "10.0.0.1"


def test_ipv6_sources_count_per_64() -> None:
    assert (
        throttle.source_key("2001:db8::1")
        == throttle.source_key("2001:db8::ffff:1")
        == ("2001:db8::/64")
    )
    assert throttle.source_key("::ffff:127.0.0.2") == "127.0.0.2"
    assert throttle.source_key("127.0.0.2") == "127.0.0.2"
