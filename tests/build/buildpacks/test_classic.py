"""ClassicBuildpack: Heroku's bin/detect, bin/compile and bin/release run as processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.buildpack import BuildEnv
from dockyard.build.buildpacks.classic import ClassicBuildpack, parse_release
from dockyard.build.output import BuildOutput
from dockyard.errors import CompileError, DetectError
from tests.build.conftest import write_buildpack


def test_detect_returns_the_printed_framework_or_none(tmp_path: Path) -> None:
    yes = ClassicBuildpack(write_buildpack(tmp_path / "yes", {"detect": 'echo "Go"\n'}))
    silent = ClassicBuildpack(write_buildpack(tmp_path / "silent", {"detect": "true\n"}))
    no = ClassicBuildpack(write_buildpack(tmp_path / "no", {"detect": "exit 1\n"}))

    assert yes.detect(tmp_path) == "Go"
    assert silent.detect(tmp_path) == "silent"
    assert no.detect(tmp_path) is None


def test_detect_is_given_the_build_directory(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "go.mod").write_text("module x\n")
    buildpack = ClassicBuildpack(
        write_buildpack(tmp_path / "bp", {"detect": '[ -f "$1/go.mod" ] && echo Go\n'})
    )
    assert buildpack.detect(tmp_path / "app") == "Go"
    assert buildpack.detect(tmp_path) is None


def test_a_directory_without_bin_detect_is_not_a_buildpack(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectError, match="has no bin/detect"):
        ClassicBuildpack(tmp_path / "empty").detect(tmp_path)


def test_a_script_that_is_not_executable_is_reported(tmp_path: Path) -> None:
    root = write_buildpack(tmp_path / "bp", {"detect": "true\n", "compile": "true\n"})
    (root / "bin" / "compile").chmod(0o644)
    with pytest.raises(CompileError, match="chmod \\+x bin/compile"):
        ClassicBuildpack(root).compile(
            tmp_path, tmp_path, tmp_path, BuildOutput(), BuildEnv("heroku-24", None)
        )


def test_release_is_optional(tmp_path: Path) -> None:
    buildpack = ClassicBuildpack(write_buildpack(tmp_path / "bp", {"detect": "true\n"}))
    release = buildpack.release(tmp_path)
    assert dict(release.default_process_types) == {}
    assert release.addons == ()


def test_release_yaml_is_parsed() -> None:
    release = parse_release(
        "---\naddons:\n  - heroku-postgresql\ndefault_process_types:\n  web: bin/serve\n", "bp"
    )
    assert dict(release.default_process_types) == {"web": "bin/serve"}
    assert release.addons == ("heroku-postgresql",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "invalid YAML"),
        ("default_process_types: [web]\n", "default_process_types must map"),
        ("addons: heroku-postgresql\n", "addons must be a list"),
    ],
)
def test_bad_release_output_is_a_compile_error(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        parse_release(text, "bp")
