"""The stack image: the read-only root filesystem every dyno runs on (Heroku's ``heroku-24``, ours Debian 12).

``build_stack`` makes it: ``debootstrap --variant=minbase bookworm`` from the Debian mirror this host's apt
uses, with the runtimes and libraries apps expect (``STACK_PACKAGES``; the ``build`` variant adds compilers and
headers), a ``dyno`` user (uid 1000) and an empty ``/app``, apt caches and logs removed. Its version is the
build date plus a hash of the installed package list (``20250601-3f2a9c1b7d0e``), written into the image at
``/etc/dockyard-stack``. The tree is packed into ``<stacks dir>/<name>-<version>.squashfs`` (zstd) next to a
``.sha256`` file, and ``<name>.current`` names the newest version.

``StackImages.mount`` checks an image's SHA-256 and loop-mounts it read-only (``ro,nodev,nosuid``) once at
``<run dir>/stacks/<name>-<version>`` (``/run/dockyard``: gone at a reboot, like the dynos that use it); every
dyno of the host shares that mount as its root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from dockyard._util import proc
from dockyard.errors import CommandError, DynoError
from dockyard.settings import Settings
from dockyard.slug.image import sha256_file
from dockyard.slug.mount import mount_points

log = logging.getLogger(__name__)

Variant = Literal["run", "build"]
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DYNO_UID = 1000
"""The dyno's user inside the container (``dyno``, home ``/app``)."""
STACK_PACKAGES: tuple[str, ...] = (
    "bash",
    "ca-certificates",
    "curl",
    "git",
    "libffi8",
    "libpq5",
    "libsqlite3-0",
    "libssl3",
    "libxml2",
    "libyaml-0-2",
    "locales",
    "netbase",
    "nodejs",
    "npm",
    "procps",
    "python3",
    "python3-venv",
    "tzdata",
)
BUILD_PACKAGES: tuple[str, ...] = (
    "build-essential",
    "libffi-dev",
    "libpq-dev",
    "libssl-dev",
    "libyaml-dev",
    "pkg-config",
    "python3-dev",
    "python3-pip",
)
"""Added to ``STACK_PACKAGES`` for the ``build`` variant (builds compile native extensions)."""
VERSION_FILE = "etc/dockyard-stack"
PROGRESS_LINES = (
    "I: Retrieving Release",
    "I: Resolving dependencies of required",
    "I: Found additional",
    "I: Installing core packages",
    "I: Unpacking the base system",
    "I: Configuring the base system",
    "I: Base system installed",
)
"""debootstrap's phase lines, shown as progress (it prints one line per package besides)."""
BUILD_TIMEOUT = 3600.0
MOUNT_OPTIONS = "ro,loop,nodev,nosuid"
_VERSION = re.compile(r"^[0-9]{8}-[0-9a-f]{12}$")
_URI = re.compile(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class StackImage:
    name: str
    version: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"


def stack_name(settings: Settings, variant: Variant = "run") -> str:
    return settings.runtime.stack if variant == "run" else f"{settings.runtime.stack}-build"


APT_INSTALLED: frozenset[str] = frozenset({"npm"})
"""Packages debootstrap's own resolver cannot install (npm's many ``node-*`` dependencies); they are
installed with apt-get inside the tree once debootstrap is done."""
APT_OPTIONS = ("-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Check-Date=false")
"""Mirrors that serve a fixed snapshot have Release files past their validity date."""


def packages_of(variant: Variant) -> tuple[str, ...]:
    return STACK_PACKAGES if variant == "run" else STACK_PACKAGES + BUILD_PACKAGES


def debootstrap_packages(variant: Variant) -> tuple[str, ...]:
    return tuple(p for p in packages_of(variant) if p not in APT_INSTALLED)


def apt_packages(variant: Variant) -> tuple[str, ...]:
    return tuple(p for p in packages_of(variant) if p in APT_INSTALLED)


def apt_mirror(sources: Sequence[Path] | None = None) -> str:
    """The first Debian archive URI in this host's apt sources (deb822 ``.sources`` or one-line
    ``.list``), else ``deb.debian.org``."""
    if sources is None:
        base = Path("/etc/apt")
        sources = [base / "sources.list", *sorted((base / "sources.list.d").glob("*"))]
    for path in sources:
        if path.suffix not in (".list", ".sources"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for match in _URI.finditer(text):
            uri = match[1].rstrip("/")
            if uri.endswith("/debian") and uri.startswith(("http://", "https://")):
                return uri
    return DEFAULT_MIRROR


def installed_packages(root: Path) -> list[str]:
    """``package=version`` of every package installed in the tree at ``root`` (from dpkg's status file)."""
    found = []
    text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status") == "install ok installed" and "Package" in fields:
            found.append(f"{fields['Package']}={fields.get('Version', '')}")
    return sorted(found)


def stack_version(packages: Sequence[str], when: datetime) -> str:
    digest = hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()
    return f"{when.astimezone(UTC):%Y%m%d}-{digest[:12]}"


class StackImages:
    """The stack images of this host; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stacks_dir
        self.mount_root = Path(settings.runtime.run_dir) / "stacks"

    # -- finding -------------------------------------------------------------------------------

    def current(self, variant: Variant = "run") -> StackImage | None:
        """The image dynos use: the pinned ``runtime.stack_version``, else the newest built."""
        name = stack_name(self.settings, variant)
        version = self.settings.runtime.stack_version if variant == "run" else ""
        if not version:
            try:
                version = (self.root / f"{name}.current").read_text(encoding="ascii").strip()
            except OSError:
                return None
        if not _VERSION.match(version):
            raise DynoError(
                f"stack version {version!r} of {name} is malformed: expected YYYYMMDD-<12 hex digits>"
            )
        path = self.root / f"{name}-{version}.squashfs"
        return StackImage(name, version, path) if path.is_file() else None

    def require(self, variant: Variant = "run") -> StackImage:
        image = self.current(variant)
        if image is None:
            name = stack_name(self.settings, variant)
            raise DynoError(
                f"the stack image {name} is not built on this host (looked in {self.root}) — build it "
                "with: dockyard stack:build"
            )
        return image

    # -- mounting ------------------------------------------------------------------------------

    def mount_point(self, image: StackImage) -> Path:
        return self.mount_root / image.label

    def mount(self, image: StackImage) -> Path:
        """The image's read-only root, mounted once (after its SHA-256 is checked)."""
        target = self.mount_point(image)
        if target.resolve() in mount_points():
            return target
        with self._locked():
            if target.resolve() in mount_points():
                return target
            self.verify(image)
            target.mkdir(parents=True, exist_ok=True)
            try:
                proc.run(["mount", "-t", "squashfs", "-o", MOUNT_OPTIONS, image.path, target])
            except CommandError as exc:
                raise DynoError(
                    f"cannot mount the stack image {image.label}: {exc.message}"
                ) from exc
        log.info("stack %s mounted read-only at %s", image.label, target)
        return target

    def verify(self, image: StackImage) -> None:
        """Compare the image with its ``.sha256`` file; ``DynoError`` when they differ."""
        sidecar = image.path.with_name(image.path.name + ".sha256")
        try:
            expected = sidecar.read_text(encoding="ascii").split()[0]
        except (OSError, IndexError) as exc:
            raise DynoError(
                f"the stack image {image.label} has no checksum file {sidecar.name} — rebuild it with: "
                "dockyard stack:build"
            ) from exc
        actual = sha256_file(image.path)
        if actual != expected:
            raise DynoError(
                f"the stack image {image.label} is corrupt (SHA-256 {actual[:12]}…, expected "
                f"{expected[:12]}…) — rebuild it with: dockyard stack:build"
            )

    # -- building ------------------------------------------------------------------------------

    def build(
        self,
        variant: Variant = "run",
        *,
        on_line: Callable[[str], None] = lambda _line: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        deb_cache: Path | None = None,
    ) -> StackImage:
        """Build a new image of ``variant``, make it current and return it (a few minutes; the
        downloaded packages are kept in ``deb_cache`` for the next build)."""
        name = stack_name(self.settings, variant)
        self.root.mkdir(parents=True, exist_ok=True)
        cache = deb_cache or self.settings.cache_dir / "debootstrap"
        cache.mkdir(parents=True, exist_ok=True)
        scratch = self.root / f".build-{uuid.uuid4().hex}"
        tree = scratch / "root"
        try:
            with self._locked():
                mirror = self.settings.runtime.stack_mirror or apt_mirror()
                on_line(f"debootstrap {SUITE} from {mirror} ({len(packages_of(variant))} packages)")
                self._debootstrap(tree, variant, mirror, cache.resolve(), on_line)
                if apt_packages(variant):
                    on_line(f"installing {', '.join(apt_packages(variant))} with apt-get")
                    _apt_install(tree, apt_packages(variant), on_line)
                on_line("configuring the image")
                packages = installed_packages(tree)
                version = stack_version(packages, now())
                _configure(tree, name, version, packages)
                image = StackImage(name, version, self.root / f"{name}-{version}.squashfs")
                on_line(f"packing {image.path.name}")
                self._pack(tree, image)
                _write_atomically(self.root / f"{name}.current", version + "\n")
        finally:
            _remove(scratch)
        on_line(f"stack {image.label} ready ({image.path.stat().st_size >> 20} MiB)")
        return image

    def _debootstrap(
        self, tree: Path, variant: Variant, mirror: str, cache: Path, on_line: Callable[[str], None]
    ) -> None:
        tree.mkdir(parents=True)
        argv: list[str | Path] = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(debootstrap_packages(variant))}",
            f"--cache-dir={cache}",
            SUITE,
            tree,
            mirror,
        ]
        lines: list[str] = []

        def keep(raw: bytes) -> None:
            text = raw.decode("utf-8", "replace").rstrip()
            lines.append(text)
            if text.startswith(
                ("I: Retrieving Release", "I: Resolving", "I: Extracting", "I: Installing")
            ):
                on_line(text[3:])
            elif text.startswith(("E:", "W:")):
                on_line(text)

        try:
            code = proc.stream(argv, on_line=keep, timeout=BUILD_TIMEOUT)
        except CommandError as exc:
            raise DynoError(f"cannot build the stack image: {exc.message}") from exc
        if code != 0:
            detail = "\n".join(lines[-15:])
            raise DynoError(
                f"debootstrap failed with exit code {code} — check the mirror ({mirror}) and the "
                f"network, then run dockyard stack:build again:\n{detail}"
            )

    def _pack(self, tree: Path, image: StackImage) -> None:
        partial = image.path.with_name(f".{image.path.name}.partial")
        try:
            proc.run(
                [
                    "mksquashfs",
                    tree,
                    partial,
                    "-noappend",
                    "-quiet",
                    "-no-progress",
                    "-no-xattrs",
                    "-comp",
                    "zstd",
                ],
                timeout=BUILD_TIMEOUT,
            )
            digest = sha256_file(partial)
            _write_atomically(
                image.path.with_name(image.path.name + ".sha256"), f"{digest}  {image.path.name}\n"
            )
            os.replace(partial, image.path)
        except CommandError as exc:
            raise DynoError(f"cannot pack the stack image: {exc.message}") from exc
        finally:
            partial.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One builder or mounter at a time on this host (across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _apt_install(tree: Path, packages: Sequence[str], on_line: Callable[[str], None]) -> None:
    """apt-get install inside the fresh tree, with the host's resolver for the duration."""
    resolv = tree / "etc/resolv.conf"
    saved = resolv.read_bytes() if resolv.is_file() else None
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C",
    }
    tail: list[str] = []

    def keep(raw: bytes) -> None:
        tail.append(raw.decode("utf-8", "replace").rstrip())
        del tail[:-15]

    try:
        commands: tuple[list[str | Path], ...] = (
            ["chroot", tree, "apt-get", *APT_OPTIONS, "update", "-qq"],
            [
                "chroot",
                tree,
                "apt-get",
                *APT_OPTIONS,
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                *packages,
            ],
        )
        for argv in commands:
            code = proc.stream(argv, on_line=keep, env=env, timeout=BUILD_TIMEOUT)
            if code != 0:
                raise DynoError(
                    f"apt-get failed in the stack image (exit code {code}):\n" + "\n".join(tail)
                )
    except CommandError as exc:
        raise DynoError(
            f"cannot install {', '.join(packages)} in the stack image: {exc.message}"
        ) from exc
    finally:
        resolv.unlink(missing_ok=True)
        if saved is not None:
            resolv.write_bytes(saved)
    on_line(f"installed {', '.join(packages)}")


def _configure(tree: Path, name: str, version: str, packages: Sequence[str]) -> None:
    """Turn the debootstrap tree into a stack: user, /app, locale, no caches, a version file."""
    (tree / "app").mkdir(mode=0o755, exist_ok=True)
    with (tree / "etc/passwd").open("a", encoding="utf-8") as handle:
        handle.write(f"dyno:x:{DYNO_UID}:{DYNO_UID}:dyno:/app:/bin/bash\n")
    with (tree / "etc/group").open("a", encoding="utf-8") as handle:
        handle.write(f"dyno:x:{DYNO_UID}:\n")
    locale_gen = tree / "etc/locale.gen"
    if locale_gen.is_file():
        locale_gen.write_text("en_US.UTF-8 UTF-8\n", encoding="utf-8")
        try:
            proc.run(["chroot", tree, "locale-gen"], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except CommandError as exc:
            raise DynoError(f"cannot generate the en_US.UTF-8 locale: {exc.message}") from exc
        (tree / "etc/default/locale").write_text("LANG=en_US.UTF-8\n", encoding="utf-8")
    for directory in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "var/log",
        "tmp",
        "var/tmp",
        "debootstrap",
    ):
        _empty(tree / directory)
    (tree / "etc/resolv.conf").write_text("", encoding="utf-8")
    (tree / "etc/hostname").write_text("dyno\n", encoding="utf-8")
    (tree / "tmp").chmod(0o1777)
    (tree / VERSION_FILE).write_text(
        f"NAME={name}\nVERSION={version}\nSUITE={SUITE}\n", encoding="utf-8"
    )
    (tree / "usr/share/dockyard").mkdir(parents=True, exist_ok=True)
    (tree / "usr/share/dockyard/packages.txt").write_text(
        "\n".join(packages) + "\n", encoding="utf-8"
    )


def _empty(directory: Path) -> None:
    """Delete what is below ``directory`` (files only under var/log, whose directories packages expect)."""
    if not directory.is_dir() or directory.is_symlink():
        return
    keep_dirs = directory.name == "log"
    for dirpath, dirnames, filenames in os.walk(directory, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        if not keep_dirs:
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
    if directory.name == "debootstrap":
        directory.rmdir()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _remove(tree: Path) -> None:
    if tree.exists():
        try:
            shutil.rmtree(tree)
        except OSError as exc:  # pragma: no cover - a busy mount left in the tree
            log.warning("could not remove %s: %s", tree, exc)
