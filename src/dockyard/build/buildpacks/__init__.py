"""Built-in buildpacks and the classic (``bin/detect``, ``bin/compile``, ``bin/release``) adapter.

``builtin_buildpacks()`` is the ordered list tried when an app names no buildpack: language
buildpacks first, the Procfile-only buildpack last, so a Python app with a Procfile is built as a
Python app.
"""

from __future__ import annotations

from dockyard.build.buildpack import Buildpack
from dockyard.build.buildpacks.classic import ClassicBuildpack
from dockyard.build.buildpacks.procfile import ProcfileBuildpack


def builtin_buildpacks() -> list[Buildpack]:
    return [ProcfileBuildpack()]


__all__ = ["ClassicBuildpack", "ProcfileBuildpack", "builtin_buildpacks"]
