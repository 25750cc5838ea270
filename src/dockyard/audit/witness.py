"""A witness: an independent party that watches the log's checkpoints and cosigns consistent ones.

It runs elsewhere (another host, another operator) as ``dockyard audit witness``. Each round it fetches
the newest checkpoint from the public endpoint, checks the log's signature with the key it was given,
checks a consistency proof from the last checkpoint it accepted (kept in its own state directory), and
then cosigns (C2SP ``cosignature/v1`` with its own Ed25519 key). It raises an alarm on

- a **bad signature** (or a checkpoint of another log),
- a **shrinking log** (fewer entries than a checkpoint it accepted),
- a **fork** (same size, different root; or a proof that the new tree does not extend the old one),
- a **stale log**: no new checkpoint for more than two checkpoint intervals (the writer or its signer
  stopped: appends fail closed, and this makes the outage visible),

and keeps both conflicting signed checkpoints as evidence. This module decides; fetching over HTTP
and raising the alarm (log line, exit status, webhook) is the CLI's part.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dockyard._util.clock import Clock, SystemClock
from dockyard.audit.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign,
    open_checkpoint,
)
from dockyard.audit.merkle import verify_consistency
from dockyard.errors import DockyardError, InvalidError

AlarmKind = Literal["bad_signature", "shrink", "fork", "stale", "bad_proof"]
ConsistencyFetcher = Callable[[int, int], list[bytes]]
"""``(first, second) → proof hashes`` from the log."""
STATE = "state.json"
KEY = "witness.key"


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    message: str

    def line(self) -> str:
        return f"ALARM {self.kind}: {self.message}"


@dataclass
class Observation:
    checkpoint: Checkpoint | None = None
    alarms: list[Alarm] = field(default_factory=list)
    cosigned: str | None = None
    """The checkpoint with this witness's cosignature, when it was accepted."""
    new: bool = False
    """Whether the checkpoint differs from the last one accepted."""

    @property
    def ok(self) -> bool:
        return not self.alarms


@dataclass
class _State:
    note: str = ""
    """The last checkpoint accepted (as signed by the log)."""
    size: int = 0
    root: str = ""
    timestamp: int = 0
    last_new_at: float = 0.0
    """Witness time (Unix seconds) at which it last saw a new checkpoint."""


def load_witness_key(state_dir: Path, name: str | None = None) -> NoteSigner:
    """The witness's cosigning key (``witness.key``, 0600), made on first use with ``name``."""
    path = state_dir / KEY
    if path.exists():
        signer = NoteSigner.from_skey(path.read_text())
        if signer.key_type != COSIGNATURE_V1:
            raise InvalidError(f"{path} is not a cosigning key (type 0x04)")
        return signer
    if not name:
        raise InvalidError(f"{path} does not exist: give the witness a name to make its key")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = NoteSigner.generate(name, COSIGNATURE_V1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.skey() + "\n")
    return signer


class Witness:
    def __init__(
        self,
        state_dir: Path,
        signer: NoteSigner,
        log_key: NoteVerifier,
        *,
        interval: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.signer = signer
        self.log_key = log_key
        self.interval = interval
        self.clock = clock or SystemClock()
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state = self._load()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _load(self) -> _State:
        path = self.state_dir / STATE
        if not path.exists():
            return _State(last_new_at=self._now())
        data = json.loads(path.read_text())
        return _State(
            note=str(data["note"]),
            size=int(data["size"]),
            root=str(data["root"]),
            timestamp=int(data["timestamp"]),
            last_new_at=float(data["last_new_at"]),
        )

    def _save(self) -> None:
        path = self.state_dir / STATE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state.__dict__))
        temporary.replace(path)

    def _evidence(self, kind: str, note: str) -> Path:
        """Keep a conflicting checkpoint next to the last accepted one: together they prove it."""
        folder = self.state_dir / "evidence"
        folder.mkdir(mode=0o700, exist_ok=True)
        stamp = int(self._now())
        (folder / f"{stamp}-{kind}-accepted.note").write_text(self.state.note)
        path = folder / f"{stamp}-{kind}-received.note"
        path.write_text(note)
        return path

    def stale_alarm(self) -> Alarm | None:
        """An alarm when no new checkpoint arrived for more than two intervals."""
        waited = self._now() - self.state.last_new_at
        if waited > 2 * self.interval:
            return Alarm(
                "stale",
                f"no new checkpoint for {waited:.0f} s (more than two intervals of "
                f"{self.interval:.0f} s): the audit writer or its signer is down, or the log is "
                "withheld",
            )
        return None

    def unreachable(self, reason: str) -> Observation:
        """A round in which the checkpoint could not be fetched."""
        observation = Observation()
        alarm = self.stale_alarm()
        if alarm is not None:
            observation.alarms.append(Alarm("stale", f"{alarm.message} (last error: {reason})"))
        return observation

    def observe(self, note: str, consistency: ConsistencyFetcher) -> Observation:
        """Check a fetched checkpoint against the last accepted one; cosign it when it is sound."""
        observation = Observation()
        try:
            checkpoint = open_checkpoint(note, self.log_key).checkpoint
        except InvalidError as exc:
            evidence = self._evidence("bad-signature", note)
            observation.alarms.append(Alarm("bad_signature", f"{exc.message} (kept: {evidence})"))
            return observation
        observation.checkpoint = checkpoint
        previous = self.state
        if previous.note:
            alarm = self._compare(checkpoint, note, consistency)
            if alarm is not None:
                observation.alarms.append(alarm)
                return observation
        now = self._now()
        observation.new = not previous.note or (checkpoint.size, checkpoint.timestamp or 0) != (
            previous.size,
            previous.timestamp,
        )
        if observation.new:
            self.state = _State(
                note, checkpoint.size, checkpoint.root.hex(), checkpoint.timestamp or 0, now
            )
        else:
            stale = self.stale_alarm()
            if stale is not None:
                observation.alarms.append(stale)
        if checkpoint.timestamp is not None and now - checkpoint.timestamp > 2 * self.interval:
            observation.alarms.append(
                Alarm(
                    "stale",
                    f"the newest checkpoint is {now - checkpoint.timestamp:.0f} s old (more than "
                    f"two intervals of {self.interval:.0f} s)",
                )
            )
        self._save()
        if observation.ok:
            observation.cosigned = cosign(note, self.signer, int(now))
            (self.state_dir / "cosigned.note").write_text(observation.cosigned)
        return observation

    def _compare(
        self, checkpoint: Checkpoint, note: str, consistency: ConsistencyFetcher
    ) -> Alarm | None:
        """What is wrong with ``checkpoint`` given the last accepted one, if anything."""
        previous = self.state
        if checkpoint.size < previous.size:
            evidence = self._evidence("shrink", note)
            return Alarm(
                "shrink",
                f"the log shrank from {previous.size} to {checkpoint.size} entries: entries were "
                f"deleted (both signed checkpoints kept in {evidence.parent})",
            )
        if checkpoint.size == previous.size and checkpoint.root.hex() != previous.root:
            evidence = self._evidence("fork", note)
            return Alarm(
                "fork",
                f"two different roots signed for size {checkpoint.size}: the log was rewritten or "
                f"shows different histories (both kept in {evidence.parent})",
            )
        if checkpoint.size > previous.size:
            try:
                proof = consistency(previous.size, checkpoint.size)
            except DockyardError as exc:
                return Alarm("bad_proof", f"no consistency proof from the log: {exc.message}")
            old_root = bytes.fromhex(previous.root)
            if not verify_consistency(
                previous.size, checkpoint.size, old_root, checkpoint.root, proof
            ):
                evidence = self._evidence("fork", note)
                return Alarm(
                    "fork",
                    f"the tree of {checkpoint.size} entries does not extend the one of "
                    f"{previous.size} this witness accepted: history was rewritten (both kept in "
                    f"{evidence.parent})",
                )
        if (checkpoint.timestamp or 0) < previous.timestamp:
            return Alarm(
                "bad_signature",
                f"the checkpoint is dated {checkpoint.timestamp}, before the one accepted "
                f"({previous.timestamp}): an old checkpoint is being replayed",
            )
        return None
