"""Git over SSH: an asyncssh server (the ``git-ssh`` role) that runs the real ``git-receive-pack``
and ``git-upload-pack`` for the SSH keys registered through ``/account/keys``.

Remote URL: ``ssh://git@<host>:<port>/<app>.git``. The user name is not checked; the client's public
key is looked up by its ``SHA256:`` fingerprint in the store when it authenticates, so a key removed
from an account stops working on the next connection. Per-app authorization is the one git over
HTTPS uses (``control.access.app_for``: owner or collaborator; anyone else gets "not found").

A session may only run ``git-receive-pack '<app>.git'`` or ``git-upload-pack '<app>.git'`` (with or
without a leading ``/``, quoted or not). Shells, terminals, other commands and subsystems (sftp) are
refused with a message on stderr and exit status 1 (a terminal request is accepted only so that
the client shows that message: no terminal is made); port, agent and X11 forwarding are refused. Of
the environment a client sends only ``GIT_PROTOCOL`` reaches git (OpenSSH sends ``LANG`` by default,
so other variables are ignored rather than failing the session). Pushes share the per-account,
per-app limit of git over HTTPS (``git.push_rate_per_hour``, a bucket per server process) and the
pack size limit (``build.max_repo_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from dockyard._util import proc
from dockyard.auth.ratelimit import RateLimiter
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import AccessDeniedError, DockyardError, NotFoundError, RateLimitedError
from dockyard.git.hooks import hook_environment
from dockyard.git.repos import GitRepos
from dockyard.settings import Settings
from dockyard.store.records import Account, App

log = logging.getLogger("dockyard.git.ssh")

Service = Literal["git-upload-pack", "git-receive-pack"]
SERVICES: dict[str, Literal["read", "deploy"]] = {
    "git-upload-pack": "read",
    "git-receive-pack": "deploy",
}
HOST_KEY_TYPE = "ssh-ed25519"
REFUSED = 1
"""Exit status of a refused session."""
_APP_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_GIT_PROTOCOL = re.compile(r"^[A-Za-z0-9=:.,_-]{1,100}$")
_CHUNK = 64 * 1024
_INBOX_HIGH = 1 << 20
"""Bytes from the client buffered for git before the channel stops reading."""
_LOGIN_TIMEOUT = 30.0
_KEEPALIVE_INTERVAL = 30.0


@dataclass(frozen=True)
class GitCommand:
    service: Service
    app_ref: str
    """The app's name or id, as the client wrote it (without ``/`` and ``.git``)."""


@dataclass(frozen=True)
class Grant:
    account: Account
    app: App
    service: Service
    repo: Path


def _usage(what: str) -> str:
    return (
        f"{what}: Dockyard's git server only runs git-receive-pack and git-upload-pack for "
        "'<app>.git' — use git push, git clone or git fetch with ssh://git@<host>:<port>/<app>.git"
    )


def parse_command(command: str) -> GitCommand:
    """``git-receive-pack '/shop.git'`` → (service, ``shop``). Another command is refused with
    ``AccessDeniedError``, a path that cannot name an app with ``NotFoundError``."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if not words:
        raise AccessDeniedError(_usage(f"Command {command!r} is not allowed"))
    if words[0] not in SERVICES:
        raise AccessDeniedError(_usage(f"Command {words[0]!r} is not allowed"))
    if len(words) != 2:
        raise AccessDeniedError(
            _usage(f"{words[0]} takes exactly one argument, the app's repository")
        )
    path = words[1].removeprefix("/")
    ref = path.removesuffix(".git")
    if ref == path or not _APP_REF.fullmatch(ref):
        raise NotFoundError(f"Couldn't find that app: {words[1]}")
    service: Service = "git-receive-pack" if words[0] == "git-receive-pack" else "git-upload-pack"
    return GitCommand(service, ref)


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's ed25519 host key, generated on first use (mode 0600, in a 0700 directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        key = asyncssh.generate_private_key(HOST_KEY_TYPE, comment="dockyard git server")
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.export_private_key())
        try:
            os.link(partial, path)  # atomic; another process may have created it first
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise DockyardError(
            f"cannot read the SSH host key {path}: {exc} — move it away to generate a new one"
        ) from exc


class GitSshServer:
    """The use cases behind the SSH protocol: who a key belongs to, what a command may touch."""

    def __init__(self, platform: Platform, *, limiter: RateLimiter | None = None) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.repos = GitRepos(platform.settings.repos_dir)
        self.limiter = limiter or RateLimiter(
            platform.settings.git.push_rate_per_hour, platform.clock
        )

    # -- called in a worker thread (the store is synchronous) ------------------------------------

    def account_for_key(self, fingerprint: str) -> Account | None:
        with self.platform.store.read() as tx:
            return tx.account_for_ssh_key(fingerprint)

    def authorize(self, account: Account, command: GitCommand) -> Grant:
        with self.platform.store.read() as tx:
            app = app_for(tx, account, command.app_ref, SERVICES[command.service])
        return Grant(account, app, command.service, self.repos.ensure(app.id))

    # -- called on the event loop ----------------------------------------------------------------

    def take_push(self, grant: Grant) -> None:
        """Spend one push of the account's hourly allowance for the app, or refuse."""
        if grant.service != "git-receive-pack":
            return
        key = f"{grant.account.id}:{grant.app.id}"
        allowed, _ = self.limiter.take(key)
        if not allowed:
            retry = self.limiter.retry_after(key)
            raise RateLimitedError(
                f"Too many pushes to {grant.app.name}: the limit is "
                f"{self.limiter.capacity} an hour per app and account. Try again in {retry} s.",
                retry_after=retry,
            )

    def argv(self, grant: Grant) -> list[str | Path]:
        if grant.service == "git-receive-pack":
            limit = f"receive.maxInputSize={self.settings.build.max_repo_bytes}"
            return ["git", "-c", limit, "receive-pack", grant.repo]
        return ["git", "upload-pack", "--strict", grant.repo]

    def env(self, grant: Grant, client_env: Mapping[str, str]) -> dict[str, str]:
        env = hook_environment(self.settings, grant.app.id, grant.account.id)
        protocol = client_env.get("GIT_PROTOCOL", "")
        if _GIT_PROTOCOL.fullmatch(protocol):
            env["GIT_PROTOCOL"] = protocol
        return env

    async def listen(
        self, host: str | None = None, port: int | None = None
    ) -> asyncssh.SSHAcceptor:
        """Start accepting connections (``port`` 0 picks a free one: ``acceptor.get_port()``)."""
        host_key = ensure_host_key(self.settings.ssh_host_key_file)
        return await asyncssh.listen(
            self.settings.git.ssh_host if host is None else host,
            self.settings.git.ssh_port if port is None else port,
            server_factory=lambda: _Connection(self),
            server_host_keys=[host_key],
            encoding=None,
            public_key_auth=True,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            agent_forwarding=False,
            x11_forwarding=False,
            line_editor=False,
            allow_scp=False,
            login_timeout=_LOGIN_TIMEOUT,
            keepalive_interval=_KEEPALIVE_INTERVAL,
            rdns_lookup=False,
        )


class _Connection(asyncssh.SSHServer):
    """One client connection: public-key authentication, then one or more sessions."""

    def __init__(self, server: GitSshServer) -> None:
        self.server = server
        self.peer = "?"
        self.account: Account | None = None
        self._candidate: Account | None = None
        self.app = "-"
        self.service = "-"
        self.outcome = "closed before authentication"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        who = self.account.email if self.account else "-"
        log.info(
            "git-ssh %s account=%s app=%s service=%s outcome=%s",
            self.peer,
            who,
            self.app,
            self.service,
            self.outcome,
        )

    # -- authentication: public keys registered through /account/keys, nothing else --------------

    def begin_auth(self, username: str) -> bool:
        self.outcome = "authentication failed"
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fingerprint = key.get_fingerprint("sha256")
        account = await asyncio.to_thread(self.server.account_for_key, fingerprint)
        # asyncssh validates the key of the accepted request right before it checks its
        # signature, so the last key validated is the one that authenticated the connection.
        self._candidate = account
        return account is not None

    def auth_completed(self) -> None:
        self.account = self._candidate
        self.outcome = "no session"

    # -- channels: sessions only; every kind of forwarding is refused -----------------------------

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _GitSession(self)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            "Dockyard's git server does not forward ports",
        )

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            "Dockyard's git server does not forward sockets",
        )

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class _GitSession(asyncssh.SSHServerSession[bytes]):
    """One session channel: the request is checked when it starts; an allowed git command runs
    with its stdin, stdout and stderr streamed both ways and its exit status passed back."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.server = connection.server
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._pty = False
        self._command: str | None = None
        self._subsystem: str | None = None
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._inbox_bytes = 0
        self._reading_paused = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def chan(self) -> asyncssh.SSHServerChannel[bytes]:
        if self._chan is None:
            raise RuntimeError("the session has no channel yet")
        return self._chan

    # -- requests ---------------------------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(
        self,
        term_type: str,
        term_size: tuple[int, int, int, int],
        term_modes: Mapping[int, int],
    ) -> bool:
        self._pty = True
        return True  # no terminal is ever made: accepted only so that the refusal can say why

    def shell_requested(self) -> bool:
        return True  # accepted so that the refusal can say why (see _request)

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self._subsystem = subsystem
        return True

    def session_started(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def break_received(self, msec: int) -> bool:
        return False

    def signal_received(self, signal: str) -> None:
        pass  # the client may not signal git

    # -- data from the client ---------------------------------------------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype is not None:
            return  # clients send no extended data; ignore it
        self._inbox.put_nowait(data)
        self._inbox_bytes += len(data)
        if self._inbox_bytes > _INBOX_HIGH and not self._reading_paused:
            self._reading_paused = True
            self.chan.pause_reading()

    def eof_received(self) -> bool:
        self._inbox.put_nowait(None)
        return True  # keep the channel open for git's output and exit status

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # -- the work ---------------------------------------------------------------------------------

    def _request(self) -> GitCommand:
        if self._pty:
            raise AccessDeniedError(
                _usage("Terminals are not available (do not use ssh -t)")
                if self._command is None
                else _usage("This session asked for a terminal, which git never does")
            )
        if self._subsystem is not None:
            raise AccessDeniedError(_usage(f"The {self._subsystem!r} subsystem is not available"))
        if self._command is None:
            raise AccessDeniedError(_usage("There is no shell here"))
        return parse_command(self._command)

    async def _run(self) -> None:
        connection = self.connection
        try:
            if connection.account is None:
                raise AccessDeniedError("Not authenticated")
            command = self._request()
            connection.app, connection.service = command.app_ref, command.service
            grant = await asyncio.to_thread(self.server.authorize, connection.account, command)
            connection.app = grant.app.name
            self.server.take_push(grant)
        except (AccessDeniedError, NotFoundError, RateLimitedError) as exc:
            connection.outcome = f"refused: {exc.message}"
            self._refuse(exc.message)
            return
        except DockyardError as exc:
            connection.outcome = f"error: {exc.message}"
            log.error("git-ssh: %s", exc.message)
            self._refuse(f"The git server failed: {exc.message}")
            return
        status = await self._git(grant)
        connection.outcome = f"exit {status}"
        with contextlib.suppress(OSError):
            self.chan.exit(status)

    def _refuse(self, message: str) -> None:
        end = "\r\n" if self._pty else "\n"  # the client's terminal is in raw mode
        with contextlib.suppress(OSError):  # the client may be gone already
            self.chan.write_stderr((message + end).encode("utf-8"))
            self.chan.exit(REFUSED)

    async def _git(self, grant: Grant) -> int:
        env = self.server.env(grant, self.chan.get_environment())
        process = await proc.start(self.server.argv(grant), env=env)
        if process.stdin is None or process.stdout is None or process.stderr is None:
            raise RuntimeError("git was started without pipes")
        feeder = asyncio.create_task(self._feed(process.stdin))
        try:
            await asyncio.gather(
                self._pump(process.stdout, self.chan.write),
                self._pump(process.stderr, self.chan.write_stderr),
            )
            returncode = await process.wait()
        finally:
            feeder.cancel()
            if process.returncode is None:  # the client went away: stop git, as over HTTP
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return returncode if returncode >= 0 else 128 - returncode

    async def _feed(self, stdin: asyncio.StreamWriter) -> None:
        try:
            while (data := await self._inbox.get()) is not None:
                self._inbox_bytes -= len(data)
                stdin.write(data)
                await stdin.drain()
                if self._reading_paused and self._inbox_bytes < _INBOX_HIGH // 2:
                    self._reading_paused = False
                    self.chan.resume_reading()
        except (BrokenPipeError, ConnectionResetError):
            pass  # git stopped reading; its output and exit status tell the client why
        finally:
            stdin.close()

    async def _pump(self, stream: asyncio.StreamReader, write: Callable[[bytes], None]) -> None:
        while chunk := await stream.read(_CHUNK):
            write(chunk)
            await self._writable.wait()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve git over SSH until ``stop`` is set."""
    platform = Platform.open(settings, migrate=False)  # `up` and the API migrate the store
    try:
        acceptor = await GitSshServer(platform).listen()
        key = ensure_host_key(settings.ssh_host_key_file)
        log.info(
            "git over SSH listening on %s:%d (host key %s); remotes: %s",
            settings.git.ssh_host,
            acceptor.get_port(),
            key.get_fingerprint("sha256"),
            settings.git_ssh_url("<app>"),
        )
        try:
            await stop.wait()
        finally:
            acceptor.close()
            await acceptor.wait_closed()
    finally:
        platform.close()


def main(settings: Settings) -> None:
    """Run the git SSH server in the foreground until SIGINT or SIGTERM."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    asyncio.run(run())
