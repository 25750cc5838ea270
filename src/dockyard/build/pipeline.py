"""``BuildPipeline``: source tree → detect → compile → release → Procfile → SquashFS slug in the
slug store.

Every build works on its own scratch copy of the source, removed afterwards whatever happens; the
cache directory of an app (``<cache_root>/<app_id>``) is the only thing that outlives a build.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.build.buildpack import BuildEnv, Buildpack
from dockyard.build.buildpacks.procfile import load_procfile
from dockyard.build.output import BuildOutput, human_size
from dockyard.domain.config import CONFIG_KEY_PATTERN
from dockyard.errors import CompileError, DetectError
from dockyard.slug.image import make_image
from dockyard.slug.store import SlugStore
from dockyard.types import SlugDigest

NO_BUILDPACK = (
    "No Procfile found in the repository root, and no buildpack recognised the app. "
    'Add a Procfile, e.g. "web: python3 -m http.server $PORT", commit it and push again'
)


@dataclass(frozen=True)
class BuildResult:
    digest: SlugDigest
    size: int
    process_types: Mapping[str, str]
    framework: str
    buildpack: str
    addons: tuple[str, ...] = ()


class BuildPipeline:
    def __init__(
        self, slugs: SlugStore, work_dir: Path, cache_root: Path, compile_timeout: float | None
    ) -> None:
        self.slugs = slugs
        self.work_dir = work_dir
        self.cache_root = cache_root
        self.compile_timeout = compile_timeout

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
    ) -> BuildResult:
        """Build ``source_dir`` (left untouched) into a slug and store it.

        Raises ``DetectError`` when no buildpack applies, ``CompileError`` when a buildpack fails,
        and ``ProcfileError`` for a malformed Procfile; nothing is stored then."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        scratch = self.work_dir / f"build-{uuid.uuid4().hex}"
        try:
            scratch.mkdir(mode=0o700)
            build_dir = scratch / "app"
            shutil.copytree(source_dir, build_dir, symlinks=True)
            env_dir = scratch / "env"
            write_env_dir(env_dir, config)
            cache_dir = self.cache_root / app_id
            cache_dir.mkdir(parents=True, exist_ok=True)
            return self._build(
                build_dir, cache_dir, env_dir, scratch, commit, output, buildpacks, stack
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _build(
        self,
        build_dir: Path,
        cache_dir: Path,
        env_dir: Path,
        scratch: Path,
        commit: str | None,
        output: BuildOutput,
        buildpacks: Sequence[Buildpack],
        stack: str,
    ) -> BuildResult:
        output.heading(f"Building on the Dockyard {stack} stack")
        buildpack, framework = _detect(build_dir, buildpacks)
        output.heading(f"Using buildpack: {buildpack.name}")
        output.heading(f"{framework} app detected")
        env = BuildEnv(stack=stack, source_version=commit, timeout=self.compile_timeout)
        try:
            buildpack.compile(build_dir, cache_dir, env_dir, output, env)
            release = buildpack.release(build_dir)
        except CompileError as exc:
            raise CompileError(
                f"{exc.message}\nPush rejected, failed to compile {framework} app."
            ) from exc

        output.heading("Discovering process types")
        declared = load_procfile(build_dir)
        defaults = dict(release.default_process_types)
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

        output.heading("Compressing...")
        image = scratch / "slug.squashfs"
        make_image(build_dir, image)
        digest, size = self.slugs.put(image)
        output.detail(f"Done: {human_size(size)}")
        return BuildResult(
            digest=digest,
            size=size,
            process_types=process_types,
            framework=framework,
            buildpack=buildpack.name,
            addons=release.addons,
        )


def _detect(build_dir: Path, buildpacks: Sequence[Buildpack]) -> tuple[Buildpack, str]:
    for buildpack in buildpacks:
        framework = buildpack.detect(build_dir)
        if framework is not None:
            return buildpack, framework
    raise DetectError(NO_BUILDPACK)


def write_env_dir(env_dir: Path, config: Mapping[str, str]) -> None:
    """One file per config var, named after the key and holding the value (Heroku's ENV_DIR)."""
    env_dir.mkdir(mode=0o700)
    for key, value in config.items():
        if not CONFIG_KEY_PATTERN.fullmatch(key):
            continue  # the config API never stores such keys; never turn one into a path
        path = env_dir / key
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
