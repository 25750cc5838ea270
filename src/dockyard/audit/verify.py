"""Checking a whole log, or an export of it, against signed checkpoints.

``verify_entries`` reads the entries in order (each exactly as stored) and checks that

1. each is canonical JSON whose ``seq`` is its position, with timestamps that never go back;
2. its leaf hash equals the one the log stored for it, when those are at hand (a live log, or the
   API's ``/audit/leaf-hashes``): this names the first entry that was changed after it was written;
3. the Merkle root of the first n entries equals the root of every signed checkpoint of size n it is
   given (the newest, and older ones: the log's history or a witness's), so an entry changed together
   with the stored hashes is still caught, between the last checkpoint that matches and the first that
   does not.

The report names the first entry that does not match, or the range it must be in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.audit.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from dockyard.audit.event import canonical
from dockyard.audit.log import AuditLog
from dockyard.audit.merkle import Frontier, leaf_hash
from dockyard.errors import InvalidError

LeafLookup = Callable[[int], bytes | None]
"""The stored leaf hash of entry n (``None`` when unknown)."""


@dataclass
class Report:
    checked: int = 0
    """Entries read."""
    size: int = 0
    """Size of the checkpoint verified against."""
    problems: list[str] = field(default_factory=list)
    first_bad: int | None = None
    """Index of the first entry that does not match, when it could be named."""
    bad_range: tuple[int, int] | None = None
    """``[start, end)`` the first changed entry is in, when only checkpoints could tell."""
    checkpoints_matched: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, index: int | None = None) -> None:
        self.problems.append(message)
        if index is not None and (self.first_bad is None or index < self.first_bad):
            self.first_bad = index

    def summary(self) -> str:
        if self.ok:
            newer = self.checked - self.size
            tail = (
                f"; {newer} newer entries match their stored hashes but no signed checkpoint yet"
                if newer > 0
                else ""
            )
            return (
                f"OK: {min(self.checked, self.size)} entries match the checkpoint of size "
                f"{self.size} ({self.checkpoints_matched} checkpoint(s) checked){tail}"
            )
        where = ""
        if self.first_bad is not None:
            where = f"; first entry that does not match: {self.first_bad}"
        elif self.bad_range is not None:
            where = f"; the first changed entry is in {self.bad_range[0]}..{self.bad_range[1] - 1}"
        return f"FAILED{where}: " + "; ".join(self.problems[:5])


def verify_entries(
    entries: Iterable[bytes],
    checkpoint: Checkpoint,
    *,
    history: Sequence[Checkpoint] = (),
    stored_leaf: LeafLookup | None = None,
) -> Report:
    """Verify entries ``0..checkpoint.size-1`` (more are read but only checked for order)."""
    report = Report(size=checkpoint.size)
    expected = {c.size: c for c in history if 0 < c.size <= checkpoint.size}
    expected[checkpoint.size] = checkpoint
    last_good = 0
    frontier = Frontier()
    last_ts = ""
    for index, raw in enumerate(entries):
        report.checked += 1
        last_ts = _check_fields(report, index, raw, last_ts)
        leaf = leaf_hash(raw)
        if stored_leaf is not None:
            stored = stored_leaf(index)
            if stored is not None and stored != leaf:
                report.fail(
                    f"entry {index} differs from the leaf hash the log stored for it", index
                )
        if index < checkpoint.size:
            frontier.append(leaf)
        signed = expected.get(frontier.size) if index < checkpoint.size else None
        if signed is not None:
            if frontier.root() == signed.root:
                report.checkpoints_matched += 1
                if report.bad_range is None:
                    last_good = frontier.size
            elif report.bad_range is None:
                report.bad_range = (last_good, frontier.size)
                report.fail(
                    f"the root of entries 0..{frontier.size - 1} is not the root of the checkpoint "
                    f"signed for size {frontier.size}"
                )
    if report.checked < checkpoint.size:
        report.fail(
            f"only {report.checked} entries for a checkpoint of {checkpoint.size}: the log lost "
            f"entries {report.checked}..{checkpoint.size - 1}",
            report.checked,
        )
    return report


def _check_fields(report: Report, index: int, raw: bytes, last_ts: str) -> str:
    try:
        entry = json.loads(raw)
    except ValueError:
        report.fail(f"entry {index} is not JSON", index)
        return last_ts
    if not isinstance(entry, dict):
        report.fail(f"entry {index} is not a JSON object", index)
        return last_ts
    if canonical(entry) != raw:
        report.fail(f"entry {index} is not in canonical form (it was rewritten)", index)
    if entry.get("seq") != index:
        report.fail(f"entry {index} says it is entry {entry.get('seq')!r}", index)
    ts = entry.get("ts")
    if not isinstance(ts, str):
        report.fail(f"entry {index} has no timestamp", index)
        return last_ts
    if ts < last_ts:
        report.fail(f"entry {index} is dated {ts}, before the entry ahead of it ({last_ts})", index)
    return max(ts, last_ts)


def load_history(lines: Iterable[str], log_key: NoteVerifier) -> list[Checkpoint]:
    """Checkpoints from the log's ``checkpoints`` file (JSON lines ``{"size", "note"}``), each
    checked against the log's key; lines that do not verify are reported as problems by the caller
    through the missing sizes, and skipped here."""
    found: list[Checkpoint] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            note = json.loads(line)["note"]
            found.append(open_checkpoint(str(note), log_key).checkpoint)
        except (ValueError, KeyError, TypeError, InvalidError):
            continue
    return found


def verify_log_dir(
    directory: Path, log_key: NoteVerifier, checkpoint_note: str | None = None
) -> Report:
    """Verify a live log's files (read-only) against its newest checkpoint (or ``checkpoint_note``,
    e.g. one a witness kept) and every checkpoint in its history."""
    note = checkpoint_note or (directory / "checkpoint").read_text()
    checkpoint = open_checkpoint(note, log_key).checkpoint
    history_file = directory / "checkpoints"
    history = (
        load_history(history_file.read_text().splitlines(), log_key)
        if history_file.exists()
        else []
    )
    log = AuditLog(directory, read_only=True)
    try:

        def stored(index: int) -> bytes | None:
            return log.leaf_hash(index) if index < log.size else None

        return verify_entries(log.iter_entries(), checkpoint, history=history, stored_leaf=stored)
    finally:
        log.close()
