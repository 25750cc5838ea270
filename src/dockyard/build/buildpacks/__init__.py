"""Built-in buildpacks and the classic (``bin/detect``, ``bin/compile``, ``bin/release``) adapter.

``builtin_buildpacks()`` is the ordered list tried when an app names no buildpack: Python,
Node.js, static sites, then the Procfile-only buildpack, so a Python app with a Procfile is built as
a Python app and a Node.js app with an ``index.html`` as a Node.js app. The language buildpacks
carry Heroku's names (``heroku/python``, ``heroku/nodejs``, ``heroku/static``), which is how apps
name them in their buildpack list; ``builtin_buildpack`` also accepts ``dockyard/…`` aliases.
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

BUILTIN_ORDER = ("heroku/python", "heroku/nodejs", "heroku/static", "dockyard/procfile")
"""The built-in buildpacks by name (Heroku's names for the language ones), in detection order."""

ALIASES = {
    "dockyard/python": "heroku/python",
    "dockyard/nodejs": "heroku/nodejs",
    "dockyard/static": "heroku/static",
    "heroku-community/static": "heroku/static",
}


def _table(stack: Stack) -> dict[str, Callable[[], Buildpack]]:
    return {
        "heroku/python": lambda: PythonBuildpack(stack),
        "heroku/nodejs": lambda: NodejsBuildpack(stack),
        "heroku/static": StaticBuildpack,
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
