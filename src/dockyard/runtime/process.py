"""``ProcessRuntime``: dynos as plain processes of this host, with no sandbox at all.

Each dyno is ``bash`` running its Procfile command in a session of its own (so one signal reaches
every process of the dyno), in the slug's read-only directory (also ``$HOME``), with the config
vars, ``$PORT`` (a free port on 127.0.0.1) and ``$DYNO``, after sourcing the slug's
``.profile.d/*.sh`` and ``.profile`` as Heroku does. Its stdout and stderr are appended to
``<dynos dir>/<dyno id>/output.log``.

State lives on disk, in ``<dynos dir>/<dyno id>/dyno.json`` (the spec, the pid and the pid's start
time from ``/proc/<pid>/stat``), so a restarted agent adopts the dynos that are still running, and a
reused pid is never mistaken for a dyno. This runtime gives no isolation: it exists for machines
where Dockyard is not root, and is reported as unsandboxed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard._util import proc
from dockyard.errors import DockyardError, DynoError, SlugError
from dockyard.runtime.base import DynoSpec, RunningDyno
from dockyard.settings import Settings
from dockyard.slug.mount import SlugMounter
from dockyard.slug.store import SlugStore

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STATE_FILE = "dyno.json"
OUTPUT_FILE = "output.log"
_POLL = 0.05
_KILL_WAIT = 10.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# The command travels as "$1", never spliced into this script, so no quoting in it can break
# out. It is evaluated as the shell line it is (a Procfile line may hold "&&", pipes, variables).
LAUNCHER = """\
__dyno_command=$1
shift
for __dyno_file in .profile.d/*.sh; do
  if [ -r "$__dyno_file" ]; then . "./$__dyno_file"; fi
done
unset __dyno_file
if [ -r .profile ]; then . ./.profile; fi
eval "$__dyno_command"
"""


@dataclass(frozen=True)
class _ProcStat:
    state: str
    pgrp: int
    start: int
    """Start time in clock ticks after boot; with the pid it names one process on this host."""


def _proc_stat(pid: int) -> _ProcStat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    return _ProcStat(rest[0].decode(), int(rest[2]), int(rest[19]))


def _group_members(pgid: int, since: int) -> list[int]:
    """Living processes of the dyno's process group: the leader and what it started that stayed."""
    leader = _proc_stat(pgid)
    if leader is not None and leader.start != since:
        return []  # pid reused, so its old group is gone (the kernel keeps a group's id busy)
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        info = _proc_stat(int(entry.name))
        if (
            info is not None
            and info.pgrp == pgid
            and info.state not in "ZX"
            and info.start >= since
        ):
            members.append(int(entry.name))
    return members


def _alive(pid: int, start: int) -> bool:
    info = _proc_stat(pid)
    return info is not None and info.start == start and info.state not in "ZX"


def _exit_status(returncode: int) -> int:
    """Popen's negative "killed by signal N" as a shell says it (128 + N), as Heroku logs it."""
    return 128 - returncode if returncode < 0 else returncode


def _spec_to_json(spec: DynoSpec) -> dict[str, Any]:
    data = {f.name: getattr(spec, f.name) for f in fields(DynoSpec)}
    data["env"] = dict(spec.env)
    data["labels"] = dict(spec.labels)
    return data


def _spec_from_json(data: Mapping[str, Any]) -> DynoSpec:
    return DynoSpec(
        id=str(data["id"]),
        app_id=str(data["app_id"]),
        app_name=str(data["app_name"]),
        name=str(data["name"]),
        process_type=str(data["process_type"]),
        release_version=int(data["release_version"]),
        slug_digest=str(data["slug_digest"]),
        command=str(data["command"]),
        env={str(k): str(v) for k, v in data["env"].items()},
        size=str(data["size"]),
        generation=str(data.get("generation", "0")),
        labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
    )


@dataclass(frozen=True)
class _State:
    spec: DynoSpec
    pid: int
    pid_start: int
    port: int
    started_at: datetime
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": _spec_to_json(self.spec),
            "pid": self.pid,
            "pid_start": self.pid_start,
            "port": self.port,
            "started_at": self.started_at.isoformat(),
            "exit_code": self.exit_code,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _State:
        exit_code = data.get("exit_code")
        return cls(
            spec=_spec_from_json(data["spec"]),
            pid=int(data["pid"]),
            pid_start=int(data["pid_start"]),
            port=int(data["port"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            exit_code=None if exit_code is None else int(exit_code),
        )


class ProcessRuntime:
    """Dynos as unsandboxed processes; see the module docstring."""

    name = "process"
    sandboxed = False

    def __init__(self, settings: Settings, *, mounter: SlugMounter | None = None) -> None:
        self.root = settings.dynos_dir
        self.mounter = mounter or SlugMounter(
            settings.data_dir / "mounts", SlugStore(settings.slugs_dir)
        )
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._slug_lock = threading.Lock()
        """Held from mounting a slug until its dyno is recorded, and while dropping unused slugs."""

    # -- the Runtime protocol ------------------------------------------------------------------

    def start(self, spec: DynoSpec) -> RunningDyno:
        with self._slug_lock:
            try:
                return self._start(spec)
            except OSError as exc:
                shutil.rmtree(self._dir(spec.id), ignore_errors=True)
                raise DynoError(
                    f"cannot start {spec.name} of {spec.app_name}: {exc.strerror or exc}"
                ) from exc

    def _start(self, spec: DynoSpec) -> RunningDyno:
        directory = self._dir(spec.id)
        try:
            slug_dir = self.mounter.mount(spec.slug_digest)
        except DockyardError as exc:
            raise DynoError(f"cannot start {spec.name} of {spec.app_name}: {exc.message}") from exc
        with self._lock:
            if directory.exists():
                raise DynoError(f"a dyno with id {spec.id} already exists on this host")
            port = self._free_port()
            directory.mkdir(parents=True, mode=0o700)
            env = {"PATH": DEFAULT_PATH, **spec.env}
            env.update(HOME=str(slug_dir), PORT=str(port), DYNO=spec.name)
            fd = os.open(directory / OUTPUT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                child = proc.spawn(
                    ["bash", "-c", LAUNCHER, "dyno", spec.command],
                    cwd=slug_dir,
                    env=env,
                    stdout=fd,
                    stderr=fd,
                )
            except DockyardError as exc:
                shutil.rmtree(directory, ignore_errors=True)
                raise DynoError(
                    f"cannot start {spec.name} of {spec.app_name}: {exc.message}"
                ) from exc
            finally:
                os.close(fd)
            info = _proc_stat(child.pid)
            state = _State(
                spec=spec,
                pid=child.pid,
                pid_start=info.start if info is not None else 0,
                port=port,
                started_at=datetime.now(UTC),
            )
            self._children[spec.id] = child
            self._write(state)
        return self._observe(state)

    def stop(self, dyno_id: str, *, timeout: float) -> None:
        directory = self._dir(dyno_id)
        state = self._read(directory)
        if state is not None and _group_members(state.pid, state.pid_start):
            proc.kill_group(state.pid, signal.SIGTERM)
            if not self._wait_gone(state, timeout):
                log.info("dyno %s ignored SIGTERM for %g s; sending SIGKILL", dyno_id, timeout)
                proc.kill_group(state.pid, signal.SIGKILL)
                if not self._wait_gone(state, _KILL_WAIT):
                    raise DynoError(
                        f"dyno {state.spec.name} ({dyno_id}) still runs after SIGKILL; "
                        "a process may be stuck in the kernel — check it with ps"
                    )
        with self._lock:
            child = self._children.pop(dyno_id, None)
            if child is not None:
                child.poll()
            shutil.rmtree(directory, ignore_errors=True)

    def list(self) -> list[RunningDyno]:
        self._reap_forgotten()
        if not self.root.is_dir():
            return []
        found = []
        for directory in sorted(self.root.iterdir()):
            state = self._read(directory)
            if state is not None:
                found.append(self._observe(state))
        return found

    def release_unused(self, digests_in_use: set[str]) -> None:
        with self._slug_lock:
            in_use = set(digests_in_use) | {d.spec.slug_digest for d in self.list()}
            for digest in sorted(self.mounter.mounted() - in_use):
                try:
                    self.mounter.unmount(digest)
                except SlugError as exc:
                    log.warning("%s", exc.message)

    # -- internals -----------------------------------------------------------------------------

    def _dir(self, dyno_id: str) -> Path:
        if not _ID.match(dyno_id):
            raise DynoError(f"{dyno_id!r} is not a valid dyno id")
        return self.root / dyno_id

    def _read(self, directory: Path) -> _State | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
            return _State.from_json(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write(self, state: _State) -> None:
        path = self._dir(state.spec.id) / STATE_FILE
        partial = path.with_name(f".{STATE_FILE}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds config vars
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)

    def _observe(self, state: _State) -> RunningDyno:
        with self._lock:
            child = self._children.get(state.spec.id)
            if child is not None and state.exit_code is None:
                returncode = child.poll()  # reaps our own child (waitpid WNOHANG)
                if returncode is not None:
                    state = replace(state, exit_code=_exit_status(returncode))
                    if (self.root / state.spec.id).is_dir():
                        self._write(state)
        running = state.exit_code is None and _alive(state.pid, state.pid_start)
        return RunningDyno(
            spec=state.spec,
            port=state.port,
            address=f"127.0.0.1:{state.port}",
            started_at=state.started_at,
            state="running" if running else "exited",
            exit_code=state.exit_code,
            output_path=self.root / state.spec.id / OUTPUT_FILE,
        )

    def _reap_forgotten(self) -> None:
        """Reap children whose dyno another runtime instance stopped (its directory is gone)."""
        with self._lock:
            for dyno_id, child in list(self._children.items()):
                if not (self.root / dyno_id).is_dir() and child.poll() is not None:
                    del self._children[dyno_id]

    def _wait_gone(self, state: _State, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            child = self._children.get(state.spec.id)
            if child is not None:
                child.poll()  # a zombie leader would otherwise look alive to kill(2)
            if not _group_members(state.pid, state.pid_start):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def _free_port(self) -> int:
        taken = set()
        if self.root.is_dir():
            for directory in self.root.iterdir():
                state = self._read(directory)
                if state is not None:
                    taken.add(state.port)
        for _ in range(50):
            with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in taken:
                return port
        raise DynoError("no free TCP port on 127.0.0.1 for $PORT")
