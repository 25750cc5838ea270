"""Helpers for build tests: source trees and tiny classic buildpacks written as shell scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.pipeline import BuildPipeline
from dockyard.slug.store import SlugStore


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return root


def write_buildpack(root: Path, scripts: dict[str, str]) -> Path:
    """A classic buildpack: ``scripts`` maps ``detect``/``compile``/``release`` to shell bodies."""
    (root / "bin").mkdir(parents=True)
    for name, body in scripts.items():
        path = root / "bin" / name
        path.write_text("#!/bin/sh\nset -e\n" + body, encoding="utf-8")
        path.chmod(0o755)
    return root


@pytest.fixture
def slugs(tmp_path: Path) -> SlugStore:
    return SlugStore(tmp_path / "slugs")


@pytest.fixture
def pipeline(tmp_path: Path, slugs: SlugStore) -> BuildPipeline:
    return BuildPipeline(slugs, tmp_path / "work", tmp_path / "cache", compile_timeout=30)
