"""Built-in buildpacks and the classic (``bin/detect``, ``bin/compile``, ``bin/release``) adapter.

``builtin_buildpacks()`` is the ordered list tried when an app names no buildpack: Python,
Node.js, static sites, then the Procfile-only buildpack, so a Python app with a Procfile is built as
a Python app and a Node.js app with an ``index.html`` as a Node.js app. ``BUILTIN`` names them for
apps that set their buildpacks explicitly (``heroku/python`` is accepted for ``dockyard/python``).
"""

from __future__ import annotations

from collections.abc import Callable

from dockyard.build.buildpack import Buildpack
from dockyard.build.buildpacks.classic import ClassicBuildpack
from dockyard.build.buildpacks.nodejs import NodejsBuildpack
from dockyard.build.buildpacks.procfile import ProcfileBuildpack
from dockyard.build.buildpacks.python import PythonBuildpack
from dockyard.build.buildpacks.static import StaticBuildpack
from dockyard.build.stack import HostStack, Stack

BUILTIN_ORDER = ("dockyard/python", "dockyard/nodejs", "dockyard/static", "dockyard/procfile")
"""Detection order of the built-in buildpacks."""

ALIASES = {
    "heroku/python": "dockyard/python",
    "heroku/nodejs": "dockyard/nodejs",
    "heroku/static": "dockyard/static",
    "heroku-community/static": "dockyard/static",
}


def _table(stack: Stack) -> dict[str, Callable[[], Buildpack]]:
    return {
        "dockyard/python": lambda: PythonBuildpack(stack),
        "dockyard/nodejs": lambda: NodejsBuildpack(stack),
        "dockyard/static": StaticBuildpack,
        "dockyard/procfile": ProcfileBuildpack,
    }


def builtin_buildpacks(stack: Stack | None = None) -> list[Buildpack]:
    """The built-in buildpacks in detection order, sharing one ``stack`` (the host's by default)."""
    table = _table(stack or HostStack())
    return [table[name]() for name in BUILTIN_ORDER]


def builtin_buildpack(name: str, stack: Stack | None = None) -> Buildpack | None:
    """The built-in buildpack called ``name`` (or one of its Heroku names), else None."""
    factory = _table(stack or HostStack()).get(ALIASES.get(name, name))
    return None if factory is None else factory()


__all__ = [
    "BUILTIN_ORDER",
    "ClassicBuildpack",
    "NodejsBuildpack",
    "ProcfileBuildpack",
    "PythonBuildpack",
    "StaticBuildpack",
    "builtin_buildpack",
    "builtin_buildpacks",
]
