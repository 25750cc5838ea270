"""The API's side of the logs process's ``.session`` socket: one JSON request line, then the answer.

``stream`` yields raw bytes (whole lines, possibly split across chunks) until the logs process
closes the session; it raises ``OSError`` when the logs process cannot be reached, before anything
was yielded, so the caller can fall back to reading the files itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

from dockyard.logs.query import LogFilter
from dockyard.logs.store import FileLogStore

CHUNK = 1 << 16


async def stream(
    store: FileLogStore, app_id: str, *, lines: int, tail: bool, wanted: LogFilter
) -> AsyncIterator[bytes]:
    request: dict[str, Any] = {"op": "tail" if tail else "recent", "app": app_id, "lines": lines}
    request["filter"] = wanted.to_json()
    reader, writer = await asyncio.open_unix_connection(str(store.session_path), limit=CHUNK)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        while chunk := await reader.read(CHUNK):
            yield chunk
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def call(store: FileLogStore, op: str, *, timeout: float = 2.0) -> bytes:
    """A short request (``drains-changed``, ``status``), blocking; ``OSError`` when the logs
    process does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(store.session_path))
        sock.sendall(json.dumps({"op": op}).encode() + b"\n")
        answer = b""
        while chunk := sock.recv(CHUNK):
            answer += chunk
        return answer


def drains_changed(store: FileLogStore) -> bool:
    """Ask the logs process to read the drains again now; False when it does not run."""
    try:
        return call(store, "drains-changed").startswith(b"ok")
    except OSError:
        return False


def status(store: FileLogStore) -> dict[str, Any]:
    data = json.loads(call(store, "status"))
    if not isinstance(data, dict):
        raise ValueError("the logs process answered status with something other than an object")
    return data
