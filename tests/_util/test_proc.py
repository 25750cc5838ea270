"""proc.stream and proc.run: limits, identity, the watch callback and commands that leave
background children holding their output."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.errors import CommandError


class Stop(Exception):
    pass


def test_run_applies_limits_as_hard_limits() -> None:
    result = proc.run(
        ["sh", "-c", "ulimit -H -c; ulimit -d"],
        limits=[(resource.RLIMIT_CORE, 0), (resource.RLIMIT_DATA, 64 << 20)],
    )
    assert result.text.split() == ["0", str(64 << 10)]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_run_switches_user_and_group_and_drops_supplementary_groups() -> None:
    assert proc.run(["id", "-u"], user=2_099_999_999, group=2_099_999_998).text.split() == [
        "2099999999"
    ]
    assert proc.run(["id", "-G"], user=2_099_999_999, group=2_099_999_998).text.split() == [
        "2099999998"
    ]


def test_stream_returns_when_the_command_exits_though_a_child_holds_its_output() -> None:
    lines: list[bytes] = []
    started = time.monotonic()

    code = proc.stream(
        ["sh", "-c", "sleep 30 & echo done; exit 3"], on_line=lines.append, timeout=20
    )

    assert (code, lines) == (3, [b"done"])
    assert time.monotonic() - started < 10  # not the 30 s of the background sleep


def test_what_the_watch_raises_stops_the_command_and_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    calls = 0

    def watch() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Stop

    with pytest.raises(Stop):
        proc.stream(
            ["sh", "-c", 'sleep 30 & echo $! > "$1"; sleep 30', "sh", pid_file],
            on_line=lambda _: None,
            watch=watch,
            watch_interval=0.05,
        )

    assert _gone(int(pid_file.read_text()))


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (or is a zombie) within 5 s: a SIGKILLed process takes a moment
    to die."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.01)
    return False


def test_a_missing_command_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="cannot run /nonexistent/tool"):
        proc.stream(["/nonexistent/tool"], on_line=lambda _: None)
