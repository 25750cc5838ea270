"""logs: open a log session, then stream its lines to stdout."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi

LINES = [
    "2026-01-01T12:00:00+00:00 app[web.1]: GET / 200",
    "2026-01-01T12:00:01+00:00 heroku[router]: at=info method=GET path=/",
]


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.log_lines = list(LINES)


def test_logs_defaults(dock: Dock, fake: FakeApi) -> None:
    result = dock("logs", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.sent() == [
        ("POST", "/apps/shop/log-sessions", {"tail": False, "lines": 100}),
        ("GET", "/log-sessions/ls-1", None),
    ]
    assert result.stdout == "".join(f"{line}\n" for line in LINES)


def test_logs_options_reach_the_session(dock: Dock, fake: FakeApi) -> None:
    result = dock("logs", "-n", "5", "-t", "-s", "app", "-d", "web.1", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.sent()[0] == (
        "POST",
        "/apps/shop/log-sessions",
        {"tail": True, "lines": 5, "source": "app", "dyno": "web.1"},
    )


def test_logs_process_type_is_sent_as_dyno(dock: Dock, fake: FakeApi) -> None:
    dock("logs", "-p", "web", "-a", "shop")
    assert fake.sent()[0][2] == {"tail": False, "lines": 100, "dyno": "web"}


def test_logs_rejects_an_unknown_source(dock: Dock, fake: FakeApi) -> None:
    assert dock("logs", "-s", "router", "-a", "shop").exit_code == 2
    assert fake.sent() == []
