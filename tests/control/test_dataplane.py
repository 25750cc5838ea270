"""``Changes``: what wakes the data plane's long polls."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from dockyard.control.context import Platform
from dockyard.control.dataplane import Changes, changes, database_files, file_signature

pytestmark = pytest.mark.anyio


class Signature:
    """A database signature the test changes by hand."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_notification_wakes_a_waiting_poll_from_another_thread() -> None:
    feed = Changes()
    generation = feed.generation
    waiting = asyncio.ensure_future(feed.wait(generation, 30))
    while feed.waiting == 0:
        await asyncio.sleep(0)

    threading.Thread(target=feed.notify).start()

    assert await asyncio.wait_for(waiting, 10) is True
    assert feed.waiting == 0


async def test_a_notification_between_reading_and_waiting_is_not_lost() -> None:
    feed = Changes()
    generation = feed.generation
    feed.notify()  # after the state was read, before the poll waits

    assert await asyncio.wait_for(feed.wait(generation, 30), 1) is True


async def test_without_a_change_the_wait_ends_with_its_timeout() -> None:
    feed = Changes(Signature())

    assert await feed.wait(feed.generation, 0.05) is False


async def test_without_a_signature_a_poll_looks_again_every_recheck_interval() -> None:
    feed = Changes(None, recheck_interval=0.05)

    assert await asyncio.wait_for(feed.wait(feed.generation, 30), 10) is True


def test_a_changed_signature_notifies_and_once_more_after_the_watch_interval() -> None:
    signature, ticks = Signature(), Ticks()
    feed = Changes(signature, watch_interval=0.05, monotonic=ticks)
    start = feed.generation

    feed.look()
    assert feed.generation == start, "nothing changed"
    signature.value = 1
    feed.look()
    assert feed.generation == start + 1
    feed.look()
    assert feed.generation == start + 1, "not again before the watch interval"
    ticks.now += 0.05
    feed.look()
    assert feed.generation == start + 2, "once more: the commit may not have been visible"
    ticks.now += 1
    feed.look()
    assert feed.generation == start + 2


async def test_a_waiting_poll_notices_a_changed_signature() -> None:
    signature = Signature()
    feed = Changes(signature, watch_interval=0.01)
    waiting = asyncio.ensure_future(feed.wait(feed.generation, 30))
    while feed.waiting == 0:
        await asyncio.sleep(0)

    signature.value = 1

    assert await asyncio.wait_for(waiting, 10) is True


def test_the_files_of_an_sqlite_url_are_the_database_and_its_log(tmp_path: Path) -> None:
    assert database_files(f"sqlite:///{tmp_path}/d.db") == (
        tmp_path / "d.db",
        tmp_path / "d.db-wal",
    )
    assert database_files("sqlite:///:memory:") == ()
    assert database_files("postgresql+psycopg://u@h/db") == ()


def test_a_file_signature_changes_with_a_write_and_notes_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    missing = file_signature([path])
    path.write_bytes(b"a")
    written = file_signature([path])
    path.write_bytes(b"ab")

    assert missing == (None,)
    assert written != missing
    assert file_signature([path]) != written


def test_a_commit_to_the_platforms_database_changes_its_signature(platform: Platform) -> None:
    feed = changes(platform)
    generation = feed.generation

    with platform.store.transaction() as tx:
        tx.create_account("someone@example.com", "Someone")
    feed.look()

    assert feed.generation > generation
    assert changes(platform) is feed, "one per store"
