"""The Python buildpack's cached virtualenv shared with the slug through hard links: relocation
replaces files instead of writing into them; with a build user of its own, the shared files are
root's and read-only while the build runs, so a later buildpack can replace them but never write
into them or into the cache, and the next build gets the virtualenv as it was cached; a cached
tree whose files have other names is installed again."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.buildpacks import ClassicBuildpack, PythonBuildpack, builtin_buildpacks
from dockyard.build.buildpacks.python import RELOCATABLE_PREAMBLE, relocate_venv
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline, BuildResult
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore
from tests.build.conftest import write_buildpack, write_tree

SHA = "0123456789abcdef0123456789abcdef01234567"
SIX = ".venv/lib/python3.11/site-packages/six.py"


def test_relocation_replaces_files_and_leaves_their_other_names_alone(tmp_path: Path) -> None:
    venv = tmp_path / "app" / ".venv"
    site = venv / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    script = venv / "bin" / "tool"
    script.write_text(f"#!{venv}/bin/python\nimport sys\n")
    script.chmod(0o751)
    pth = site / "editable.pth"
    pth.write_text(f"{tmp_path / 'app' / 'src'}\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    os.link(script, cache / "tool")
    os.link(pth, cache / "editable.pth")

    relocate_venv(venv)

    assert script.read_text() == RELOCATABLE_PREAMBLE + "import sys\n"
    assert pth.read_text() == "../../../../src\n"
    assert (cache / "tool").read_text() == f"#!{venv}/bin/python\nimport sys\n"
    assert (cache / "editable.pth").read_text() == f"{tmp_path / 'app' / 'src'}\n"
    assert script.stat().st_mode & 0o777 == 0o751
    assert sorted(p.name for p in (venv / "bin").iterdir()) == ["tool"]  # no partial file left


# -- through the pipeline, with a build user of its own -------------------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="build users need root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the build user can reach (pytest's own temporary directories are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-venv-cache-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Builds:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.slugs = SlugStore(base / "slugs")
        self.pipeline = BuildPipeline(self.slugs, base / "work", base / "cache", 300)
        self.source = write_tree(base / "src", {"requirements.txt": "six\n"})
        self.lines: list[str] = []

    @property
    def cached_six(self) -> Path:
        return self.base / "cache" / "app" / "python" / "venv" / SIX.removeprefix(".venv/")

    def build(self, *, after: str | None = None) -> BuildResult:
        """A build of the app; ``after``: the compile script of a classic buildpack that runs
        after the Python buildpack."""
        self.lines.clear()
        buildpacks = builtin_buildpacks()
        explicit = after is not None
        if after is not None:
            poke = write_buildpack(self.base / "poke", {"detect": "echo Poke\n", "compile": after})
            buildpacks = [PythonBuildpack(), ClassicBuildpack(poke)]
        try:
            return self.pipeline.run(
                "app",
                self.source,
                {},
                SHA,
                BuildOutput(self.lines.append),
                buildpacks,
                explicit=explicit,
            )
        finally:
            shutil.rmtree(self.base / "poke", ignore_errors=True)

    def unpack(self, result: BuildResult, name: str) -> Path:
        target = self.base / name
        extract_image(self.slugs.get(result.digest), target)
        return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


POKE = f"""\
six="$1/{SIX}"
cached="$2/python/venv/{SIX.removeprefix(".venv/")}"
{{ echo "uid $(id -u)"
  (echo '# appended' >> "$six") 2>/dev/null && echo "appended" || echo "append denied"
  chmod u+w "$six" 2>/dev/null && echo "chmod allowed" || echo "chmod denied"
  (echo '# appended' >> "$cached") 2>/dev/null && echo "cache written" || echo "cache denied"
  touch "$2/python/venv/planted" 2>/dev/null && echo "cache changed" || echo "cache unchanged"
  {{ cat "$six"; echo '# replaced'; }} > "$six.new" && mv -f "$six.new" "$six" && echo "replaced"
}} > "$1/poked"
"""


@root_only
def test_a_build_user_can_replace_the_shared_files_but_never_write_the_cache_through_them(
    base: Path,
) -> None:
    builds = Builds(base)
    cold = builds.build()
    assert "-----> Installing requirements with pip (requirements.txt)" in builds.lines
    cached = _digest(builds.cached_six)
    assert builds.cached_six.stat().st_mode & 0o222 == 0  # cached read-only
    assert builds.cached_six.stat().st_nlink == 1  # the cold build's slug tree is gone
    assert _digest(builds.unpack(cold, "cold") / SIX) == cached

    poked = builds.build(after=POKE)

    assert "-----> Dependencies unchanged since the last build (requirements.txt)" in builds.lines
    assert not any("pip" in line for line in builds.lines)
    slug = builds.unpack(poked, "poked")
    uid, *outcomes = (slug / "poked").read_text().splitlines()
    assert int(uid.split()[1]) != 0
    assert outcomes == [
        "append denied",
        "chmod denied",
        "cache denied",
        "cache unchanged",
        "replaced",
    ]
    assert (slug / SIX).read_text().endswith("# replaced\n")
    assert _digest(builds.cached_six) == cached
    assert not (builds.cached_six.parents[3] / "planted").exists()

    warm = builds.build()

    assert "-----> Dependencies unchanged since the last build (requirements.txt)" in builds.lines
    assert _digest(builds.unpack(warm, "warm") / SIX) == cached


@root_only
def test_a_cached_virtualenv_whose_files_have_other_names_is_installed_again(
    base: Path,
) -> None:
    builds = Builds(base)
    builds.build()
    os.link(builds.cached_six, builds.cached_six.with_name("six-again.py"))

    result = builds.build()

    [refused] = [line for line in builds.lines if "cannot be reused" in line]
    assert refused.startswith("       The cached virtualenv cannot be reused (lib/python3.11/")
    assert refused.endswith(" has another name or owner): installing again")
    assert "-----> Installing requirements with pip (requirements.txt)" in builds.lines
    assert not builds.cached_six.with_name("six-again.py").exists()
    slug = builds.unpack(result, "slug")
    assert not (slug / SIX).with_name("six-again.py").exists()
    assert _digest(slug / SIX) == _digest(builds.cached_six)
