"""Per-app host uid ranges: each app owns 65,536 host uids no other app and no host account uses.

With a user namespace, container uids ``0…65535`` of the app's dynos are host uids ``base + slot x 65536 …``,
so a process that escapes its dyno is an unprivileged uid of its own app. Without one, the dyno's user is that
range's uid ``base + slot x 65536 + 1000`` directly. Slots are handed out in order and kept in a small JSON file
(``<data dir>/runtime/uid-slots.json``), so an app keeps its range across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from dockyard.errors import DynoError

RANGE_SIZE = 65536


class UidRanges:
    def __init__(self, path: Path, base: int, slots: int) -> None:
        if base < RANGE_SIZE or base + slots * RANGE_SIZE > 2**32 - 2:
            raise DynoError(
                f"the uid range {base} + {slots} x {RANGE_SIZE} does not fit between {RANGE_SIZE} and 2^32: "
                "change runtime.uid_base or runtime.uid_slots"
            )
        self.path = path
        self.base = base
        self.slots = slots

    def host_base(self, app_id: str) -> int:
        """The first host uid of the app's range (allocated on first use)."""
        return self.base + self.slot(app_id) * RANGE_SIZE

    def slot(self, app_id: str) -> int:
        with self._locked():
            table = self._read()
            if app_id in table:
                return table[app_id]
            used = set(table.values())
            free = next((n for n in range(self.slots) if n not in used), None)
            if free is None:
                raise DynoError(
                    f"all {self.slots} uid ranges are taken: raise runtime.uid_slots to run more apps"
                )
            table[app_id] = free
            partial = self.path.with_name(f".{self.path.name}.partial")
            partial.write_text(json.dumps(table, sort_keys=True), encoding="utf-8")
            os.replace(partial, self.path)
            return free

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise DynoError(f"cannot read the uid slots in {self.path}: {exc}") from exc
        return {str(k): int(v) for k, v in data.items()}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
