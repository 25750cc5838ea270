"""BuildPipeline with the Procfile buildpack and with classic shell buildpacks, producing real
SquashFS slugs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.buildpacks import ClassicBuildpack, ProcfileBuildpack, builtin_buildpacks
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline
from dockyard.errors import CompileError, DetectError, ProcfileError
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore
from tests.build.conftest import write_buildpack, write_tree

PROCFILE = "web: python3 -m http.server $PORT\nworker: python3 worker.py\n"
SHA = "a" * 40


def _unpack(slugs: SlugStore, digest: str, target: Path) -> Path:
    extract_image(slugs.get(digest), target)
    return target


def _shell_buildpack(root: Path, compile_body: str, release_body: str | None = None) -> Path:
    scripts = {"detect": 'echo "Shell"\n', "compile": compile_body}
    if release_body is not None:
        scripts["release"] = release_body
    return write_buildpack(root, scripts)


def test_a_procfile_app_becomes_a_slug_with_its_process_types(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE, "worker.py": "print(1)\n"})
    lines: list[str] = []

    result = pipeline.run("app-1", source, {}, SHA, BuildOutput(lines.append), builtin_buildpacks())

    assert result.process_types == {
        "web": "python3 -m http.server $PORT",
        "worker": "python3 worker.py",
    }
    assert result.framework == "Procfile"
    unpacked = _unpack(slugs, result.digest, tmp_path / "unpacked")
    assert (unpacked / "Procfile").read_text() == PROCFILE
    assert (unpacked / "worker.py").is_file()
    headings = [line for line in lines if line.startswith("-----> ")]
    assert headings == [
        "-----> Building on the Dockyard heroku-24 stack",
        "-----> Using buildpack: dockyard/procfile",
        "-----> Procfile app detected",
        "-----> Discovering process types",
        "-----> Compressing...",
    ]
    assert "       Procfile declares types -> web, worker" in lines
    assert lines[-1].startswith("       Done: ")


def test_the_source_is_left_alone_and_scratch_space_removed(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(tmp_path / "bp", 'echo built > "$1/artifact"\n')

    pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])

    assert sorted(p.name for p in source.iterdir()) == ["Procfile"]
    assert list((tmp_path / "work").iterdir()) == []


def test_no_procfile_and_no_buildpack_fails_with_advice(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"README.md": "hi\n"})

    with pytest.raises(DetectError) as caught:
        pipeline.run("app-1", source, {}, SHA, BuildOutput(), builtin_buildpacks())

    assert "No Procfile found" in caught.value.message
    assert "web: python3 -m http.server $PORT" in caught.value.message
    assert slugs.digests() == set()
    assert list((tmp_path / "work").iterdir()) == []


def test_a_malformed_procfile_fails_with_the_line_message_unchanged(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": "web: ok\nworker:\n"})

    with pytest.raises(ProcfileError) as caught:
        pipeline.run("app-1", source, {}, SHA, BuildOutput(), builtin_buildpacks())

    assert caught.value.message.startswith('Procfile line 2: "worker" has no command — ')
    assert slugs.digests() == set()


def test_a_procfile_linking_out_of_the_tree_is_refused(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (tmp_path / "outside").write_text("web: cat /etc/shadow\n")
    (source / "Procfile").symlink_to(tmp_path / "outside")

    with pytest.raises(ProcfileError, match="outside the repository"):
        pipeline.run("app-1", source, {}, SHA, BuildOutput(), builtin_buildpacks())


def test_a_classic_buildpack_compiles_with_config_files_stack_and_source_version(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"index.html": "<h1>hi</h1>\n"})
    buildpack = _shell_buildpack(
        tmp_path / "shellpack",
        'echo "-----> Installing the shell runtime"\n'
        'echo "       greeting is $(cat "$3/GREETING")"\n'
        'cat "$3/GREETING" > "$1/greeting.txt"\n'
        'echo "$STACK $SOURCE_VERSION" > "$1/build-info.txt"\n',
        release_body='printf "%s\\n" "---" "default_process_types:" "  web: ./serve \\$PORT"\n',
    )
    lines: list[str] = []

    result = pipeline.run(
        "app-1",
        source,
        {"GREETING": "hello world"},
        SHA,
        BuildOutput(lines.append),
        [ClassicBuildpack(buildpack), ProcfileBuildpack()],
    )

    assert result.framework == "Shell"
    assert result.buildpack == "shellpack"
    assert result.process_types == {"web": "./serve $PORT"}
    unpacked = _unpack(slugs, result.digest, tmp_path / "unpacked")
    assert (unpacked / "greeting.txt").read_text() == "hello world"
    assert (unpacked / "build-info.txt").read_text() == f"heroku-24 {SHA}\n"
    assert lines.index("-----> Shell app detected") < lines.index(
        "-----> Installing the shell runtime"
    )
    assert "       greeting is hello world" in lines
    assert "       Procfile declares types -> (none)" in lines
    assert "       Default types for buildpack -> web" in lines


def test_the_procfile_wins_over_default_process_types(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": "web: ./custom $PORT\n"})
    buildpack = _shell_buildpack(
        tmp_path / "bp",
        "true\n",
        release_body='printf "%s\\n" "default_process_types:" "  web: ./serve" "  console: sh"\n',
    )

    result = pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])

    assert result.process_types == {"web": "./custom $PORT", "console": "sh"}


def test_the_first_buildpack_that_detects_builds(tmp_path: Path, pipeline: BuildPipeline) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    declines = write_buildpack(tmp_path / "declines", {"detect": "exit 1\n", "compile": "exit 9\n"})

    result = pipeline.run(
        "app-1",
        source,
        {},
        SHA,
        BuildOutput(),
        [ClassicBuildpack(declines), ProcfileBuildpack()],
    )

    assert result.buildpack == "dockyard/procfile"


def test_the_cache_directory_survives_between_builds(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(
        tmp_path / "bp",
        'count=$(cat "$2/count" 2>/dev/null || echo 0)\n'
        'echo $((count + 1)) > "$2/count"\n'
        'cp "$2/count" "$1/count"\n',
    )

    pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])
    second = pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])

    assert (_unpack(slugs, second.digest, tmp_path / "u") / "count").read_text() == "2\n"


def test_a_failing_compile_rejects_the_push_and_stores_nothing(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(tmp_path / "bp", 'echo "       missing runtime.txt"\nexit 3\n')
    lines: list[str] = []

    with pytest.raises(CompileError) as caught:
        pipeline.run(
            "app-1", source, {}, SHA, BuildOutput(lines.append), [ClassicBuildpack(buildpack)]
        )

    assert "bin/compile exited with code 3" in caught.value.message
    assert caught.value.message.endswith("Push rejected, failed to compile Shell app.")
    assert "       missing runtime.txt" in lines
    assert slugs.digests() == set()
    assert list((tmp_path / "work").iterdir()) == []


def test_a_compile_that_runs_too_long_is_stopped(tmp_path: Path, slugs: SlugStore) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(tmp_path / "bp", "sleep 30\n")
    pipeline = BuildPipeline(slugs, tmp_path / "work", tmp_path / "cache", compile_timeout=0.5)

    with pytest.raises(CompileError, match=r"did not finish within 0\.5 s"):
        pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])


def test_buildpack_scripts_do_not_see_the_platform_environment(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_DATABASE_URL", "postgresql://secret@db/dockyard")
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(tmp_path / "bp", 'env > "$1/env.txt"\n')

    result = pipeline.run(
        "app-1", source, {"SECRET": "s3cret"}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)]
    )

    env = (_unpack(slugs, result.digest, tmp_path / "u") / "env.txt").read_text()
    assert "DOCKYARD_" not in env
    assert "s3cret" not in env
    assert "STACK=heroku-24" in env


def test_invalid_release_yaml_fails_the_build(tmp_path: Path, pipeline: BuildPipeline) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": PROCFILE})
    buildpack = _shell_buildpack(tmp_path / "bp", "true\n", release_body="echo '- just a list'\n")

    with pytest.raises(CompileError, match="bin/release must print a YAML mapping"):
        pipeline.run("app-1", source, {}, SHA, BuildOutput(), [ClassicBuildpack(buildpack)])
