"""resolve_buildpacks with real git repositories and a real HTTP server: built-in names, local
directories, git URLs with refs, tarball URLs, the fetch cache and its failures."""

from __future__ import annotations

import functools
import http.server
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.build.buildpack import BuildEnv, Buildpack, BuildpackRelease
from dockyard.build.buildpacks import ClassicBuildpack, ProcfileBuildpack
from dockyard.build.output import BuildOutput
from dockyard.build.sources import resolve_buildpacks
from dockyard.errors import BuildError
from tests.build.conftest import write_buildpack

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


class Python:
    """Stands in for the built-in Python buildpack (only its name matters here)."""

    name = "heroku/python"

    def detect(self, build_dir: Path) -> str | None:
        return None

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        raise AssertionError("not built here")

    def release(self, build_dir: Path) -> BuildpackRelease:
        return BuildpackRelease()


BUILTINS: list[Buildpack] = [Python(), ProcfileBuildpack()]


def _git(repo: Path, *args: str) -> str:
    return proc.run(["git", *args], cwd=repo, env={**GIT_ENV, "HOME": str(repo)}).text.strip()


def _repo(path: Path, version: str) -> Path:
    write_buildpack(path, {"detect": "echo Shell\n", "compile": f"echo {version}\n"})
    _git(path, "init", "--quiet", "--initial-branch=main")
    _git(path, "add", "--all")
    _git(path, "commit", "--quiet", "-m", version)
    return path


def _resolve(
    refs: list[str],
    cache: Path,
    lines: list[str],
    *,
    refresh_after: float = 3600,
    max_bytes: int = 100 << 20,
) -> list[Buildpack]:
    output = BuildOutput(lines.append)
    return resolve_buildpacks(
        refs, cache, output, builtins=BUILTINS, refresh_after=refresh_after, max_bytes=max_bytes
    )


def _classic(buildpack: Buildpack) -> ClassicBuildpack:
    assert isinstance(buildpack, ClassicBuildpack)
    return buildpack


def _version(buildpack: Buildpack) -> str:
    return (_classic(buildpack).path / "bin" / "compile").read_text().split("echo ")[1].strip()


def test_built_in_buildpacks_are_found_by_name_alias_and_heroku_url(tmp_path: Path) -> None:
    refs = [
        "heroku/python",
        "python",
        "urn:buildpack:heroku/python",
        "https://github.com/heroku/heroku-buildpack-python.git",
        "https://buildpack-registry.s3.amazonaws.com/buildpacks/heroku/python.tgz",
        "dockyard/procfile",
    ]
    found = _resolve(refs, tmp_path / "cache", [])
    assert found == [*[BUILTINS[0]] * 5, BUILTINS[1]]
    assert not (tmp_path / "cache").exists()  # nothing fetched


def test_a_local_directory_is_used_in_place_and_must_be_a_buildpack(tmp_path: Path) -> None:
    good = write_buildpack(tmp_path / "good", {"detect": "true\n", "compile": "true\n"})
    [buildpack] = _resolve([str(good)], tmp_path / "cache", [])
    assert isinstance(buildpack, ClassicBuildpack)
    assert (buildpack.path, buildpack.name) == (good, str(good))

    half = write_buildpack(tmp_path / "half", {"detect": "true\n"})
    with pytest.raises(BuildError) as caught:
        _resolve([f"file://{half}"], tmp_path / "cache", [])
    assert "is not a classic buildpack: it has no bin/compile" in caught.value.message


def test_a_git_url_is_cloned_at_its_ref_cached_and_refreshed(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "one")
    _git(repo, "tag", "v1")
    first_sha = _git(repo, "rev-parse", "HEAD")
    (repo / "bin" / "compile").write_text("#!/bin/sh\necho two\n")
    _git(repo, "commit", "--quiet", "-am", "two")
    cache = tmp_path / "cache"
    lines: list[str] = []

    tagged, by_sha, head = _resolve(
        [f"file://{repo}#v1", f"file://{repo}#{first_sha}", f"file://{repo}"], cache, lines
    )

    assert [_version(tagged), _version(by_sha), _version(head)] == ["one", "one", "two"]
    assert not (_classic(head).path / ".git").exists()
    assert head.name == f"file://{repo}"
    assert lines.count(f"-----> Fetching buildpack file://{repo}") == 1

    lines.clear()
    [again] = _resolve([f"file://{repo}"], cache, lines)
    assert (_classic(again).path, lines) == (_classic(head).path, [])

    (repo / "bin" / "compile").write_text("#!/bin/sh\necho three\n")
    _git(repo, "commit", "--quiet", "-am", "three")
    [fresh] = _resolve([f"file://{repo}"], cache, lines, refresh_after=0)
    assert _version(fresh) == "three"


def test_a_failed_refresh_falls_back_to_the_cached_copy_with_a_warning(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "one")
    cache = tmp_path / "cache"
    _resolve([f"file://{repo}"], cache, [])
    proc.run(["rm", "-rf", repo])
    lines: list[str] = []

    [buildpack] = _resolve([f"file://{repo}"], cache, lines, refresh_after=0)

    assert _version(buildpack) == "one"
    assert any(
        line.startswith(f" !     Buildpack file://{repo} could not be fetched") for line in lines
    )
    assert lines[-1] == " !     Using the copy fetched earlier."


def test_fetch_failures_name_the_buildpack(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(
        BuildError, match=r"^Buildpack file:///nowhere could not be fetched with git"
    ):
        _resolve(["file:///nowhere"], cache, [])
    with pytest.raises(BuildError, match="only https://, http:// and file:// git URLs"):
        _resolve(["ssh://git@example.com/bp.git"], cache, [])
    with pytest.raises(BuildError, match="neither a built-in buildpack"):
        _resolve(["no-such-buildpack"], cache, [])
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "README").write_text("not a buildpack\n")
    _git(plain, "init", "--quiet")
    _git(plain, "add", "--all")
    _git(plain, "commit", "--quiet", "-m", "x")
    with pytest.raises(BuildError, match="is not a classic buildpack: it has no bin/detect"):
        _resolve([f"file://{plain}/.git"], cache, [])
    assert [p.name for p in cache.rglob(".partial-*")] == []


def test_a_repository_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "one")
    (repo / "blob").write_bytes(os.urandom(3 << 20))
    _git(repo, "add", "blob")
    _git(repo, "commit", "--quiet", "-m", "big")

    with pytest.raises(BuildError, match=r"is larger than 1\.0M, the limit for a buildpack"):
        _resolve([f"file://{repo}"], tmp_path / "cache", [], max_bytes=1 << 20)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving ``tmp_path/www``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_tarball_url_is_downloaded_and_unpacked(tmp_path: Path, served: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in {"detect": "echo Shell\n", "compile": "echo tgz\n"}.items():
            data = f"#!/bin/sh\n{body}".encode()
            info = tarfile.TarInfo(f"bp-main/bin/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "www" / "bp.tgz").write_bytes(buffer.getvalue())

    [buildpack] = _resolve([f"{served}/bp.tgz"], tmp_path / "cache", [])

    assert _version(buildpack) == "tgz"
    assert os.access(_classic(buildpack).path / "bin" / "compile", os.X_OK)
    with pytest.raises(BuildError, match="could not be downloaded"):
        _resolve([f"{served}/missing.tgz"], tmp_path / "cache", [])
