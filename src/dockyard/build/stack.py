"""``Stack``: what the build and run stack offers the built-in buildpacks — its Python interpreters
and its Node.js — so buildpacks check version files against what exists and name it in their
errors.

``HostStack`` is this machine: the Python at ``/usr/bin/python3`` (the stack's default, as in the
Debian 12 stack image) plus any working ``python3.X`` on ``PATH``, one per minor version, and the
``node``/``npm`` on ``PATH``. It probes the interpreters lazily: a build that needs only the default
Python starts one probe, not one per ``python3.X`` found.

Also here, what the built-in buildpacks share to act on a build: ``build_environment`` (the
environment of their commands), ``BuildCommands`` (their commands, run in the build's sandbox
through ``BuildEnv.stream`` under one deadline for the whole compile, output indented under the
current heading, each timed), and the helpers with which Dockyard's own process writes into the
build and cache directories without following links the build left there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard._util import proc
from dockyard.build.buildpack import BuildEnv
from dockyard.build.output import BuildOutput
from dockyard.errors import CommandError, CompileError

SYSTEM_PYTHON = Path("/usr/bin/python3")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBE_TIMEOUT = 10.0
_PYTHON_NAME = re.compile(r"^python3\.\d+$")
_NODE_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")

# Printed by each candidate interpreter; run with -I so no PYTHON* variable or user site changes it.
_PROBE = (
    "import importlib.util as u, json, sys;"
    "print(json.dumps({'version': list(sys.version_info[:3]),"
    " 'executable': getattr(sys, '_base_executable', '') or sys.executable,"
    " 'venv': u.find_spec('venv') is not None, 'pip': u.find_spec('pip') is not None}))"
)

Version = tuple[int, int, int]


def version_label(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class PythonRuntime:
    version: Version
    executable: Path
    """The interpreter itself (not a pyenv shim): virtualenvs link to it."""
    has_pip: bool = True

    @property
    def label(self) -> str:
        return version_label(self.version)

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


@dataclass(frozen=True)
class NodeRuntime:
    version: Version
    node: Path
    npm: Path | None

    @property
    def label(self) -> str:
        return version_label(self.version)


class Stack(Protocol):
    def default_python(self) -> PythonRuntime | None:
        """The Python an app gets when it asks for no version."""
        ...

    def pythons(self) -> Sequence[PythonRuntime]:
        """Every Python on the stack, one per minor version, the default first."""
        ...

    def node(self) -> NodeRuntime | None:
        """The stack's Node.js, or None when it has none."""
        ...


class HostStack:
    """The stack of this machine; see the module docstring."""

    def __init__(self, *, path: str | None = None, system_python: Path = SYSTEM_PYTHON) -> None:
        self.path = os.environ.get("PATH", DEFAULT_PATH) if path is None else path
        self.system_python = system_python
        self._default: PythonRuntime | None = None
        self._default_known = False
        self._pythons: list[PythonRuntime] | None = None
        self._node: NodeRuntime | None = None
        self._node_known = False

    def default_python(self) -> PythonRuntime | None:
        if not self._default_known:
            probes = (_probe_python(c) for c in self._distinct_candidates())
            self._default = next((runtime for runtime in probes if runtime is not None), None)
            self._default_known = True
        return self._default

    def pythons(self) -> Sequence[PythonRuntime]:
        if self._pythons is None:
            # In parallel: a pyenv shim takes a good part of a second to answer.
            with ThreadPoolExecutor(max_workers=8) as pool:
                probed = list(pool.map(_probe_python, self._distinct_candidates()))
            found: dict[tuple[int, int], PythonRuntime] = {}
            for runtime in probed:
                if runtime is not None:
                    found.setdefault((runtime.version[0], runtime.version[1]), runtime)
            self._pythons = list(found.values())
        return self._pythons

    def node(self) -> NodeRuntime | None:
        if not self._node_known:
            self._node = self._probe_node()
            self._node_known = True
        return self._node

    def _candidates(self) -> Iterator[Path]:
        yield self.system_python
        for directory in self.path.split(os.pathsep):
            if not directory:
                continue
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                if _PYTHON_NAME.match(name):
                    yield Path(directory) / name

    def _distinct_candidates(self) -> Iterator[Path]:
        seen: set[str] = set()
        for candidate in self._candidates():
            real = os.path.realpath(candidate)
            if real not in seen and os.access(real, os.X_OK):
                seen.add(real)
                yield candidate

    def _probe_node(self) -> NodeRuntime | None:
        node = shutil.which("node", path=self.path)
        if node is None:
            return None
        try:
            result = proc.run([node, "--version"], timeout=PROBE_TIMEOUT, check=False)
        except CommandError:
            return None
        match = _NODE_VERSION.match(result.text.strip())
        if result.returncode != 0 or match is None:
            return None
        npm = shutil.which("npm", path=self.path)
        version = (int(match[1]), int(match[2]), int(match[3]))
        return NodeRuntime(version, Path(node), Path(npm) if npm else None)


def _probe_python(candidate: Path) -> PythonRuntime | None:
    """Ask an interpreter for its version; None when it does not run (a pyenv shim for a version
    that is not active) or lacks the ``venv`` module."""
    try:
        result = proc.run([candidate, "-I", "-c", _PROBE], timeout=PROBE_TIMEOUT, check=False)
    except CommandError:
        return None
    if result.returncode != 0:
        return None
    try:
        data = json.loads(result.text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return _python_from(data, candidate)


def _python_from(data: object, candidate: Path) -> PythonRuntime | None:
    """A ``PythonRuntime`` from the probe's answer; None for anything but a Python 3 with venv."""
    if not isinstance(data, dict):
        return None
    try:
        major, minor, micro = (int(part) for part in data["version"])
        executable = Path(str(data["executable"]) or candidate)
    except (ValueError, KeyError, TypeError):
        return None
    if major != 3 or not data.get("venv"):
        return None
    return PythonRuntime((major, minor, micro), executable, bool(data.get("pip")))


class StackImageProbe(Protocol):
    """Runs a command once in the build stack image (``runtime.sandbox.RuncBuildContainers``)."""

    @property
    def label(self) -> str:
        """The image's name and version (what the probe's answer is cached under)."""
        ...

    def probe(self, argv: proc.Argv, *, timeout: float) -> proc.Completed: ...


# Run by the image's own Python 3: the same probe as HostStack's for every python3.X on the stack's
# PATH (each real interpreter once, /usr/bin/python3 first), and node --version.
_IMAGE_PROBE = """\
import json, os, re, shutil, subprocess
PATH = {path!r}
PROBE = {probe!r}
found, seen = [], set()
candidates = ["/usr/bin/python3"]
for directory in PATH.split(":"):
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        continue
    candidates += [os.path.join(directory, n) for n in names if re.match(r"^python3\\.\\d+$", n)]
for candidate in candidates:
    real = os.path.realpath(candidate)
    if real in seen or not os.access(real, os.X_OK):
        continue
    seen.add(real)
    try:
        done = subprocess.run([candidate, "-I", "-c", PROBE], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        continue
    if done.returncode == 0 and done.stdout.strip():
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
node = shutil.which("node", path=PATH)
version = ""
if node:
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        node = None
print(json.dumps({{"pythons": found, "node": node, "node_version": version.strip(),
                  "npm": shutil.which("npm", path=PATH)}}))
"""


class ImageStack:
    """The build stack image's Pythons and Node.js, as builds in the container sandbox run them:
    asked inside the image (one container, ``StackImageProbe``) the first time, then read from
    ``<cache_dir>/<image label>.json`` (an image never changes; a new one has a new label). So
    ``.python-version``, ``runtime.txt`` and ``engines.node`` are checked against what the build
    and the dynos really run, and the virtualenv links to the stack's own ``/usr/bin/python3``."""

    def __init__(self, image: StackImageProbe, cache_dir: Path | None = None) -> None:
        self.image = image
        self.cache_dir = cache_dir
        self._answer: dict[str, object] | None = None

    def default_python(self) -> PythonRuntime | None:
        pythons = self.pythons()
        return pythons[0] if pythons else None

    def pythons(self) -> Sequence[PythonRuntime]:
        found: dict[tuple[int, int], PythonRuntime] = {}
        raw = self._probed().get("pythons")
        for item in raw if isinstance(raw, list) else []:
            runtime = _python_from(item, Path("/usr/bin/python3"))
            if runtime is not None:
                found.setdefault((runtime.version[0], runtime.version[1]), runtime)
        return list(found.values())

    def node(self) -> NodeRuntime | None:
        answer = self._probed()
        node, npm = answer.get("node"), answer.get("npm")
        match = _NODE_VERSION.match(str(answer.get("node_version") or ""))
        if not isinstance(node, str) or match is None:
            return None
        version = (int(match[1]), int(match[2]), int(match[3]))
        return NodeRuntime(version, Path(node), Path(npm) if isinstance(npm, str) else None)

    def _probed(self) -> dict[str, object]:
        if self._answer is not None:
            return self._answer
        label = self.image.label
        cached = None if self.cache_dir is None else self.cache_dir / f"{label}.json"
        if cached is not None:
            with contextlib.suppress(OSError, ValueError):
                answer = json.loads(cached.read_text(encoding="utf-8"))
                if isinstance(answer, dict):
                    self._answer = answer
                    return answer
        script = _IMAGE_PROBE.format(path=DEFAULT_PATH, probe=_PROBE)
        try:
            result = self.image.probe(
                ["/usr/bin/python3", "-I", "-c", script], timeout=4 * PROBE_TIMEOUT
            )
            answer = json.loads(result.text.strip().splitlines()[-1])
        except (CommandError, ValueError, IndexError) as exc:
            detail = exc.message if isinstance(exc, CommandError) else f"unreadable answer ({exc})"
            raise CompileError(
                f"Cannot ask the build stack image {label} for its Python and Node.js: {detail}"
            ) from exc
        if not isinstance(answer, dict):
            raise CompileError(f"The build stack image {label} gave an unreadable answer")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
            partial.write_text(json.dumps(answer), encoding="utf-8")
            os.replace(partial, cached)
        self._answer = answer
        return answer


# -- the build environment ---------------------------------------------------------------------

PASSTHROUGH = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_CERT",
        "PIP_DEFAULT_TIMEOUT",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_EXTRA_INDEX_URL",
        "NPM_CONFIG_REGISTRY",
        "npm_config_registry",
    }
)
"""Platform variables that builds keep: how this machine reaches package registries (proxies,
mirrors, certificates). Nothing else of the platform's environment reaches a build; in the
container sandbox, none that names a file of the host."""

CONFIG_DENYLIST = frozenset(
    {
        "PATH",
        "HOME",
        "GIT_DIR",
        "CPATH",
        "CPPATH",
        "LD_PRELOAD",
        "LIBRARY_PATH",
        "LD_LIBRARY_PATH",
        "PYTHONHOME",
        "PYTHONPATH",
        "VIRTUAL_ENV",
    }
)
"""Config vars that would break the build's own tools; every other config var is exported to the
built-in buildpacks' commands (as Heroku's Python and Node.js buildpacks do)."""

MAX_CONFIG_VALUE = 32 * 1024


def read_env_dir(env_dir: Path) -> dict[str, str]:
    """The config vars in ENV_DIR (one file per variable) that a build may see."""
    values: dict[str, str] = {}
    if not env_dir.is_dir():
        return values
    for entry in sorted(env_dir.iterdir()):
        if entry.name in CONFIG_DENYLIST or not entry.is_file():
            continue
        try:
            data = entry.read_bytes()[:MAX_CONFIG_VALUE]
        except OSError:
            continue
        values[entry.name] = data.decode("utf-8", "replace")
    return values


def build_environment(
    env: BuildEnv, env_dir: Path, home: Path, *, platform_env: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a built-in buildpack's commands: ``BuildEnv.environ`` (fixed base, the
    exports of earlier buildpacks, ``STACK``, ``SOURCE_VERSION``) plus the platform's registry
    settings and the app's config vars, which never override an export or a build variable."""
    values = env.environ(home)
    protected = set(env.exports) | set(env.variables()) | {"PATH", "HOME", "TMPDIR"}
    extra = {k: v for k, v in platform_env.items() if k in PASSTHROUGH}
    if env.sandbox is not None and env.sandbox.kind == "runc":
        # Files of the host (a wheel directory, a certificate) are not in the build's container;
        # its CA bundle is the host's already.
        extra = {k: v for k, v in extra.items() if not _names_local_files(v)}
    extra.update(read_env_dir(env_dir))
    values.update({k: v for k, v in extra.items() if k not in protected})
    return values


def _names_local_files(value: str) -> bool:
    return any(item.startswith(("/", "file:")) for item in value.replace(",", " ").split())


class BuildCommands:
    """Runs one compile's commands in the build's sandbox (``BuildEnv.stream``) under one
    deadline for the whole compile; see the module docstring."""

    def __init__(
        self,
        build: BuildEnv,
        output: BuildOutput,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.build = build
        self.output = output
        self.env = dict(env)
        self.clock = clock
        self.deadline = None if build.timeout is None else clock() + build.timeout

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - self.clock()
        if left <= 0:
            raise CompileError(_timeout_message())
        return left

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        cwd: Path,
        what: str,
        env: Mapping[str, str] | None = None,
        show: Callable[[str], bool] | None = None,
        check: bool = True,
    ) -> float:
        """Run ``argv``, show its output (the lines ``show`` accepts) indented, and return the
        seconds it took; ``CompileError`` naming ``what`` when it runs out of time, hits a limit
        of the sandbox, cannot start, or (with ``check``) exits non-zero."""
        merged = {**self.env, **(env or {})}

        def on_line(raw: bytes) -> None:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            if show is None or show(text):
                self.output.detail(text)

        step = dataclasses.replace(self.build, timeout=self.remaining())
        started = self.clock()
        try:
            code = step.stream(argv, on_line=on_line, cwd=cwd, env=merged, what=what)
        except CommandError as exc:
            if self.deadline is not None and self.clock() >= self.deadline:
                raise CompileError(f"{what}: {_timeout_message()}") from exc
            raise CompileError(f"{what} could not run: {exc.message}") from exc
        if code != 0 and check:
            raise CompileError(f"{what} failed with exit code {code}; its output above says why")
        return self.clock() - started

    def shell(self, script: str, *args: str | Path, cwd: Path, what: str) -> float:
        """A fixed ``sh`` script with ``args`` as ``$1``…, run as the build user: how built-in
        buildpacks copy and move trees the build user owns (never as Dockyard's own user)."""
        return self.run(["sh", "-c", script, "sh", *args], cwd=cwd, what=what)


def _timeout_message() -> str:
    return (
        "the build ran out of time (the compile timeout) — make the build faster, "
        "or ask the operator for a longer build.compile_timeout"
    )


# -- files in trees the build user owns ------------------------------------------------------------
# The build directory and the cache belong to the build user, whose processes may have left links
# anywhere in them. Dockyard's own process writes there only through these helpers: every
# directory on the way is opened without following links, a file is replaced rather than written
# through, and what is created is handed to the build user (the pipeline refuses files of others).

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dirs(root: Path, parts: Sequence[str], env: BuildEnv) -> int:
    """A descriptor of ``root/parts…``, creating missing directories; ``CompileError`` when one
    of them is a link or not a directory."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                created = True
            except FileExistsError:
                created = False
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                _hand_over(fd, env)
    except OSError as exc:
        os.close(fd)
        where = "/".join(parts)
        raise CompileError(
            f"{where} in the build is a link or not a directory ({exc.strerror}) — remove it"
        ) from exc
    return fd


def _hand_over(fd: int, env: BuildEnv) -> None:
    uid = env.sandbox.uid if env.sandbox is not None else None
    if uid is not None:
        os.fchown(fd, uid, uid)


def make_dirs(root: Path, relative: str, env: BuildEnv) -> Path:
    """``root/relative`` as a real directory of the build user (created when missing)."""
    os.close(_open_dirs(root, [p for p in relative.split("/") if p], env))
    return root / relative


def write_file(root: Path, relative: str, data: bytes, env: BuildEnv, *, mode: int = 0o644) -> None:
    """Write ``root/relative`` (see the section comment): an existing file or link there is
    replaced, never followed."""
    *parents, name = [p for p in relative.split("/") if p]
    fd = _open_dirs(root, parents, env)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, mode, dir_fd=fd)
    except OSError as exc:
        raise CompileError(f"cannot write {relative} in the build: {exc.strerror}") from exc
    finally:
        os.close(fd)
    try:
        _hand_over(out, env)
        os.write(out, data)
    finally:
        os.close(out)


def rewrite_file(path: Path, data: bytes) -> None:
    """Replace the content of an existing regular file, never following a link."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_small(path: Path, limit: int = 1 << 16) -> bytes | None:
    """The start of a regular file, None when it is missing, a link, or not a regular file (a
    FIFO left by the build must not block Dockyard)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)
