"""The classic Heroku buildpack contract as a protocol, so built-in (Python) buildpacks and
third-party ``bin/detect`` / ``bin/compile`` / ``bin/release`` buildpacks are used the same way by
the pipeline.

``detect`` tells whether the buildpack applies and names the framework ("Python", "Node.js");
``compile`` changes the build directory in place (it becomes the slug), may keep files in the cache
directory between builds, and reads config vars from the env directory (one file per variable);
``release`` returns default process types and add-ons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.build.output import BuildOutput


@dataclass(frozen=True)
class BuildpackRelease:
    default_process_types: Mapping[str, str] = field(default_factory=dict)
    """Used for the types that the Procfile does not declare."""
    addons: tuple[str, ...] = ()
    """Add-on plans to provision on the first deploy only."""


@dataclass(frozen=True)
class BuildEnv:
    """What a build knows besides its directories: Heroku's ``STACK`` and ``SOURCE_VERSION``, and
    the seconds a compile may take."""

    stack: str
    source_version: str | None
    timeout: float | None = None

    def variables(self) -> dict[str, str]:
        values = {"STACK": self.stack}
        if self.source_version:
            values["SOURCE_VERSION"] = self.source_version
        return values


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
