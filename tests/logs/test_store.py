"""``FileLogStore``: lines appended as ``LogLine`` objects or as text land the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.logs.line import LogLine
from dockyard.logs.store import FileLogStore

NOON = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def test_append_text_writes_formatted_lines_that_tail_reads(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    text = (
        "2026-03-01T12:00:00.250000+00:00 heroku[router]: at=info status=200\n"
        "2026-03-01T12:00:01.000000+00:00 heroku[router]: at=info status=404\n"
    )
    store.append_text("app-1", text)
    assert (tmp_path / "app-1.log").read_text() == text
    assert [line.message for line in store.tail("app-1", 10)] == [
        "at=info status=200",
        "at=info status=404",
    ]


def test_append_and_append_text_write_the_same_bytes(tmp_path: Path) -> None:
    lines = [LogLine(NOON, "app", "web.1", "hello"), LogLine(NOON, "heroku", "router", "at=info")]
    store = FileLogStore(tmp_path)
    store.append("objects", lines)
    store.append_text("text", "".join(line.format() + "\n" for line in lines))
    assert (tmp_path / "objects.log").read_bytes() == (tmp_path / "text.log").read_bytes()


def test_append_text_refuses_a_partial_line(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    with pytest.raises(ValueError, match="end with a newline"):
        store.append_text("app-1", "2026-03-01T12:00:00.250000+00:00 app[web.1]: no newline")
    assert not (tmp_path / "app-1.log").exists()


def test_append_text_of_nothing_creates_nothing(tmp_path: Path) -> None:
    FileLogStore(tmp_path / "logs").append_text("app-1", "")
    assert not (tmp_path / "logs").exists()


def test_append_text_rotates_past_the_cap(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, max_bytes=150)
    line = "2026-03-01T12:00:00.250000+00:00 app[web.1]: " + "x" * 60 + "\n"
    for _ in range(3):
        store.append_text("app-1", line)
    assert (tmp_path / "app-1.log.1").read_text() == line * 2
    assert (tmp_path / "app-1.log").read_text() == line
    assert len(store.tail("app-1", 10)) == 3
