"""``PythonBuildpack``: Python apps with ``requirements.txt``, ``pyproject.toml`` + ``uv.lock``,
``poetry.lock``, or a plain ``pyproject.toml`` / ``setup.py`` project.

The dependencies go into a virtualenv at ``.venv`` in the slug, made with the stack's Python. The
slug is mounted wherever the runtime puts it (its own path on the host, ``/app`` in a container),
so the virtualenv is made relocatable after each install: console scripts start with a two-line
``sh`` preamble that runs the ``python`` next to them, ``.pth`` lines that name the build directory
become relative, and ``.profile.d/python.sh`` puts ``$HOME/.venv/bin`` first on ``PATH`` at dyno
start. The venv's ``python`` links to the stack's interpreter by its absolute path (e.g.
``/usr/bin/python3``), which is the same on the build and the run stack.

The byte code is compiled once at build time in the ``unchecked-hash`` mode: slugs carry no
timestamps (they are all 0), so timestamp-checked ``.pyc`` files would be recompiled in memory at
every dyno start.

Caching, in ``CACHE_DIR/python``: the pip and uv download caches, uv itself (installed with pip the
first time), and the finished virtualenv with a key over the Python, the installer and the files
that pin the dependencies. When the key is unchanged the cached virtualenv is put into the slug and
no installer runs at all. A dependency set that refers to files in the repository (``-e .``,
``./libs/x``, a plain ``pyproject.toml`` or ``setup.py`` project) is installed every time.

When the build runs as a user of its own (the runc sandbox, or the uid sandbox as root), the cached
virtualenv and the slug's share their files: hard links, made by Dockyard itself (root), not by the
build — on a warm build from the cache into the build directory, on a cold one from the new
virtualenv into the cache. From that moment until every buildpack has compiled, the shared files
(and the cached tree's directories) belong to root and have no write bits, so the build user can
read them, remove them or put a new file in their place in the build directory, but cannot write
into them, nor change the cached tree; ``release`` hands them back to the build user before the
pipeline seals and packs the tree (which reads only). Nothing here writes into an existing file:
relocation replaces files (a new file renamed over the old one). A cached tree holding anything but
directories, symbolic links and files with a single name is not reused. Builds that run as root or
as Dockyard's own user (no user of their own) copy instead (``cp -a``), as the build could write
through a link there.

``poetry.lock`` (lock format 2.1, Poetry 2) is installed with pip from the lock itself — exact
versions and hashes of the ``main`` group, with their markers — so builds need neither Poetry nor
the PyPI JSON API that Poetry uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import time
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.buildpacks.procfile import PROCFILE, load_procfile
from dockyard.build.output import BuildOutput
from dockyard.build.stack import (
    BuildCommands,
    HostStack,
    PythonRuntime,
    Stack,
    build_environment,
    make_dirs,
    read_small,
    write_file,
)
from dockyard.errors import CompileError, ProcfileError

VENV = ".venv"
PROFILE_SCRIPT = ".profile.d/python.sh"
CACHE_FORMAT = "dockyard-python-1"
"""Part of the cache key: change it when the layout of cached virtualenvs changes."""
UV_REQUIREMENT = "uv>=0.5,<1"
UV_INSTALL = ("--no-input", "--progress-bar", "off", UV_REQUIREMENT)
APP_PTH = "_dockyard_app.pth"
UNCHECKED = ("--invalidation-mode", "unchecked-hash")
MAX_SCAN_BYTES = 1 << 20

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
UV_LOCK = "uv.lock"
POETRY_LOCK = "poetry.lock"
SETUP_PY = "setup.py"
MANIFESTS = (REQUIREMENTS, PYPROJECT, UV_LOCK, POETRY_LOCK, SETUP_PY)

RELOCATABLE_PREAMBLE = (
    '#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")/python" "$0" "$@"\n\' \'\'\'\n'
)
"""Replaces a console script's ``#!/abs/path/.venv/bin/python``: sh runs the python beside the
script, wherever the venv now is; to Python the two lines are a string expression."""

PROFILE = """\
# Written by the Dockyard Python buildpack: the app runs with the virtualenv built for it.
export PATH="$HOME/.venv/bin:$PATH"
export VIRTUAL_ENV="$HOME/.venv"
export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-true}"
export LANG="${LANG:-C.UTF-8}"
export FORWARDED_ALLOW_IPS="${FORWARDED_ALLOW_IPS:-*}"
export GUNICORN_CMD_ARGS="${GUNICORN_CMD_ARGS:---access-logfile -}"
"""

Manager = Literal["pip", "uv", "poetry"]


@dataclass(frozen=True)
class InstallPlan:
    manager: Manager
    source: str
    """What is installed, for the user: ``requirements.txt``, ``uv.lock``, ``the project``."""
    files: tuple[str, ...]
    """Repository files that pin the dependency set (hashed into the cache key)."""
    reusable: bool
    """False when the install reads files of the repository, so its result cannot be reused."""
    ignored: tuple[str, ...] = ()


class PythonBuildpack:
    name = "heroku/python"
    looks_for = "requirements.txt, pyproject.toml, poetry.lock, uv.lock or setup.py"

    def __init__(
        self, stack: Stack | None = None, *, platform_env: Mapping[str, str] | None = None
    ) -> None:
        self.stack = stack or HostStack()
        self.platform_env = os.environ if platform_env is None else platform_env
        self._shared: dict[Path, Shared] = {}
        """Build directory → the cached virtualenv sharing its files, from the compile until
        ``release`` hands them back."""

    def detect(self, build_dir: Path) -> str | None:
        return "Python" if any((build_dir / name).is_file() for name in MANIFESTS) else None

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        plan = install_plan(build_dir)
        runtime = select_python(self.stack, build_dir, output)
        cache = cache_dir / "python"
        home = make_dirs(cache_dir, "python/home", env)
        environment = build_environment(env, env_dir, home, platform_env=self.platform_env)
        environment["PIP_ROOT_USER_ACTION"] = "ignore"
        environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        commands = BuildCommands(env, output, environment)
        for name in plan.ignored:
            output.detail(f"Ignoring {name}: {plan.source} pins the dependencies")
        venv = build_dir / VENV
        if venv.exists() or venv.is_symlink():
            output.detail(f"Removing the committed {VENV}: the buildpack builds its own")
            _remove(venv)

        key = cache_key(build_dir, plan, runtime) if plan.reusable else None
        cached = cache / "venv"
        owner = link_owner(env)
        reused = False
        if key is not None and read_small(cache / "venv.key") == key.encode() and cached.is_dir():
            output.heading(f"Dependencies unchanged since the last build ({plan.source})")
            reused = self._restore(build_dir, cached, owner, commands, output)
        if not reused:
            write_file(cache_dir, "python/venv.key", b"", env)  # stale until saved again
            self._install(build_dir, cache, plan, runtime, commands, output)
            if key is None:
                commands.shell(REMOVE_TREE, cached, cwd=cache, what="Clearing the cache")
            elif self._save(build_dir, cache_dir, owner, commands, output):
                write_file(cache_dir, "python/venv.key", key.encode(), env)
        write_file(build_dir, PROFILE_SCRIPT, PROFILE.encode(), env)
        _report_web_process(build_dir, output)

    def release(self, build_dir: Path) -> BuildpackRelease:
        """The default ``web`` process. The pipeline asks once every buildpack has compiled, just
        before it seals the tree, which wants every file to be the build user's: the files the
        slug shares with the cached virtualenv are handed back to it here."""
        shared = self._shared.pop(build_dir, None)
        if shared is not None:
            shared.hand_back()
        command, _ = default_web(build_dir)
        return BuildpackRelease(default_process_types={"web": command} if command else {})

    # -- the cached virtualenv -------------------------------------------------------------------

    def _restore(
        self,
        build_dir: Path,
        cached: Path,
        owner: int | None,
        commands: BuildCommands,
        output: BuildOutput,
    ) -> bool:
        """Put the cached virtualenv at ``.venv``; False when it cannot be reused."""
        venv = build_dir / VENV
        if owner is None:
            seconds = commands.shell(COPY_TREE, cached, venv, cwd=build_dir, what="Restoring")
            output.detail(f"Reused the virtualenv from the build cache in {seconds:.2f} s")
            return True
        started = time.monotonic()
        try:
            shared = Shared.protect(cached, owner)
            try:
                link_tree(cached, venv, owner)
            except OSError:
                _remove(venv)
                raise
        except (Unshareable, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            output.detail(f"The cached virtualenv cannot be reused ({why}): installing again")
            _remove(cached)
            return False
        self._shared[build_dir] = shared
        seconds = time.monotonic() - started
        output.detail(f"Reused the virtualenv from the build cache in {seconds:.2f} s")
        return True

    def _save(
        self,
        build_dir: Path,
        cache_dir: Path,
        owner: int | None,
        commands: BuildCommands,
        output: BuildOutput,
    ) -> bool:
        """Keep the new ``.venv`` in the cache; False when it is not kept."""
        venv = build_dir / VENV
        cached = make_dirs(cache_dir, "python", commands.build) / "venv"
        if owner is None:
            commands.shell(SAVE_TREE, venv, cached, cwd=cached.parent, what="Caching the venv")
            return True
        partial = cached.with_name(f"{cached.name}.partial")
        _remove(partial)
        _remove(cached)
        shared: Shared | None = None
        try:
            survey_tree(venv, owner)
            link_tree(venv, partial, 0)
            shared = Shared.protect(partial, owner, names=2)
            partial.rename(cached)
        except (Unshareable, OSError) as exc:
            if shared is not None:
                shared.hand_back()
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            output.detail(f"The virtualenv is not cached ({why})")
            _remove(partial)
            return False
        self._shared[build_dir] = Shared(cached, owner, shared.inodes)
        return True

    # -- installing ----------------------------------------------------------------------------

    def _install(
        self,
        build_dir: Path,
        cache: Path,
        plan: InstallPlan,
        runtime: PythonRuntime,
        commands: BuildCommands,
        output: BuildOutput,
    ) -> None:
        venv = build_dir / VENV
        output.heading(f"Creating a virtualenv with Python {runtime.label}")
        commands.run(
            [runtime.executable, "-m", "venv", "--without-pip", venv],
            cwd=build_dir,
            what="Creating the virtualenv",
        )
        python = venv / "bin" / "python"
        pip = self._pip(runtime)
        pip_install = [*pip, "--python", python, "install", "--no-compile", "--progress-bar", "off"]
        pip_install += ["--cache-dir", cache / "pip", "--no-input"]
        seconds = 0.0
        if plan.manager == "uv":
            uv, seconds = self._tool_uv(cache, pip, commands, output)
            output.heading(f"Installing dependencies from {UV_LOCK} with uv")
            seconds += commands.run(
                [uv, "sync", "--locked", "--no-dev", "--no-install-project", "--no-progress"],
                cwd=build_dir,
                what="uv sync",
                env={
                    "UV_CACHE_DIR": str(cache / "uv"),
                    "UV_PROJECT_ENVIRONMENT": str(venv),
                    "UV_PYTHON": str(python),
                    "UV_PYTHON_DOWNLOADS": "never",
                    "UV_LINK_MODE": "copy",
                    "VIRTUAL_ENV": str(venv),
                },
            )
        elif plan.manager == "poetry":
            output.heading(f"Installing dependencies from {POETRY_LOCK} with pip")
            exported = "python/poetry-requirements.txt"
            write_file(
                cache.parent, exported, poetry_requirements(build_dir).encode(), commands.build
            )
            seconds += commands.run(
                [*pip_install, "--no-deps", "-r", cache.parent / exported],
                cwd=build_dir,
                what="pip install",
            )
        elif plan.source == REQUIREMENTS:
            output.heading(f"Installing requirements with pip ({REQUIREMENTS})")
            seconds += commands.run(
                [*pip_install, "-r", REQUIREMENTS], cwd=build_dir, what="pip install"
            )
        else:
            output.heading("Installing the project with pip")
            seconds += commands.run([*pip_install, "."], cwd=build_dir, what="pip install")
        site = site_packages(venv)
        if site is not None:
            # check=False: a module that does not compile (Python 2 test files) must not fail it
            seconds += commands.run(
                [python, "-m", "compileall", "-qq", "-j0", *UNCHECKED, site],
                cwd=build_dir,
                what="Compiling byte code",
                check=False,
            )
        output.detail(f"Dependencies installed in {seconds:.2f} s")
        _finish_venv(venv, build_dir, commands.build)

    def _pip(self, runtime: PythonRuntime) -> list[str | Path]:
        """A pip to run with ``--python <venv>``: the chosen Python's own, else the default's."""
        if runtime.has_pip:
            return [runtime.executable, "-m", "pip"]
        fallback = self.stack.default_python()
        if fallback is not None and fallback.has_pip:
            return [fallback.executable, "-m", "pip"]
        raise CompileError(
            f"Python {runtime.label} on this stack has no pip, and neither has the default "
            "Python — the operator must install pip (Debian: python3-pip)"
        )

    def _tool_uv(
        self,
        cache: Path,
        pip: Sequence[str | Path],
        commands: BuildCommands,
        output: BuildOutput,
    ) -> tuple[Path, float]:
        """uv from the build cache, installed there with pip the first time."""
        tool = cache / "tools" / "uv"
        uv = tool / "bin" / "uv"
        if uv.is_file() and os.access(uv, os.X_OK):
            return uv, 0.0
        output.heading(f"Installing uv into the build cache ({UV_REQUIREMENT})")
        make_dirs(cache.parent, "python/tools", commands.build)
        partial = tool.with_name(f"uv.partial-{uuid.uuid4().hex[:8]}")
        seconds = commands.run(
            [*pip, "install", "-q", "--target", partial, "--cache-dir", cache / "pip", *UV_INSTALL],
            cwd=cache,
            what="Installing uv",
        )
        commands.shell(MOVE_TREE, partial, tool, cwd=cache, what="Installing uv")
        return uv, seconds


# -- what to install and with which Python --------------------------------------------------------


def install_plan(build_dir: Path) -> InstallPlan:
    present = {name for name in MANIFESTS if (build_dir / name).is_file()}
    root = build_dir.resolve()
    for name in sorted(present):
        if not (build_dir / name).resolve().is_relative_to(root):
            raise CompileError(
                f"{name} is a link that points outside the repository — commit the file itself"
            )

    def others(*used: str) -> tuple[str, ...]:
        return tuple(sorted(present - set(used)))

    if UV_LOCK in present or POETRY_LOCK in present:
        lock = UV_LOCK if UV_LOCK in present else POETRY_LOCK
        if PYPROJECT not in present:
            raise CompileError(f"{lock} found without {PYPROJECT}: commit both files")
        ignored = others(lock, PYPROJECT)
        return InstallPlan(
            "uv" if lock == UV_LOCK else "poetry", lock, (PYPROJECT, lock), True, ignored
        )
    if REQUIREMENTS in present:
        files, local = requirement_files(build_dir)
        return InstallPlan("pip", REQUIREMENTS, files, not local, others(REQUIREMENTS))
    return InstallPlan("pip", "the project", (), False)


_INCLUDE = re.compile(r"^(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")
_LOCAL = re.compile(r"^(?:-e|--editable|\.|/|file:|~)|@\s*file:|(?:^|\s)(?:\.{1,2}/|/)\S*")


def requirement_files(build_dir: Path) -> tuple[tuple[str, ...], bool]:
    """The requirements files that ``requirements.txt`` pulls in (``-r``/``-c``), and whether any
    line installs something from the repository itself (a local path or ``-e``)."""
    root = build_dir.resolve()
    seen: list[str] = []
    local = False
    pending = [REQUIREMENTS]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = (build_dir / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise CompileError(
                f"{REQUIREMENTS} includes {name}, which is not a file in the repository"
            )
        seen.append(name)
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = _INCLUDE.match(line)
            if include:
                target = (path.parent / include[1]).resolve()
                if not target.is_relative_to(root):
                    raise CompileError(
                        f"{name} includes {include[1]}, which is outside the repository"
                    )
                pending.append(str(target.relative_to(root)))
            elif _LOCAL.search(line):
                local = True
    return tuple(sorted(seen)), local


def cache_key(build_dir: Path, plan: InstallPlan, runtime: PythonRuntime) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, plan.manager, runtime.label, str(runtime.executable)):
        digest.update(part.encode() + b"\0")
    for name in plan.files:
        digest.update(name.encode() + b"\0" + (build_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()


_VERSION = re.compile(r"^(?:c?python[-@]?)?(3\.\d+(?:\.\d+)?)$")
_RUNTIME_TXT = re.compile(r"^python-(3\.\d+(?:\.\d+)?)$")


def requested_python(build_dir: Path) -> tuple[str, str] | None:
    """``(version, file)`` from ``.python-version`` (first) or ``runtime.txt``, else None."""
    for name, pattern, example in (
        (".python-version", _VERSION, "3.11"),
        ("runtime.txt", _RUNTIME_TXT, "python-3.11"),
    ):
        path = build_dir / name
        if not path.is_file():
            continue
        lines = [
            line.strip()
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        match = pattern.match(lines[0]) if lines else None
        if match is None:
            found = lines[0][:40] if lines else ""
            raise CompileError(
                f'{name}: "{found}" is not a Python version — write one like "{example}"'
            )
        return match[1], name
    return None


def select_python(stack: Stack, build_dir: Path, output: BuildOutput) -> PythonRuntime:
    requested = requested_python(build_dir)
    default = stack.default_python()
    if requested is None:
        if default is None:
            raise CompileError(
                "This stack has no Python 3 with the venv module — the operator must install "
                "python3 and python3-venv"
            )
        output.heading(f"Using Python {default.label} (the stack's default)")
        return default
    version, source = requested

    def matches(runtime: PythonRuntime) -> bool:
        return runtime.minor == version or runtime.label == version

    choice = default if default is not None and matches(default) else None
    if choice is None:
        choice = next((r for r in stack.pythons() if matches(r)), None)
    if choice is None:
        available = [r.label for r in stack.pythons()]
        listed = ", ".join(available) or "none"
        hint = f'"{available[0].rsplit(".", 1)[0]}"' if available else "a version"
        raise CompileError(
            f"Python {version}, requested in {source}, is not available on this stack. "
            f"Available: {listed}. Set {source} to one of these (e.g. {hint}) or remove it "
            "to use the stack's default"
        )
    output.heading(f"Using Python {choice.label} (specified in {source})")
    return choice


# -- poetry.lock --------------------------------------------------------------------------------


def poetry_requirements(build_dir: Path) -> str:
    """A pip requirements file for the ``main`` group of ``poetry.lock`` (lock format 2.1+)."""
    try:
        lock = tomllib.loads((build_dir / POETRY_LOCK).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CompileError(f"{POETRY_LOCK} is not valid TOML: {exc}") from exc
    version = str(lock.get("metadata", {}).get("lock-version", "0"))
    if tuple(int(p) for p in re.findall(r"\d+", version)[:2]) < (2, 1):
        raise CompileError(
            f"{POETRY_LOCK} has lock format {version}, written by Poetry 1; Dockyard reads the "
            "format of Poetry 2 (2.1 and later) — run `poetry lock` with Poetry 2 and commit it"
        )
    packages = [p for p in lock.get("package", []) if isinstance(p, dict)]
    chosen = [p for p in packages if "main" in p.get("groups", [])]
    registry_only = all(_source_type(p) in ("", "legacy") for p in chosen)
    lines: list[str] = []
    indexes: list[str] = []
    for package in chosen:
        line = _poetry_line(package, hashes=registry_only)
        marker = _poetry_marker(package)
        lines.append(f"{line} ; {marker}" if marker else line)
        source = package.get("source") or {}
        if _source_type(package) == "legacy" and source.get("url") not in indexes:
            indexes.append(str(source.get("url")))
    head = [f"--extra-index-url {url}" for url in indexes]
    return "\n".join([*head, *lines]) + "\n"


def _source_type(package: Mapping[str, Any]) -> str:
    source = package.get("source")
    return str(source.get("type", "")) if isinstance(source, dict) else ""


def _poetry_line(package: Mapping[str, Any], *, hashes: bool) -> str:
    name = str(package["name"])
    source = package.get("source") or {}
    kind = _source_type(package)
    if kind == "git":
        reference = source.get("resolved_reference") or source.get("reference")
        return f"{name} @ git+{source['url']}@{reference}"
    if kind == "url":
        return f"{name} @ {source['url']}"
    if kind in ("directory", "file"):
        raise CompileError(
            f"{POETRY_LOCK}: {name} comes from a local {kind} ({source.get('url')}); "
            "Dockyard installs locked packages from indexes, git and URLs only"
        )
    line = f"{name}=={package['version']}"
    if hashes:
        for entry in package.get("files", []):
            digest = str(entry.get("hash", ""))
            if digest.startswith("sha256:"):
                line += f" --hash={digest}"
    return line


def _poetry_marker(package: Mapping[str, Any]) -> str:
    markers = package.get("markers")
    if isinstance(markers, dict):
        markers = markers.get("main")
    return str(markers).strip() if markers else ""


# -- making the virtualenv relocatable ------------------------------------------------------------


def site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    return found[0] if found else None


def _finish_venv(venv: Path, build_dir: Path, env: BuildEnv) -> None:
    """Make ``venv`` relocatable and put the app's directory on its ``sys.path``."""
    relocate_venv(venv)
    site = site_packages(venv)
    if site is not None:
        pth = str((site / APP_PTH).relative_to(build_dir))
        write_file(build_dir, pth, (os.path.relpath(build_dir, site) + "\n").encode(), env)


def relocate_venv(venv: Path) -> None:
    """Rewrite what names ``venv``'s absolute path: console-script shebangs and ``.pth`` lines;
    drop the ``activate`` scripts (they hard-code it; ``.profile.d`` does their job)."""
    if not _real_dir(venv):
        raise CompileError(f"{venv.name} is a link or not a directory — the install replaced it")
    shebangs = tuple({f"#!{v}/bin/python".encode() for v in (venv.absolute(), venv.resolve())})
    bin_dir = venv / "bin"
    for entry in bin_dir.iterdir() if _real_dir(bin_dir) else ():
        if entry.name.startswith("activate") or entry.name == "Activate.ps1":
            entry.unlink()
            continue
        if entry.is_symlink() or not entry.is_file():
            continue
        with entry.open("rb") as handle:
            first = handle.readline(4096)
            body = handle.read() if first.startswith(shebangs) else None
        if body is not None:
            replace_file(entry, RELOCATABLE_PREAMBLE.encode() + body)
    site = site_packages(venv)
    if site is None or not _real_dir(site):
        return
    roots = {str(venv.parent.absolute()), str(venv.parent.resolve())}

    def inside(line: str) -> bool:
        return any(line == root or line.startswith(root + "/") for root in roots)

    for pth in site.glob("*.pth"):
        data = read_small(pth, MAX_SCAN_BYTES)
        if data is None:
            continue
        lines = data.decode("utf-8", "surrogateescape").splitlines()
        fixed = [os.path.relpath(line, site) if inside(line) else line for line in lines]
        if fixed != lines:
            replace_file(pth, ("\n".join(fixed) + "\n").encode("utf-8", "surrogateescape"))


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def replace_file(path: Path, data: bytes) -> None:
    """Give the regular file ``path`` new content without writing into it: a new file with its
    mode and owner is written beside it and renamed over it, so another name of the old file (a
    hard link in the build cache) keeps the old content."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise CompileError(f"{path.name} in the virtualenv is not a regular file")
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    fd = os.open(
        partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, info.st_uid, info.st_gid)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


# -- the build cache ----------------------------------------------------------------------------
# Without a build user of its own, copies and moves in the cache run as the build's user (it owns
# the cache and the build directory), with the paths as $1 and $2. With one, Dockyard shares the
# cached virtualenv's files with the slug through hard links that the build user cannot write.

READ_ONLY = 0o555
"""What is left of a shared file's mode: no write bits (nor setuid, setgid or sticky bits, which
the pipeline's seal would otherwise clear in place)."""


def link_owner(env: BuildEnv) -> int | None:
    """The build user, when the cached virtualenv may share its files with the slug: Dockyard is
    root and the build runs as a user of its own, who cannot write into files of root's."""
    sandbox = env.sandbox
    if os.geteuid() != 0 or sandbox is None or not sandbox.uid:
        return None
    return sandbox.uid


def _tree(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under ``root`` (parents first, links not followed) with its ``lstat``."""
    found: list[tuple[str, os.stat_result]] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(root / relative if relative else root) as entries:
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                info = entry.stat(follow_symlinks=False)
                found.append((path, info))
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
    return found


class Unshareable(Exception):
    """A tree whose files Dockyard does not share between the build cache and a slug."""


Inode = tuple[int, int]


def survey_tree(root: Path, owner: int, *, names: int = 1) -> set[Inode]:
    """The files of ``root`` — which may hold only directories, symbolic links, and regular files
    of the build user or root with ``names`` names (more could be a file of the host's) — else
    ``Unshareable`` saying what is wrong."""
    if root.is_symlink() or not root.is_dir():
        raise Unshareable(f"{root.name} is not a directory")
    device = os.lstat(root).st_dev
    inodes: set[Inode] = set()
    for path, info in _tree(root):
        mode = info.st_mode
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            continue
        if not stat.S_ISREG(mode):
            raise Unshareable(f"{path} is not a regular file")
        if info.st_nlink != names or info.st_dev != device or info.st_uid not in (owner, 0):
            raise Unshareable(f"{path} has another name or owner")
        inodes.add((info.st_dev, info.st_ino))
    return inodes


def link_tree(source: Path, target: Path, owner: int) -> None:
    """Make ``target`` (which must not exist) a tree like ``source`` whose files are hard links to
    ``source``'s: its directories and symbolic links are new ones of ``owner``'s, the directories
    with the modes of ``source``'s."""
    os.mkdir(target, 0o700)
    entries = _tree(source)
    for path, info in entries:
        full = target / path
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(full, 0o700)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source / path), full)
            os.lchown(full, owner, owner)
        else:
            os.link(source / path, full, follow_symlinks=False)
    directories = [("", os.lstat(source)), *(e for e in entries if stat.S_ISDIR(e[1].st_mode))]
    for path, info in directories:
        full = target / path if path else target
        os.chown(full, owner, owner)
        os.chmod(full, stat.S_IMODE(info.st_mode) & 0o777)


@dataclass(frozen=True)
class Shared:
    """A cached virtualenv whose files a build directory shares: root's and read-only while the
    build's processes run."""

    cached: Path
    owner: int
    """The build user."""
    inodes: frozenset[Inode]
    """The shared files: only these are handed back to the build user."""

    @classmethod
    def protect(cls, cached: Path, owner: int, *, names: int = 1) -> Shared:
        """Make ``cached`` root's: its directories and files belong to root, the files lose
        their write bits. ``Unshareable`` (and nothing changed) when it holds anything else than
        ``survey_tree`` allows."""
        inodes = frozenset(survey_tree(cached, owner, names=names))
        shared = cls(cached, owner, inodes)
        try:
            os.lchown(cached, 0, 0)
            for path, info in _tree(cached):
                if stat.S_ISLNK(info.st_mode):
                    continue
                if info.st_uid != 0 or info.st_gid != 0:
                    os.lchown(cached / path, 0, 0)
                if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~READ_ONLY:
                    os.chmod(cached / path, stat.S_IMODE(info.st_mode) & READ_ONLY)
        except OSError:
            shared.hand_back()
            raise
        return shared

    def hand_back(self) -> None:
        """Give the shared files back to the build user (the pipeline's seal wants the build's
        files to be its own); the cached tree's directories stay root's until the next build
        hands the whole cache to its build user."""
        for path, info in _tree(self.cached):
            ours = (info.st_dev, info.st_ino) in self.inodes
            if ours and stat.S_ISREG(info.st_mode) and info.st_uid == 0:
                os.lchown(self.cached / path, self.owner, self.owner)


COPY_TREE = 'cp -a -- "$1" "$2"'
SAVE_TREE = (
    'set -e; rm -rf -- "$2.partial"; cp -a -- "$1" "$2.partial"; rm -rf -- "$2"; '
    'mv -- "$2.partial" "$2"'
)
MOVE_TREE = 'set -e; rm -rf -- "$2"; mv -- "$1" "$2"'
REMOVE_TREE = 'rm -rf -- "$1"'


def _remove(path: Path) -> None:
    """Remove a file, link or tree (``rmtree`` never follows links out of it)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


# -- the default web process --------------------------------------------------------------------

_DJANGO_SETTINGS = re.compile(r"DJANGO_SETTINGS_MODULE['\"]\s*,\s*['\"]([A-Za-z_][\w.]*)['\"]")
_APP_MODULES = ("app.py", "main.py", "wsgi.py", "asgi.py", "application.py", "server.py")
_FRAMEWORKS = {
    "Flask": re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=\n]+)?=\s*(?:flask\.)?Flask\(", re.M),
    "FastAPI": re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=\n]+)?=\s*(?:fastapi\.)?FastAPI\(", re.M),
}
_SERVERS = {"Django": "gunicorn", "Flask": "gunicorn", "FastAPI": "uvicorn"}


def installed(build_dir: Path, distribution: str) -> bool:
    """Whether the slug's virtualenv has ``distribution`` installed."""
    site = site_packages(build_dir / VENV)
    if site is None:
        return False
    wanted = re.sub(r"[-_.]+", "_", distribution).lower()
    for info in site.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        if re.sub(r"[-_.]+", "_", name).lower() == wanted:
            return True
    return False


def default_web(build_dir: Path) -> tuple[str | None, str]:
    """The default ``web`` command when it can be told reliably, and what was found (for the
    build output): Django (``manage.py`` + ``<project>/wsgi.py``), or exactly one Flask or FastAPI
    app object in a top-level module, each only when its server is installed."""
    found: list[tuple[str, str, str]] = []  # (framework, target, where)
    manage = build_dir / "manage.py"
    if manage.is_file():
        settings = _DJANGO_SETTINGS.search(_text(manage))
        project = settings[1].split(".")[0] if settings else None
        if project and (build_dir / project / "wsgi.py").is_file():
            found.append(("Django", f"{project}.wsgi", f"{project}/wsgi.py"))
    if not found:
        for module in _APP_MODULES:
            path = build_dir / module
            if not path.is_file():
                continue
            text = _text(path)
            for framework, pattern in _FRAMEWORKS.items():
                for match in pattern.finditer(text):
                    found.append((framework, f"{module[:-3]}:{match[1]}", module))
    if not found:
        return None, 'no Django, Flask or FastAPI app found — add one, e.g. "web: gunicorn app:app"'
    if len(found) > 1:
        places = ", ".join(f"{framework} in {where}" for framework, _, where in found)
        return None, f"several apps found ({places}) — name the one to run"
    framework, target, where = found[0]
    server = _SERVERS[framework]
    if not installed(build_dir, server):
        return None, f"{framework} app in {where}, but {server} is not a dependency — add it"
    if server == "uvicorn":
        return f"uvicorn {target} --host 0.0.0.0 --port $PORT", f"{framework} app in {where}"
    return f"gunicorn {target}", f"{framework} app in {where}"


def _text(path: Path) -> str:
    return (read_small(path, MAX_SCAN_BYTES) or b"").decode("utf-8", "replace")


def _report_web_process(build_dir: Path, output: BuildOutput) -> None:
    try:
        declared = load_procfile(build_dir)
    except ProcfileError:
        declared = None  # the pipeline reports a malformed Procfile itself
    if declared is not None and "web" in declared:
        return
    command, found = default_web(build_dir)
    if command is not None:
        output.detail(f'No web process in a {PROCFILE}: using "{command}" ({found})')
    else:
        output.heading(f"No web process: add a {PROCFILE}")
        output.detail(f"Dockyard could not choose a web command: {found}.")
        output.detail('A Procfile line looks like "web: gunicorn myproject.wsgi".')
