"""``ClassicBuildpack``: a buildpack directory with Heroku's ``bin/detect``, ``bin/compile`` and
``bin/release`` scripts, run as separate processes.

The scripts see a small, fixed environment (``PATH``, ``HOME``, ``LANG``, ``STACK``,
``SOURCE_VERSION``), never the platform's own variables; config vars reach ``bin/compile`` only as
files in ENV_DIR, as on Heroku.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from dockyard._util import proc
from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.output import BuildOutput
from dockyard.errors import CommandError, CompileError, DetectError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPT_TIMEOUT = 60.0
"""Seconds ``bin/detect`` and ``bin/release`` may take (``bin/compile`` has the compile timeout)."""


class ClassicBuildpack:
    def __init__(
        self, path: Path, *, name: str | None = None, script_timeout: float = SCRIPT_TIMEOUT
    ) -> None:
        self.path = path
        self._name = name or path.name
        self.script_timeout = script_timeout

    @property
    def name(self) -> str:
        return self._name

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

    def _environment(self, build_dir: Path, env: BuildEnv | None) -> dict[str, str]:
        values = {
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
            "HOME": str(build_dir),
            "LANG": "C.UTF-8",
        }
        if env is not None:
            values.update(env.variables())
        return values

    def detect(self, build_dir: Path) -> str | None:
        script = self._script("detect", DetectError)
        if script is None:
            raise DetectError(
                f"Buildpack {self.name} has no bin/detect script — is it a buildpack?"
            )
        try:
            result = proc.run(
                [script, build_dir],
                cwd=build_dir,
                env=self._environment(build_dir, None),
                timeout=self.script_timeout,
                check=False,
            )
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
        try:
            code = proc.stream(
                [script, build_dir, cache_dir, env_dir],
                on_line=lambda raw: output.line(raw.decode("utf-8", "replace")),
                cwd=build_dir,
                env=self._environment(build_dir, env),
                timeout=env.timeout,
            )
        except CommandError as exc:
            raise CompileError(f"Buildpack {self.name}: {exc.message}") from exc
        if code != 0:
            raise CompileError(f"Buildpack {self.name}: bin/compile exited with code {code}")

    def release(self, build_dir: Path) -> BuildpackRelease:
        script = self._script("release", CompileError)
        if script is None:
            return BuildpackRelease()
        try:
            result = proc.run(
                [script, build_dir],
                cwd=build_dir,
                env=self._environment(build_dir, None),
                timeout=self.script_timeout,
            )
        except CommandError as exc:
            raise CompileError(f"Buildpack {self.name}: bin/release failed: {exc.message}") from exc
        return parse_release(result.text, self.name)


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
