"""PythonBuildpack: detection, install plans, Python versions, default web processes, poetry.lock
export, relocatable virtualenvs, and real pip and uv installs through the build pipeline (a
Flask app built cold then warm, a uv project)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.build.buildpacks import builtin_buildpacks
from dockyard.build.buildpacks.python import (
    RELOCATABLE_PREAMBLE,
    PythonBuildpack,
    default_web,
    install_plan,
    poetry_requirements,
    relocate_venv,
    requested_python,
    select_python,
)
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline, BuildResult
from dockyard.build.stack import HostStack
from dockyard.errors import CompileError
from dockyard.slug.store import SlugStore
from tests.build.buildpacks.conftest import copy_app, dyno, get, unpack_moved
from tests.build.conftest import write_tree

SHA = "b" * 40
FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "{text}"
"""


# -- detection and plans (no installs) ----------------------------------------------------------


@pytest.mark.parametrize(
    "manifest", ["requirements.txt", "pyproject.toml", "setup.py", "poetry.lock", "uv.lock"]
)
def test_detects_each_python_manifest(tmp_path: Path, manifest: str) -> None:
    assert PythonBuildpack().detect(tmp_path) is None
    (tmp_path / manifest).write_text("")
    assert PythonBuildpack().detect(tmp_path) == "Python"


def test_a_lockfile_wins_over_requirements_and_the_rest_is_named_as_ignored(
    tmp_path: Path,
) -> None:
    write_tree(tmp_path, {"pyproject.toml": "", "uv.lock": "", "requirements.txt": "flask\n"})
    plan = install_plan(tmp_path)
    assert (plan.manager, plan.source, plan.files) == (
        "uv",
        "uv.lock",
        ("pyproject.toml", "uv.lock"),
    )
    assert plan.ignored == ("requirements.txt",)
    assert plan.reusable


def test_a_lockfile_without_pyproject_is_an_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"poetry.lock": ""})
    with pytest.raises(CompileError, match=r"poetry.lock found without pyproject.toml"):
        install_plan(tmp_path)


def test_included_requirement_files_are_part_of_the_dependency_set(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"requirements.txt": "-r req/base.txt\nflask  # web\n", "req/base.txt": "-c ../pins.txt\n"},
    )
    (tmp_path / "pins.txt").write_text("flask==3.0\n")
    plan = install_plan(tmp_path)
    assert plan.files == ("pins.txt", "req/base.txt", "requirements.txt")
    assert plan.reusable


@pytest.mark.parametrize("line", ["-e .", "./libs/mylib", "mylib @ file:///tmp/x", "/opt/x.whl"])
def test_requirements_that_read_the_repository_are_installed_every_time(
    tmp_path: Path, line: str
) -> None:
    write_tree(tmp_path, {"requirements.txt": f"flask\n{line}\n"})
    assert not install_plan(tmp_path).reusable


def test_an_include_outside_the_repository_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path / "app", {"requirements.txt": "-r ../../etc/reqs.txt\n"})
    with pytest.raises(CompileError, match="outside the repository"):
        install_plan(tmp_path / "app")


def test_a_manifest_linked_from_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("flask\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "requirements.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(CompileError, match=r"requirements\.txt is a link that points outside"):
        install_plan(tmp_path / "app")


def test_a_project_without_lock_or_requirements_is_installed_with_pip(tmp_path: Path) -> None:
    write_tree(tmp_path, {"setup.py": "from setuptools import setup\nsetup()\n"})
    plan = install_plan(tmp_path)
    assert (plan.manager, plan.source, plan.reusable) == ("pip", "the project", False)


# -- Python versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "version"),
    [
        (".python-version", "3.11\n", "3.11"),
        (".python-version", "# pinned\ncpython@3.12.1\n", "3.12.1"),
        ("runtime.txt", "python-3.11.2\n", "3.11.2"),
    ],
)
def test_version_files_are_read(tmp_path: Path, name: str, text: str, version: str) -> None:
    (tmp_path / name).write_text(text)
    assert requested_python(tmp_path) == (version, name)


def test_python_version_wins_over_runtime_txt(tmp_path: Path) -> None:
    write_tree(tmp_path, {".python-version": "3.11\n", "runtime.txt": "python-3.9.1\n"})
    assert requested_python(tmp_path) == ("3.11", ".python-version")


def test_a_malformed_version_file_says_how_to_write_it(tmp_path: Path) -> None:
    (tmp_path / "runtime.txt").write_text("3.11\n")
    with pytest.raises(
        CompileError, match=r'runtime.txt: "3.11" is not a Python version.*python-3.11'
    ):
        requested_python(tmp_path)


def test_the_default_minor_version_is_chosen_when_asked_for(tmp_path: Path) -> None:
    stack = HostStack()
    default = stack.default_python()
    assert default is not None
    (tmp_path / ".python-version").write_text(default.minor + "\n")
    lines: list[str] = []

    chosen = select_python(stack, tmp_path, BuildOutput(lines.append))

    assert chosen == default
    assert lines == [f"-----> Using Python {default.label} (specified in .python-version)"]


def test_a_version_the_stack_lacks_fails_naming_the_versions_it_has(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    stack = HostStack()
    available = [p.label for p in stack.pythons()]
    write_tree(tmp_path / "src", {"requirements.txt": "", ".python-version": "3.4\n"})

    with pytest.raises(CompileError) as caught:
        pipeline.run("a", tmp_path / "src", {}, SHA, BuildOutput(), [PythonBuildpack(stack)])

    message = caught.value.message
    assert "Python 3.4, requested in .python-version, is not available on this stack" in message
    assert f"Available: {', '.join(available)}." in message
    assert message.endswith("Push rejected, failed to compile Python app.")


# -- default web process -------------------------------------------------------------------------


def _installed(root: Path, *names: str) -> None:
    """Make ``names`` look installed in the slug's virtualenv."""
    site = root / ".venv/lib/python3.11/site-packages"
    for name in names:
        (site / f"{name}-1.0.dist-info").mkdir(parents=True)


def test_django_gets_gunicorn_on_its_wsgi_module(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n',
            "mysite/wsgi.py": "application = None\n",
        },
    )
    _installed(tmp_path, "Django", "gunicorn")
    assert default_web(tmp_path) == ("gunicorn mysite.wsgi", "Django app in mysite/wsgi.py")


def test_fastapi_gets_uvicorn_on_port(tmp_path: Path) -> None:
    write_tree(tmp_path, {"main.py": "import fastapi\napi: fastapi.FastAPI = fastapi.FastAPI()\n"})
    _installed(tmp_path, "fastapi", "uvicorn")
    assert default_web(tmp_path)[0] == "uvicorn main:api --host 0.0.0.0 --port $PORT"


def test_flask_without_gunicorn_gets_no_default_and_is_told_why(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app.py": "from flask import Flask\napp = Flask(__name__)\n"})
    _installed(tmp_path, "Flask")
    assert default_web(tmp_path) == (
        None,
        "Flask app in app.py, but gunicorn is not a dependency — add it",
    )


def test_two_candidate_apps_are_not_guessed_between(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"app.py": "app = Flask(__name__)\n", "main.py": "app = FastAPI()\n"},
    )
    _installed(tmp_path, "gunicorn", "uvicorn")
    command, why = default_web(tmp_path)
    assert command is None
    assert why.startswith("several apps found (Flask in app.py, FastAPI in main.py)")


def test_an_app_factory_is_not_guessed(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app.py": "def create_app():\n    return Flask(__name__)\n"})
    _installed(tmp_path, "gunicorn")
    assert default_web(tmp_path)[0] is None


# -- poetry.lock ---------------------------------------------------------------------------------

POETRY_LOCK = """\
[[package]]
name = "six"
version = "1.17.0"
groups = ["main"]
files = [
    {file = "six-1.17.0-py2.py3-none-any.whl", hash = "sha256:aaaa"},
    {file = "six-1.17.0.tar.gz", hash = "sha256:bbbb"},
]

[[package]]
name = "colorama"
version = "0.4.6"
groups = ["main", "dev"]
markers = {main = "sys_platform == \\"win32\\"", dev = "os_name == \\"nt\\""}
files = [{file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:cccc"}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]
files = []

[metadata]
lock-version = "2.1"
"""


def test_poetry_lock_becomes_hashed_requirements_of_the_main_group(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK)
    assert poetry_requirements(tmp_path) == (
        "six==1.17.0 --hash=sha256:aaaa --hash=sha256:bbbb\n"
        'colorama==0.4.6 --hash=sha256:cccc ; sys_platform == "win32"\n'
    )


def test_a_poetry_1_lock_asks_for_a_poetry_2_lock(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text('[metadata]\nlock-version = "2.0"\n')
    with pytest.raises(CompileError, match="run `poetry lock` with Poetry 2"):
        poetry_requirements(tmp_path)


# -- relocation ----------------------------------------------------------------------------------


def test_relocation_rewrites_script_shebangs_and_pth_paths(tmp_path: Path) -> None:
    venv = tmp_path / "app" / ".venv"
    site = venv / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    script = venv / "bin" / "tool"
    script.write_text(f"#!{venv}/bin/python\nimport sys\n")
    script.chmod(0o755)
    (venv / "bin" / "activate").write_text(f'VIRTUAL_ENV="{venv}"\n')
    (site / "editable.pth").write_text(f"{tmp_path / 'app' / 'src'}\n/opt/elsewhere\n")

    relocate_venv(venv)

    assert script.read_text() == RELOCATABLE_PREAMBLE + "import sys\n"
    assert script.stat().st_mode & 0o111
    assert not (venv / "bin" / "activate").exists()
    assert (site / "editable.pth").read_text() == "../../../../src\n/opt/elsewhere\n"


# -- real installs through the pipeline ----------------------------------------------------------


@dataclass
class TwoBuilds:
    cold: BuildResult
    cold_lines: list[str]
    warm: BuildResult
    warm_lines: list[str]
    slugs: SlugStore
    where: Path


@pytest.fixture(scope="module")
def flask_builds(tmp_path_factory: pytest.TempPathFactory) -> TwoBuilds:
    """A Flask app (requirements.txt, no Procfile) built with empty caches, then again after a
    one-line change."""
    base = tmp_path_factory.mktemp("flask")
    slugs = SlugStore(base / "slugs")
    pipeline = BuildPipeline(slugs, base / "work", base / "cache", compile_timeout=300)
    source = write_tree(
        base / "src",
        {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK_APP.format(text="cold build")},
    )
    cold_lines: list[str] = []
    cold = pipeline.run(
        "flask", source, {}, SHA, BuildOutput(cold_lines.append), builtin_buildpacks()
    )
    (source / "app.py").write_text(FLASK_APP.format(text="warm build"))
    warm_lines: list[str] = []
    warm = pipeline.run(
        "flask", source, {}, SHA, BuildOutput(warm_lines.append), builtin_buildpacks()
    )
    return TwoBuilds(cold, cold_lines, warm, warm_lines, slugs, base)


def test_a_flask_app_installs_with_pip_and_gets_gunicorn_as_web(flask_builds: TwoBuilds) -> None:
    assert flask_builds.cold.framework == "Python"
    assert flask_builds.cold.process_types == {"web": "gunicorn app:app"}
    lines = flask_builds.cold_lines
    assert "-----> Installing requirements with pip (requirements.txt)" in lines
    assert any(line.startswith("       Successfully installed") for line in lines)
    assert any(line.startswith("       Dependencies installed in ") for line in lines)
    assert (
        '       No web process in a Procfile: using "gunicorn app:app" (Flask app in app.py)'
        in lines
    )


def test_the_slug_serves_after_being_moved_elsewhere(
    flask_builds: TwoBuilds, tmp_path: Path
) -> None:
    slug = unpack_moved(flask_builds.slugs, flask_builds.cold.digest, tmp_path)
    with dyno(slug, flask_builds.cold.process_types["web"]) as url:
        assert get(url) == (200, "cold build")


def test_byte_code_is_compiled_independent_of_timestamps(
    flask_builds: TwoBuilds, tmp_path: Path
) -> None:
    slug = unpack_moved(flask_builds.slugs, flask_builds.cold.digest, tmp_path)
    pycs = list(slug.glob(".venv/lib/python3.*/site-packages/flask/__pycache__/*.pyc"))
    assert pycs
    flags = {int.from_bytes(p.read_bytes()[4:8], "little") for p in pycs}
    assert flags == {1}  # PEP 552: hash-based, unchecked


def test_the_second_build_reuses_the_cached_virtualenv_without_pip(
    flask_builds: TwoBuilds, tmp_path: Path
) -> None:
    lines = flask_builds.warm_lines
    assert "-----> Dependencies unchanged since the last build (requirements.txt)" in lines
    assert not any("pip" in line for line in lines)
    assert not any("Dependencies installed in" in line for line in lines)
    slug = unpack_moved(flask_builds.slugs, flask_builds.warm.digest, tmp_path)
    with dyno(slug, flask_builds.warm.process_types["web"]) as url:
        assert get(url) == (200, "warm build")


def _python_in(slug: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the slug's Python as a dyno would (``.profile.d`` sourced)."""
    return subprocess.run(
        ["bash", "-c", f"for f in .profile.d/*.sh; do . ./$f; done; python -c '{code}'"],
        cwd=slug,
        env={"HOME": str(slug), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_poetry_lock_installs_its_main_group_with_pip(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = copy_app("poetry-tiny", tmp_path / "src")
    (source / "Procfile").write_text("web: python -c 'import six'\n")
    lines: list[str] = []

    result = pipeline.run("po", source, {}, SHA, BuildOutput(lines.append), builtin_buildpacks())

    assert "-----> Installing dependencies from poetry.lock with pip" in lines
    slug = unpack_moved(slugs, result.digest, tmp_path)
    done = _python_in(slug, "import six; print(six.__version__)")
    assert (done.returncode, done.stdout.strip()) == (0, "1.17.0"), done.stderr


def test_a_uv_project_installs_its_locked_dependencies_with_uv(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = copy_app("uv-tiny", tmp_path / "src")
    (source / "Procfile").write_text("web: python -c 'import six'\n")
    lines: list[str] = []

    result = pipeline.run("uv", source, {}, SHA, BuildOutput(lines.append), builtin_buildpacks())

    assert "-----> Installing dependencies from uv.lock with uv" in lines
    slug = unpack_moved(slugs, result.digest, tmp_path)
    done = _python_in(slug, "import six; print(six.__version__)")
    assert (done.returncode, done.stdout.strip()) == (0, "1.17.0"), done.stderr
