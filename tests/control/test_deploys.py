"""deploy_push: pushed refs → build record → slug → release, called directly with a real git
repository (the git HTTP tests cover the same path through the pre-receive hook)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.audit.writer import AuditWriter
from dockyard.build.buildpacks import ClassicBuildpack, ProcfileBuildpack
from dockyard.build.output import BuildOutput
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.deploys import BuildLock, deploy_push, deployable_ref, export_commit
from dockyard.control.releases import append_release
from dockyard.errors import (
    CompileError,
    ConflictError,
    DetectError,
    NotFoundError,
    ProcfileError,
    PushRejectedError,
)
from dockyard.settings import Settings
from dockyard.slug.image import extract_image
from dockyard.store.records import App
from tests.conftest import make_settings

ZERO = "0" * 40
PROCFILE = "web: python3 -m http.server $PORT\n"


class Repo:
    """A plain repository to commit in; ``git archive`` reads it like the bare one a push fills."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "Dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
        }
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str, stdin: bytes | None = None) -> str:
        return proc.run(["git", *args], cwd=self.path, env=self.env, input=stdin).text.strip()

    def commit(self, files: dict[str, str], links: dict[str, str] | None = None) -> str:
        for name, content in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(content, encoding="utf-8")
        for name, target in (links or {}).items():
            (self.path / name).symlink_to(target)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", "change")
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("shipit", owner.account.id, STACK)
        append_release(
            tx, created, slug_id=None, config={}, description="Initial release", user=owner.account
        )
    return created


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def _versions(platform: Platform, app: App) -> list[int]:
    with platform.store.read() as tx:
        return [r.version for r in tx.list_releases(app.id)]


def test_a_push_to_main_releases_a_new_slug(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    sha = repo.commit({"Procfile": PROCFILE})
    lines: list[str] = []

    release = deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, sha, "refs/heads/main")],
        repo.path,
        BuildOutput(lines.append),
    )

    assert release.version == 2
    assert release.description == f"Deploy {sha[:8]}"
    assert lines[-3:] == [
        "-----> Launching...",
        "       Released v2",
        f"       {platform.settings.app_url('shipit')} deployed to Dockyard",
    ]
    with platform.store.read() as tx:
        assert tx.current_release(app.id) == release
        [build] = tx.list_builds(app.id)
        assert release.slug_id is not None
        slug = tx.get_slug(release.slug_id)
    assert (build.status, build.source_version, build.release_id) == ("succeeded", sha, release.id)
    assert build.output.endswith("deployed to Dockyard\n")
    assert slug.commit == sha and slug.stack == STACK
    assert dict(slug.process_types) == {"web": "python3 -m http.server $PORT"}
    messages = [line.message for line in platform.logs.tail(app.id, 10)]
    assert messages[-2:] == [
        f"Deploy {sha[:8]} by owner@example.com",
        "Release v2 created by owner@example.com",
    ]
    scratch = [p for p in platform.settings.build_dir.iterdir() if p.name != "locks"]
    assert scratch == []  # sources and build directories are gone


def test_the_build_sees_the_app_config_and_the_release_carries_it(
    platform: Platform, app: App, owner: NewUser, repo: Repo, tmp_path: Path
) -> None:
    with platform.store.transaction() as tx:
        tx.replace_config(app.id, {"GREETING": "hello"})
    buildpack = tmp_path / "bp"
    (buildpack / "bin").mkdir(parents=True)
    for name, body in {"detect": "echo Shell", "compile": 'cp "$3/GREETING" "$1/greeting"'}.items():
        (buildpack / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (buildpack / "bin" / name).chmod(0o755)
    sha = repo.commit({"Procfile": PROCFILE})

    release = deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, sha, "refs/heads/master")],
        repo.path,
        BuildOutput(),
        buildpacks=[ClassicBuildpack(buildpack), ProcfileBuildpack()],
    )

    assert release.config == {"GREETING": "hello"}
    with platform.store.read() as tx:
        assert release.slug_id is not None
        digest = tx.get_slug(release.slug_id).digest
    extract_image(platform.slugs.get(digest), tmp_path / "slug")
    assert (tmp_path / "slug" / "greeting").read_text() == "hello"


def test_a_failed_build_is_recorded_and_the_current_release_stays(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    good = repo.commit({"Procfile": PROCFILE})
    first = deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, good, "refs/heads/main")],
        repo.path,
        BuildOutput(),
    )
    bad = repo.commit({"Procfile": "web:\n"})
    lines: list[str] = []

    with pytest.raises(ProcfileError):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [(good, bad, "refs/heads/main")],
            repo.path,
            BuildOutput(lines.append),
        )

    assert lines[-1].startswith(' !     Procfile line 1: "web" has no command')
    with platform.store.read() as tx:
        assert tx.current_release(app.id) == first
        builds = tx.list_builds(app.id)
    statuses = {b.source_version: b.status for b in builds}
    assert statuses == {good: "succeeded", bad: "failed"}
    [failed] = [b for b in builds if b.status == "failed"]
    assert "Procfile line 1" in failed.output
    assert _versions(platform, app) == [1, 2]


@pytest.mark.parametrize(
    ("ref", "new", "message"),
    [
        (
            "refs/heads/dev",
            "b" * 40,
            "Pushed to refs/heads/dev: only main or master deploy. "
            "Push with `git push dockyard dev:main`",
        ),
        ("refs/tags/v1", "b" * 40, "Pushed to refs/tags/v1: only main or master deploy"),
        ("refs/heads/main", ZERO, "Deleting refs/heads/main is not allowed"),
    ],
)
def test_refs_that_do_not_deploy_are_refused_before_any_build(
    platform: Platform, app: App, owner: NewUser, repo: Repo, ref: str, new: str, message: str
) -> None:
    lines: list[str] = []
    with pytest.raises(PushRejectedError, match=re.escape(message)):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [("a" * 40, new, ref)],
            repo.path,
            BuildOutput(lines.append),
        )
    assert lines[0].startswith(" !     ")
    with platform.store.read() as tx:
        assert tx.list_builds(app.id) == []


def test_main_and_master_in_one_push_is_refused() -> None:
    with pytest.raises(PushRejectedError, match="both main and master"):
        deployable_ref([(ZERO, "a" * 40, "refs/heads/main"), (ZERO, "a" * 40, "refs/heads/master")])


def test_someone_without_access_cannot_deploy(platform: Platform, app: App, repo: Repo) -> None:
    stranger = create_user(platform, "stranger@example.com")
    sha = repo.commit({"Procfile": PROCFILE})
    with pytest.raises(NotFoundError):
        deploy_push(
            platform,
            app.id,
            stranger.account.id,
            [(ZERO, sha, "refs/heads/main")],
            repo.path,
            BuildOutput(),
        )
    assert _versions(platform, app) == [1]


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "sub/../../x"])
def test_links_pointing_outside_the_repository_are_refused(
    repo: Repo, tmp_path: Path, target: str
) -> None:
    sha = repo.commit({"Procfile": PROCFILE}, links={"evil": target})
    with pytest.raises(PushRejectedError, match="points outside the repository"):
        export_commit(repo.path, sha, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists()


def test_links_inside_the_repository_are_kept(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit({"Procfile": PROCFILE, "lib/a.txt": "a"}, links={"current": "lib/a.txt"})
    export_commit(repo.path, sha, tmp_path / "out", max_bytes=1 << 20)
    assert os.readlink(tmp_path / "out" / "current") == "lib/a.txt"
    assert (tmp_path / "out" / "current").read_text() == "a"


def test_a_tree_larger_than_the_limit_is_refused(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit({"Procfile": PROCFILE, "big.txt": "x" * 5000})
    with pytest.raises(PushRejectedError, match=r"larger than 4\.0K unpacked"):
        export_commit(repo.path, sha, tmp_path / "out", max_bytes=4096)
    assert not (tmp_path / "out").exists()


def test_a_tree_with_a_dot_dot_path_is_refused(repo: Repo, tmp_path: Path) -> None:
    blob = repo.git("hash-object", "-w", "--stdin", stdin=b"evil\n")
    inner = repo.git("mktree", stdin=f"100644 blob {blob}\tevil\n".encode())
    tree = repo.git("mktree", stdin=f"040000 tree {inner}\t..\n".encode())
    sha = repo.git("commit-tree", tree, "-m", "evil")
    with pytest.raises(PushRejectedError):
        export_commit(repo.path, sha, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "evil").exists()


def test_a_second_push_while_a_build_runs_is_refused(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    sha = repo.commit({"Procfile": PROCFILE})
    running = BuildLock(platform.settings.build_dir / "locks" / f"{app.id}.lock", app.name)
    running.acquire()
    lines: list[str] = []
    try:
        with pytest.raises(ConflictError):
            deploy_push(
                platform,
                app.id,
                owner.account.id,
                [(ZERO, sha, "refs/heads/main")],
                repo.path,
                BuildOutput(lines.append),
            )
    finally:
        running.release()

    assert lines == [" !     Another build of shipit is running; push again when it has finished"]
    with platform.store.read() as tx:
        assert tx.list_builds(app.id) == []
    release = deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, sha, "refs/heads/main")],
        repo.path,
        BuildOutput(),
    )
    assert release.version == 2


def test_a_pusher_who_hangs_up_gets_no_release_and_a_failed_build(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    sha = repo.commit({"Procfile": PROCFILE})

    def hung_up(line: str) -> None:
        if "Launching" in line or line.startswith(" !"):
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [(ZERO, sha, "refs/heads/main")],
            repo.path,
            BuildOutput(hung_up),
        )

    assert _versions(platform, app) == [1]
    with platform.store.read() as tx:
        [build] = tx.list_builds(app.id)
    assert build.status == "failed"
    assert "Internal error while building" in build.output


# Hostile repositories: each is refused with its message and leaves nothing behind.


def _fast_import(repo: Repo, path: bytes, content: bytes = b"x\n") -> str:
    stream = (
        b"commit refs/heads/hostile\ncommitter Dev <dev@example.com> 0 +0000\ndata 7\nhostile\n"
        b"M 100644 inline "
        + path
        + b"\ndata "
        + str(len(content)).encode()
        + b"\n"
        + content
        + b"\n"
    )
    proc.run(["git", "fast-import", "--quiet"], cwd=repo.path, env=repo.env, input=stream)
    return repo.git("rev-parse", "refs/heads/hostile")


def _export_refused(repo: Repo, sha: str, tmp_path: Path, **limits: int) -> str:
    area = tmp_path / "area"
    area.mkdir()
    with pytest.raises(PushRejectedError) as caught:
        export_commit(repo.path, sha, area / "src", max_bytes=limits.get("max_bytes", 1 << 20),
                      max_files=limits.get("max_files", 100_000))  # fmt: skip
    assert list(area.iterdir()) == []
    return caught.value.message


def test_a_directory_10000_levels_deep_is_refused(repo: Repo, tmp_path: Path) -> None:
    sha = _fast_import(repo, b"/".join([b"d"] * 10_000) + b"/f")
    message = _export_refused(repo, sha, tmp_path)
    # git archive overflows its stack on such a tree; either way the message names the limit.
    assert "nest" in message
    assert "more than 100 levels deep" in message


def test_a_directory_deeper_than_the_limit_is_refused(repo: Repo, tmp_path: Path) -> None:
    sha = _fast_import(repo, b"/".join([b"d"] * 150) + b"/f")
    message = _export_refused(repo, sha, tmp_path)
    assert message.startswith("The repository nests directories more than 100 levels deep")


def test_a_file_name_that_is_not_utf8_is_refused(repo: Repo, tmp_path: Path) -> None:
    sha = _fast_import(repo, b"caf\xe9.txt")
    message = _export_refused(repo, sha, tmp_path)
    assert message.startswith(
        "The repository contains a file name that is not valid UTF-8: 'caf\\xe9.txt'"
    )


def test_a_decompression_bomb_is_refused_on_its_declared_size(repo: Repo, tmp_path: Path) -> None:
    sha = _fast_import(repo, b"zeros", bytes(8 << 20))  # 8 MB that git stores in a few KB
    message = _export_refused(repo, sha, tmp_path)
    assert message.startswith("The repository is larger than 1.0M unpacked, the limit for a build")


def test_git_archive_itself_cannot_write_past_the_limit(repo: Repo, tmp_path: Path) -> None:
    sha = _fast_import(repo, b"zeros", bytes(8 << 20))
    message = _export_refused(repo, sha, tmp_path, max_files=1)
    assert message.startswith("The repository is larger than 1.0M unpacked")


def test_a_repository_without_a_detectable_app_names_what_was_looked_for(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    sha = repo.commit({"README.md": "just words\n"})
    lines: list[str] = []

    with pytest.raises(DetectError):
        deploy_push(
            platform, app.id, owner.account.id, [(ZERO, sha, "refs/heads/main")], repo.path,
            BuildOutput(lines.append),
        )  # fmt: skip

    assert any(line.startswith(" !     No buildpack recognised the app: ") for line in lines)
    assert any("looks for a Procfile in the repository root" in line for line in lines)
    with platform.store.read() as tx:
        [build] = tx.list_builds(app.id)
    assert build.status == "failed"
    assert _versions(platform, app) == [1]


@pytest.fixture
def reachable(tmp_path: Path) -> Iterator[Path]:
    """A data directory that build users can reach, so that builds run as one (pytest's own
    temporary directories are closed to other users)."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-deploys-"))
    base.chmod(0o711)
    try:
        yield base / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="build users need root")
@pytest.mark.parametrize(
    ("compile_body", "message"),
    [
        (
            "python3 -c 'import os\nwhile True:\n  try: os.fork()\n  except OSError: pass'\n",
            "was stopped: it ran 32 processes and threads at once",
        ),
        (
            'i=0\nwhile :; do head -c 65536 /dev/zero > "$1/f$i"; i=$((i + 1)); done\n',
            "was stopped: the build used more than 2.0M of disk space",
        ),
    ],
    ids=["fork-bomb", "disk-filler"],
)
def test_a_hostile_buildpack_is_stopped_and_the_current_release_stays(
    reachable: Path,
    repo: Repo,
    tmp_path: Path,
    compile_body: str,
    message: str,
    start_audit_writer: Callable[[Settings], AuditWriter],
) -> None:
    settings = make_settings(
        reachable, DOCKYARD_BUILD_MAX_PROCESSES="32", DOCKYARD_BUILD_DISK_BYTES=str(2 << 20)
    )
    start_audit_writer(settings)
    platform = Platform.open(settings)
    try:
        owner = create_user(platform, "owner@example.com")
        with platform.store.transaction() as tx:
            app = tx.create_app("shipit", owner.account.id, STACK)
            append_release(tx, app, slug_id=None, config={}, description="Initial release",
                           user=owner.account)  # fmt: skip
        buildpack = tmp_path / "hostile"
        (buildpack / "bin").mkdir(parents=True)
        for name, body in {"detect": "echo Hostile\n", "compile": compile_body}.items():
            (buildpack / "bin" / name).write_text(f"#!/bin/sh\n{body}")
            (buildpack / "bin" / name).chmod(0o755)
        sha = repo.commit({"Procfile": PROCFILE})
        lines: list[str] = []

        with pytest.raises(CompileError):
            deploy_push(
                platform, app.id, owner.account.id, [(ZERO, sha, "refs/heads/main")], repo.path,
                BuildOutput(lines.append), buildpacks=[ClassicBuildpack(buildpack)],
            )  # fmt: skip

        assert any(message in line for line in lines)
        assert not any("run as root" in line for line in lines)
        assert _versions(platform, app) == [1]
        leftovers = [
            p.name for p in settings.build_dir.iterdir() if p.name not in ("locks", "uids")
        ]
        assert leftovers == []
    finally:
        platform.close()
