"""The built-in language buildpacks with builds in the runc sandbox: pip, uv and npm run in containers on
the build stack image (downloading through the build's network), the virtualenv's interpreter is the
stack's /usr/bin/python3, and the slugs serve after being moved elsewhere."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.build.buildpacks import builtin_buildpacks
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline, BuildResult
from dockyard.build.stack import ImageStack
from dockyard.runtime.sandbox import RuncBuildContainers
from dockyard.settings import Settings
from dockyard.slug.store import SlugStore
from tests.build.buildpacks.conftest import copy_app, dyno, get, unpack_moved
from tests.build.conftest import write_tree
from tests.runtime.runc_support import reachable_dir
from tests.runtime.sandbox_support import module_network, requires_build_sandbox, sandbox_settings

pytestmark = [requires_build_sandbox, pytest.mark.root, pytest.mark.timeout(600)]

SHA = "d" * 40
FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "{text}"
"""


@dataclass
class Sandboxed:
    settings: Settings
    pipeline: BuildPipeline
    slugs: SlugStore
    stack: ImageStack

    def build(self, app_id: str, source: Path, lines: list[str]) -> BuildResult:
        return self.pipeline.run(
            app_id, source, {}, SHA, BuildOutput(lines.append), builtin_buildpacks(self.stack)
        )


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxed]:
    base = tmp_path_factory.mktemp("languages")
    with reachable_dir() as run_base:
        settings = sandbox_settings(base / "data", run_base / "run", __name__)
        with module_network(settings):
            containers = RuncBuildContainers(settings)
            slugs = SlugStore(settings.slugs_dir)
            pipeline = BuildPipeline(
                slugs,
                settings.build_dir,
                settings.cache_dir,
                300,
                settings=settings.build,
                containers=containers,
            )
            yield Sandboxed(settings, pipeline, slugs, ImageStack(containers, base / "stacks"))


@dataclass
class TwoBuilds:
    cold: BuildResult
    cold_lines: list[str]
    warm: BuildResult
    warm_lines: list[str]


@pytest.fixture(scope="module")
def flask_builds(sandboxed: Sandboxed, tmp_path_factory: pytest.TempPathFactory) -> TwoBuilds:
    """A Flask app (requirements.txt, no Procfile) built with empty caches, then after a one-line change."""
    source = write_tree(
        tmp_path_factory.mktemp("flask-src"),
        {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK_APP.format(text="cold build")},
    )
    cold_lines: list[str] = []
    cold = sandboxed.build("flask", source, cold_lines)
    (source / "app.py").write_text(FLASK_APP.format(text="warm build"))
    warm_lines: list[str] = []
    warm = sandboxed.build("flask", source, warm_lines)
    return TwoBuilds(cold, cold_lines, warm, warm_lines)


def test_pip_installs_a_flask_app_in_a_virtualenv_of_the_stacks_python(
    flask_builds: TwoBuilds, sandboxed: Sandboxed, tmp_path: Path
) -> None:
    lines = flask_builds.cold_lines
    assert "-----> Using Python 3.11.2 (the stack's default)" in lines
    assert any(line.startswith("       Successfully installed") for line in lines)
    assert not any(line.startswith(" !") for line in lines)
    assert not any("/opt/wheels" in line for line in lines)  # no host paths reach the container
    assert flask_builds.cold.process_types == {"web": "gunicorn app:app"}
    slug = unpack_moved(sandboxed.slugs, flask_builds.cold.digest, tmp_path)
    assert os.readlink(slug / ".venv/bin/python3") == "/usr/bin/python3"
    assert "home = /usr/bin\n" in (slug / ".venv/pyvenv.cfg").read_text()
    with dyno(slug, flask_builds.cold.process_types["web"]) as url:
        assert get(url) == (200, "cold build")


def test_the_warm_build_reuses_the_cached_virtualenv(
    flask_builds: TwoBuilds, sandboxed: Sandboxed, tmp_path: Path
) -> None:
    lines = flask_builds.warm_lines
    assert "-----> Dependencies unchanged since the last build (requirements.txt)" in lines
    assert not any("pip" in line for line in lines)
    slug = unpack_moved(sandboxed.slugs, flask_builds.warm.digest, tmp_path)
    with dyno(slug, flask_builds.warm.process_types["web"]) as url:
        assert get(url) == (200, "warm build")


def test_uv_installs_a_locked_project(sandboxed: Sandboxed, tmp_path: Path) -> None:
    source = copy_app("uv-tiny", tmp_path / "src")
    (source / "Procfile").write_text("web: python -c 'import six'\n")
    lines: list[str] = []

    result = sandboxed.build("uv", source, lines)

    assert "-----> Installing dependencies from uv.lock with uv" in lines
    slug = unpack_moved(sandboxed.slugs, result.digest, tmp_path)
    done = subprocess.run(
        [
            "bash",
            "-c",
            "for f in .profile.d/*.sh; do . ./$f; done; python -c 'import six; print(six.__version__)'",
        ],
        cwd=slug,
        env={"HOME": str(slug), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "1.17.0"), done.stderr


def test_npm_builds_with_the_stacks_node_and_the_slug_serves_moved(
    sandboxed: Sandboxed, tmp_path: Path
) -> None:
    node = sandboxed.stack.node()
    assert node is not None
    source = copy_app("is-number", tmp_path / "src")
    lines: list[str] = []

    result = sandboxed.build("node", source, lines)

    assert f"       Using Node.js {node.label} from the stack" in lines
    assert "       Running build" in lines
    slug = unpack_moved(sandboxed.slugs, result.digest, tmp_path)
    with dyno(slug, "npm start") as url:
        assert get(url) == (200, "is-number(5)=true; built with production; NODE_ENV=production")
