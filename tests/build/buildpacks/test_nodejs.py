"""NodejsBuildpack: engines.node ranges, package.json errors, default web process, and a real
``npm ci`` + build through the pipeline whose slug serves after being moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.build.buildpacks import builtin_buildpacks
from dockyard.build.buildpacks.nodejs import NodejsBuildpack, check_engine, read_package, satisfies
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline
from dockyard.build.stack import HostStack
from dockyard.errors import CompileError
from dockyard.slug.store import SlugStore
from tests.build.buildpacks.conftest import copy_app, dyno, get, unpack_moved
from tests.build.conftest import write_tree

SHA = "c" * 40


@pytest.mark.parametrize(
    ("version", "text", "expected"),
    [
        ((20, 11, 1), "20.11.1", True),
        ((20, 11, 1), "v20.11.0", False),
        ((20, 11, 1), "20", True),
        ((20, 11, 1), "20.x", True),
        ((20, 11, 1), "20.*", True),
        ((20, 11, 1), "18.x", False),
        ((20, 11, 1), "^20.10", True),
        ((20, 11, 1), "^18.0.0", False),
        ((0, 2, 5), "^0.2.3", True),
        ((0, 3, 0), "^0.2.3", False),
        ((20, 11, 1), "~20.11.0", True),
        ((20, 12, 0), "~20.11.0", False),
        ((20, 11, 1), ">=18", True),
        ((20, 11, 1), ">= 18 <20", False),
        ((20, 11, 1), ">20", False),
        ((21, 0, 0), ">20", True),
        ((20, 11, 1), "<=20", True),
        ((20, 11, 1), "<20.11", False),
        ((20, 11, 1), "16 || 18 || 20", True),
        ((20, 11, 1), "18 - 20", True),
        ((21, 0, 0), "18 - 20", False),
        ((20, 11, 1), "18.0.0 - 20.10.0", False),
        ((20, 11, 1), "*", True),
        ((20, 11, 1), "", True),
    ],
)
def test_semver_ranges(version: tuple[int, int, int], text: str, expected: bool) -> None:
    assert satisfies(version, text) is expected


def test_an_unsatisfied_engine_names_the_stacks_node() -> None:
    with pytest.raises(CompileError) as caught:
        check_engine("22.x", (20, 11, 1))
    assert caught.value.message == (
        'package.json asks for Node.js "22.x" (engines.node), but this stack has Node.js 20.11.1 '
        '— set engines.node to a range that includes it, e.g. "20.x", or remove it'
    )


def test_an_unreadable_engine_range_is_an_error() -> None:
    with pytest.raises(CompileError, match=r'engines\.node "lts/iron" is not a version range'):
        check_engine("lts/iron", (20, 11, 1))


def test_invalid_package_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{\n  "name": "x",\n}\n')
    with pytest.raises(CompileError, match=r"package.json is not valid JSON \(line 3"):
        read_package(tmp_path)


def test_detects_package_json_only(tmp_path: Path) -> None:
    assert NodejsBuildpack().detect(tmp_path) is None
    (tmp_path / "package.json").write_text("{}")
    assert NodejsBuildpack().detect(tmp_path) == "Node.js"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"package.json": json.dumps({"scripts": {"start": "node a.js"}})}, {"web": "npm start"}),
        ({"package.json": "{}", "server.js": ""}, {"web": "npm start"}),
        ({"package.json": json.dumps({"scripts": {"build": "x"}})}, {}),
    ],
)
def test_web_is_npm_start_when_there_is_something_to_start(
    tmp_path: Path, files: dict[str, str], expected: dict[str, str]
) -> None:
    write_tree(tmp_path, files)
    assert dict(NodejsBuildpack().release(tmp_path).default_process_types) == expected


def test_an_engine_the_stack_lacks_fails_the_build(tmp_path: Path, pipeline: BuildPipeline) -> None:
    node = HostStack().node()
    if node is None:
        pytest.skip("no Node.js on this machine")
    write_tree(tmp_path / "src", {"package.json": json.dumps({"engines": {"node": "<1"}})})
    with pytest.raises(CompileError) as caught:
        pipeline.run("n", tmp_path / "src", {}, SHA, BuildOutput(), builtin_buildpacks())
    assert f"this stack has Node.js {node.label}" in caught.value.message


def test_npm_ci_build_and_start_from_a_moved_slug(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    if HostStack().node() is None:
        pytest.skip("no Node.js on this machine")
    source = copy_app("is-number", tmp_path / "src")
    lines: list[str] = []

    result = pipeline.run(
        "n", source, {"GREETING": "hi"}, SHA, BuildOutput(lines.append), builtin_buildpacks()
    )

    assert result.framework == "Node.js"
    assert result.process_types == {"web": "npm start"}
    assert "       Installing node modules (package-lock.json)" in lines
    assert "       Running build" in lines
    assert (tmp_path / "src" / "node_modules").exists() is False  # the source is left alone
    slug = unpack_moved(slugs, result.digest, tmp_path)
    assert (slug / "node_modules" / "is-number" / "package.json").is_file()
    with dyno(slug, "npm start") as url:
        assert get(url) == (
            200,
            "is-number(5)=true; built with production; NODE_ENV=production",
        )
