"""What a command needs from the outside world, in one object.

Environment, working directory, API client factory, clock, terminal. ``main`` builds the default
one; tests hand their own to ``main(obj=...)`` or ``CliRunner.invoke(cli, obj=...)``, e.g. with an
``api_factory`` whose ``ApiClient`` has a fake transport.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

import click

from dockyard._util.clock import Clock, SystemClock
from dockyard.cli import remotes
from dockyard.cli.netrc import Netrc
from dockyard.cli.output import Output
from dockyard.client.http import ApiClient
from dockyard.client.platform import PlatformClient
from dockyard.errors import CommandError, InvalidError, UnauthorizedError

DEFAULT_API_URL = "http://localhost:5000"
NO_APP = "No app specified. Use -a APP or run this command inside an app's git repository."

ApiFactory = Callable[[str, str | None], ApiClient]
"""``(base_url, api_key) → ApiClient``."""


def default_api_factory(base_url: str, api_key: str | None) -> ApiClient:
    return ApiClient(base_url, api_key)


def _execv(path: str, argv: Sequence[str]) -> None:
    os.execv(path, list(argv))  # noqa: S606 - `dockyard up` replaces the CLI process on purpose


@dataclass
class CliContext:
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    cwd: Path | None = None
    """Where git remotes are looked up; the process's working directory when None."""
    api_factory: ApiFactory = default_api_factory
    clock: Clock = field(default_factory=SystemClock)
    timezone: tzinfo | None = None
    """Times are shown in this zone; the local one when None."""
    terminal: bool | None = None
    """Rich output when True, plain text when False; when None, whether stdout is a terminal."""
    execv: Callable[[str, Sequence[str]], None] = _execv
    _clients: list[ApiClient] = field(default_factory=list, repr=False)

    # -- where things are -----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        url = (self.env.get("DOCKYARD_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidError(
                f"DOCKYARD_API_URL {url!r} is not an http(s) URL — set it like http://localhost:5000"
            )
        return url

    @property
    def api_host(self) -> str:
        """The netrc machine name of the API (and of its git server, which is the same host)."""
        return urlsplit(self.api_url).hostname or "localhost"

    @property
    def workdir(self) -> Path:
        return self.cwd if self.cwd is not None else Path.cwd()

    @property
    def out(self) -> Output:
        return Output(self.terminal)

    @property
    def netrc(self) -> Netrc:
        home = self.env.get("HOME") or str(Path.home())
        return Netrc(Path(self.env.get("NETRC") or Path(home) / ".netrc"))

    # -- credentials and clients ----------------------------------------------------------------

    def api_key(self) -> str | None:
        key = self.env.get("DOCKYARD_API_KEY", "").strip()
        if key:
            return key
        credentials = self.netrc.get(self.api_host)
        return credentials.password if credentials else None

    def platform(self, api_key: str | None = None) -> PlatformClient:
        """A client authenticated with ``api_key``, else with the stored key (which must exist)."""
        key = api_key or self.api_key()
        if not key:
            raise UnauthorizedError(
                "Not logged in — run dockyard login, or set DOCKYARD_API_KEY to an API key"
            )
        client = self.api_factory(self.api_url, key)
        self._clients.append(client)
        return PlatformClient(client)

    def exec_serve(self, *args: str) -> None:
        """Replace this process with ``python -m dockyard.serve ARGS`` (never imported here)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.execv(sys.executable, [sys.executable, "-m", "dockyard.serve", *args])

    def close(self) -> None:
        while self._clients:
            self._clients.pop().close()

    # -- git ------------------------------------------------------------------------------------

    def git_remotes(self) -> dict[str, str] | None:
        return remotes.remotes(self.workdir, self.env)

    def resolve_app(self, app: str | None, remote: str | None) -> str:
        """The app named by ``-a``, else ``DOCKYARD_APP``, else the one the git remote points at."""
        if app:
            return app
        env_app = self.env.get("DOCKYARD_APP", "").strip()
        if env_app and not remote:
            return env_app
        try:
            found = self.git_remotes()
        except CommandError:
            found = None
        inferred = self._app_from_remotes(found or {}, remote)
        if inferred:
            return inferred
        raise InvalidError(NO_APP)

    def _app_from_remotes(self, found: Mapping[str, str], remote: str | None) -> str | None:
        if remote:
            url = found.get(remote)
            if url is None:
                raise InvalidError(f"Git remote {remote} does not exist in this repository")
            return remotes.app_from_url(url, self.api_url)
        for name in remotes.KNOWN_REMOTES:
            if name in found:
                inferred = remotes.app_from_url(found[name], self.api_url)
                if inferred:
                    return inferred
        apps = {
            name: app
            for name, url in found.items()
            if (app := remotes.app_from_url(url, self.api_url)) is not None
        }
        if len(set(apps.values())) > 1:
            names = ", ".join(sorted(apps))
            raise InvalidError(
                f"Multiple apps in git remotes ({names}) — pick one with -r REMOTE or -a APP"
            )
        return next(iter(apps.values()), None)


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
"""Hands the command the ``CliContext`` of the current run."""
