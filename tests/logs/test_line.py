"""Log line text: the cached whole-second formatting gives exactly what ``isoformat`` gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockyard.logs.line import LogLine, format_line, format_timestamp, make_lines

NOON = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _reference(timestamp: datetime) -> str:
    """How a timestamp was formatted before the cache."""
    return timestamp.astimezone(UTC).isoformat(timespec="microseconds")


def test_a_line_is_rfc3339_utc_with_microseconds() -> None:
    line = LogLine(NOON, "heroku", "router", "at=info")
    assert line.format() == "2026-03-01T12:00:00.250000+00:00 heroku[router]: at=info"


def test_timestamps_in_other_zones_are_written_in_utc() -> None:
    paris = datetime(2026, 3, 1, 13, 0, 0, 7, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(paris) == "2026-03-01T12:00:00.000007+00:00"


def test_the_cached_second_never_leaks_into_another_second() -> None:
    later = NOON + timedelta(seconds=1, microseconds=1)
    older_year = NOON.replace(year=2025)
    texts = [format_timestamp(t) for t in (NOON, later, NOON, older_year, NOON)]
    assert texts == [_reference(t) for t in (NOON, later, NOON, older_year, NOON)]


def test_format_timestamp_matches_isoformat() -> None:
    rng = random.Random(20260301)  # noqa: S311 - a seeded generator makes the test repeatable
    zones = [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
    base = datetime(1, 1, 2, tzinfo=UTC)
    span = (datetime(9999, 12, 30, tzinfo=UTC) - base) // timedelta(microseconds=1)
    for _ in range(5000):
        instant = base + timedelta(microseconds=rng.randrange(span))
        timestamp = instant.astimezone(rng.choice(zones))
        assert format_timestamp(timestamp) == _reference(timestamp), timestamp


@pytest.mark.parametrize(
    "when",
    [
        0.0,
        1772366400.25,
        1772366400.9999996,  # rounds up into the next second
        1772366400.0000005,
        1772366399.9999995,
        1e-6 * 2.5,  # exactly half a microsecond apart from two neighbours: half to even
        1e-6 * 3.5,
    ],
)
def test_format_line_matches_a_log_line_made_from_fromtimestamp(when: float) -> None:
    expected = LogLine(datetime.fromtimestamp(when, UTC), "heroku", "router", "at=info").format()
    assert format_line(when, "heroku", "router", "at=info") == expected


def test_format_line_matches_for_many_instants() -> None:
    rng = random.Random(7)  # noqa: S311 - a seeded generator makes the test repeatable
    for _ in range(20000):
        when = rng.uniform(0, 4e9) if rng.random() < 0.5 else 1772366400 + rng.random()
        expected = LogLine(datetime.fromtimestamp(when, UTC), "app", "web.1", "m").format()
        assert format_line(when, "app", "web.1", "m") == expected, repr(when)


def test_a_formatted_line_parses_back() -> None:
    line = LogLine(NOON, "app", "web.1", "hello world")
    assert LogLine.parse(line.format()) == line


def test_make_lines_escapes_control_characters() -> None:
    (line,) = make_lines("app", "web.1", b"a\x1bb\tc\r\n", NOON)
    assert line.message == "a\\x1bb\tc"
