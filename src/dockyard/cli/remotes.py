"""Git remotes pointing at Dockyard apps: ``<api url>/<app>.git``.

Every git call goes through ``dockyard._util.proc`` with an argv list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from dockyard._util import proc

DEFAULT_REMOTE = "dockyard"
KNOWN_REMOTES = (DEFAULT_REMOTE, "heroku")
"""Remote names searched, in order, when no ``--remote`` is given."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def git_url(api_url: str, app: str) -> str:
    return f"{api_url.rstrip('/')}/{app}.git"


def _origin(url: str) -> tuple[str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port, parts.path


def _app_from_ssh_url(url: str, api_url: str) -> str | None:
    """``ssh://git@<api host>:<any port>/<app>.git`` → the app; git over SSH listens on the API's host."""
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
    except ValueError:
        return None
    if (
        parts.scheme != "ssh"
        or not parts.hostname
        or parts.hostname.lower() != (api.hostname or "")
    ):
        return None
    path = parts.path.strip("/")
    if not path.endswith(".git") or "/" in path:
        return None
    return path[: -len(".git")] or None


def app_from_url(url: str, api_url: str) -> str | None:
    """The app a remote URL points at when it is on the API's host, e.g. ``http://host:5000/shop.git``
    or ``ssh://git@host:2222/shop.git``."""
    if url.startswith("ssh://"):
        return _app_from_ssh_url(url, api_url)
    remote = _origin(url)
    api = _origin(api_url)
    if remote is None or api is None or remote[:2] != api[:2]:
        return None
    prefix = api[2].rstrip("/") + "/"
    path = remote[2].rstrip("/")
    if not path.startswith(prefix) or not path.endswith(".git"):
        return None
    name = path[len(prefix) : -len(".git")]
    return name if name and "/" not in name else None


def remotes(cwd: Path, env: Mapping[str, str]) -> dict[str, str] | None:
    """Remote name → fetch URL of the repository at ``cwd``; None outside a repository."""
    result = proc.run(["git", "remote", "-v"], cwd=cwd, env=env, check=False, timeout=30)
    if result.returncode != 0:
        return None
    found: dict[str, str] = {}
    for line in result.text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (len(parts) < 3 or parts[2] == "(fetch)"):
            found.setdefault(parts[0], parts[1])
    return found


def add(cwd: Path, env: Mapping[str, str], name: str, url: str) -> None:
    proc.run(["git", "remote", "add", name, url], cwd=cwd, env=env, timeout=30)


def set_url(cwd: Path, env: Mapping[str, str], name: str, url: str) -> None:
    proc.run(["git", "remote", "set-url", name, url], cwd=cwd, env=env, timeout=30)


def remove(cwd: Path, env: Mapping[str, str], name: str) -> None:
    proc.run(["git", "remote", "remove", name], cwd=cwd, env=env, timeout=30)


def pointing_at(
    found: Mapping[str, str], api_url: str, app: str, app_git_url: str | None = None
) -> list[str]:
    """Names of the remotes pointing at ``app``: on the API's host, or at the app's ``git_url``."""
    return sorted(
        name
        for name, url in found.items()
        if app_from_url(url, api_url) == app or (app_git_url and url == app_git_url)
    )
