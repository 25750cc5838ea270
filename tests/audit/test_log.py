"""The log's files: appends, reads, proofs from stored hashes, recovery after a crash, tenant indexes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.audit.log import AuditLog, entry_keys
from dockyard.audit.merkle import (
    HASH_SIZE,
    leaf_hash,
    root_of,
    stored_hash_count,
    verify_consistency,
    verify_inclusion,
)


def lines(start: int, end: int) -> list[bytes]:
    return [b'{"seq":%d}' % i for i in range(start, end)]


def test_appended_entries_read_back_with_their_roots_and_proofs(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    appended = log.append(lines(0, 10)) + log.append(lines(10, 37))
    assert [a.seq for a in appended] == list(range(37))
    assert log.entries(5, 8) == lines(5, 8)
    assert log.entry(36) == b'{"seq":36}'
    leaves = [leaf_hash(x) for x in lines(0, 37)]
    assert [a.leaf_hash for a in appended] == leaves
    assert log.root() == root_of(leaves)
    assert log.root(20) == root_of(leaves[:20])
    assert verify_inclusion(7, 20, leaves[7], log.inclusion_proof(7, 20), log.root(20))
    assert verify_consistency(20, 37, log.root(20), log.root(), log.consistency_proof(20, 37))
    with pytest.raises(ValueError, match="has 37 entries"):
        log.inclusion_proof(1, 38)
    log.close()


def test_files_are_private_to_the_writer(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append(lines(0, 1), [["account:a"]])
    log.close()
    assert (tmp_path / "audit").stat().st_mode & 0o777 == 0o700
    for name in ("entries", "offsets", "hashes"):
        assert (tmp_path / "audit" / name).stat().st_mode & 0o777 == 0o600


def test_a_reopened_log_continues_where_it_was(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append(lines(0, 21))
    log.close()
    again = AuditLog(tmp_path / "audit")
    assert again.size == 21
    again.append(lines(21, 50))
    assert again.root() == root_of([leaf_hash(x) for x in lines(0, 50)])
    again.close()


def test_a_torn_tail_is_cut_back_to_the_last_whole_entry(tmp_path: Path) -> None:
    """A crash in the middle of a batch: a whole entry, half an entry, and offsets written past the
    data. The entries file decides: the whole entry stays, the half is cut."""
    directory = tmp_path / "audit"
    log = AuditLog(directory)
    log.append(lines(0, 8))
    log.close()
    with open(directory / "entries", "ab") as handle:
        handle.write(b'{"seq":8}\n{"se')
    with open(directory / "offsets", "ab") as handle:
        handle.write((os.path.getsize(directory / "entries") + 40).to_bytes(8, "big"))
        handle.write(b"\x00\x00\x01")
    recovered = AuditLog(directory)
    assert recovered.size == 9
    assert recovered.root() == root_of([leaf_hash(x) for x in lines(0, 9)])
    recovered.append(lines(9, 10))
    assert recovered.entries(0, 10) == lines(0, 10)
    assert (directory / "entries").read_bytes().endswith(b'{"seq":9}\n')
    recovered.close()


def test_offsets_lost_in_a_crash_are_found_again_in_the_entries(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = AuditLog(directory)
    log.append(lines(0, 25))
    log.close()
    os.truncate(directory / "offsets", 11 * 8 + 3)
    recovered = AuditLog(directory)
    assert recovered.size == 25
    assert recovered.entries(10, 25) == lines(10, 25)
    recovered.close()


def test_hashes_lost_in_a_crash_are_computed_again_from_the_entries(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = AuditLog(directory)
    log.append(lines(0, 30))
    log.close()
    os.truncate(directory / "hashes", stored_hash_count(11) * HASH_SIZE + 5)
    recovered = AuditLog(directory)
    assert recovered.size == 30
    assert recovered.root() == root_of([leaf_hash(x) for x in lines(0, 30)])
    assert os.path.getsize(directory / "hashes") == stored_hash_count(30) * HASH_SIZE
    recovered.close()


def test_a_read_only_log_changes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = AuditLog(directory)
    log.append(lines(0, 5))
    log.close()
    with open(directory / "entries", "ab") as handle:
        handle.write(b"torn")
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    reader = AuditLog(directory, read_only=True)
    assert reader.size == 5
    assert reader.entries(0, 5) == lines(0, 5)
    with pytest.raises(PermissionError):
        reader.append(lines(5, 6))
    reader.close()
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()} == before


def test_tenant_streams_list_their_entries_newest_first(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    keys = [["account:a"] if i % 3 else ["account:a", "app:x"] for i in range(20)]
    log.append(lines(0, 20), keys)
    assert log.index.seqs_before("app:x", 100, 3) == [18, 15, 12]
    assert log.index.seqs_before("app:x", 12, 10) == [9, 6, 3, 0]
    log.index.flush()
    log.append(lines(20, 22), [["app:x"], ["app:y"]])
    assert log.index.seqs_before("app:x", 100, 3) == [20, 18, 15]  # pending and flushed together
    log.close()
    again = AuditLog(tmp_path / "audit")
    assert again.index.seqs_before("app:x", 100, 2) == [20, 18]
    assert again.index.seqs_before("account:nobody", 100, 5) == []
    again.close()


def test_an_index_behind_the_log_is_rebuilt_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = AuditLog(directory)
    log.append([b'{"account":"a","seq":%d}' % i for i in range(6)], [["account:a"]] * 6)
    log.close()
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        (directory / name).unlink(missing_ok=True)
    rebuilt = AuditLog(directory)
    assert rebuilt.index.seqs_before("account:a", 100, 10) == [5, 4, 3, 2, 1, 0]
    rebuilt.close()


def test_an_entry_belongs_to_its_account_its_acting_account_and_its_app() -> None:
    entry: dict[str, object] = {
        "account": "owner",
        "actor": {"type": "account", "id": "collaborator"},
        "app": "app-1",
    }
    assert entry_keys(entry) == ["account:collaborator", "account:owner", "app:app-1"]
    assert entry_keys({"account": None, "actor": {"type": "system", "id": ""}, "app": None}) == []


def test_an_entry_spanning_lines_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    with pytest.raises(ValueError, match="one line"):
        log.append([b"{}\n{}"])
    assert log.size == 0
    log.close()
