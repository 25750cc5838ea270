"""``FileLogStore``: segment files per app, locked appends from several processes, rotation,
retention, history search, and a follower that reads across rotations."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.logs.line import LogLine
from dockyard.logs.store import FileLogStore

NOON = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def line(n: int, width: int = 0) -> str:
    return f"2026-03-01T12:00:{n % 60:02d}.{n:06d}+00:00 app[web.1]: line {n}{'x' * width}\n"


def test_append_text_writes_formatted_lines_that_tail_reads(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    text = (
        "2026-03-01T12:00:00.250000+00:00 heroku[router]: at=info status=200\n"
        "2026-03-01T12:00:01.000000+00:00 heroku[router]: at=info status=404\n"
    )
    store.append_text("app-1", text)
    assert (tmp_path / "app-1.log").read_text() == text
    assert [x.message for x in store.tail("app-1", 10)] == [
        "at=info status=200",
        "at=info status=404",
    ]


def test_append_and_append_text_write_the_same_bytes(tmp_path: Path) -> None:
    lines = [LogLine(NOON, "app", "web.1", "hello"), LogLine(NOON, "heroku", "router", "at=info")]
    store = FileLogStore(tmp_path)
    store.append("objects", lines)
    store.append_text("text", "".join(x.format() + "\n" for x in lines))
    assert (tmp_path / "objects.log").read_bytes() == (tmp_path / "text.log").read_bytes()


def test_append_text_refuses_a_partial_line(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    with pytest.raises(ValueError, match="end with a newline"):
        store.append_text("app-1", "2026-03-01T12:00:00.250000+00:00 app[web.1]: no newline")
    assert not (tmp_path / "app-1.log").exists()


def test_append_text_of_nothing_creates_nothing(tmp_path: Path) -> None:
    FileLogStore(tmp_path / "logs").append_text("app-1", "")
    assert not (tmp_path / "logs").exists()


def test_app_ids_must_not_leave_the_directory(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    for bad in ("", "../x", ".notify", "a/b"):
        with pytest.raises(ValueError):
            store.append_text(bad, line(1))


def test_writers_rotate_past_their_cap_and_tail_reads_across_segments(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, rotate_bytes=150)
    for n in range(7):
        store.append_text("app-1", line(n, 60))
    assert len(store.closed_segments("app-1")) == 3
    assert [x.message for x in store.tail("app-1", 5)] == [
        f"line {n}{'x' * 60}" for n in range(2, 7)
    ]
    assert len(store.tail("app-1", 100)) == 7


def test_tail_leaves_out_a_line_still_being_written(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append_text("app-1", line(1))
    with (tmp_path / "app-1.log").open("a") as handle:
        handle.write("2026-03-01T12:00:02.000000+00:00 app[web.1]: half")
    assert [x.message for x in store.tail("app-1", 10)] == ["line 1"]


def test_the_follower_reads_every_line_once_across_rotations(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    follower = store.follow_from("app-1")
    seen: list[str] = []
    written = []
    for n in range(40):
        written.append(line(n))
        store.append_text("app-1", line(n))
        if n % 7 == 0:
            store.rotate("app-1")
        if n % 13 == 0:  # two rotations may happen between two reads
            seen.extend(follower.read_bytes().decode().splitlines(keepends=True))
    seen.extend(follower.read_bytes().decode().splitlines(keepends=True))
    assert seen == written


def test_a_follower_started_at_the_end_skips_what_was_there(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append_text("app-1", line(1))
    follower = store.follow_from("app-1")
    store.append_text("app-1", line(2))
    assert follower.read_bytes() == line(2).encode()
    assert follower.read_bytes() == b""


WRITER = """
import sys
from dockyard.logs.store import FileLogStore
store = FileLogStore(__import__("pathlib").Path(sys.argv[1]), rotate_bytes=20000)
name = sys.argv[2]
for n in range(1500):
    batch = "".join(
        f"2026-03-01T12:00:00.000000+00:00 app[{name}]: {n}.{k} " + "y" * 40 + "\\n" for k in range(3)
    )
    store.append_text("app-1", batch)
"""


def test_several_processes_append_without_interleaving_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    store = FileLogStore(tmp_path)
    follower = store.follow_from("app-1")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w.{i}"]) for i in range(3)
    ]
    got: list[bytes] = []
    while any(w.poll() is None for w in writers):
        got.extend(follower.read_bytes().splitlines())
    got.extend(follower.read_bytes().splitlines())
    assert all(w.returncode == 0 for w in writers)
    assert len(got) == 3 * 1500 * 3
    assert len(set(got)) == len(got)
    for i in range(3):  # each writer's batches arrive whole and in its own order
        mine = [raw.split(b": ", 1)[1].split(b" ")[0] for raw in got if b"[w.%d]" % i in raw]
        assert mine == [f"{n}.{k}".encode() for n in range(1500) for k in range(3)]
    history = [x.format().encode() for x in store.tail("app-1", 100_000)]
    assert history == got  # the history and the follower agree on the order


def test_prune_keeps_the_newest_segments_under_the_size_limit(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    for n in range(10):
        store.append_text("app-1", line(n, 80))
        store.rotate("app-1")
    store.append_text("app-1", line(10, 80))
    size = len(line(0, 80))
    deleted = store.prune("app-1", max_bytes=size * 3 + 5)
    assert len(deleted) == 8
    assert store.history_bytes("app-1") <= size * 3 + 5
    assert [x.message[:7] for x in store.tail("app-1", 100)] == ["line 8x", "line 9x", "line 10"]


def test_prune_removes_history_older_than_the_age_limit(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append_text("app-1", line(1))
    old = store.rotate("app-1")
    assert old is not None
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    store.append_text("app-1", line(2))
    store.prune("app-1", older_than=time.time() - 7 * 86400)
    assert [x.message for x in store.tail("app-1", 10)] == ["line 2"]
    os.utime(tmp_path / "app-1.log", (week_ago, week_ago))
    store.prune("app-1", older_than=time.time() - 7 * 86400)
    assert store.tail("app-1", 10) == []


def test_another_apps_chatter_never_prunes_this_app(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, rotate_bytes=500)
    store.append_text("quiet", line(1))
    for n in range(200):
        store.append_text("chatty", line(n, 50))
    for app in ("quiet", "chatty"):
        store.prune(app, max_bytes=2000)
    assert [x.message for x in store.tail("quiet", 10)] == ["line 1"]
    assert store.history_bytes("chatty") <= 2000


def test_search_finds_lines_by_time_range_and_text(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    for n in range(10):
        store.append_text("app-1", line(n))
        store.rotate("app-1")
    found = store.search(
        "app-1",
        since="2026-03-01T12:00:03.000000+00:00",
        until="2026-03-01T12:00:07.000000+00:00",
        limit=100,
    )
    assert [x.message for x in found] == [f"line {n}" for n in range(3, 7)]
    grepped = store.search("app-1", limit=100, accept=lambda x: x.message.endswith("5"))
    assert [x.message for x in grepped] == ["line 5"]
    assert [x.message for x in store.search("app-1", limit=2)] == ["line 8", "line 9"]


def test_each_append_notifies_the_logs_process(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(store.notify_path))
        listener.settimeout(5)
        store.append_text("app-1", line(1))
        assert listener.recv(100) == b"app-1"


def test_delete_removes_every_segment(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append_text("app-1", line(1))
    store.rotate("app-1")
    store.append_text("app-1", line(2))
    store.delete("app-1")
    assert store.segments("app-1") == []
    assert store.app_ids() == []


def _open_sockets() -> int:
    """How many sockets this process holds open (after collecting the garbage of earlier tests)."""
    gc.collect()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            continue  # the descriptor listdir itself used
    return count


def test_close_closes_the_notification_socket_and_a_later_append_notifies_again(
    tmp_path: Path,
) -> None:
    store = FileLogStore(tmp_path)
    before = _open_sockets()
    store.append_text("app-1", line(1))
    assert _open_sockets() == before + 1
    store.close()
    assert _open_sockets() == before
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(store.notify_path))
        listener.settimeout(5)
        store.append_text("app-1", line(2))
        assert listener.recv(100) == b"app-1"
    store.close()


def test_a_dropped_store_closes_its_notification_socket(tmp_path: Path) -> None:
    """No socket is left for the garbage collector to warn about (ResourceWarning)."""
    before = _open_sockets()
    for i in range(5):
        FileLogStore(tmp_path).append_text(f"app-{i}", line(i))
    assert _open_sockets() == before


def test_a_process_that_appended_exits_without_a_resource_warning(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from dockyard.logs.store import FileLogStore\n"
        "store = FileLogStore(Path(sys.argv[1]))\n"
        f"store.append_text('app-1', {line(1)!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "app-1.log").read_text() == line(1)
