"""``ClassicBuildpack``: a buildpack directory with Heroku's ``bin/detect``, ``bin/compile`` and
``bin/release`` scripts, run as separate processes.

The scripts see a small, fixed environment (``PATH``, ``HOME``, ``LANG``, ``TMPDIR``, ``STACK``,
``SOURCE_VERSION`` and what the ``export`` files of earlier buildpacks set), never the platform's
own variables; config vars reach ``bin/compile`` only as files in ENV_DIR, as on Heroku. In a
build, the pipeline runs a private copy of the buildpack (``for_build``) in the build's sandbox.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import deque
from collections.abc import Mapping
from pathlib import Path

import yaml

from dockyard._util import proc
from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.isolation import Sandbox, failure_hint
from dockyard.build.output import BuildOutput
from dockyard.errors import CommandError, CompileError, DetectError

SCRIPT_TIMEOUT = 60.0
"""Seconds ``bin/detect``, ``bin/release`` and sourcing an ``export`` file may take (``bin/compile``
has the compile timeout)."""
SHELL_NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


class ClassicBuildpack:
    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        script_timeout: float = SCRIPT_TIMEOUT,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.path = path
        self._name = name or path.name
        self.script_timeout = script_timeout
        self.sandbox = sandbox

    @property
    def name(self) -> str:
        return self._name

    looks_for = "what its bin/detect accepts"

    def for_build(self, work_dir: Path, sandbox: Sandbox | None) -> ClassicBuildpack:
        """A private copy of this buildpack in ``work_dir`` (created), run in ``sandbox``: the
        scripts of a build may write into their own directory (the ``export`` file) without
        touching the original or another build."""
        shutil.copytree(self.path, work_dir, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        (work_dir / "export").unlink(missing_ok=True)  # a stale one committed by mistake
        if sandbox is not None:
            sandbox.grant(work_dir)
        return ClassicBuildpack(
            work_dir, name=self.name, script_timeout=self.script_timeout, sandbox=sandbox
        )

    def _script(self, script: str, error: type[CompileError] | type[DetectError]) -> Path | None:
        path = self.path / "bin" / script
        if not path.is_file():
            return None
        if not os.access(path, os.X_OK):
            raise error(
                f"Buildpack {self.name}: bin/{script} is not executable — "
                f"run `chmod +x bin/{script}` in the buildpack and commit it"
            )
        return path

    def _env(self, env: BuildEnv | None) -> BuildEnv:
        return env if env is not None else BuildEnv(stack="", source_version=None)

    def _run(
        self, argv: list[str | Path], build_dir: Path, env: BuildEnv | None, check: bool
    ) -> proc.Completed:
        build_env = self._env(env)
        if self.sandbox is not None and build_env.sandbox is None:
            build_env = dataclasses.replace(build_env, sandbox=self.sandbox)
        environ = build_env.environ(build_dir)
        if env is None:
            environ.pop("STACK", None)
        return build_env.run(
            argv, cwd=build_dir, env=environ, timeout=self.script_timeout, check=check
        )

    def detect(self, build_dir: Path, env: BuildEnv | None = None) -> str | None:
        script = self._script("detect", DetectError)
        if script is None:
            raise DetectError(
                f"Buildpack {self.name} has no bin/detect script — is it a buildpack?"
            )
        try:
            result = self._run([script, build_dir], build_dir, env, check=False)
        except CommandError as exc:
            raise DetectError(f"Buildpack {self.name}: bin/detect failed: {exc.message}") from exc
        if result.returncode != 0:
            return None
        lines = result.text.strip().splitlines()
        return lines[0].strip() if lines and lines[0].strip() else self.name

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        script = self._script("compile", CompileError)
        if script is None:
            raise CompileError(f"Buildpack {self.name} has no bin/compile script")
        if self.sandbox is not None and env.sandbox is None:
            env = dataclasses.replace(env, sandbox=self.sandbox)
        tail: deque[str] = deque(maxlen=50)

        def on_line(raw: bytes) -> None:
            text = raw.decode("utf-8", "replace")
            tail.append(text)
            output.line(text)

        what = f"Buildpack {self.name}: bin/compile"
        try:
            code = env.stream(
                [script, build_dir, cache_dir, env_dir],
                on_line=on_line,
                cwd=build_dir,
                env=env.environ(build_dir),
                what=what,
            )
        except CommandError as exc:
            raise CompileError(f"Buildpack {self.name}: {exc.message}") from exc
        if code != 0:
            message = f"{what} exited with code {code}"
            if env.sandbox is not None:
                hint = failure_hint(code, list(tail), env.sandbox.limits)
                message = f"{message}. {hint}" if hint else message
            raise CompileError(message)

    def release(self, build_dir: Path, env: BuildEnv | None = None) -> BuildpackRelease:
        script = self._script("release", CompileError)
        if script is None:
            return BuildpackRelease()
        try:
            result = self._run([script, build_dir], build_dir, env, check=True)
        except CommandError as exc:
            raise CompileError(f"Buildpack {self.name}: bin/release failed: {exc.message}") from exc
        return parse_release(result.text, self.name)


def read_exports(
    export_file: Path, build_dir: Path, env: BuildEnv, buildpack: str
) -> dict[str, str]:
    """The variables an ``export`` file sets: it is sourced by ``/bin/sh`` in the build's sandbox
    with the build environment, and what changed is returned (Heroku sources the export files of
    earlier buildpacks before each later ``bin/compile``)."""
    before = env.environ(build_dir)
    try:
        result = env.run(
            ["/bin/sh", "-c", '. "$1" >&2 </dev/null && exec env -0', "export", export_file],
            cwd=build_dir,
            env=before,
            timeout=SCRIPT_TIMEOUT,
        )
    except CommandError as exc:
        raise CompileError(
            f"Buildpack {buildpack}: its export file could not be sourced: {exc.message}"
        ) from exc
    exported: dict[str, str] = {}
    for item in result.stdout.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep and key not in SHELL_NOISE and before.get(key) != value:
            exported[key] = value
    return exported


def parse_release(text: str, buildpack: str) -> BuildpackRelease:
    """Read ``bin/release`` output: YAML with optional ``default_process_types`` and ``addons``."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise CompileError(
            f"Buildpack {buildpack}: bin/release printed invalid YAML: {exc}"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise CompileError(f"Buildpack {buildpack}: bin/release must print a YAML mapping")
    types = data.get("default_process_types") or {}
    addons = data.get("addons") or []
    if not isinstance(types, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in types.items()
    ):
        raise CompileError(
            f"Buildpack {buildpack}: default_process_types must map process types to commands"
        )
    if not isinstance(addons, list) or not all(isinstance(a, str) for a in addons):
        raise CompileError(f"Buildpack {buildpack}: addons must be a list of plan names")
    return BuildpackRelease(default_process_types=dict(types), addons=tuple(addons))
