"""Buildpack references: aliases of the built-ins, URLs, and the operator's local directory."""

from __future__ import annotations

import pytest

from dockyard.control.buildpacks import (
    MAX_BUILDPACKS,
    canonical_buildpack,
    canonical_list,
    local_buildpacks_dir,
)
from dockyard.errors import InvalidError
from dockyard.settings import Settings


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("heroku/python", "heroku/python"),
        ("Python", "heroku/python"),
        ("urn:buildpack:heroku/nodejs", "heroku/nodejs"),
        ("https://github.com/heroku/heroku-buildpack-nodejs.git", "heroku/nodejs"),
        ("https://codon-buildpacks.s3.amazonaws.com/buildpacks/heroku/static.tgz", "heroku/static"),
        ("heroku-community/static", "heroku/static"),
        ("procfile", "dockyard/procfile"),
        ("dockyard/python", "heroku/python"),
    ],
)
def test_builtin_aliases(reference: str, expected: str, settings: Settings) -> None:
    assert canonical_buildpack(reference, settings) == (expected, expected)


def test_urls_keep_their_text_and_get_a_short_name(settings: Settings) -> None:
    assert canonical_buildpack(" https://example.com/bps/ffmpeg.tgz ", settings) == (
        "https://example.com/bps/ffmpeg.tgz",
        "ffmpeg",
    )
    assert canonical_buildpack("http://git.example.com/", settings) == (
        "http://git.example.com/",
        "git.example.com",
    )


def test_local_paths_are_normalised_inside_the_operator_directory(settings: Settings) -> None:
    root = local_buildpacks_dir(settings)
    (root / "bp").mkdir(parents=True)
    assert canonical_buildpack(f"{root}//bp/", settings) == (f"{root}/bp", "bp")
    with pytest.raises(InvalidError, match="operator's buildpack directory"):
        canonical_buildpack(f"{root}/bp/../../slugs", settings)
    with pytest.raises(InvalidError, match="names a path on this server"):
        canonical_buildpack(f"file://otherhost{root}/bp", settings)


def test_lists_are_limited(settings: Settings) -> None:
    urls = [f"https://example.com/bp{i}.git" for i in range(MAX_BUILDPACKS + 1)]
    with pytest.raises(InvalidError, match=f"at most {MAX_BUILDPACKS} buildpacks"):
        canonical_list(urls, settings)
    assert len(canonical_list(urls[:-1], settings)) == MAX_BUILDPACKS
