"""``BuildPipeline``: source tree → .slugignore → detect → compile (each buildpack in turn) →
release → Procfile → SquashFS slug in the slug store.

Every build works in a scratch directory of its own under ``work_dir`` (a copy of the source, the
env directory, the app's cache, private copies of the buildpacks, a temporary directory), removed
afterwards whatever happens. Buildpack processes run in the build's sandbox (``isolation``): each
command in a one-shot container on the build stack image when the pipeline has ``containers`` that
are available here, else on the host as an unprivileged user of their own when Dockyard runs as
root; always under resource limits, watched for the compile timeout and the disk limit. The app's
cache directory (``<cache_root>/<app_id>``) is the only thing that outlives a build; it is moved
into the scratch directory for the build and back afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.build.buildpack import BuildEnv, Buildpack
from dockyard.build.buildpacks.classic import ClassicBuildpack, read_exports
from dockyard.build.buildpacks.procfile import load_procfile
from dockyard.build.isolation import (
    BuildContainers,
    BuildLimits,
    Sandbox,
    disk_usage,
    open_sandbox,
)
from dockyard.build.output import BuildOutput, human_size
from dockyard.build.slugignore import apply_slugignore
from dockyard.domain.config import CONFIG_KEY_PATTERN
from dockyard.errors import BuildError, CompileError, DetectError
from dockyard.settings import BuildSettings
from dockyard.slug.image import make_image
from dockyard.slug.store import SlugStore
from dockyard.types import SlugDigest

NO_PROCFILE_ADVICE = (
    "No Procfile found in the repository root either. "
    'Add a Procfile, e.g. "web: python3 -m http.server $PORT", or choose a buildpack with '
    "`dockyard buildpacks:set <name or URL>`, commit and push again"
)
_LOOKS_FOR = {"dockyard/procfile": "a Procfile in the repository root"}
"""What built-in buildpacks without a ``looks_for`` attribute detect."""


@dataclass(frozen=True)
class BuildResult:
    digest: SlugDigest
    size: int
    process_types: Mapping[str, str]
    framework: str
    """The framework the last buildpack detected."""
    buildpack: str
    """The name of the last buildpack."""
    addons: tuple[str, ...] = ()
    """Add-on plans the buildpacks' ``bin/release`` asked for (to provision on a first deploy)."""
    buildpacks: tuple[str, ...] = ()
    """Every buildpack that compiled, in order."""


@dataclass
class _Selected:
    buildpack: Buildpack
    framework: str
    work_dir: Path


def _looks_for(buildpack: Buildpack) -> str:
    hint = getattr(buildpack, "looks_for", None)
    return hint if isinstance(hint, str) else _LOOKS_FOR.get(buildpack.name, "its own files")


def no_buildpack_message(buildpacks: Sequence[Buildpack]) -> str:
    """Says what each candidate buildpack looked for."""
    looked = [f"{buildpack.name} looks for {_looks_for(buildpack)}" for buildpack in buildpacks]
    listed = "; ".join(looked) if looked else "no buildpacks are available"
    return f"No buildpack recognised the app: {listed}.\n{NO_PROCFILE_ADVICE}"


class BuildPipeline:
    def __init__(
        self,
        slugs: SlugStore,
        work_dir: Path,
        cache_root: Path,
        compile_timeout: float | None,
        *,
        settings: BuildSettings | None = None,
        containers: BuildContainers | None = None,
    ) -> None:
        """``settings`` gives the limits (slug size, memory, processes, disk); the compile
        timeout is ``compile_timeout``. With ``containers`` (``runtime.sandbox``) every command
        runs in a container when they are available on this host; the build output warns when
        they are not."""
        self.slugs = slugs
        self.work_dir = work_dir
        self.cache_root = cache_root
        self.compile_timeout = compile_timeout
        self.settings = settings if settings is not None else BuildSettings()
        self.limits = dataclasses.replace(
            BuildLimits.from_settings(self.settings), compile_timeout=compile_timeout
        )
        self.containers = containers

    def run(
        self,
        app_id: str,
        source_dir: Path,
        config: Mapping[str, str],
        commit: str | None,
        output: BuildOutput,
        buildpacks: Sequence[Buildpack],
        *,
        stack: str = "heroku-24",
        explicit: bool = False,
    ) -> BuildResult:
        """Build ``source_dir`` (left untouched) into a slug and store it.

        Without ``explicit`` the first of ``buildpacks`` that detects the app builds it (the
        built-in list); with it, every buildpack runs in order and each must detect the app (an
        app's own buildpack list). Raises ``DetectError`` when no buildpack applies,
        ``CompileError`` when a buildpack fails or hits a limit, ``ProcfileError`` for a
        malformed Procfile and ``BuildError`` for a slug over the size limit; nothing is stored
        then."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The build user passes through (search only, no listing) to its scratch directory.
        os.chmod(self.work_dir, 0o711)  # noqa: S103
        self.cache_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.cache_root, 0o700)
        build_id = uuid.uuid4().hex
        scratch = self.work_dir / f"build-{build_id}"
        scratch.mkdir(mode=0o700)
        cache_dir = self.cache_root / app_id
        build_cache = scratch / "cache"
        failed = True
        try:
            build_dir = scratch / "app"
            shutil.copytree(source_dir, build_dir, symlinks=True)
            apply_slugignore(build_dir, output)
            env_dir = scratch / "env"
            write_env_dir(env_dir, config)
            if cache_dir.is_dir():
                shutil.move(cache_dir, build_cache)
            else:
                build_cache.mkdir()
            with open_sandbox(
                scratch,
                self.limits,
                self.work_dir / "uids",
                containers=self.containers,
                build_id=build_id,
                app_id=app_id,
                readonly=(env_dir,),
            ) as sandbox:
                if sandbox.warning:
                    output.error(sandbox.warning)
                for path in (build_dir, build_cache, env_dir):
                    os.chmod(path, 0o700)  # builds of other apps run as other users
                    sandbox.grant(path)
                result = self._build(
                    build_dir, build_cache, env_dir, sandbox, commit, output, buildpacks, stack,
                    explicit,
                )  # fmt: skip
            failed = False
            return result
        finally:
            self._keep_cache(build_cache, cache_dir, output, failed=failed)
            shutil.rmtree(scratch, ignore_errors=True)

    def _keep_cache(
        self, build_cache: Path, cache_dir: Path, output: BuildOutput, *, failed: bool
    ) -> None:
        """Put the cache back for the next build; after a failed build only when it is within
        the disk limit (a build stopped for filling the disk must not fill the next one)."""
        if not build_cache.is_dir():
            return
        if failed and disk_usage(build_cache) > self.limits.disk_bytes:
            output.detail("The build cache was cleared: it is larger than the disk limit")
            return
        shutil.rmtree(cache_dir, ignore_errors=True)
        shutil.move(build_cache, cache_dir)

    def _build(
        self,
        build_dir: Path,
        cache_dir: Path,
        env_dir: Path,
        sandbox: Sandbox,
        commit: str | None,
        output: BuildOutput,
        buildpacks: Sequence[Buildpack],
        stack: str,
        explicit: bool,
    ) -> BuildResult:
        output.heading(f"Building on the Dockyard {stack} stack")
        prepared = self._prepare(buildpacks, sandbox)
        selected = _select(build_dir, prepared, output, explicit=explicit)
        exports: dict[str, str] = {}
        for step in selected:
            output.heading(f"{step.framework} app detected")
            env = BuildEnv(
                stack=stack,
                source_version=commit,
                timeout=self.compile_timeout,
                exports=dict(exports),
                work_dir=step.work_dir,
                sandbox=sandbox,
            )
            try:
                step.buildpack.compile(build_dir, cache_dir, env_dir, output, env)
                export = step.work_dir / "export"
                if export.is_file() and not export.is_symlink():
                    exports.update(read_exports(export, build_dir, env, step.buildpack.name))
            except CompileError as exc:
                raise CompileError(
                    f"{exc.message}\nPush rejected, failed to compile {step.framework} app."
                ) from exc
        releases = [step.buildpack.release(build_dir) for step in selected]
        sandbox.sweep()
        _seal(build_dir, sandbox)

        addons = tuple(dict.fromkeys(a for r in releases for a in r.addons))
        process_types = _process_types(build_dir, releases[-1].default_process_types, output)
        if addons:
            output.heading(f"Add-ons requested by the buildpack: {', '.join(addons)}")
            output.detail(
                "Dockyard has no add-ons yet: they will be provisioned on the first deploy once "
                "add-ons exist"
            )
        output.heading("Compressing...")
        image = sandbox.scratch / "slug.squashfs"
        make_image(build_dir, image)
        size = image.stat().st_size
        if size > self.settings.max_slug_bytes:
            raise BuildError(
                f"Compiled slug size: {human_size(size)} is too large (max is "
                f"{human_size(self.settings.max_slug_bytes)}) — add what the app does not need "
                "at run time to .slugignore, or raise the limit (setting build.max_slug_bytes, "
                "DOCKYARD_BUILD_MAX_SLUG_BYTES)"
            )
        digest, size = self.slugs.put(image)
        output.detail(f"Done: {human_size(size)}")
        last = selected[-1]
        return BuildResult(
            digest=digest,
            size=size,
            process_types=process_types,
            framework=last.framework,
            buildpack=last.buildpack.name,
            addons=addons,
            buildpacks=tuple(step.buildpack.name for step in selected),
        )

    def _prepare(
        self, buildpacks: Sequence[Buildpack], sandbox: Sandbox
    ) -> list[tuple[Buildpack, Path]]:
        """Each buildpack with a private directory of its own; classic buildpacks run from a
        copy of themselves there, in the sandbox."""
        root = sandbox.scratch / "buildpacks"
        root.mkdir(mode=0o700)
        sandbox.grant(root)
        prepared: list[tuple[Buildpack, Path]] = []
        for index, buildpack in enumerate(buildpacks):
            work_dir = root / str(index)
            if isinstance(buildpack, ClassicBuildpack):
                prepared.append((buildpack.for_build(work_dir, sandbox), work_dir))
            else:
                work_dir.mkdir()
                sandbox.grant(work_dir)
                prepared.append((buildpack, work_dir))
        return prepared


def _select(
    build_dir: Path,
    prepared: Sequence[tuple[Buildpack, Path]],
    output: BuildOutput,
    *,
    explicit: bool,
) -> list[_Selected]:
    if not explicit:
        for buildpack, work_dir in prepared:
            framework = buildpack.detect(build_dir)
            if framework is not None:
                output.heading(f"Using buildpack: {buildpack.name}")
                return [_Selected(buildpack, framework, work_dir)]
        raise DetectError(no_buildpack_message([b for b, _ in prepared]))
    if not prepared:
        raise DetectError(no_buildpack_message([]))
    if len(prepared) == 1:
        output.heading(f"Using buildpack: {prepared[0][0].name}")
    else:
        output.heading("Using buildpacks:")
        for number, (buildpack, _) in enumerate(prepared, start=1):
            output.detail(f"{number}. {buildpack.name}")
    selected = []
    for buildpack, work_dir in prepared:
        framework = buildpack.detect(build_dir)
        if framework is None:
            raise DetectError(
                f"App not compatible with buildpack: {buildpack.name} (it looks for "
                f"{_looks_for(buildpack)}) — change the app, or the app's buildpacks with "
                "`dockyard buildpacks:set`"
            )
        selected.append(_Selected(buildpack, framework, work_dir))
    return selected


def _process_types(
    build_dir: Path, defaults: Mapping[str, str], output: BuildOutput
) -> dict[str, str]:
    output.heading("Discovering process types")
    declared = load_procfile(build_dir)
    process_types: dict[str, str] = dict(defaults)
    for ptype, command in (declared or {}).items():
        process_types[ptype] = command  # the Procfile wins over the buildpack's defaults
    if declared is not None:
        output.detail(f"Procfile declares types -> {', '.join(declared) or '(none)'}")
    else:
        output.detail("Procfile declares types -> (none)")
    if defaults:
        output.detail(f"Default types for buildpack -> {', '.join(sorted(defaults))}")
    output.blank()
    return process_types


def _seal(build_dir: Path, sandbox: Sandbox) -> None:
    """Make the compiled tree safe to pack as root: no setuid or setgid bits (the slug is
    packed as root-owned), and — when the build ran as its own user — nothing owned by anyone
    else (a hard link to a file of the host would otherwise land in the slug)."""
    for dirpath, dirnames, filenames in os.walk(build_dir):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            if sandbox.uid is not None and info.st_uid != sandbox.uid:
                relative = os.path.relpath(path, build_dir)
                raise CompileError(
                    f"The build left {relative}, which belongs to another user of this machine "
                    "(a hard link to a system file?) — buildpacks may only add their own files"
                )
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def write_env_dir(env_dir: Path, config: Mapping[str, str]) -> None:
    """One file per config var, named after the key and holding the value (Heroku's ENV_DIR)."""
    env_dir.mkdir(mode=0o700)
    for key, value in config.items():
        if not CONFIG_KEY_PATTERN.fullmatch(key):
            continue  # the config API never stores such keys; never turn one into a path
        path = env_dir / key
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
