"""Talking to the audit writer over its Unix socket: ``AuditTrail`` (append, fail closed) and reads.

The protocol is one JSON object per line each way, answered in order on each connection::

    {"op": "append", "event": {...}, "deadline_ms": <unix time in ms>}
                                                     → {"ok": true, "seq": 41, "leaf_hash": "<hex>"}
    {"op": "checkpoint"}                             → {"ok": true, "note": "<signed checkpoint>"}
    {"op": "entries", "start": 0, "end": 100}        → {"ok": true, "entries": ["<entry json>", ...]}
    {"op": "leaves", "start": 0, "end": 100}         → {"ok": true, "hashes": ["<b64>", ...]}
    {"op": "inclusion", "index": 5, "size": 100}     → {"ok": true, "hashes": ["<b64>", ...]}
    {"op": "consistency", "first": 5, "second": 100} → {"ok": true, "hashes": ["<b64>", ...]}
    {"op": "events", "keys": [...], "after": -1, "limit": 100}
                                                     → {"ok": true, "entries": [...], "size": N}
    {"op": "cosign", "note": "<cosigned checkpoint>"} → {"ok": true}

There is no operation that changes or removes an entry. An error answers
``{"ok": false, "kind": "invalid" | "not_found" | "unavailable", "error": "<message>"}``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from dockyard.audit.event import AuditEvent, AuditReceipt
from dockyard.errors import InvalidError, NotFoundError, UnavailableError

MAX_LINE = 64 << 20
UNAVAILABLE = (
    "The audit log is unavailable, so this action was not carried out (Dockyard records sensitive "
    "actions before doing them). Try again in a minute; operators: check the audit-writer process."
)


class AuditTrail(Protocol):
    """Where use cases append audit events. ``append`` returns only once the entry is durable."""

    def append(self, event: AuditEvent) -> AuditReceipt:
        """Append ``event``; ``UnavailableError`` when the log cannot take it (then do not act)."""
        ...


class SocketAuditTrail:
    """The audit writer at ``path`` (a Unix socket). Keeps a few connections open for reuse."""

    def __init__(self, path: Path, *, timeout: float = 10.0, pool_size: int = 8) -> None:
        self.path = path
        self.timeout = timeout
        self.pool_size = pool_size
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def append(self, event: AuditEvent) -> AuditReceipt:
        # The writer drops an append that reaches it after this client gave up, so an action that
        # failed for want of its event never shows up in the log as done.
        deadline_ms = int((time.time() + self.timeout * 0.8) * 1000)
        answer = self.call({"op": "append", "event": event.to_json(), "deadline_ms": deadline_ms})
        seq, leaf_hash = answer.get("seq"), answer.get("leaf_hash")
        if not isinstance(seq, int) or not isinstance(leaf_hash, str):
            raise UnavailableError(UNAVAILABLE)
        return AuditReceipt(seq, leaf_hash)

    def call(self, request: Mapping[str, object]) -> dict[str, object]:
        """Send one request and return its answer; errors are raised as Dockyard errors."""
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        reused = self._take()
        answer: dict[str, object] | None = None
        if reused is not None:
            try:
                answer = reused.exchange(line)
                self._give(reused)
            except _StaleConnection:
                reused.close()  # the writer restarted: it never read this request; try a new connection
        if answer is None:
            connection = self._connect()
            try:
                answer = connection.exchange(line)
            except _StaleConnection as exc:
                connection.close()
                raise UnavailableError(UNAVAILABLE) from exc
            self._give(connection)
        return _check(answer)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __enter__(self) -> SocketAuditTrail:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _connect(self) -> _Connection:
        for delay in (0.005, 0.02, 0.1, None):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except BlockingIOError as exc:  # the writer's backlog is full: it is busy, not gone
                sock.close()
                if delay is None:
                    raise UnavailableError(UNAVAILABLE) from exc
                time.sleep(delay)
            except OSError as exc:
                sock.close()
                raise UnavailableError(UNAVAILABLE) from exc
            else:
                return _Connection(sock)
        raise UnavailableError(UNAVAILABLE)

    def _take(self) -> _Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()


class _StaleConnection(Exception):
    """The connection was closed before any answer came (a restarted writer)."""


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def exchange(self, line: bytes) -> dict[str, object]:
        try:
            self.sock.sendall(line)
            answer = self.file.readline(MAX_LINE)
        except TimeoutError as exc:
            self.close()
            raise UnavailableError(
                "The audit log did not answer in time, so this action was not carried out. "
                "Try again in a minute; operators: check the audit-writer process."
            ) from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnection from exc
        except OSError as exc:
            self.close()
            raise UnavailableError(UNAVAILABLE) from exc
        if not answer.endswith(b"\n"):
            raise _StaleConnection
        try:
            decoded = json.loads(answer)
        except ValueError as exc:
            self.close()
            raise UnavailableError(UNAVAILABLE) from exc
        if not isinstance(decoded, dict):
            self.close()
            raise UnavailableError(UNAVAILABLE)
        return decoded

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _check(answer: dict[str, object]) -> dict[str, object]:
    if answer.get("ok") is True:
        return answer
    message = str(answer.get("error") or "the audit writer refused the request")
    kind = answer.get("kind")
    if kind == "invalid":
        raise InvalidError(message)
    if kind == "not_found":
        raise NotFoundError(message)
    raise UnavailableError(message if kind == "unavailable" else UNAVAILABLE)


class FakeAuditTrail:
    """Keeps events in memory; ``available = False`` makes appends fail like a stopped writer."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.available = True

    def append(self, event: AuditEvent) -> AuditReceipt:
        if not self.available:
            raise UnavailableError(UNAVAILABLE)
        from dockyard.audit.event import canonical
        from dockyard.audit.merkle import leaf_hash

        self.events.append(event)
        entry = {"seq": len(self.events) - 1, **event.to_json()}
        return AuditReceipt(len(self.events) - 1, leaf_hash(canonical(entry)).hex())
