"""The router's side of idling (the contract is in ``dockyard.agent.wake``).

- ``AgentWaker`` asks the agent of this host, on its Unix socket, to wake an app whose web dynos
  sleep, and returns the dynos it says are up.
- ``touch_last_requests`` sets the modification time of ``<last-request dir>/<app id>`` to the time
  of the app's last request; the proxy calls it at most once a second per app, from a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from dockyard.domain.dataplane import Backend
from dockyard.errors import UnavailableError

logger = logging.getLogger("dockyard.router")

_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AgentWaker:
    """``wake <app id>`` on the agent's socket; see ``dockyard.agent.wake``."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    async def wake(self, app_id: str) -> list[Backend]:
        """The app's web dynos that are up once one is; raises ``UnavailableError`` when the agent
        cannot be reached or says none came up."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path))
        except OSError as exc:
            raise UnavailableError(
                f"cannot reach the agent at {self.path} to wake the app: {exc}"
            ) from exc
        try:
            writer.write(f"wake {app_id}\n".encode())
            line = await asyncio.wait_for(reader.readline(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise UnavailableError(f"the agent did not answer the wake-up: {exc!r}") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        try:
            answer = json.loads(line)
            backends = [Backend.from_json(b) for b in answer.get("backends", ())]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UnavailableError(f"the agent's wake answer cannot be read: {line!r}") from exc
        if not backends:
            raise UnavailableError(f"the agent could not wake the app: {answer.get('error')}")
        return backends


def touch_last_requests(directory: Path, app_ids: Iterable[str], when: float) -> None:
    """Set each app's last-request file to ``when`` (created 0600 in a 0700 directory)."""
    made = False
    for app_id in app_ids:
        if not _APP_ID.match(app_id):
            continue
        path = directory / app_id
        try:
            os.utime(path, (when, when))
            continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("cannot record the last request of app %s: %s", app_id, exc)
            continue
        try:
            if not made:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                made = True
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.utime(path, (when, when))
        except OSError as exc:
            logger.warning("cannot record the last request of app %s: %s", app_id, exc)
