"""HostStack finds this machine's Python and Node.js; the build environment and BuildCommands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dockyard.build.buildpack import BuildEnv
from dockyard.build.output import BuildOutput
from dockyard.build.stack import (
    BuildCommands,
    HostStack,
    build_environment,
    read_small,
    write_file,
)
from dockyard.errors import CompileError

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _fake_python(directory: Path, name: str, version: list[int] | None) -> Path:
    """A stand-in interpreter that answers the probe like a real one (or fails when version is
    None, as a pyenv shim for an inactive version does)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if version is None:
        path.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    else:
        answer = json.dumps(
            {"version": version, "executable": str(path), "venv": True, "pip": True}
        )
        path.write_text(f"#!/bin/sh\necho '{answer}'\n")
    path.chmod(0o755)
    return path


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="the stack's Python is /usr/bin/python3")
def test_the_default_python_is_the_system_python3() -> None:
    expected = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    default = HostStack(path="").default_python()

    assert default is not None
    assert default.label == expected
    assert default.executable.name.startswith("python3")


def test_pythons_on_path_are_listed_once_per_minor_version_default_first(tmp_path: Path) -> None:
    system = _fake_python(tmp_path / "usr", "python3", [3, 11, 2])
    _fake_python(tmp_path / "bin", "python3.12", [3, 12, 1])
    _fake_python(tmp_path / "bin", "python3.11", [3, 11, 9])  # same minor as the default
    _fake_python(tmp_path / "bin", "python3.13", None)  # a shim that does not run
    (tmp_path / "bin" / "python3.12-config").write_text("not an interpreter")

    stack = HostStack(path=str(tmp_path / "bin"), system_python=system)

    assert [p.label for p in stack.pythons()] == ["3.11.2", "3.12.1"]
    default = stack.default_python()
    assert default is not None
    assert default.label == "3.11.2"


def test_without_any_python_there_is_no_default(tmp_path: Path) -> None:
    stack = HostStack(path=str(tmp_path), system_python=tmp_path / "missing")
    assert stack.default_python() is None
    assert stack.pythons() == []


def test_node_is_found_on_path_with_its_version(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text("#!/bin/sh\necho v20.11.1\n")
    (bin_dir / "node").chmod(0o755)

    node = HostStack(path=str(bin_dir)).node()

    assert node is not None
    assert node.label == "20.11.1"
    assert node.npm is None
    assert HostStack(path=str(tmp_path / "empty")).node() is None


def test_the_build_environment_has_config_vars_but_not_the_platforms_secrets(
    tmp_path: Path,
) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "GREETING").write_text("hi")
    (env_dir / "LD_PRELOAD").write_text("/evil.so")
    (env_dir / "TOOL_HOME").write_text("from config")
    platform = {"DOCKYARD_DATABASE_URL": "postgresql://secret", "HTTPS_PROXY": "http://proxy:3128"}
    build = BuildEnv("heroku-24", "a" * 40, exports={"TOOL_HOME": "/opt/tool"})

    env = build_environment(build, env_dir, tmp_path / "home", platform_env=platform)

    assert env == {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "GREETING": "hi",
        "TOOL_HOME": "/opt/tool",  # an earlier buildpack's export wins over a config var
        "STACK": "heroku-24",
        "SOURCE_VERSION": "a" * 40,
    }


def _commands(lines: list[str], timeout: float) -> BuildCommands:
    return BuildCommands(
        BuildEnv("heroku-24", None, timeout=timeout), BuildOutput(lines.append), dict(os.environ)
    )


def test_commands_show_their_output_indented_and_time_themselves(tmp_path: Path) -> None:
    lines: list[str] = []
    seconds = _commands(lines, 30).run(
        ["sh", "-c", "echo one; echo two >&2"], cwd=tmp_path, what="echo"
    )
    assert lines == ["       one", "       two"]
    assert seconds >= 0


def test_a_failing_command_fails_the_compile_naming_it(tmp_path: Path) -> None:
    commands = _commands([], 30)
    with pytest.raises(CompileError, match="pip install failed with exit code 3"):
        commands.run(["sh", "-c", "exit 3"], cwd=tmp_path, what="pip install")
    assert commands.run(["sh", "-c", "exit 3"], cwd=tmp_path, what="x", check=False) >= 0


def test_commands_share_the_compile_deadline(tmp_path: Path) -> None:
    commands = _commands([], 0.5)
    with pytest.raises(CompileError, match="ran out of time"):
        commands.run(["sleep", "5"], cwd=tmp_path, what="npm ci")
    with pytest.raises(CompileError, match="ran out of time"):
        commands.run(["true"], cwd=tmp_path, what="the next step")


def test_write_file_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    build = tmp_path / "build"
    (build / ".profile.d").mkdir(parents=True)
    (build / ".profile.d" / "python.sh").symlink_to(outside)

    write_file(build, ".profile.d/python.sh", b"export A=1\n", BuildEnv("heroku-24", None))

    assert outside.read_text() == "precious"
    assert not (build / ".profile.d" / "python.sh").is_symlink()
    assert (build / ".profile.d" / "python.sh").read_text() == "export A=1\n"


def test_write_file_refuses_a_linked_directory(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    build = tmp_path / "build"
    build.mkdir()
    (build / ".profile.d").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(
        CompileError, match=r"\.profile\.d in the build is a link or not a directory"
    ):
        write_file(build, ".profile.d/python.sh", b"x", BuildEnv("heroku-24", None))
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_read_small_reads_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("abc")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "key")
    assert read_small(tmp_path / "key") == b"abc"
    assert read_small(tmp_path / "fifo") is None
    assert read_small(tmp_path / "link") is None
    assert read_small(tmp_path / "missing") is None
