"""ProcfileBuildpack: detects a Procfile, validates it, declares no defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.buildpack import BuildEnv
from dockyard.build.buildpacks.procfile import ProcfileBuildpack, load_procfile
from dockyard.build.output import BuildOutput
from dockyard.errors import ProcfileError


def test_detects_only_a_procfile_in_the_root(tmp_path: Path) -> None:
    buildpack = ProcfileBuildpack()
    assert buildpack.detect(tmp_path) is None
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Procfile").write_text("web: x\n")
    assert buildpack.detect(tmp_path) is None
    (tmp_path / "Procfile").write_text("web: x\n")
    assert buildpack.detect(tmp_path) == "Procfile"


def test_compile_reports_the_procfile_error_unchanged(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: x\nweb: y\n")
    with pytest.raises(ProcfileError) as caught:
        ProcfileBuildpack().compile(
            tmp_path, tmp_path, tmp_path, BuildOutput(), BuildEnv("heroku-24", None)
        )
    assert caught.value.message.startswith('Procfile line 2: process type "web" is defined twice')


def test_release_declares_no_default_process_types(tmp_path: Path) -> None:
    assert dict(ProcfileBuildpack().release(tmp_path).default_process_types) == {}


def test_an_oversized_procfile_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("# padding\n" * 10_000)
    with pytest.raises(ProcfileError, match="larger than"):
        load_procfile(tmp_path)
