"""Buildpack references → buildpacks: built-in names, directories on the server, git repositories
and tarballs fetched over the network into a cache.

``resolve_buildpacks`` accepts what an app's buildpack installations hold:

- a built-in buildpack's name (``heroku/python``), its short name (``python``),
  ``urn:buildpack:heroku/python``, or the URL of Heroku's own buildpack for it (GitHub or the
  buildpack registry) — Dockyard builds with its built-in instead of fetching Heroku's;
- an absolute path of a directory holding a classic buildpack (a ``file://`` URL of a directory
  that is not a git repository too);
- a git URL (``https://``, ``http://``, ``file://``; ``#ref`` names a branch, tag or commit),
  cloned shallowly with a timeout and a size limit;
- an ``http(s)`` URL ending in ``.tgz`` or ``.tar.gz``, unpacked with ``extract_tarball``.

Fetched buildpacks are kept in ``cache_root`` under a hash of the URL, one directory per fetch,
and fetched again once older than ``refresh_after`` seconds; when a fetch fails and an older copy
exists, that copy is used with a warning. Every fetched buildpack must have ``bin/detect`` and
``bin/compile``. Nothing here runs the buildpack: the pipeline copies it into the build and runs it
in the build's sandbox.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dockyard._util import proc
from dockyard.build.archive import extract_tarball
from dockyard.build.buildpack import Buildpack
from dockyard.build.buildpacks import ClassicBuildpack, builtin_buildpacks
from dockyard.build.isolation import disk_usage, duration
from dockyard.build.output import BuildOutput, human_size
from dockyard.errors import BuildError, CommandError

FETCH_TIMEOUT = 120.0
"""Seconds a clone or download of one buildpack may take."""
MAX_BUILDPACK_BYTES = 100 << 20
"""Largest buildpack fetched (checked-out files and git data, or unpacked tarball)."""
REFRESH_AFTER = 3600.0
"""Seconds a fetched buildpack is used before it is fetched again."""
KEEP_VERSIONS = 2
_HEX = re.compile(r"^[0-9a-f]{7,64}$")
_TARBALL_SUFFIXES = (".tgz", ".tar.gz")
_REGISTRY = re.compile(r"^https?://[^/]+/buildpacks/(?:[^/]+/)?([^/]+?)\.tgz$")
_HEROKU_GITHUB = re.compile(
    r"^https?://github\.com/heroku/heroku-buildpack-([a-z0-9-]+?)(?:\.git)?/?$"
)


def _builtin(reference: str, builtins: Sequence[Buildpack]) -> Buildpack | None:
    text = reference.strip().lower().removeprefix("urn:buildpack:")
    for pattern in (_HEROKU_GITHUB, _REGISTRY):
        match = pattern.match(text)
        if match:
            text = match.group(1)
    for buildpack in builtins:
        name = buildpack.name.lower()
        if text in (name, name.rsplit("/", 1)[-1]):
            return buildpack
    return None


def check_buildpack(path: Path, reference: str) -> None:
    """``BuildError`` unless ``path`` is a directory with ``bin/detect`` and ``bin/compile``."""
    if not path.is_dir():
        raise BuildError(f"Buildpack {reference}: there is no directory {path}")
    missing = [s for s in ("detect", "compile") if not (path / "bin" / s).is_file()]
    if missing:
        raise BuildError(
            f"Buildpack {reference} is not a classic buildpack: it has no "
            f"{' and no '.join('bin/' + s for s in missing)} — a buildpack needs bin/detect and "
            "bin/compile (and optionally bin/release)"
        )


class _Fetcher:
    def __init__(
        self,
        cache_root: Path,
        output: BuildOutput,
        *,
        timeout: float,
        max_bytes: int,
        refresh_after: float,
    ) -> None:
        self.cache_root = cache_root
        self.output = output
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.refresh_after = refresh_after

    def get(self, url: str) -> Path:
        entry = self.cache_root / hashlib.sha256(url.encode()).hexdigest()[:32]
        versions = sorted(
            (p for p in entry.glob("v*") if p.is_dir()), key=lambda p: p.name, reverse=True
        )
        newest = versions[0] if versions else None
        if newest is not None and time.time() - newest.stat().st_mtime < self.refresh_after:
            return newest
        self.output.heading(f"Fetching buildpack {url}")
        entry.mkdir(parents=True, exist_ok=True)
        partial = entry / f".partial-{uuid.uuid4().hex}"
        try:
            self._fetch(url, partial)
            check_buildpack(partial, url)
        except BuildError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if newest is None:
                raise
            self.output.error(f"{exc.message}\nUsing the copy fetched earlier.")
            return newest
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        final = entry / f"v{time.time_ns():020d}"
        partial.rename(final)
        for old in versions[KEEP_VERSIONS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _fetch(self, url: str, target: Path) -> None:
        path = urlsplit(url).path.lower()
        if path.endswith(_TARBALL_SUFFIXES) and urlsplit(url).scheme in ("http", "https"):
            self._download(url, target)
        else:
            self._clone(url, target)

    def _download(self, url: str, target: Path) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "dockyard-build"})  # noqa: S310 - the scheme is checked by _fetch
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                extract_tarball(
                    response, target, max_bytes=self.max_bytes, what="buildpack", unwrap=True
                )
        except (urllib.error.URLError, OSError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise BuildError(f"Buildpack {url} could not be downloaded: {exc}") from exc

    def _clone(self, url: str, target: Path) -> None:
        base, _, ref = url.partition("#")
        scheme = urlsplit(base).scheme
        if scheme not in ("https", "http", "file"):
            raise BuildError(
                f"Buildpack {url}: only https://, http:// and file:// git URLs can be fetched"
            )
        home = target.with_name(target.name + ".home")
        home.mkdir()
        try:
            if ref and not _HEX.match(ref):
                self._git(url, ["clone", "--depth=1", "--branch", ref, "--", base, target], home)
            else:
                depth = [] if ref else ["--depth=1"]
                self._git(url, ["clone", *depth, "--no-checkout", "--", base, target], home)
                checkout = ["-C", str(target), "checkout", "--quiet", "--detach", ref or "HEAD"]
                self._git(url, checkout, home)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(target / ".git", ignore_errors=True)

    def _git(self, url: str, args: Sequence[str | Path], home: Path) -> None:
        watched = Path(str(args[-1]))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "/bin/false",
        }
        config = [
            "-c", "protocol.allow=never",
            "-c", "protocol.https.allow=always",
            "-c", "protocol.http.allow=always",
            "-c", "protocol.file.allow=always",
            "-c", "core.hooksPath=/dev/null",
            "-c", "credential.helper=",
            "-c", "submodule.recurse=false",
        ]  # fmt: skip
        lines: list[str] = []

        def watch() -> None:
            if watched.exists() and disk_usage(watched) > self.max_bytes:
                raise BuildError(
                    f"Buildpack {url} is larger than {human_size(self.max_bytes)}, the limit for a "
                    "buildpack — is it the right repository?"
                )

        try:
            code = proc.stream(
                ["git", *config, *args],
                on_line=lambda raw: lines.append(raw.decode("utf-8", "replace")),
                env=env,
                timeout=self.timeout,
                watch=watch,
                watch_interval=0.25,
            )
        except CommandError as exc:
            raise BuildError(
                f"Buildpack {url} could not be fetched within {duration(self.timeout)}"
                if "did not finish" in exc.message
                else f"Buildpack {url} could not be fetched: {exc.message}"
            ) from exc
        if code != 0:
            detail = "\n".join(line for line in lines[-5:] if line.strip())
            raise BuildError(f"Buildpack {url} could not be fetched with git: {detail}")
        watch()  # a small repository can be cloned between two checks


def resolve_buildpacks(
    refs: Sequence[str],
    cache_root: Path,
    output: BuildOutput,
    *,
    builtins: Sequence[Buildpack] | None = None,
    timeout: float = FETCH_TIMEOUT,
    max_bytes: int = MAX_BUILDPACK_BYTES,
    refresh_after: float = REFRESH_AFTER,
) -> list[Buildpack]:
    """The buildpacks named by ``refs``, in order (see the module docstring); ``BuildError``
    names the reference that cannot be used. Fetch progress and warnings go to ``output``."""
    available = builtin_buildpacks() if builtins is None else builtins
    fetcher = _Fetcher(
        cache_root, output, timeout=timeout, max_bytes=max_bytes, refresh_after=refresh_after
    )
    resolved: list[Buildpack] = []
    for reference in refs:
        builtin = _builtin(reference, available)
        if builtin is not None:
            resolved.append(builtin)
            continue
        local = _local_path(reference)
        if local is not None:
            check_buildpack(local, reference)
            resolved.append(ClassicBuildpack(local, name=reference))
            continue
        if "://" not in reference:
            raise BuildError(
                f"Buildpack {reference} is neither a built-in buildpack "
                f"({', '.join(b.name for b in available)}), a directory, nor a URL"
            )
        resolved.append(ClassicBuildpack(fetcher.get(reference), name=reference))
    return resolved


def _local_path(reference: str) -> Path | None:
    """The directory a reference names on this server: an absolute path, or a ``file://`` URL
    of a directory that is not a git repository (``file://`` URLs of git repositories, and any
    with a ``#ref``, are cloned like remote ones)."""
    if reference.startswith("/"):
        return Path(reference)
    parts = urlsplit(reference)
    if parts.scheme != "file" or parts.fragment:
        return None
    path = Path(unquote(parts.path))
    is_git = (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
    return path if path.is_dir() and not is_git else None
