"""The one door to subprocesses: argv lists only, never a shell string.

Failures are translated into ``CommandError`` with the command's name and the tail of its output, so callers
never see ``OSError`` or ``CalledProcessError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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


def run(
    argv: Argv,
    *,
    input: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> Completed:
    """Run a command to completion and capture its output."""
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
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc
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
) -> int:
    """Run a command in its own process group, pass each output line (stdout and stderr merged) to
    ``on_line`` as it arrives, and return the exit code. On timeout the whole group is killed and
    ``CommandError`` raised."""
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
        )
    except FileNotFoundError as exc:
        raise _missing(args, exc) from exc
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always gives a pipe
        raise CommandError(f"{args[0]}: no output pipe")
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        buffer = b""
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait == 0.0:
                timed_out = True
                break
            if not selector.select(timeout=wait):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                on_line(line)
        if buffer and not timed_out:
            on_line(buffer)
    if timed_out:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        raise CommandError(f"{args[0]} did not finish within {timeout:g} s and was stopped")
    proc.stdout.close()
    returncode = proc.wait()
    kill_group(proc.pid, signal.SIGKILL)  # leftovers of the group must not outlive the command
    return returncode


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
