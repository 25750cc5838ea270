"""Buildpack installations: the ordered buildpacks an app's builds use (``buildpacks:set/add``).

What a buildpack reference may be:

- a built-in buildpack by name: ``heroku/python``, ``heroku/nodejs``, ``heroku/static``,
  ``dockyard/procfile``, or an alias of one (``python``, ``urn:buildpack:heroku/python``, the
  GitHub URL of Heroku's buildpack, the buildpack registry's tarball URL the Heroku CLI sends);
- an ``http://`` or ``https://`` URL of a git repository (``#ref`` selects a branch or tag) or of a
  ``.tgz`` tarball;
- a buildpack on the server: an absolute path or ``file://`` URL **inside the operator's buildpack
  directory** (``<data dir>/buildpacks``). Only the operator can put buildpacks there, so tenants
  can use what the operator installed but can never make a build read another path of the server
  (another app's repository, the secrets directory).

An empty list means the buildpacks are detected at each build.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from dockyard.settings import Settings
from dockyard.store import Tx
from dockyard.store.records import Account, App, BuildpackInstallation

MAX_BUILDPACKS = 10
MAX_URL_LENGTH = 2048

BUILTIN_BUILDPACKS = ("heroku/python", "heroku/nodejs", "heroku/static", "dockyard/procfile")
"""Names of the built-in buildpacks, as stored and shown."""

_EXTRA_ALIASES = {
    "heroku/python": ("python", "dockyard/python", "heroku-buildpack-python"),
    "heroku/nodejs": (
        "nodejs",
        "node",
        "heroku/node",
        "dockyard/nodejs",
        "heroku-buildpack-nodejs",
    ),
    "heroku/static": (
        "static",
        "dockyard/static",
        "heroku-community/static",
        "heroku-buildpack-static",
    ),
    "dockyard/procfile": ("procfile", "heroku-community/procfile", "heroku/procfile"),
}


def _alias_table() -> dict[str, str]:
    """Lowercased alias → built-in name, including the URLs the Heroku CLI and docs use."""
    table: dict[str, str] = {}
    for name, extra in _EXTRA_ALIASES.items():
        short = name.split("/")[1]
        for alias in (
            name,
            *extra,
            f"urn:buildpack:{name}",
            f"https://buildpack-registry.s3.amazonaws.com/buildpacks/{name}.tgz",
            f"https://codon-buildpacks.s3.amazonaws.com/buildpacks/heroku/{short}.tgz",
            f"https://github.com/heroku/heroku-buildpack-{short}",
            f"https://github.com/heroku/heroku-buildpack-{short}.git",
        ):
            table[alias.lower()] = name
    return table


_ALIASES = _alias_table()
_FRAGMENT = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


def local_buildpacks_dir(settings: Settings) -> Path:
    """Where the operator installs buildpacks that apps may name by path."""
    return settings.data_dir / "buildpacks"


def canonical_buildpack(reference: str, settings: Settings) -> tuple[str, str]:
    """``(url, name)`` to store for a buildpack reference, or ``InvalidError`` saying why not."""
    text = reference.strip() if isinstance(reference, str) else ""
    if not text:
        raise InvalidError("Give a buildpack name or URL, e.g. heroku/python", field="buildpack")
    if len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in text):
        raise InvalidError(
            f"{text[:80]!r} is not a buildpack URL: it is too long or contains spaces",
            field="buildpack",
        )
    builtin = _ALIASES.get(text.lower())
    if builtin is not None:
        return builtin, builtin
    if text.startswith("/") or text.lower().startswith("file:"):
        return _local(text, settings)
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname:
            raise InvalidError(f"{text} is not a buildpack URL: it has no host", field="buildpack")
        if parts.fragment and not _FRAGMENT.fullmatch(parts.fragment):
            raise InvalidError(
                f"{text}: the part after # must name a branch or tag (letters, digits, ., -, _, /)",
                field="buildpack",
            )
        return text, _name_of(parts.path) or parts.hostname
    if "://" in text or parts.scheme in ("git", "ssh"):
        raise InvalidError(
            f"{text}: only http(s) URLs of git repositories or tarballs can be fetched — use the "
            "https:// URL of the buildpack",
            field="buildpack",
        )
    raise InvalidError(
        f"{text} is not a known buildpack. Use one of {', '.join(BUILTIN_BUILDPACKS)}, or the "
        "https:// URL of a buildpack's git repository",
        field="buildpack",
    )


def _name_of(path: str) -> str:
    name = posixpath.basename(path.rstrip("/"))
    for suffix in (".git", ".tgz", ".tar.gz"):
        name = name.removesuffix(suffix)
    return name


def _local(text: str, settings: Settings) -> tuple[str, str]:
    root = local_buildpacks_dir(settings)
    if text.lower().startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise InvalidError(
                f"{text}: a file:// URL names a path on this server", field="buildpack"
            )
        path_text = unquote(parts.path)
    else:
        path_text = text
    normal = posixpath.normpath(path_text)
    inside = normal.startswith(str(root).rstrip("/") + "/")
    if not path_text.startswith("/") or ".." in path_text.split("/") or not inside:
        raise InvalidError(
            f"{text}: buildpacks on the server must be in the operator's buildpack directory "
            f"{root}/ — ask the operator to install it there, or use its https:// git URL",
            field="buildpack",
        )
    if not Path(normal).is_dir():
        raise InvalidError(f"{text}: there is no buildpack at {normal}", field="buildpack")
    return normal, posixpath.basename(normal)


def canonical_list(references: Sequence[str], settings: Settings) -> list[tuple[str, str]]:
    """Check a whole list (``InvalidError`` names the entry): at most ``MAX_BUILDPACKS``, no
    buildpack twice."""
    if len(references) > MAX_BUILDPACKS:
        raise InvalidError(
            f"An app can use at most {MAX_BUILDPACKS} buildpacks; this list has {len(references)}",
            field="updates",
        )
    found: list[tuple[str, str]] = []
    for reference in references:
        url, name = canonical_buildpack(reference, settings)
        if any(url == seen for seen, _ in found):
            raise InvalidError(f"The buildpack {reference} is listed twice", field="updates")
        found.append((url, name))
    return found


def list_installations(
    platform: Platform, account: Account, app_ref: str
) -> tuple[App, list[BuildpackInstallation]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_buildpacks(app.id)


def replace_installations(
    platform: Platform,
    account: Account,
    app_ref: str,
    references: Sequence[str],
    *,
    context: RequestContext | None = None,
) -> tuple[App, list[BuildpackInstallation]]:
    """Make ``references`` the app's whole list, in order (Heroku's PUT); all or nothing."""
    checked = canonical_list(references, platform.settings)
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        tx.replace_buildpacks(app.id, checked)
        installed = tx.list_buildpacks(app.id)
        audit.record_app_event(
            platform,
            "buildpacks.update",
            account,
            context,
            app,
            details={"buildpacks": [url for url, _ in checked]},
        )
    names = ", ".join(url for url, _ in checked) or "none (detect at each build)"
    platform.log(app.id, "heroku", "api", f"Set buildpacks to {names} by {account.email}")
    return app, installed


def installed_urls(tx: Tx, app_id: str) -> list[str]:
    return [installation.url for installation in tx.list_buildpacks(app_id)]
