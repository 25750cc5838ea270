"""The stack image: finding the mirror, versioning, verifying and mounting images, and the image built for
the tests (by the real debootstrap, once per machine; see runc_support)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard import serve
from dockyard._util import proc
from dockyard.errors import DynoError
from dockyard.runtime.stack import (
    DEFAULT_MIRROR,
    StackImages,
    apt_mirror,
    installed_packages,
    stack_version,
)
from dockyard.settings import Settings
from dockyard.slug.image import make_image, sha256_file
from dockyard.slug.mount import mount_points
from tests.conftest import make_settings
from tests.runtime.runc_support import requires_runc, stacks_dir

STATUS = """\
Package: bash
Status: install ok installed
Version: 5.2.15-2+b7
Description: shell
 with a continuation line: ignored

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: zlib1g
Status: install ok installed
Version: 1:1.2.13.dfsg-1
"""


def test_the_mirror_comes_from_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
    )
    assert apt_mirror([sources]) == "http://mirror.example/debian"


def test_the_mirror_comes_from_one_line_sources(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://other.example/debian bookworm main\n"
    )
    assert apt_mirror([tmp_path / "missing.list", listing]) == "https://other.example/debian"


def test_without_a_debian_source_the_default_mirror_is_used(tmp_path: Path) -> None:
    other = tmp_path / "nodesource.sources"
    other.write_text("Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n")
    assert apt_mirror([other]) == DEFAULT_MIRROR


def test_installed_packages_are_read_from_dpkg_status(tmp_path: Path) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(STATUS)
    assert installed_packages(tmp_path) == ["bash=5.2.15-2+b7", "zlib1g=1:1.2.13.dfsg-1"]


def test_the_version_is_the_date_and_a_hash_of_the_package_list() -> None:
    when = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)
    version = stack_version(["b=1", "a=2"], when)
    assert version.startswith("20250601-") and len(version) == 21
    assert stack_version(["a=2", "b=1"], when) == version
    assert stack_version(["a=2", "b=2"], when) != version


def fake_image(settings: Settings, version: str = "20250601-0123456789ab") -> Path:
    """A tiny image in the stack format: the SquashFS, its .sha256 and the .current pointer."""
    tree = settings.data_dir / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/dockyard-stack").write_text(f"VERSION={version}\n")
    settings.stacks_dir.mkdir(parents=True)
    image = settings.stacks_dir / f"dockyard-12-{version}.squashfs"
    make_image(tree, image)
    image.with_name(image.name + ".sha256").write_text(f"{sha256_file(image)}  {image.name}\n")
    (settings.stacks_dir / "dockyard-12.current").write_text(version + "\n")
    return image


def test_current_finds_the_newest_image_or_the_pinned_one(settings: Settings) -> None:
    assert StackImages(settings).current() is None
    path = fake_image(settings)
    image = StackImages(settings).current()
    assert image is not None
    assert (image.label, image.path) == ("dockyard-12-20250601-0123456789ab", path)
    pinned = make_settings(
        settings.data_dir, DOCKYARD_RUNTIME_STACK_VERSION="20240101-0123456789ab"
    )
    assert StackImages(pinned).current() is None
    bad = make_settings(settings.data_dir, DOCKYARD_RUNTIME_STACK_VERSION="latest")
    with pytest.raises(DynoError, match="malformed"):
        StackImages(bad).current()


def test_require_says_how_to_build_a_missing_image(settings: Settings) -> None:
    with pytest.raises(DynoError, match="dockyard stack:build"):
        StackImages(settings).require()


def test_a_corrupt_or_unchecked_image_is_refused(settings: Settings) -> None:
    path = fake_image(settings)
    images = StackImages(settings)
    image = images.require()
    images.verify(image)
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff\xff")
    with pytest.raises(DynoError, match="corrupt"):
        images.verify(image)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(DynoError, match="no checksum file"):
        images.verify(image)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root")
def test_an_image_is_mounted_read_only_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", DOCKYARD_RUNTIME_RUN_DIR=str(tmp_path / "run"))
    fake_image(settings)
    images = StackImages(settings)
    image = images.require()
    target = images.mount(image)
    try:
        assert images.mount(image) == target
        assert (target / "etc/dockyard-stack").read_text() == f"VERSION={image.version}\n"
        with pytest.raises(OSError, match="Read-only"):
            (target / "new").write_text("x")
        assert sum(1 for p in mount_points() if p == target.resolve()) == 1
        assert target.parent == tmp_path / "run" / "stacks"
    finally:
        proc.run(["umount", target], check=False)


@requires_runc
@pytest.mark.root
@pytest.mark.timeout(1800)
def test_the_built_stack_has_what_apps_expect(settings: Settings) -> None:
    stacks = make_settings(
        settings.data_dir,
        DOCKYARD_RUNTIME_STACKS_DIR=str(stacks_dir()),
        DOCKYARD_RUNTIME_RUN_DIR=str(settings.data_dir / "run"),
    )
    images = StackImages(stacks)
    image = images.require()
    root = images.mount(image)
    try:
        check_stack(root, image.version)
    finally:
        proc.run(["umount", root], check=False)


def check_stack(root: Path, version: str) -> None:
    info = (root / "etc/dockyard-stack").read_text()
    assert f"VERSION={version}" in info and "SUITE=bookworm" in info
    for program in ("bin/bash", "usr/bin/python3", "usr/bin/node", "usr/bin/git", "usr/bin/curl"):
        assert (root / program).exists(), program
    assert "dyno:x:1000:1000:dyno:/app:/bin/bash" in (root / "etc/passwd").read_text()
    assert (root / "app").is_dir() and not any((root / "app").iterdir())
    assert not any((root / "var/lib/apt/lists").iterdir())
    assert not list((root / "var/cache/apt").rglob("*.deb"))
    assert (root / "usr/lib/locale/locale-archive").is_file()
    packages = (root / "usr/share/dockyard/packages.txt").read_text().split()
    assert any(p.startswith("libpq5=") for p in packages)


@requires_runc
@pytest.mark.root
def test_stack_build_reports_an_unreachable_mirror_and_leaves_no_partial_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DOCKYARD_DATA_DIR", str(data))
    monkeypatch.setenv("DOCKYARD_CONFIG", os.devnull)
    monkeypatch.setenv("DOCKYARD_RUNTIME_STACK_MIRROR", "http://127.0.0.1:9/debian")
    assert serve.main(["stack-build"]) == 1
    err = capsys.readouterr().err
    assert "debootstrap failed" in err and "http://127.0.0.1:9/debian" in err
    leftovers = sorted(p.name for p in (data / "stacks").iterdir())
    assert leftovers == [".lock"]
    shutil.rmtree(data)


def test_up_names_the_runtime_and_warns_loudly_about_process(settings: Settings) -> None:
    process = serve.runtime_banner(settings)
    assert process[0].split() == ["runtime", ":", "process"]
    assert any("NOT A SANDBOX" in line for line in process)
    runc = serve.runtime_banner(make_settings(settings.data_dir, DOCKYARD_AGENT_RUNTIME="runc"))
    assert len(runc) == 1 and "runc (sandboxed" in runc[0]
