"""The witness against a real writer: cosigning a growing log, and alarms on a shrinking log, a fork,
a bad signature, and a log that stopped checkpointing."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.audit.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    open_checkpoint,
    sign_checkpoint,
)
from dockyard.audit.client import SocketAuditTrail
from dockyard.audit.event import Actor, AuditEvent
from dockyard.audit.log import AuditLog
from dockyard.audit.merkle import HASH_SIZE, stored_hash_count
from dockyard.audit.witness import Witness, load_witness_key
from dockyard.audit.writer import WriterConfig, WriterThread

ORIGIN = "dockyard.test/audit"
INTERVAL = 60.0


class Log:
    """A real writer in a thread, restartable, and a client to it."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = WriterConfig(tmp_path / "audit", tmp_path / "audit.sock", ORIGIN)
        self.thread = WriterThread(self.config)
        self.thread.start()
        self.trail = SocketAuditTrail(self.config.socket, timeout=5)

    def append(self, count: int) -> None:
        for number in range(count):
            self.trail.append(AuditEvent("app.create", Actor.account("a"), "app", f"app-{number}"))

    def note(self) -> str:
        return str(self.trail.call({"op": "checkpoint"})["note"])

    def consistency(self, first: int, second: int) -> list[bytes]:
        answer = self.trail.call({"op": "consistency", "first": first, "second": second})
        hashes = answer["hashes"]
        assert isinstance(hashes, list)
        return [base64.b64decode(str(h)) for h in hashes]

    def restart(self) -> None:
        self.stop()
        self.thread = WriterThread(self.config)
        self.thread.start()
        self.trail = SocketAuditTrail(self.config.socket, timeout=5)

    def stop(self) -> None:
        self.trail.close()
        self.thread.stop()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    running = Log(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def witness(tmp_path: Path, log: Log, clock: FakeClock) -> Witness:
    assert log.thread.writer is not None
    signer = load_witness_key(tmp_path / "witness", "witness.test/w1")
    return Witness(
        tmp_path / "witness", signer, log.thread.writer.verifier, interval=INTERVAL, clock=clock
    )


def test_a_growing_log_is_cosigned_round_after_round(log: Log, witness: Witness) -> None:
    for _ in range(3):
        log.append(4)
        observation = witness.observe(log.note(), log.consistency)
        assert observation.ok, observation.alarms
        assert observation.new
        assert observation.cosigned is not None
        assert log.thread.writer is not None
        opened = open_checkpoint(
            observation.cosigned, log.thread.writer.verifier, (witness.signer.verifier,)
        )
        assert opened.cosigners[0][0] == "witness.test/w1"
    assert witness.state.size == log.thread.writer.log.size


def test_deleting_the_newest_entries_is_a_size_regression(
    log: Log, witness: Witness, tmp_path: Path
) -> None:
    log.append(20)
    before = witness.observe(log.note(), log.consistency)
    assert before.ok
    assert before.checkpoint is not None
    log.stop()
    directory = tmp_path / "audit"
    keep = before.checkpoint.size - 5
    reader = AuditLog(directory, read_only=True)
    end = reader.offset(keep)
    reader.close()
    os.truncate(directory / "entries", end)
    os.truncate(directory / "offsets", keep * 8)
    os.truncate(directory / "hashes", stored_hash_count(keep) * HASH_SIZE)
    log.restart()  # the writer signs what is left (its key is on the host)
    observation = witness.observe(log.note(), log.consistency)
    assert [a.kind for a in observation.alarms] == ["shrink"]
    assert (
        f"shrank from {before.checkpoint.size} to {keep + 1} entries"
        in observation.alarms[0].message
    )
    assert observation.cosigned is None
    assert witness.state.size == before.checkpoint.size  # the last good one stays
    evidence = sorted(p.name for p in (tmp_path / "witness" / "evidence").iterdir())
    assert evidence[0].endswith("shrink-accepted.note")
    assert evidence[1].endswith("shrink-received.note")


def test_a_rewritten_history_is_a_fork(log: Log, witness: Witness, tmp_path: Path) -> None:
    log.append(10)
    assert witness.observe(log.note(), log.consistency).ok
    assert log.thread.writer is not None
    key = NoteSigner.from_skey((tmp_path / "audit" / "key").read_text())
    size = witness.state.size
    other_root = sign_checkpoint(Checkpoint(ORIGIN, size, bytes(32), 2**40), key)
    same_size = witness.observe(other_root, log.consistency)
    assert [a.kind for a in same_size.alarms] == ["fork"]
    assert f"two different roots signed for size {size}" in same_size.alarms[0].message
    bigger = sign_checkpoint(Checkpoint(ORIGIN, size + 1, bytes(32), 2**40), key)
    log.append(1)
    extended = witness.observe(bigger, log.consistency)
    assert [a.kind for a in extended.alarms] == ["fork"]
    assert "does not extend" in extended.alarms[0].message


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(log: Log, witness: Witness) -> None:
    impostor = NoteSigner.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, bytes(32), 1), impostor)
    observation = witness.observe(note, log.consistency)
    assert [a.kind for a in observation.alarms] == ["bad_signature"]
    assert "does not verify" in observation.alarms[0].message


def test_a_stopped_writer_makes_the_witness_alarm_within_two_intervals(
    log: Log, witness: Witness, clock: FakeClock
) -> None:
    assert witness.observe(log.note(), log.consistency).ok
    log.stop()
    clock.advance(1.5 * INTERVAL)
    assert witness.unreachable("503 the audit log is unavailable").ok
    clock.advance(0.6 * INTERVAL)
    late = witness.unreachable("503 the audit log is unavailable")
    assert [a.kind for a in late.alarms] == ["stale"]
    assert "no new checkpoint for 126 s" in late.alarms[0].message


def test_a_log_that_serves_the_same_old_checkpoint_goes_stale(
    log: Log, witness: Witness, clock: FakeClock
) -> None:
    note = log.note()
    assert witness.observe(note, log.consistency).ok
    clock.advance(INTERVAL)
    assert witness.observe(note, log.consistency).ok
    clock.advance(1.5 * INTERVAL)
    stale = witness.observe(note, log.consistency)
    assert {a.kind for a in stale.alarms} == {"stale"}
    assert stale.cosigned is None


def test_an_older_checkpoint_replayed_is_refused(
    log: Log, witness: Witness, tmp_path: Path
) -> None:
    key = NoteSigner.from_skey((tmp_path / "audit" / "key").read_text())
    first = witness.observe(log.note(), log.consistency)
    assert first.checkpoint is not None
    checkpoint = first.checkpoint
    older = Checkpoint(ORIGIN, checkpoint.size, checkpoint.root, (checkpoint.timestamp or 0) - 60)
    replay = witness.observe(sign_checkpoint(older, key), log.consistency)
    assert [a.kind for a in replay.alarms] == ["bad_signature"]
    assert "replayed" in replay.alarms[0].message


def test_the_witness_remembers_across_restarts(log: Log, tmp_path: Path, clock: FakeClock) -> None:
    assert log.thread.writer is not None
    signer = load_witness_key(tmp_path / "witness", "witness.test/w1")
    first = Witness(tmp_path / "witness", signer, log.thread.writer.verifier, clock=clock)
    log.append(3)
    assert first.observe(log.note(), log.consistency).ok
    again = Witness(
        tmp_path / "witness",
        load_witness_key(tmp_path / "witness"),
        log.thread.writer.verifier,
        clock=clock,
    )
    assert again.state.size == first.state.size
    assert again.signer.verifier == signer.verifier
    assert again.signer.key_type == COSIGNATURE_V1
    assert (tmp_path / "witness" / "witness.key").stat().st_mode & 0o777 == 0o600
