"""Idling's agent side: the apps' last requests, and the local endpoint that wakes a sleeping app.

The contract with the router (which alone sees requests):

- **last request**: after a request for an app, the router sets the modification time of
  ``<data dir>/state/last-request/<app id>`` (``Settings.last_request_dir``; create the file, mode
  0600, in a 0700 directory) to the request's time, at most once a second per app. An ``eco`` web
  dyno that is up and whose app has had no request for ``agent.idle_timeout`` (30 minutes) is
  stopped and reported ``idle``. An app without the file never sleeps, so nothing sleeps unless the
  router reports on it.
- **wake**: when a request comes for an app whose web dynos are all idle (its route has
  ``web_quantity > 0``, no backends and is not ``crashed``), the router connects to the Unix socket
  ``<data dir>/run/agent.sock`` (``Settings.agent_socket``), sends ``wake <app id>\\n`` and reads
  one JSON line: ``{"app_id": "…", "backends": [{"dyno": "web.1", "address": "127.0.0.1:4001"}]}``
  as soon as a web dyno of the app answers on its port, or ``{"app_id": "…", "backends": [],
  "error": "…"}`` after the boot timeout. The agent starts the app's sleeping dynos at once (it
  does not wait for its next round) and also counts the wake as a request. The route table catches up
  through the usual report → API → router poll; the answer lets the router forward the waiting
  request without waiting for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REQUEST_TIMEOUT = 5.0

Waker = Callable[[str], Awaitable[list[dict[str, str]]]]
"""``app id → backends`` (``[{"dyno": "web.1", "address": "host:port"}]``), raising
``TimeoutError`` when no web dyno came up in time."""


class RequestLog:
    """``<app id>`` files whose modification time is the app's last request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def last_requests(self, app_ids: Iterable[str]) -> dict[str, datetime]:
        found = {}
        for app_id in set(app_ids):
            if not _APP_ID.match(app_id):
                continue
            try:
                mtime = (self.directory / app_id).stat().st_mtime
            except OSError:
                continue
            found[app_id] = datetime.fromtimestamp(mtime, UTC)
        return found

    def touch(self, app_id: str, when: datetime) -> None:
        if not _APP_ID.match(app_id):
            raise ValueError(f"{app_id!r} is not an app id")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / app_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        stamp = when.timestamp()
        os.utime(path, (stamp, stamp))


class WakeServer:
    """The agent's Unix socket; see the module docstring for the protocol."""

    def __init__(self, path: Path, waker: Waker) -> None:
        self.path = path
        self.waker = waker
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._on_client, str(self.path))
        finally:
            os.umask(old_umask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer: dict[str, Any]
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            verb, _, app_id = line.decode("ascii", "replace").strip().partition(" ")
            if verb != "wake" or not _APP_ID.match(app_id):
                answer = {"error": "expected: wake <app id>"}
            else:
                answer = await self._wake(app_id)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, UnicodeError) as exc:
            log.info("a wake request failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _wake(self, app_id: str) -> dict[str, Any]:
        try:
            backends = await self.waker(app_id)
        except TimeoutError:
            return {
                "app_id": app_id,
                "backends": [],
                "error": "no web dyno of the app came up within the boot timeout",
            }
        return {"app_id": app_id, "backends": backends}
