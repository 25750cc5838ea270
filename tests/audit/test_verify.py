"""``verify``: a whole log against its signed checkpoints, naming the first entry that was changed."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.audit.checkpoint import NoteVerifier, open_checkpoint
from dockyard.audit.event import Actor, AuditEvent, canonical
from dockyard.audit.log import OFFSET, AuditLog
from dockyard.audit.merkle import HASH_SIZE, MemoryHashes, leaf_hash, stored_hash_index
from dockyard.audit.verify import verify_entries, verify_log_dir
from dockyard.audit.writer import AuditWriter, WriterConfig

ORIGIN = "dockyard.test/audit"


def event(number: int) -> dict[str, object]:
    return AuditEvent(
        "app.create", Actor.account(f"acc-{number % 3}"), "app", f"app-{number}", f"app-{number}"
    ).to_json()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """A log of 101 entries with a checkpoint every 10 appends."""
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    writer = AuditWriter(
        WriterConfig(tmp_path / "audit", tmp_path / "audit.sock", ORIGIN, clock=clock)
    )
    writer.commit([{**event(0), "action": "audit.writer.start"}])
    for number in range(1, 101):
        clock.advance(1)
        writer.commit([event(number)])
        if number % 10 == 0:
            writer.publish_checkpoint()
    writer.close()
    return tmp_path / "audit"


def key(directory: Path) -> NoteVerifier:
    return NoteVerifier.from_vkey((directory / "key.pub").read_text())


def rewrite_entry(directory: Path, seq: int, change: dict[str, object]) -> bytes:
    """Change entry ``seq`` in place, as a root operator with an editor would (same length or not:
    the offsets are fixed up so the log still reads)."""
    log = AuditLog(directory, read_only=True)
    entries = log.entries(0, log.size)
    log.close()
    edited = json.loads(entries[seq])
    edited.update(change)
    entries[seq] = canonical(edited)
    (directory / "entries").write_bytes(b"".join(e + b"\n" for e in entries))
    offsets, end = bytearray(), 0
    for entry in entries:
        end += len(entry) + 1
        offsets += OFFSET.pack(end)
    (directory / "offsets").write_bytes(bytes(offsets))
    return entries[seq]


def test_an_untouched_log_verifies_against_all_its_checkpoints(directory: Path) -> None:
    report = verify_log_dir(directory, key(directory))
    assert report.ok, report.summary()
    assert report.checked == 101
    assert report.checkpoints_matched == 10
    assert report.summary().startswith("OK: 101 entries")


def test_editing_one_stored_entry_makes_verify_fail_at_that_index(directory: Path) -> None:
    rewrite_entry(directory, 42, {"actor": {"type": "account", "id": "someone-else"}})
    report = verify_log_dir(directory, key(directory))
    assert not report.ok
    assert report.first_bad == 42
    assert "first entry that does not match: 42" in report.summary()


def test_an_edit_with_the_stored_hashes_rewritten_too_is_caught_between_checkpoints(
    directory: Path,
) -> None:
    """The operator also recomputes the hashes file: the signed checkpoints still disagree, from the
    first one after the edit on."""
    edited = rewrite_entry(directory, 57, {"outcome": "failure"})
    log = AuditLog(directory, read_only=True)
    leaves = [leaf_hash(e) for e in log.entries(0, log.size)]
    log.close()
    assert leaves[57] == leaf_hash(edited)
    (directory / "hashes").write_bytes(b"".join(MemoryHashes(leaves).hashes))
    report = verify_log_dir(directory, key(directory))
    assert not report.ok
    assert report.first_bad is None
    assert report.bad_range == (51, 61)  # checkpoints at sizes 51 (matches) and 61 (does not)
    assert "in 51..60" in report.summary()


def test_deleting_the_newest_entries_is_reported_against_the_checkpoint(directory: Path) -> None:
    note = (directory / "checkpoint").read_text()
    log = AuditLog(directory, read_only=True)
    keep = 95
    end = log.offset(keep)
    log.close()
    os.truncate(directory / "entries", end)
    os.truncate(directory / "offsets", keep * 8)
    report = verify_log_dir(directory, key(directory), note)
    assert not report.ok
    assert report.first_bad == 95
    assert "lost entries 95..100" in report.summary()


def test_entries_out_of_order_or_reformatted_are_named(directory: Path) -> None:
    log = AuditLog(directory, read_only=True)
    entries = log.entries(0, log.size)
    checkpoint = open_checkpoint(
        (directory / "checkpoint").read_text(),
        key(directory),
    ).checkpoint
    log.close()
    swapped = [*entries[:10], entries[11], entries[10], *entries[12:]]
    assert verify_entries(swapped, checkpoint).first_bad == 10
    spaced = list(entries)
    spaced[3] = spaced[3].replace(b",", b", ", 1)
    report = verify_entries(spaced, checkpoint)
    assert report.first_bad == 3
    assert "canonical" in report.summary()


def test_stored_hashes_read_back_at_their_numbered_positions(directory: Path) -> None:
    log = AuditLog(directory, read_only=True)
    raw = (directory / "hashes").read_bytes()
    position = stored_hash_index(2, 5) * HASH_SIZE
    assert log.stored(2, 5) == raw[position : position + HASH_SIZE]
    log.close()
