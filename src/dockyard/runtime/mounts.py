"""mount(2) and umount(2) called directly, and runc's error log: shared by dynos and build sandboxes.

A ``mount`` process per call would add milliseconds to every dyno start and every build command.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
from pathlib import Path

from dockyard.errors import DynoError
from dockyard.slug.mount import mount_points

_libc = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND = 0x2, 0x4, 0x8, 0x1000
MNT_DETACH = 0x2


def mount(
    source: str, target: Path, fstype: str | None, flags: int, options: str = "", *, what: str = ""
) -> None:
    """Mount ``source`` (a device, ``tmpfs``, ``overlay`` or a directory to bind) at ``target``."""
    kind = fstype.encode() if fstype else None
    if _libc.mount(source.encode(), bytes(target), kind, flags, options.encode() or None) != 0:
        error = ctypes.get_errno()
        raise DynoError(f"cannot mount {what or source} at {target}: {os.strerror(error)}")


def unmount(path: Path) -> None:
    """Unmount ``path`` if something is mounted there; a busy mount is detached now and freed by the
    kernel when its last user goes."""
    if path.resolve() not in mount_points():
        return
    if _libc.umount2(bytes(path), 0) != 0:
        _libc.umount2(bytes(path), MNT_DETACH)


def runc_error(log_file: Path) -> str | None:
    """The last error runc wrote to its JSON log (``--log``), if any."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        with contextlib.suppress(ValueError, AttributeError):
            entry = json.loads(line)
            if entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", ""))
                return message.removeprefix("runc run failed: ") or "runc failed"
    return None
