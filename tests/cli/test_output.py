"""Output: plain text when piped, rich tables on a terminal, Heroku's size and time formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockyard.cli.output import ago, format_time, size_label
from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi


@pytest.mark.parametrize(
    ("size", "label"),
    [
        ("standard-1x", "Standard-1X"),
        ("standard-2x", "Standard-2X"),
        ("Standard-2X", "Standard-2X"),
        ("performance-m", "Performance-M"),
        ("eco", "Eco"),
    ],
)
def test_size_label(size: str, label: str) -> None:
    assert size_label(size) == label


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "~ 0s ago"), (59, "~ 59s ago"), (60, "~ 1m ago"), (7200, "~ 2h ago"), (90000, "~ 1d ago")],
)
def test_ago(seconds: int, text: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ago(now - timedelta(seconds=seconds), now) == text


def test_format_time_in_the_given_zone() -> None:
    moment = datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)
    assert format_time(moment, UTC) == "2026/01/02 10:00:05 +0000"
    assert format_time(moment, timezone(timedelta(hours=1))) == "2026/01/02 11:00:05 +0100"


def test_terminal_output_is_a_rich_table(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    assert dock("domains:add", "www.example.com", "-a", "shop").exit_code == 0
    result = dock("domains", "-a", "shop", terminal=True)
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.stdout  # styled for a terminal
    header = next(line for line in result.stdout.splitlines() if "Domain Name" in line)
    assert "DNS Target" in header
    assert any("www.example.com" in line and "CNAME" in line for line in result.stdout.splitlines())


def test_piped_output_has_no_escape_codes(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("domains", "-a", "shop", terminal=False)
    assert "\x1b[" not in result.stdout
