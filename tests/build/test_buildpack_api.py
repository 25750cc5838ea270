"""The classic buildpack API across several buildpacks: order, export files, the last bin/release,
add-ons, .profile.d, .slugignore, detection messages and the slug size limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.buildpacks import ClassicBuildpack, ProcfileBuildpack, builtin_buildpacks
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline
from dockyard.errors import BuildError, DetectError
from dockyard.settings import BuildSettings
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore
from tests.build.conftest import write_buildpack, write_tree

BP_DIR = 'bp_dir=$(cd "$(dirname "$0")/.." && pwd)\n'


def _unpack(slugs: SlugStore, digest: str, target: Path) -> Path:
    extract_image(slugs.get(digest), target)
    return target


def test_buildpacks_run_in_order_passing_exports_and_the_last_release_decides(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"app.txt": "hi\n"})
    first = write_buildpack(
        tmp_path / "runtime",
        {
            "detect": "echo Runtime\n",
            "compile": BP_DIR + 'mkdir -p "$1/.runtime/bin"\n'
            'echo "export PATH=\\"$1/.runtime/bin:\\$PATH\\"" > "$bp_dir/export"\n'
            "echo 'export RUNTIME_HOME=/app/.runtime' >> \"$bp_dir/export\"\n"
            'mkdir -p "$1/.profile.d" && echo "export RUNTIME=1" > "$1/.profile.d/runtime.sh"\n',
            "release": "printf 'addons:\\n  - heroku-postgresql:mini\\n"
            "default_process_types:\\n  web: first\\n'\n",
        },
    )
    second = write_buildpack(
        tmp_path / "app",
        {
            "detect": "echo App\n",
            "compile": 'echo "$RUNTIME_HOME" > "$1/seen-home"\necho "$PATH" > "$1/seen-path"\n',
            "release": "printf 'addons: [heroku-redis:mini]\\n"
            "default_process_types:\\n  web: second $PORT\\n  worker: w\\n'\n",
        },
    )
    lines: list[str] = []

    result = pipeline.run(
        "app-1",
        source,
        {},
        "c" * 40,
        BuildOutput(lines.append),
        [ClassicBuildpack(first), ClassicBuildpack(second)],
        explicit=True,
    )

    unpacked = _unpack(slugs, result.digest, tmp_path / "slug")
    assert (unpacked / "seen-home").read_text() == "/app/.runtime\n"
    assert "/.runtime/bin:" in (unpacked / "seen-path").read_text()
    assert (unpacked / ".profile.d" / "runtime.sh").read_text() == "export RUNTIME=1\n"
    assert result.process_types == {"web": "second $PORT", "worker": "w"}
    assert result.addons == ("heroku-postgresql:mini", "heroku-redis:mini")
    assert result.buildpacks == ("runtime", "app")
    assert (result.buildpack, result.framework) == ("app", "App")
    assert not (first / "export").exists()  # the original buildpack is untouched
    start = lines.index("-----> Using buildpacks:")
    assert lines[start : start + 3] == [
        "-----> Using buildpacks:",
        "       1. runtime",
        "       2. app",
    ]
    assert lines.index("-----> Runtime app detected") < lines.index("-----> App app detected")
    assert (
        "-----> Add-ons requested by the buildpack: heroku-postgresql:mini, heroku-redis:mini"
        in lines
    )
    assert any("provisioned on the first deploy once add-ons exist" in line for line in lines)


def test_an_explicit_buildpack_that_does_not_detect_fails_the_build(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": "web: x\n"})
    declines = write_buildpack(tmp_path / "picky", {"detect": "exit 1\n", "compile": "true\n"})

    with pytest.raises(DetectError) as caught:
        pipeline.run(
            "app-1", source, {}, None, BuildOutput(), [ProcfileBuildpack(), ClassicBuildpack(declines)],
            explicit=True,
        )  # fmt: skip

    assert caught.value.message.startswith(
        "App not compatible with buildpack: picky (it looks for what its bin/detect accepts)"
    )


def test_without_a_detectable_app_the_message_names_what_was_looked_for(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = write_tree(tmp_path / "src", {"README.md": "hello\n"})

    with pytest.raises(DetectError) as caught:
        pipeline.run("app-1", source, {}, None, BuildOutput(), builtin_buildpacks())

    message = caught.value.message
    assert message.startswith("No buildpack recognised the app: ")
    assert "dockyard/procfile looks for a Procfile in the repository root" in message
    assert "No Procfile found" in message


def test_slugignore_removes_paths_before_compile(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(
        tmp_path / "src",
        {
            "Procfile": "web: x\n",
            ".slugignore": "# big things\n*.psd\n/docs\ntests/\n!keep.psd\nsrc/**/*.tmp\n",
            "art/logo.psd": "x",
            "keep.psd": "x",
            "docs/index.md": "x",
            "lib/docs/kept.md": "x",
            "tests/test_a.py": "x",
            "lib/tests": "a file, not a directory",
            "src/a/b/c.tmp": "x",
            "src/a/b/c.py": "x",
        },
    )
    buildpack = write_buildpack(
        tmp_path / "bp",
        {"detect": "echo Shell\n", "compile": 'cd "$1" && find . -type f | sort > ../seen\n'
         'mv ../seen "$1/seen"\n'},
    )  # fmt: skip
    lines: list[str] = []

    result = pipeline.run(
        "app-1", source, {}, None, BuildOutput(lines.append), [ClassicBuildpack(buildpack)]
    )

    seen = (_unpack(slugs, result.digest, tmp_path / "slug") / "seen").read_text().split()
    assert seen == [
        "./.slugignore",
        "./Procfile",
        "./lib/docs/kept.md",
        "./lib/tests",
        "./src/a/b/c.py",
    ]
    assert (source / "docs" / "index.md").exists()  # the source itself is untouched
    assert any("'!keep.psd' ignored — negation (!) is not supported" in line for line in lines)


def test_a_slug_over_the_size_limit_is_refused_before_it_is_stored(
    tmp_path: Path, slugs: SlugStore
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": "web: x\n"})
    buildpack = write_buildpack(
        tmp_path / "bp",
        {"detect": "echo Shell\n", "compile": 'head -c 300000 /dev/urandom > "$1/blob"\n'},
    )
    pipeline = BuildPipeline(
        slugs, tmp_path / "work", tmp_path / "cache", 30,
        settings=BuildSettings(max_slug_bytes=100_000),
    )  # fmt: skip

    with pytest.raises(BuildError) as caught:
        pipeline.run("app-1", source, {}, None, BuildOutput(), [ClassicBuildpack(buildpack)])

    assert caught.value.message.startswith("Compiled slug size: ")
    assert "is too large (max is 97.7K)" in caught.value.message
    assert "DOCKYARD_BUILD_MAX_SLUG_BYTES" in caught.value.message
    assert slugs.digests() == set()
    assert list((tmp_path / "work").glob("build-*")) == []


def test_a_broken_export_file_fails_the_build_naming_the_buildpack(
    tmp_path: Path, pipeline: BuildPipeline
) -> None:
    source = write_tree(tmp_path / "src", {"Procfile": "web: x\n"})
    broken = write_buildpack(
        tmp_path / "broken",
        {"detect": "echo Shell\n", "compile": BP_DIR + 'echo "if then fi (" > "$bp_dir/export"\n'},
    )

    with pytest.raises(BuildError, match="Buildpack broken: its export file could not be sourced"):
        pipeline.run("app-1", source, {}, None, BuildOutput(), [ClassicBuildpack(broken)])
