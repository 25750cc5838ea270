"""``run`` and ``run:detached``: one-off dynos, as ``heroku run`` runs them.

``run`` asks the API for an attached one-off dyno, connects to its ``attach_url`` (TLS to the
rendezvous service, which is pinned by the ``sha256`` the URL carries), sends the secret line, drops
the service's greeting line and then passes bytes both ways: the local terminal in raw mode when
stdin is one (so Ctrl-C, Ctrl-D and arrow keys reach the dyno; four Ctrl-C within a second
disconnect), plain lines otherwise (Ctrl-D is sent at the end of the input). The command runs with
the Heroku CLI's exit-status trailer, so ``dockyard run`` exits with the command's own status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import ssl
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import parse_qs, urlsplit

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options
from dockyard.errors import DockyardError, InvalidError, UnavailableError

MARKER = "\uffff heroku-command-exit-status:"
"""What the Heroku CLI appends to an attached command to learn its exit status."""
_MARKER = MARKER.encode()
_STATUS_LINE = re.compile(rb"\xef\xbf\xbf heroku-command-exit-status: ?(\d{1,3})\r?\n")
CONNECT_TIMEOUT = 30.0
START_TIMEOUT = 120.0
"""Seconds to wait for the dyno to come up once connected (the service gives up after 60)."""
INTERRUPT = b"\x03"
FORCE_DISCONNECT = 4
"""This many Ctrl-C within a second disconnect from the dyno."""
NO_STATUS = 1


def build_command(args: tuple[str, ...]) -> str:
    """The Heroku CLI's rule: one argument is the command line as it is; several are joined, those
    with spaces or double quotes quoted."""
    if len(args) == 1:
        return args[0]
    quoted = [
        f'"{a.replace(chr(34), chr(92) + chr(34))}"' if " " in a or '"' in a else a for a in args
    ]
    return " ".join(quoted)


def parse_env(flag: str | None) -> dict[str, str]:
    """``-e 'A=1;B=two words'``."""
    env: dict[str, str] = {}
    for item in (flag or "").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise InvalidError(
                f"-e {item.strip()!r} is not KEY=VALUE — separate variables with ';', e.g. "
                "-e 'A=1;B=2'",
                field="env",
            )
        env[key.strip()] = value.strip()
    return env


class ExitStatus:
    """Passes the dyno's output through, minus the exit-status line, whose number it keeps."""

    def __init__(self) -> None:
        self.code: int | None = None
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        self._held = b""
        out = bytearray()
        while data:
            start = data.find(_MARKER[:1])
            if start < 0:
                out += data
                break
            out += data[:start]
            data = data[start:]
            match = _STATUS_LINE.match(data)
            if match:
                self.code = int(match.group(1))
                data = data[match.end() :]
            elif self._may_become_a_status_line(data):
                self._held = data  # wait for the rest
                break
            else:
                out += data[:1]
                data = data[1:]
        return bytes(out)

    @staticmethod
    def _may_become_a_status_line(data: bytes) -> bool:
        if len(data) <= len(_MARKER):
            return _MARKER.startswith(data)
        return (
            re.fullmatch(rb"\xef\xbf\xbf heroku-command-exit-status: ?\d{0,3}\r?", data) is not None
        )

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


class LineEndings:
    """``\\r\\n`` → ``\\n`` for output that does not go to a terminal (as the Heroku CLI does)."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, data: bytes) -> bytes:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            data, self._cr = data[:-1], True
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        return b"\r" if self._cr else b""


@dataclass(frozen=True)
class AttachUrl:
    host: str
    port: int
    line: bytes
    """What to send first: the URL's path without ``/``, with its query (as the Heroku CLI does)."""
    pin: str | None

    @classmethod
    def parse(cls, url: str) -> AttachUrl:
        parts = urlsplit(url)
        if parts.scheme != "rendezvous" or not parts.hostname or not parts.port:
            raise UnavailableError(f"the API gave an attach URL this CLI cannot use: {url!r}")
        line = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        pin = parse_qs(parts.query).get("sha256", [None])[0]
        return cls(parts.hostname, parts.port, line.encode("ascii"), pin)


def _tls_context(pin: str | None) -> ssl.SSLContext:
    if pin is None:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # checked below against the pin the API gave
    return context


def _fileno(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


def _read_input(stream: BinaryIO, deliver: Callable[[bytes], None]) -> None:
    """In a thread: hand each chunk of input to ``deliver``, then ``b""`` at its end."""
    fd = _fileno(stream)
    read = getattr(stream, "read1", stream.read)
    try:
        while True:
            chunk = os.read(fd, 4096) if fd is not None else read(4096)
            deliver(chunk)
            if not chunk:
                return
    except (OSError, ValueError):
        deliver(b"")


async def attach(
    url: AttachUrl,
    stdin: BinaryIO,
    stdout: BinaryIO,
    *,
    raw: bool,
    to_terminal: bool,
    on_up: Callable[[], None],
) -> int | None:
    """Join the dyno; returns the command's exit status, or None when the dyno ended without one."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                url.host, url.port, ssl=_tls_context(url.pin), server_hostname=url.host
            ),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError) as exc:
        raise UnavailableError(
            f"cannot reach the rendezvous service at {url.host}:{url.port}: {exc}"
        ) from exc
    try:
        if url.pin is not None:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            if hashlib.sha256(der).hexdigest() != url.pin.lower():
                raise UnavailableError(
                    "the rendezvous service's certificate is not the one the API named; "
                    "not sending anything to it"
                )
        writer.write(url.line + b"\r\n")
        greeting = await asyncio.wait_for(reader.readline(), START_TIMEOUT)
        if not greeting:
            raise UnavailableError(
                "the dyno did not come up (the rendezvous service closed the connection); "
                "see dockyard logs for what happened to it"
            )
        on_up()
        return await _relay(reader, writer, stdin, stdout, raw=raw, to_terminal=to_terminal)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stdin: BinaryIO,
    stdout: BinaryIO,
    *,
    raw: bool,
    to_terminal: bool,
) -> int | None:
    loop = asyncio.get_running_loop()
    typed: asyncio.Queue[bytes] = asyncio.Queue()
    threading.Thread(
        target=_read_input,
        args=(stdin, lambda chunk: loop.call_soon_threadsafe(typed.put_nowait, chunk)),
        daemon=True,  # may stay blocked reading a terminal; it must not keep the CLI alive
    ).start()
    status, endings = ExitStatus(), LineEndings()

    async def keyboard() -> None:
        interrupts: list[float] = []
        with contextlib.suppress(OSError, ssl.SSLError):  # the dyno may be gone: output tells
            while chunk := await typed.get():
                if raw and INTERRUPT in chunk:
                    now = time.monotonic()
                    interrupts = [t for t in interrupts if t > now - 1] + [now]
                    if len(interrupts) >= FORCE_DISCONNECT:
                        raise KeyboardInterrupt
                writer.write(chunk)
                await writer.drain()
            if not raw:
                writer.write(b"\x04")  # the end of the input, as the terminal's Ctrl-D
                await writer.drain()

    async def screen() -> None:
        with contextlib.suppress(OSError, ssl.SSLError):  # a cut connection ends the session too
            while data := await reader.read(65536):
                out = status.feed(data)
                stdout.write(out if to_terminal else endings.feed(out))
                stdout.flush()
        stdout.write(status.flush() + endings.flush())
        stdout.flush()

    typing = asyncio.create_task(keyboard())
    output = asyncio.create_task(screen())
    try:
        done, _ = await asyncio.wait({typing, output}, return_when=asyncio.FIRST_COMPLETED)
        if typing in done:
            typing.result()  # raises KeyboardInterrupt on a forced disconnect
        await output
    finally:
        typing.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ssl.SSLError):
            await typing
    return status.code


@contextlib.contextmanager
def raw_terminal(fd: int | None) -> Iterator[bool]:
    """The terminal at ``fd`` in raw mode for the block; yields whether it is one."""
    if fd is None or not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _terminal_env(cli: CliContext, stdout_fd: int | None) -> dict[str, str]:
    env = {}
    if cli.env.get("TERM"):
        env["TERM"] = cli.env["TERM"]
    if stdout_fd is not None and os.isatty(stdout_fd):
        size = shutil.get_terminal_size()
        env.update(COLUMNS=str(size.columns), LINES=str(size.lines))
    return env


F = TypeVar("F", bound=Callable[..., Any])


def dyno_options(func: F) -> F:
    """``-s/--size``, ``--type`` and ``-e/--env``, as ``heroku run`` has them."""
    func = click.option(
        "-e", "--env", "env_flag", help="Variables to set, separated by ';' (A=1;B=2)."
    )(func)
    func = click.option("--type", "ptype", help="Process type of the dyno (default: run).")(func)
    return click.option("-s", "--size", help="Dyno size, e.g. standard-2x.")(func)


@click.command("run", context_settings={"allow_interspersed_args": False})
@dyno_options
@click.option("--no-tty", is_flag=True, help="Run the command without a terminal.")
@click.option("-x", "--exit-code", is_flag=True, hidden=True, help="Always on; for compatibility.")
@app_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_cli
def run(
    cli: CliContext,
    size: str | None,
    ptype: str | None,
    env_flag: str | None,
    no_tty: bool,
    exit_code: bool,
    app: str | None,
    remote: str | None,
    command: tuple[str, ...],
) -> None:
    """Run a one-off process inside a dyno, attached to this terminal (e.g. dockyard run bash)."""
    del exit_code
    name = cli.resolve_app(app, remote)
    line = build_command(command)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    env = {**_terminal_env(cli, _fileno(stdout)), **parse_env(env_flag)}
    client = cli.platform()
    click.echo(f"Running `{line}` on ⬢ {name}... ", nl=False, err=True)
    try:
        dyno = client.create_dyno(
            name,
            f'{line}; echo "{MARKER} $?"',
            attach=True,
            env=env,
            size=size,
            type=ptype,
            force_no_tty=no_tty,
        )
        url = AttachUrl.parse(str(dyno.raw.get("attach_url") or ""))
    except DockyardError:
        click.echo("!", err=True)
        raise
    stdout_fd = _fileno(stdout)
    to_terminal = stdout_fd is not None and os.isatty(stdout_fd)
    with raw_terminal(None if no_tty else _fileno(stdin)) as raw:
        code = asyncio.run(
            attach(
                url,
                stdin,
                stdout,
                raw=raw,
                to_terminal=to_terminal,
                on_up=lambda: click.echo(f"up, {dyno.name}", err=True),
            )
        )
    if code is None:
        cli.out.warn(f"{dyno.name} ended without an exit status (it was stopped or disconnected)")
        code = NO_STATUS
    if code != 0:
        raise click.exceptions.Exit(code)


@click.command("run:detached", context_settings={"allow_interspersed_args": False})
@dyno_options
@click.option("-t", "--tail", is_flag=True, help="Stream the dyno's logs.")
@app_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_cli
def run_detached(
    cli: CliContext,
    size: str | None,
    ptype: str | None,
    env_flag: str | None,
    tail: bool,
    app: str | None,
    remote: str | None,
    command: tuple[str, ...],
) -> None:
    """Run a one-off process in a detached dyno; its output goes to the logs."""
    name = cli.resolve_app(app, remote)
    line = build_command(command)
    client = cli.platform()
    with cli.out.action(f"Running `{line}` on ⬢ {name}") as action:
        dyno = client.create_dyno(
            name, line, attach=False, env=parse_env(env_flag), size=size, type=ptype
        )
        action.done(f"{dyno.name} ({dyno.size})")
    if not tail:
        cli.out.line(f"Run dockyard logs --app {name} --dyno {dyno.name} to view the output.")
        return
    url = client.create_log_session(name, tail=True, dyno=dyno.name)
    for log_line in client.log_lines(url):
        click.echo(log_line)


COMMANDS = (run, run_detached)
ALIASES: dict[str, str] = {}
