"""The ``heroku[router]`` lines: queued on the hot path, written in batches to the app streams."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.logs.line import LogLine
from dockyard.logs.store import FileLogStore
from dockyard.router.accesslog import RouterLog

pytestmark = pytest.mark.anyio

WHEN = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC).timestamp()


async def test_lines_are_written_per_app_only_when_flushed(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    log = RouterLog(store)
    log.add("app-1", WHEN, "at=info method=GET")
    log.add("app-2", WHEN, "at=info method=POST")
    log.add("app-1", WHEN + 1, "at=error code=H12")
    assert store.tail("app-1", 10) == []
    await log.flush()
    lines = store.tail("app-1", 10)
    assert [line.message for line in lines] == ["at=info method=GET", "at=error code=H12"]
    assert lines[0].format().startswith("2026-03-01T12:00:00.250000+00:00 heroku[router]: ")
    assert [line.message for line in store.tail("app-2", 10)] == ["at=info method=POST"]


async def test_the_file_holds_exactly_what_log_line_format_writes(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    log = RouterLog(store)
    messages = [b"at=info method=GET dyno=web.1", 'at=info path="/caf\u00e9"', b"tab\there"]
    for i, message in enumerate(messages):
        log.add("app", WHEN + i * 1.000001, message)
    await log.flush()
    expected = [
        LogLine(datetime.fromtimestamp(WHEN + i * 1.000001, UTC), "heroku", "router", text)
        for i, text in enumerate(
            ["at=info method=GET dyno=web.1", 'at=info path="/caf\u00e9"', "tab\there"]
        )
    ]
    assert (tmp_path / "app.log").read_text() == "".join(line.format() + "\n" for line in expected)
    assert (
        (tmp_path / "app.log")
        .read_bytes()
        .startswith(
            b"2026-03-01T12:00:00.250000+00:00 heroku[router]: at=info method=GET dyno=web.1\n"
        )
    )


async def test_control_characters_are_escaped(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    log = RouterLog(store)
    log.add("app", WHEN, 'path="/a\x1bb"')
    await log.flush()
    assert store.tail("app", 1)[0].message == 'path="/a\\x1bb"'


async def test_overflow_drops_lines_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileLogStore(tmp_path)
    log = RouterLog(store, max_pending=2)
    for i in range(5):
        log.add("app", WHEN, f"line {i}")
    with caplog.at_level(logging.WARNING, logger="dockyard.router"):
        await log.flush()
    assert [line.message for line in store.tail("app", 10)] == ["line 0", "line 1"]
    assert "dropped 3 router log line(s)" in caplog.text


async def test_a_failing_store_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    log = RouterLog(FileLogStore(blocker))
    with caplog.at_level(logging.WARNING, logger="dockyard.router"):
        for _ in range(3):
            log.add("app", WHEN, "at=info")
            await log.flush()
    assert caplog.text.count("cannot write router log lines") == 1
