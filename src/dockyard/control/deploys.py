"""Deploys: a pushed commit → build record → buildpack build → slug → release.

``deploy_push`` runs in the API for the git ``pre-receive`` hook, which hands over the pushed refs
(``POST /internal/v1/pushes``). It reports progress and failures on the ``BuildOutput`` (the pusher
sees them as ``remote:`` lines), records the build with its output, and raises on failure so that
the hook fails and git rejects the push. A failed build never replaces the current release.

While ``pre-receive`` runs, git keeps the pushed objects in a quarantine directory of the
repository that only the hook's environment names (``GIT_OBJECT_DIRECTORY`` and friends); the hook
passes those variables on (``PushedRefs.git_env``) and the commit is exported with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import signal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockyard._util import proc
from dockyard.build.archive import HEADER_ALLOWANCE, extract_tarball
from dockyard.build.buildpack import Buildpack
from dockyard.build.buildpacks import builtin_buildpacks
from dockyard.build.isolation import BuildContainers
from dockyard.build.output import BuildOutput, human_size
from dockyard.build.pipeline import BuildPipeline
from dockyard.build.sources import resolve_buildpacks
from dockyard.build.stack import HostStack, ImageStack, Stack
from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.control.releases import (
    DeployPlan,
    complete_deploy,
    formation_notes,
    log_release,
    plan_deploy,
    record_deploy,
    record_release,
)
from dockyard.domain.releases import deploy_description
from dockyard.domain.requests import RequestContext
from dockyard.errors import (
    BuildError,
    CommandError,
    ConflictError,
    DockyardError,
    InvalidError,
    PushRejectedError,
)
from dockyard.runtime.sandbox import RuncBuildContainers
from dockyard.settings import Settings
from dockyard.store.records import Account, App, Release

DEPLOY_REFS = ("refs/heads/main", "refs/heads/master")
RefUpdate = tuple[str, str, str]
"""``(old sha, new sha, ref name)`` as git hands them to ``pre-receive``."""
GIT_OBJECT_VARS = (
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
)
"""The variables that tell git where a push's objects are while ``pre-receive`` runs."""


@dataclass(frozen=True)
class PushedRefs:
    """A push as the ``pre-receive`` hook hands it over."""

    app_id: str
    account_id: str
    refs: Sequence[RefUpdate]
    repo: Path
    """The app's bare repository (``<repos dir>/<app id>.git``)."""
    git_env: Mapping[str, str] = field(default_factory=dict)
    """``GIT_OBJECT_VARS`` of the hook: the quarantine holding the pushed objects."""


def check_push(platform: Platform, pushed: PushedRefs) -> None:
    """``InvalidError`` unless ``pushed`` names the app's own repository and git's object
    directories inside it (the hook is trusted, but no path it sends leaves the repository)."""
    repos = platform.settings.repos_dir.resolve()
    repo = pushed.repo.resolve()
    if repo.parent != repos or repo.name != f"{pushed.app_id}.git":
        raise InvalidError(f"{pushed.repo} is not the repository of app {pushed.app_id}")
    for name, value in pushed.git_env.items():
        if name not in GIT_OBJECT_VARS:
            raise InvalidError(f"{name} is not one of {', '.join(GIT_OBJECT_VARS)}")
        for part in value.split(os.pathsep) if value else ():
            path = Path(part)
            if not path.is_absolute() or not path.resolve().is_relative_to(repo):
                raise InvalidError(f"{name}: {part} is not inside {pushed.repo}")


def _is_zero(sha: str) -> bool:
    return set(sha) <= {"0"}


def _is_sha(sha: str) -> bool:
    return len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha)


def _short(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def deployable_ref(refs: Sequence[RefUpdate]) -> tuple[str, str]:
    """The one ``(ref, sha)`` to deploy; ``PushRejectedError`` for deletions, other refs, or both
    main and master in one push."""
    if not refs:
        raise PushRejectedError("Nothing was pushed")
    chosen: list[tuple[str, str]] = []
    for _old, new, ref in refs:
        if _is_zero(new):
            raise PushRejectedError(
                f"Deleting {ref} is not allowed: Dockyard keeps the branch it deploys from"
            )
        if ref not in DEPLOY_REFS:
            raise PushRejectedError(
                f"Pushed to {ref}: only main or master deploy. "
                f"Push with `git push dockyard {_short(ref)}:main`"
            )
        if not _is_sha(new):
            raise PushRejectedError(f"{new!r} is not a commit id")
        chosen.append((ref, new))
    if len(chosen) > 1:
        raise PushRejectedError(
            "Pushed to both main and master: push one of them, e.g. `git push dockyard main`"
        )
    return chosen[0]


def deploy_push(
    platform: Platform,
    app_id: str,
    user_id: str,
    refs: Sequence[RefUpdate],
    repo_path: Path,
    output: BuildOutput,
    *,
    buildpacks: Sequence[Buildpack] | None = None,
    git_env: Mapping[str, str] | None = None,
    context: RequestContext | None = None,
) -> Release:
    """Build and release the pushed commit, or report why not on ``output`` and raise.

    One build runs per app at a time: a second push while one builds is refused, so two pushes can
    never release out of order or release a commit whose ref update git then refuses. ``git_env``
    (checked by ``check_push``) locates the pushed objects when the caller is not the hook itself."""
    try:
        _ref, sha = deployable_ref(refs)
        with platform.store.read() as tx:
            account = tx.get_account(user_id)
            app = app_for(tx, account, app_id, "deploy")
        lock = build_lock(platform, app)
        lock.acquire()
    except DockyardError as exc:
        output.error(exc.message)
        raise
    try:
        with platform.store.transaction() as tx:
            build = tx.create_build(app.id, user_id=account.id, source_version=sha)
            audit.record_app_event(
                platform,
                "build.create",
                account,
                context,
                app,
                target=("build", build.id, ""),
                details={"source": "git", "version": sha},
            )
        source = platform.settings.build_dir / f"source-{uuid.uuid4().hex}"
        try:
            try:
                limits = platform.settings.build
                export_commit(
                    repo_path,
                    sha,
                    source,
                    max_bytes=limits.max_repo_bytes,
                    max_files=limits.max_source_files,
                    max_depth=limits.max_source_depth,
                    git_env=git_env,
                )
            except BaseException as exc:
                _record_failure(platform, build.id, exc, output)
                raise
            release = build_and_release(
                platform,
                app,
                source,
                user=account,
                commit=sha,
                output=output,
                buildpacks=buildpacks,
                build_id=build.id,
                lock=False,
            )
        finally:
            shutil.rmtree(source, ignore_errors=True)
    finally:
        lock.release()
    platform.log(app.id, "heroku", "api", f"Deploy {sha[:8]} by {account.email}")
    log_release(platform, app, release, account)
    return release


def build_lock(platform: Platform, app: App) -> BuildLock:
    """The lock that keeps builds of one app from running at the same time."""
    return BuildLock(platform.settings.build_dir / "locks" / f"{app.id}.lock", app.name)


def build_and_release(
    platform: Platform,
    app: App,
    source_dir: Path,
    *,
    user: Account,
    commit: str | None,
    output: BuildOutput,
    buildpacks: Sequence[Buildpack] | None = None,
    build_id: str | None = None,
    lock: bool = True,
    buildpack_urls: Sequence[str] | None = None,
) -> Release:
    """Build ``source_dir`` (an exported source tree, left untouched) into a slug and release it.

    ``buildpacks`` is the ordered list to run. Without it, ``buildpack_urls`` (the Build API's
    ``buildpacks``) are used, else the app's buildpack installations, else app.json's
    ``buildpacks``, all resolved with ``resolve_buildpacks``; with none of them the built-in
    buildpacks detect the app. With ``lock`` the app's build lock is
    taken here (``ConflictError`` when another build of the app runs); pass ``lock=False`` when
    the caller already holds ``build_lock(platform, app)``. With ``build_id`` that build record is
    finished: ``succeeded`` with its slug and release, or ``failed`` with the output and the error
    (which is also written to ``output``) — then the error is raised again. A failed build never
    replaces the current release."""
    held: BuildLock | None = None
    if lock:
        held = build_lock(platform, app)
        try:
            held.acquire()
        except DockyardError as exc:
            output.error(exc.message)
            raise
    try:
        try:
            plan = plan_deploy(platform, app, source_dir, buildpacks=buildpack_urls)
            if buildpacks is None and plan.buildpacks is not None:
                buildpacks = resolve_buildpacks(
                    plan.buildpacks,
                    platform.settings.cache_dir / "buildpacks",
                    output,
                    builtins=builtin_buildpacks(build_sandbox(platform.settings)[1]),
                )
            with platform.store.read() as tx:
                config = {**tx.get_config(app.id), **plan.env}
            release = _build_and_release(
                platform,
                app,
                user,
                build_id,
                config,
                commit,
                source_dir,
                output,
                buildpacks,
                plan,
            )
        except BaseException as exc:
            if build_id is not None:
                _record_failure(platform, build_id, exc, output)
            raise
        # The build succeeded; the release phase decides whether its release is deployed.
        return complete_deploy(platform, app, release, plan, output)
    finally:
        if held is not None:
            held.release()


def build_sandbox(settings: Settings) -> tuple[BuildContainers | None, Stack]:
    """The containers builds run in (``[build] sandbox = "runc"``), and the stack whose Pythons and
    Node.js the built-in buildpacks use: the build stack image's when the containers can run here,
    else the host's (the pipeline then runs the build in the uid sandbox and says why)."""
    if settings.build.sandbox != "runc":
        return None, HostStack()
    containers = RuncBuildContainers(settings)
    if containers.unavailable() is not None:
        return containers, HostStack()
    return containers, ImageStack(containers, settings.cache_dir / "stacks")


def _build_and_release(
    platform: Platform,
    app: App,
    account: Account,
    build_id: str | None,
    config: Mapping[str, str],
    sha: str | None,
    source: Path,
    output: BuildOutput,
    buildpacks: Sequence[Buildpack] | None,
    plan: DeployPlan,
) -> Release:
    settings = platform.settings
    containers, stack = build_sandbox(settings)
    pipeline = BuildPipeline(
        platform.slugs,
        settings.build_dir,
        settings.cache_dir,
        settings.build.compile_timeout,
        settings=settings.build,
        containers=containers,
    )
    result = pipeline.run(
        app.id,
        source,
        config,
        sha,
        output,
        builtin_buildpacks(stack) if buildpacks is None else buildpacks,
        stack=app.stack,
        explicit=buildpacks is not None,  # an app's own list runs whole; the built-ins detect
    )
    with platform.store.transaction() as tx:
        slug = tx.create_slug(
            app.id,
            digest=result.digest,
            size=result.size,
            process_types=result.process_types,
            commit=sha,
            stack=app.stack,
        )
        release = record_deploy(  # with the newest config, should it have changed meanwhile
            tx, app, plan, slug_id=slug.id, description=deploy_description(sha), user=account
        )
        record_release(platform, account, None, app, release)
        for note in formation_notes(plan, result.process_types):
            output.detail(note)
        output.heading("Launching...")
        if release.status == "pending":
            output.error(
                "Release command declared: this new release will not be available until the "
                "command succeeds."
            )
        output.detail(f"Released v{release.version}")
        output.detail(f"{settings.app_url(app.name)} deployed to Dockyard")
        if build_id is not None:
            tx.finish_build(
                build_id,
                status="succeeded",
                output=output.text,
                slug_id=slug.id,
                release_id=release.id,
            )
    return release


def _record_failure(
    platform: Platform, build_id: str, exc: BaseException, output: BuildOutput
) -> None:
    message = exc.message if isinstance(exc, DockyardError) else "Internal error while building"
    with contextlib.suppress(OSError):  # the pusher may be gone; the record still gets the line
        output.error(message)
    with platform.store.transaction() as tx:
        tx.finish_build(build_id, status="failed", output=output.text)


class BuildLock:
    """An exclusive, non-blocking lock per app (``flock``), released when its holder exits."""

    def __init__(self, path: Path, app_name: str) -> None:
        self.path = path
        self.app_name = app_name
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConflictError(
                f"Another build of {self.app_name} is running; push again when it has finished"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def export_commit(
    repo: Path,
    sha: str,
    target: Path,
    *,
    max_bytes: int,
    max_files: int = 100_000,
    max_depth: int = 100,
    git_env: Mapping[str, str] | None = None,
) -> None:
    """Write the tree of commit ``sha`` into ``target`` (created, mode 0700), refusing what
    ``extract_tarball`` refuses — paths that leave the tree, links pointing outside it, special
    files, invalid UTF-8 names, too deep or too many entries, more than ``max_bytes`` unpacked —
    as ``PushRejectedError``. ``git archive`` itself may not write more than the limit allows;
    ``git_env`` (``GIT_OBJECT_VARS``) points it at a push's quarantined objects."""
    if not _is_sha(sha):
        raise PushRejectedError(f"{sha!r} is not a commit id")
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.with_name(target.name + ".tar")
    os.close(os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    too_large = (
        f"The repository is larger than {human_size(max_bytes)} unpacked, the limit for a build "
        "— remove large files from it (keep data in an add-on or object storage)"
    )
    try:
        try:
            proc.run(
                ["git", "archive", "--format=tar", f"--output={archive}", sha],
                cwd=repo,
                env=_git_environment(git_env) if git_env else None,
                limits=[(resource.RLIMIT_FSIZE, max_bytes + (max_files + 2) * HEADER_ALLOWANCE)],
            )
        except CommandError as exc:
            if exc.returncode == -signal.SIGXFSZ:
                raise PushRejectedError(too_large) from exc
            if exc.returncode is not None and exc.returncode < 0:  # git itself crashed
                raise PushRejectedError(
                    f"Commit {sha[:8]} could not be exported: git archive crashed "
                    f"({signal.Signals(-exc.returncode).name}) — is a directory nested more than "
                    f"{max_depth} levels deep? Flatten the tree"
                ) from exc
            raise PushRejectedError(f"Could not read commit {sha[:8]}: {exc.message}") from exc
        try:
            extract_tarball(
                archive,
                target,
                max_bytes=max_bytes,
                max_files=max_files,
                max_depth=max_depth,
                what="repository",
            )
        except BuildError as exc:
            raise PushRejectedError(exc.message) from exc
    finally:
        archive.unlink(missing_ok=True)


def _git_environment(git_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without git's own variables, plus ``git_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({k: v for k, v in git_env.items() if k in GIT_OBJECT_VARS})
    return env
