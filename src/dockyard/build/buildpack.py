"""The classic Heroku buildpack contract as a protocol, so built-in (Python) buildpacks and
third-party ``bin/detect`` / ``bin/compile`` / ``bin/release`` buildpacks are used the same way by
the pipeline.

``detect`` tells whether the buildpack applies and names the framework ("Python", "Node.js");
``compile`` changes the build directory in place (it becomes the slug), may keep files in the cache
directory between builds, and reads config vars from the env directory (one file per variable);
``release`` returns default process types and add-ons.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard._util import proc
from dockyard.build.isolation import Sandbox
from dockyard.build.output import BuildOutput


@dataclass(frozen=True)
class BuildpackRelease:
    default_process_types: Mapping[str, str] = field(default_factory=dict)
    """Used for the types that the Procfile does not declare."""
    addons: tuple[str, ...] = ()
    """Add-on plans to provision on the first deploy only."""


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BuildEnv:
    """What a build knows besides its directories: Heroku's ``STACK`` and ``SOURCE_VERSION``, the
    seconds a compile may take, the variables exported by earlier buildpacks, this buildpack's
    private directory, and the sandbox its processes run in.

    Buildpacks run every command that executes code from the app (installers, build scripts)
    through ``stream`` or ``run`` here: with a sandbox that is in a container on the build stack
    image (``runc``) or on the host as the build user (``uid``), with the build's resource limits,
    watched for the compile timeout and the disk limit."""

    stack: str
    source_version: str | None
    timeout: float | None = None
    exports: Mapping[str, str] = field(default_factory=dict)
    """Variables set by the ``export`` files of the buildpacks that ran before this one."""
    work_dir: Path | None = None
    """A directory of this buildpack's own in this build (a classic buildpack runs from a copy
    of itself here); a shell file written to ``work_dir/export`` is sourced for the buildpacks
    that follow."""
    sandbox: Sandbox | None = None

    def variables(self) -> dict[str, str]:
        values = {"STACK": self.stack}
        if self.source_version:
            values["SOURCE_VERSION"] = self.source_version
        return values

    def environ(self, home: Path) -> dict[str, str]:
        """The whole environment of a buildpack process: a fixed ``PATH`` (the host's, or the
        stack's in a container), ``HOME``, ``LANG`` and ``TMPDIR``, then the exports of earlier
        buildpacks, then ``STACK`` and ``SOURCE_VERSION``. Nothing of Dockyard's own environment
        is passed on."""
        values = {
            "PATH": self.sandbox.command_path
            if self.sandbox is not None
            else os.environ.get("PATH", DEFAULT_PATH),
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
        if self.sandbox is not None:
            values["TMPDIR"] = str(self.sandbox.tmp_dir)
        values.update(self.exports)
        values.update(self.variables())
        return values

    @property
    def export_file(self) -> Path | None:
        return None if self.work_dir is None else self.work_dir / "export"

    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        what: str,
    ) -> int:
        """Run a long step (``bin/compile``, an installer) with its output streamed; returns the
        exit code. ``CompileError`` names ``what`` when a limit stops it; ``CommandError`` when
        it cannot start."""
        if self.sandbox is None:
            return proc.stream(argv, on_line=on_line, cwd=cwd, env=env, timeout=self.timeout)
        return self.sandbox.stream(
            argv, on_line=on_line, cwd=cwd, env=env, what=what, timeout=self.timeout
        )

    def run(
        self,
        argv: proc.Argv,
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        check: bool = True,
    ) -> proc.Completed:
        """Run a short step with its output captured."""
        if self.sandbox is None:
            return proc.run(argv, cwd=cwd, env=env, timeout=timeout, check=check)
        return self.sandbox.run(argv, cwd=cwd, env=env, timeout=timeout, check=check)


class Buildpack(Protocol):
    @property
    def name(self) -> str:
        """Shown to the user, e.g. ``heroku/python`` or the directory name of a classic
        buildpack."""
        ...

    def detect(self, build_dir: Path) -> str | None:
        """The framework name if this buildpack applies to ``build_dir``, else None."""
        ...

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        """Turn ``build_dir`` into a runnable app in place; raise ``CompileError`` (or a more
        specific ``BuildError`` / ``InvalidError``) with a message for the user when it cannot."""
        ...

    def release(self, build_dir: Path) -> BuildpackRelease:
        """Default process types and add-ons, read after a successful compile."""
        ...
