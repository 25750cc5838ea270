"""The lifecycle policy from the agent's settings."""

from __future__ import annotations

import pytest

from dockyard.agent.lifecycle import parse_durations, policy_of
from dockyard.agent.terminal import window_size
from dockyard.errors import InvalidError
from dockyard.settings import AgentSettings, Settings


def test_the_default_policy_is_herokus() -> None:
    policy = policy_of(Settings())
    assert policy.backoff == (0, 1200, 2400, 3600, 10800, 19200)
    assert (policy.cycle_period, policy.cycle_jitter, policy.idle_timeout) == (86400, 12960, 1800)
    assert policy.boot_timeout == 60


def test_the_crash_backoff_setting_takes_seconds_minutes_and_hours() -> None:
    settings = Settings(agent=AgentSettings(crash_backoff="30s, 2m,1h, 5"))
    assert policy_of(settings).backoff == (0, 30, 120, 3600, 5)


def test_a_bad_duration_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidError, match=r"agent\.crash_backoff"):
        parse_durations("20m, soon", name="agent.crash_backoff")
    with pytest.raises(InvalidError, match="not a duration"):
        AgentSettings(crash_backoff="-5")


def test_the_terminal_size_comes_from_the_clients_lines_and_columns() -> None:
    assert window_size({"LINES": "40", "COLUMNS": "120"}) == (40, 120)
    assert window_size({"COLUMNS": "120"}) is None
    assert window_size({"LINES": "0", "COLUMNS": "80"}) is None
    assert window_size({"LINES": "x", "COLUMNS": "80"}) is None
