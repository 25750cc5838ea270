"""Build isolation: where every process of a build runs, under which limits, watched how.

Two sandboxes, chosen per build by ``open_sandbox``:

- ``ContainerSandbox`` (``[build] sandbox = "runc"``, the default as root): every command runs in a
  one-shot container of the runtime's (``BuildContainers``, ``runtime.sandbox``) on the build stack
  image — namespaces, no capabilities, seccomp, the build's cgroup (memory, processes, CPU), the dyno
  firewall. The build user is the app's own unprivileged uid. Dockyard falls back to the uid sandbox,
  with a warning in the build output, when it is not root or runc or the build stack image is
  missing.
- ``UidSandbox``: commands run on the host. When Dockyard runs as root, each running build takes a
  free slot from a pool of numeric ids (``UID_BASE`` + slot, no ``/etc/passwd`` entry) held with a
  lock file for the build's duration. The ids are the same for every Dockyard on the host, so the
  locks are too (``UID_LOCK_DIR`` under ``/run``): two data directories on one machine (a test
  run next to a dev instance) never claim the same id, and so never kill each other's builds when
  a slot is claimed. The build's scratch directory is chowned to it, the kernel
  enforces ``RLIMIT_NPROC`` for that user alone, and every process left with that id is killed
  afterwards. Without root, the scripts run as Dockyard's own user. Limits are set with
  ``setrlimit`` in the child: processes and threads (``RLIMIT_NPROC``), bytes per file
  (``RLIMIT_FSIZE``), data memory per process (``RLIMIT_DATA``: heap and private mappings, not the
  address-space reservations that V8 and WebAssembly make), no core dumps.

Both are **watched** while ``bin/compile`` or an installer runs (``_Guard``): the compile timeout,
the disk space of the scratch directory (build, cache, env and temporary files; with the uid
sandbox plus what the build user owns in ``/tmp``, ``/var/tmp`` and ``/dev/shm``), and the number
of tasks of the build; each stop is a ``CompileError`` naming the limit and its setting.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import resource
import shutil
import signal
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from dockyard._util import proc
from dockyard.build.output import human_size
from dockyard.errors import CommandError, CompileError, UnavailableError
from dockyard.settings import BuildSettings

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` of commands in a container (the stack's); commands on the host get the host's."""
UID_BASE = 2_100_000_000
"""First numeric user (and group) id of build users; far above the ranges Debian hands out to
users, system users, systemd's dynamic users and sub-uid ranges."""
UID_SLOTS = 256
"""Builds that can run at once as separate users."""
UID_LOCK_DIR = Path("/run/dockyard-build-uids")
"""The slot locks (``<slot>.lock``, held with ``flock``): host-wide like the ids themselves, whatever
the data directory, and on a tmpfs in most systems, so they are gone after a reboot."""
SHARED_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 - swept, not used
"""World-writable directories a build user can write to outside its scratch directory: what it owns
there counts toward its disk limit and is removed afterwards."""
DISK_CHECK_MIN_INTERVAL = 1.0
"""Seconds between two walks of the scratch directory; longer when a walk is slow (at most 10% of the
time is spent walking)."""


def duration(seconds: float) -> str:
    """``15 min``, ``90 s``, ``0.5 s``."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class BuildLimits:
    compile_timeout: float | None = 15 * 60
    memory_bytes: int = 4 << 30
    max_processes: int = 1024
    disk_bytes: int = 10 << 30

    @classmethod
    def from_settings(cls, settings: BuildSettings) -> BuildLimits:
        return cls(
            compile_timeout=settings.compile_timeout,
            memory_bytes=settings.memory_bytes,
            max_processes=settings.max_processes,
            disk_bytes=settings.disk_bytes,
        )


@dataclass
class _Task:
    pid: int
    threads: int
    zombie: bool


def _tasks_of(uid: int) -> list[_Task]:
    """Processes whose real or effective user is ``uid`` (zombies too: until their parent reaps
    them they count toward ``RLIMIT_NPROC``), read from
    ``/proc/<pid>/status`` (which stays accurate for processes that made themselves
    non-dumpable)."""
    found: list[_Task] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                status = handle.read(4096)
        except OSError:
            continue  # gone meanwhile
        uids: list[int] = []
        threads = 1
        zombie = False
        for line in status.split(b"\n"):
            if line.startswith(b"Uid:"):
                uids = [int(v) for v in line.split()[1:3]]
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
            elif line.startswith(b"State:"):
                zombie = b"Z" in line.split()[1:2]
        if uid in uids:
            found.append(_Task(int(entry.name), threads, zombie))
    return found


def kill_user_processes(uid: int, *, rounds: int = 200) -> None:
    """SIGKILL every process of ``uid`` until none is left (a fork bomb forks between two scans,
    so scan again)."""
    for _ in range(rounds):
        tasks = [task for task in _tasks_of(uid) if not task.zombie]
        if not tasks:
            return
        for task in tasks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(task.pid, signal.SIGKILL)
        time.sleep(0.01)  # let the kernel deliver the signals before scanning again


def disk_usage(root: Path) -> int:
    """Bytes allocated on disk by the files under ``root`` (symbolic links not followed, sparse
    holes not counted, a hard-linked file once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return total


def unreachable_ancestor(path: Path) -> Path | None:
    """The first directory above ``path`` that other users cannot traverse, if any."""
    for parent in reversed(path.resolve().parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def grant(path: Path, uid: int, gid: int) -> None:
    """Hand ``path`` and everything under it to ``uid``/``gid`` (links themselves, not followed)."""
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _owned_by(uid: int, directory: Path) -> list[Path]:
    """The entries directly in ``directory`` that belong to ``uid``."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    owned = []
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.stat(follow_symlinks=False).st_uid == uid:
                owned.append(Path(entry.path))
    return owned


def _remove_owned_by(uid: int, directory: Path) -> None:
    for path in _owned_by(uid, directory):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


class _UidSlot:
    """An exclusive claim on one build user id, held with ``flock`` on ``<lock_dir>/<slot>.lock``
    (``UID_LOCK_DIR``: every Dockyard of the host claims its build users there)."""

    def __init__(self, lock_dir: Path = UID_LOCK_DIR) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for slot in range(UID_SLOTS):
            fd = os.open(lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            kill_user_processes(UID_BASE + slot)  # nothing of an earlier holder may survive
            if _tasks_of(UID_BASE + slot):
                # Zombies of the last build, not reaped yet by init: they would count toward
                # this build's process limit.
                os.close(fd)
                continue
            self.uid = UID_BASE + slot
            self._fd: int | None = fd
            return
        raise UnavailableError(
            f"All {UID_SLOTS} build slots are in use; push again when a build has finished"
        )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BuildContainer(Protocol):
    """The containers of one build (``runtime.sandbox.RuncBuildContainer``): every command runs in a
    container of its own, on the build stack image, with the build's directories at their paths."""

    @property
    def uid(self) -> int:
        """The build user on the host: the owner of the directories the build writes."""
        ...

    def run(
        self, argv: proc.Argv, *, cwd: Path, env: Mapping[str, str], timeout: float | None
    ) -> proc.Completed:
        """Run a command to its end, output captured, whatever its exit status; ``CommandError`` when
        it cannot start or runs out of ``timeout``."""
        ...

    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        watch: Callable[[], None] | None = None,
        watch_interval: float = 0.25,
    ) -> int:
        """Run a command streaming its output; what ``watch`` raises stops it and is raised."""
        ...

    def tasks(self) -> int | None:
        """Processes and threads the build runs right now."""
        ...

    def out_of_memory(self) -> bool:
        """Whether the last command ended because the kernel killed a process of it for want of
        memory."""
        ...

    def close(self) -> None: ...


class BuildContainers(Protocol):
    """The host's container sandbox for builds (``runtime.sandbox.RuncBuildContainers``)."""

    def unavailable(self) -> str | None:
        """Why builds cannot run in containers on this host (not root, no runc, no build stack
        image), or None."""
        ...

    def open(
        self,
        build_id: str,
        app_id: str,
        scratch: Path,
        *,
        readonly: Sequence[Path] = (),
        memory_bytes: int,
        max_processes: int,
        file_bytes: int,
    ) -> BuildContainer:
        """The containers of one build in ``scratch`` (``readonly``: directories in it the build
        may only read)."""
        ...


class Sandbox(abc.ABC):
    """Where the processes of one build run; ``close`` kills what is left."""

    kind: ClassVar[str]
    """``uid`` or ``runc``, for the build output and the tests."""

    def __init__(
        self,
        scratch: Path,
        limits: BuildLimits,
        *,
        uid: int | None = None,
        warning: str | None = None,
    ) -> None:
        self.scratch = scratch
        self.limits = limits
        self.uid = uid
        """The build user on the host, when the build runs as a user of its own."""
        self.warning = warning
        """Said to the user when the build runs less isolated than it should."""
        self.tmp_dir = scratch / "tmp"

    @property
    def isolated(self) -> bool:
        """Whether the build runs as a user of its own."""
        return self.uid is not None

    @property
    def command_path(self) -> str:
        """``PATH`` of the build's commands."""
        return os.environ.get("PATH", DEFAULT_PATH)

    def grant(self, path: Path) -> None:
        """Let the build user own ``path`` (a directory in the scratch directory)."""
        if self.uid is not None:
            grant(path, self.uid, self.uid)

    @abc.abstractmethod
    def run(
        self,
        argv: proc.Argv,
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        check: bool = True,
    ) -> proc.Completed:
        """A short command (``bin/detect``, ``bin/release``), its output captured; with ``check``,
        ``CommandError`` when it exits non-zero."""

    @abc.abstractmethod
    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        what: str,
        timeout: float | None,
    ) -> int:
        """A long command (``bin/compile``, an installer) streaming its output, stopped with a
        ``CompileError`` naming ``what`` and the limit when it runs out of time, disk space,
        processes or memory."""

    @abc.abstractmethod
    def sweep(self) -> None:
        """Kill every process the build still runs (daemons a script left behind)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Kill what is left and remove what the build left outside its scratch directory."""

    def task_count(self) -> int | None:
        """Processes and threads the build runs right now, when the sandbox can tell."""
        return None

    def disk_usage(self) -> int:
        """Bytes the build occupies on disk."""
        return disk_usage(self.scratch)


class UidSandbox(Sandbox):
    """Runs the processes of one build on the host: as the build user when there is one, with the
    limits, in its own process group. ``close`` kills what is left and removes the user's temporary
    files."""

    kind = "uid"

    def rlimits(self) -> list[tuple[int, int]]:
        nproc = self.limits.max_processes
        if self.uid is None and os.geteuid() != 0:
            # Shared with Dockyard's own user: leave room for what that user already runs.
            nproc += sum(t.threads for t in _tasks_of(os.getuid()))
        return [
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_FSIZE, self.limits.disk_bytes),
            (resource.RLIMIT_DATA, self.limits.memory_bytes),
            (resource.RLIMIT_NPROC, nproc),
        ]

    def run(
        self,
        argv: proc.Argv,
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        check: bool = True,
    ) -> proc.Completed:
        try:
            return proc.run(
                argv,
                cwd=cwd,
                env=env,
                timeout=timeout,
                check=check,
                limits=self.rlimits(),
                user=self.uid,
                group=self.uid,
            )
        finally:
            self.sweep()

    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        what: str,
        timeout: float | None,
    ) -> int:
        guard = _Guard(self, what, timeout)
        try:
            return proc.stream(
                argv,
                on_line=on_line,
                cwd=cwd,
                env=env,
                limits=self.rlimits(),
                user=self.uid,
                group=self.uid,
                watch=guard.check,
                watch_interval=0.25,
            )
        finally:
            self.sweep()

    def sweep(self) -> None:
        if self.uid is not None:
            kill_user_processes(self.uid)

    def close(self) -> None:
        if self.uid is not None:
            kill_user_processes(self.uid)
            for directory in SHARED_TMP_DIRS:
                _remove_owned_by(self.uid, directory)

    def task_count(self) -> int | None:
        if self.uid is None:
            return None
        return sum(t.threads for t in _tasks_of(self.uid))

    def disk_usage(self) -> int:
        """Its scratch directory, and what its user owns in the shared temporary directories."""
        used = disk_usage(self.scratch)
        if self.uid is not None:
            for directory in SHARED_TMP_DIRS:
                used += sum(disk_usage(path) for path in _owned_by(self.uid, directory))
        return used


class ContainerSandbox(Sandbox):
    """Runs every command of one build in a container of its own (``BuildContainer``): the build
    stack image as root, the build's cgroup limits (memory, processes, CPU), the dyno firewall.
    Nothing a command starts outlives it."""

    kind = "runc"

    def __init__(
        self,
        scratch: Path,
        limits: BuildLimits,
        container: BuildContainer,
        *,
        warning: str | None = None,
    ) -> None:
        super().__init__(scratch, limits, uid=container.uid, warning=warning)
        self.container = container

    @property
    def command_path(self) -> str:
        return DEFAULT_PATH

    def run(
        self,
        argv: proc.Argv,
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        check: bool = True,
    ) -> proc.Completed:
        name = Path(str(argv[0])).name
        result = self.container.run(argv, cwd=cwd, env=env, timeout=timeout)
        if result.returncode != 0 and self.container.out_of_memory():
            raise CompileError(self._memory_message(name))
        if check and result.returncode != 0:
            detail = _tail(result.stderr) or _tail(result.stdout)
            raise CommandError(
                f"{argv[0]} failed with exit code {result.returncode}: {detail}",
                returncode=result.returncode,
                output=detail,
            )
        return result

    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        what: str,
        timeout: float | None,
    ) -> int:
        guard = _Guard(self, what, timeout)
        code = self.container.stream(
            argv, on_line=on_line, cwd=cwd, env=env, watch=guard.check, watch_interval=0.25
        )
        if code != 0 and self.container.out_of_memory():
            raise CompileError(self._memory_message(what))
        return code

    def _memory_message(self, what: str) -> str:
        return (
            f"{what} was stopped: the build ran out of memory — it may use "
            f"{human_size(self.limits.memory_bytes)}, its /tmp included (setting "
            "build.memory_bytes, DOCKYARD_BUILD_MEMORY_BYTES)"
        )

    def sweep(self) -> None:
        """Nothing to do: a command's processes end with its container."""

    def close(self) -> None:
        self.container.close()

    def task_count(self) -> int | None:
        return self.container.tasks()


def _tail(data: bytes, limit: int = 2000) -> str:
    return data[-limit:].decode("utf-8", "replace").strip()


class _Guard:
    def __init__(self, sandbox: Sandbox, what: str, timeout: float | None) -> None:
        self.sandbox = sandbox
        self.what = what
        self.timeout = timeout
        self.started = time.monotonic()
        self.next_walk = self.started

    def check(self) -> None:
        limits = self.sandbox.limits
        now = time.monotonic()
        if self.timeout is not None and now - self.started >= self.timeout:
            raise CompileError(
                f"{self.what} did not finish within {duration(self.timeout)}, the compile "
                "timeout, and was stopped — make the build faster or raise the timeout "
                "(setting build.compile_timeout, DOCKYARD_BUILD_COMPILE_TIMEOUT)"
            )
        tasks = self.sandbox.task_count()
        if tasks is not None and tasks >= limits.max_processes:  # its next fork fails
            raise CompileError(
                f"{self.what} was stopped: it ran {limits.max_processes} processes and "
                "threads at once, the limit for a build (setting build.max_processes, "
                "DOCKYARD_BUILD_MAX_PROCESSES) — does it fork in a loop?"
            )
        if now >= self.next_walk:
            used = self.sandbox.disk_usage()
            took = time.monotonic() - now
            self.next_walk = time.monotonic() + max(DISK_CHECK_MIN_INTERVAL, 10 * took)
            if used > limits.disk_bytes:
                raise CompileError(
                    f"{self.what} was stopped: the build used more than "
                    f"{human_size(limits.disk_bytes)} of disk space (build, cache and temporary "
                    "files count), the limit for a build (setting build.disk_bytes, "
                    "DOCKYARD_BUILD_DISK_BYTES) — keep large files out of the build or raise the "
                    "limit"
                )


def failure_hint(returncode: int, lines: Sequence[str], limits: BuildLimits) -> str:
    """A sentence explaining a failed command when it looks like it hit one of the limits."""
    if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return (
            f"A file grew past {human_size(limits.disk_bytes)}, the disk limit for a build "
            "(setting build.disk_bytes, DOCKYARD_BUILD_DISK_BYTES)."
        )
    text = "\n".join(lines).lower()
    if "fork" in text and ("resource temporarily unavailable" in text or "cannot" in text):
        return (
            f"It could not start more processes: a build may run {limits.max_processes} "
            "processes and threads at once (setting build.max_processes, "
            "DOCKYARD_BUILD_MAX_PROCESSES)."
        )
    if any(m in text for m in ("memoryerror", "out of memory", "cannot allocate memory")):
        return (
            f"It ran out of memory: each build process may use {human_size(limits.memory_bytes)} "
            "(setting build.memory_bytes, DOCKYARD_BUILD_MEMORY_BYTES)."
        )
    return ""


@contextlib.contextmanager
def open_sandbox(
    scratch: Path,
    limits: BuildLimits,
    lock_dir: Path | None = None,
    *,
    containers: BuildContainers | None = None,
    build_id: str = "",
    app_id: str = "",
    readonly: Sequence[Path] = (),
) -> Iterator[Sandbox]:
    """The sandbox of a build in ``scratch`` (which must exist); ``close`` runs on exit.

    With ``containers`` available, a ``ContainerSandbox`` (``readonly``: directories in ``scratch``
    the build may only read); else, with a warning when ``containers`` were asked for, a
    ``UidSandbox``: a build user of its own when Dockyard runs as root and the build user can reach
    ``scratch``, else Dockyard's user with a warning. ``scratch`` stays root's (mode 0711) so that
    the build user cannot swap what is in it; the caller hands the directories the build works in
    to the build user with ``grant``.

    ``lock_dir`` is not used: build users are claimed host-wide in ``UID_LOCK_DIR``, never per data
    directory (the parameter stays until the pipeline stops passing one)."""
    del lock_dir
    # root's, traversable: the build user uses what is in it but cannot rename it
    os.chmod(scratch, 0o711)  # noqa: S103 - search only, no listing
    why = None if containers is None else containers.unavailable()
    if containers is not None and why is None:
        container = containers.open(
            build_id,
            app_id,
            scratch,
            readonly=readonly,
            memory_bytes=limits.memory_bytes,
            max_processes=limits.max_processes,
            file_bytes=limits.disk_bytes,
        )
        sandbox: Sandbox = ContainerSandbox(scratch, limits, container)
        try:
            _make_tmp_dir(sandbox)
            yield sandbox
        finally:
            sandbox.close()
        return
    warnings = []
    if why is not None:
        warnings.append(
            f"Warning: this build runs on the host, not in the container sandbox, because {why}"
        )
    slot: _UidSlot | None = None
    if os.geteuid() == 0:
        blocked = unreachable_ancestor(scratch)
        if blocked is None:
            slot = _UidSlot()
        else:
            warnings.append(
                f"Warning: buildpacks run as root because {blocked} is closed to other users "
                f"(mode {stat.S_IMODE(os.stat(blocked).st_mode):04o}); allow traversal "
                f"(chmod o+x {blocked}) so that builds run as an unprivileged user"
            )
    try:
        sandbox = UidSandbox(
            scratch,
            limits,
            uid=None if slot is None else slot.uid,
            warning="\n".join(warnings) or None,
        )
        try:
            _make_tmp_dir(sandbox)
            yield sandbox
        finally:
            sandbox.close()
    finally:
        if slot is not None:
            slot.release()


def _make_tmp_dir(sandbox: Sandbox) -> None:
    sandbox.tmp_dir.mkdir(mode=0o700, exist_ok=True)
    sandbox.grant(sandbox.tmp_dir)
