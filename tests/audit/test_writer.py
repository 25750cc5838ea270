"""The audit writer: appends over its socket, checkpoints, restarts, and what it refuses."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.audit.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    cosign,
    open_checkpoint,
    sign_checkpoint,
)
from dockyard.audit.client import SocketAuditTrail
from dockyard.audit.event import SYSTEM_ACTOR, Actor, AuditEvent
from dockyard.audit.merkle import leaf_hash
from dockyard.audit.writer import AuditWriter, WriterConfig, running
from dockyard.domain.requests import RequestContext
from dockyard.errors import DockyardError, InvalidError, UnavailableError

ORIGIN = "dockyard.test/audit"


def config(tmp_path: Path, **changes: object) -> WriterConfig:
    base = WriterConfig(
        directory=tmp_path / "audit",
        socket=tmp_path / "run" / "audit.sock",
        origin=ORIGIN,
        checkpoint_interval=60.0,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def key_added(account: str = "acc-1") -> AuditEvent:
    return AuditEvent(
        action="ssh_key.add",
        actor=Actor.account(account),
        target_type="ssh_key",
        target_id="key-1",
        target_name="SHA256:abc",
        account_id=account,
        context=RequestContext("192.0.2.7", "cli/1", "req-123456789012345678", "api_key"),
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[AuditWriter, SocketAuditTrail]]:
    cfg = config(tmp_path)
    with running(cfg) as writer, SocketAuditTrail(cfg.socket, timeout=5) as trail:
        yield writer, trail


def test_an_append_returns_the_entry_number_and_leaf_hash_once_durable(
    served: tuple[AuditWriter, SocketAuditTrail],
) -> None:
    writer, trail = served
    receipt = trail.append(key_added())
    assert receipt.seq == 1  # entry 0 is the writer's own start
    stored = writer.log.entry(1)
    assert leaf_hash(stored).hex() == receipt.leaf_hash
    entry = json.loads(stored)
    assert entry["seq"] == 1
    assert entry["action"] == "ssh_key.add"
    assert entry["ip"] == "192.0.2.7"
    assert entry["actor"] == {"type": "account", "id": "acc-1"}
    assert datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    start = json.loads(writer.log.entry(0))
    assert start["action"] == "audit.writer.start"
    assert start["details"]["key"] == writer.verifier.vkey()


def test_pipelined_appends_on_one_connection_are_answered_in_order(
    served: tuple[AuditWriter, SocketAuditTrail], tmp_path: Path
) -> None:
    writer, _ = served
    line = json.dumps({"op": "append", "event": key_added().to_json()}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(tmp_path / "run" / "audit.sock"))
        sock.sendall(line * 200)
        replies = sock.makefile("rb")
        answers = [json.loads(replies.readline()) for _ in range(200)]
    assert [a["seq"] for a in answers] == list(range(1, 201))
    assert writer.log.size == 201


def test_a_malformed_event_is_refused_and_nothing_is_appended(
    served: tuple[AuditWriter, SocketAuditTrail],
) -> None:
    writer, trail = served
    bad = key_added().to_json()
    bad["action"] = "Drop Table"
    with pytest.raises(InvalidError, match=r"not <noun>\.<verb>"):
        trail.call({"op": "append", "event": bad})
    with pytest.raises(InvalidError, match="floating-point"):
        trail.call({"op": "append", "event": {**key_added().to_json(), "details": {"x": 1.5}}})
    with pytest.raises(InvalidError, match="unknown audit request"):
        trail.call({"op": "delete", "seq": 0})
    assert writer.log.size == 1


def test_an_append_that_arrives_after_its_client_gave_up_is_not_written(
    served: tuple[AuditWriter, SocketAuditTrail],
) -> None:
    writer, trail = served
    late = {
        "op": "append",
        "event": key_added().to_json(),
        "deadline_ms": int((time.time() - 1) * 1000),
    }
    with pytest.raises(UnavailableError, match="too late"):
        trail.call(late)
    assert writer.log.size == 1


def test_a_stopped_writer_makes_appends_fail(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with running(cfg):
        pass
    with pytest.raises(UnavailableError, match="audit log is unavailable"):
        SocketAuditTrail(cfg.socket, timeout=1).append(key_added())


def test_timestamps_never_go_back_even_when_the_clock_does(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    writer = AuditWriter(config(tmp_path, clock=clock))
    try:
        writer.commit([key_added().to_json()])
        clock.advance(-3600)
        writer.commit([key_added().to_json()])
        first, second = (json.loads(e)["ts"] for e in writer.log.entries(0, 2))
        assert first == second == "2026-05-01T12:00:00.000000Z"
    finally:
        writer.close()


def test_checkpoints_follow_appends_and_beat_every_interval_when_idle(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    writer = AuditWriter(config(tmp_path, clock=clock, checkpoint_interval=60.0))
    try:
        first = open_checkpoint(writer.publish_checkpoint(), writer.verifier).checkpoint
        writer.commit([key_added().to_json()])
        clock.advance(1)
        writer.tick()
        after_append = open_checkpoint(writer.checkpoint_note, writer.verifier).checkpoint
        assert after_append.size == first.size + 1
        clock.advance(30)
        writer.tick()
        assert writer.checkpoint.timestamp == after_append.timestamp  # idle, within the interval
        clock.advance(31)
        writer.tick()
        heartbeat = open_checkpoint(writer.checkpoint_note, writer.verifier).checkpoint
        assert heartbeat.size == after_append.size
        assert heartbeat.timestamp == after_append.timestamp + 61
        history = (tmp_path / "audit" / "checkpoints").read_text().splitlines()
        assert len(history) == 3
        assert (tmp_path / "audit" / "checkpoint").read_text() == writer.checkpoint_note
    finally:
        writer.close()


def test_a_restarted_writer_keeps_its_log_key_and_entries(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with running(cfg) as writer, SocketAuditTrail(cfg.socket) as trail:
        trail.append(key_added())
        key = writer.verifier.vkey()
    with running(cfg) as again:
        assert again.verifier.vkey() == key
        assert again.log.size == 3  # two starts and the event
        assert (tmp_path / "audit" / "key").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "audit" / "key.pub").read_text().strip() == key


def test_a_log_whose_key_went_missing_does_not_start_under_a_new_one(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with running(cfg):
        pass
    (tmp_path / "audit" / "key").unlink()
    with pytest.raises(InvalidError, match=r"signing key .* is missing"):
        AuditWriter(cfg)


def test_a_log_keeps_its_name(tmp_path: Path) -> None:
    with running(config(tmp_path)):
        pass
    with pytest.raises(InvalidError, match="keeps its name"):
        AuditWriter(config(tmp_path, origin="renamed.test/audit"))


def test_only_one_writer_owns_a_log(tmp_path: Path) -> None:
    with running(config(tmp_path)), pytest.raises(DockyardError, match="another audit writer"):
        AuditWriter(config(tmp_path, socket=tmp_path / "other.sock"))


def test_cosignatures_are_kept_only_from_known_witnesses_for_real_checkpoints(
    tmp_path: Path,
) -> None:
    witness = NoteSigner.generate("witness.test/w1", COSIGNATURE_V1)
    stranger = NoteSigner.generate("witness.test/w2", COSIGNATURE_V1)
    cfg = config(tmp_path, witness_keys=(witness.verifier,))
    with running(cfg) as writer, SocketAuditTrail(cfg.socket) as trail:
        note = str(trail.call({"op": "checkpoint"})["note"])
        with pytest.raises(InvalidError, match="no cosignature by a witness"):
            trail.call({"op": "cosign", "note": cosign(note, stranger, 5)})
        trail.call({"op": "cosign", "note": cosign(note, witness, 5)})
        kept = trail.call({"op": "cosigned"})["notes"]
        assert isinstance(kept, list)
        opened = open_checkpoint(str(kept[0]), writer.verifier, (witness.verifier,))
        assert opened.cosigners == (("witness.test/w1", 5),)
        forged = NoteSigner.generate(ORIGIN)  # right name, wrong key
        other = sign_checkpoint(Checkpoint(ORIGIN, 1, bytes(32), 5), forged)
        with pytest.raises(InvalidError, match="not this log's root"):
            trail.call({"op": "cosign", "note": cosign(other, witness, 5)})


def test_system_events_need_no_account(served: tuple[AuditWriter, SocketAuditTrail]) -> None:
    writer, trail = served
    event = AuditEvent("platform.settings.update", SYSTEM_ACTOR, "settings", "audit")
    trail.append(event)
    assert json.loads(writer.log.entry(1))["actor"] == {"type": "system", "id": ""}
