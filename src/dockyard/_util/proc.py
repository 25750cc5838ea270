"""The one door to subprocesses: argv lists only, never a shell string.

Failures are translated into ``CommandError`` with the command's name and the tail of its output, so callers
never see ``OSError`` or ``CalledProcessError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dockyard.errors import CommandError

Argv = Sequence[str | Path]


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def _argv(argv: Argv) -> list[str]:
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a sequence of arguments, not a string")
    return [str(a) for a in argv]


def _missing(argv: list[str], exc: OSError) -> CommandError:
    return CommandError(f"cannot run {argv[0]}: {exc.strerror or exc} — is it installed?")


def _tail(data: bytes, limit: int = 2000) -> str:
    return data[-limit:].decode("utf-8", "replace").strip()


Limits = Sequence[tuple[int, int]]
"""Resource limits for a child: ``(resource.RLIMIT_*, value)`` pairs, each set as both the soft and
the hard limit, so the child cannot raise them again."""


def _set_limits(limits: Limits) -> Callable[[], None]:
    pairs = [(which, (value, value)) for which, value in limits]

    def apply() -> None:  # runs in the child between fork and exec: no imports, no locks
        for which, pair in pairs:
            resource.setrlimit(which, pair)

    return apply


def _extra_groups(user: int | None, group: int | None) -> list[int] | None:
    """No supplementary groups for a child that switches identity. CPython switches ``user`` and
    ``group`` in C after ``chdir`` and before ``preexec_fn``, so limits are set as the new user
    (lowering a limit needs no privilege)."""
    return None if user is None and group is None else []


def run(
    argv: Argv,
    *,
    input: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    limits: Limits | None = None,
    user: int | None = None,
    group: int | None = None,
) -> Completed:
    """Run a command to completion and capture its output.

    ``limits`` are resource limits for the child (see ``Limits``); ``user`` and ``group`` are
    numeric ids the child switches to (needs root)."""
    args = _argv(argv)
    try:
        result = subprocess.run(
            args,
            input=input,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
            preexec_fn=_set_limits(limits) if limits else None,
            user=user,
            group=group,
            extra_groups=_extra_groups(user, group),
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc
    except OSError as exc:  # not executable, not reachable by ``user``, out of processes...
        raise CommandError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{args[0]} did not finish within {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = _tail(result.stderr) or _tail(result.stdout)
        raise CommandError(
            f"{args[0]} failed with exit code {result.returncode}: {detail}",
            returncode=result.returncode,
            output=detail,
        )
    return Completed(result.returncode, result.stdout, result.stderr)


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Send a signal to a process group, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stream(
    argv: Argv,
    *,
    on_line: Callable[[bytes], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    limits: Limits | None = None,
    user: int | None = None,
    group: int | None = None,
    watch: Callable[[], None] | None = None,
    watch_interval: float = 0.5,
) -> int:
    """Run a command in its own process group, pass each output line (stdout and stderr merged) to
    ``on_line`` as it arrives, and return the exit code. On timeout the whole group is killed and
    ``CommandError`` raised.

    ``watch`` is called about every ``watch_interval`` seconds while the command runs; whatever it
    raises stops the command (its whole group is killed) and is raised again, as is anything
    ``on_line`` raises. ``limits``, ``user`` and ``group`` are as for ``run``."""
    args = _argv(argv)
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_set_limits(limits) if limits else None,
            user=user,
            group=group,
            extra_groups=_extra_groups(user, group),
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc
    except OSError as exc:
        raise CommandError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always gives a pipe
        raise CommandError(f"{args[0]}: no output pipe")
    try:
        timed_out = _pump(
            proc.stdout.fileno(),
            on_line,
            timeout,
            watch,
            watch_interval,
            lambda: proc.poll() is not None,
        )
    except BaseException:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        raise
    if timed_out:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        raise CommandError(f"{args[0]} did not finish within {timeout:g} s and was stopped")
    proc.stdout.close()
    returncode = proc.wait()
    kill_group(proc.pid, signal.SIGKILL)  # leftovers of the group must not outlive the command
    return returncode


EXIT_CHECK_INTERVAL = 0.25
"""Seconds between two checks whether a streamed command has exited while something it started
in the background still holds its output open."""


def _pump(
    fd: int,
    on_line: Callable[[bytes], None],
    timeout: float | None,
    watch: Callable[[], None] | None,
    watch_interval: float,
    exited: Callable[[], bool],
) -> bool:
    """Read ``fd`` line by line until its end, or until the command has exited and what it wrote
    is read (background processes it left may keep the pipe open); True when ``timeout`` passed
    first."""
    now = time.monotonic()
    deadline = None if timeout is None else now + timeout
    next_watch = now + watch_interval
    buffer = b""

    def take(chunk: bytes) -> None:
        nonlocal buffer
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            on_line(line)

    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return True
            if watch is not None and now >= next_watch:
                watch()
                next_watch = time.monotonic() + watch_interval
            waits = [
                t - now
                for t in (deadline, next_watch if watch else None, now + EXIT_CHECK_INTERVAL)
                if t is not None
            ]
            if selector.select(timeout=max(0.0, min(waits))):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                take(chunk)
            elif exited():
                os.set_blocking(fd, False)
                with contextlib.suppress(BlockingIOError):
                    while chunk := os.read(fd, 65536):
                        take(chunk)
                break
    if buffer:
        on_line(buffer)
    return False


def spawn(
    argv: Argv,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running command in its own session (so it outlives its parent) and return at once."""
    args = _argv(argv)
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc


async def start(
    argv: Argv,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start a command with piped stdin and stdout (stderr merged) for an asyncio caller."""
    args = _argv(argv)
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc
