"""``NodejsBuildpack``: apps with a ``package.json``, built with the stack's Node.js and npm.

``engines.node`` is checked against the stack's Node.js (a subset of npm's semver ranges: exact
versions, ``^``, ``~``, ``>``/``>=``/``<``/``<=``/``=``, x-ranges such as ``20.x``, hyphen
ranges, several comparators joined by spaces and alternatives by ``||``). Dependencies are
installed with ``npm ci`` when a lockfile is committed, else ``npm install``, devDependencies
included; then ``heroku-postbuild`` or ``build`` runs when the package defines it, and the
devDependencies are pruned. npm's download cache lives in ``CACHE_DIR/npm`` between builds.

At dyno start ``.profile.d/nodejs.sh`` puts ``node_modules/.bin`` on ``PATH`` and defaults
``NODE_ENV`` to ``production``. The default ``web`` process is ``npm start`` when the package has a
``start`` script (or a ``server.js``, which ``npm start`` runs).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.output import BuildOutput
from dockyard.build.stack import (
    BuildCommands,
    HostStack,
    Stack,
    Version,
    build_environment,
    make_dirs,
    write_file,
)
from dockyard.errors import CompileError

PACKAGE_JSON = "package.json"
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
OTHER_LOCKFILES = ("yarn.lock", "pnpm-lock.yaml")
PROFILE_SCRIPT = ".profile.d/nodejs.sh"
MAX_PACKAGE_JSON = 1 << 20

PROFILE = """\
# Written by the Dockyard Node.js buildpack.
export PATH="$HOME/node_modules/.bin:$PATH"
export NODE_ENV="${NODE_ENV:-production}"
"""


class NodejsBuildpack:
    name = "heroku/nodejs"
    looks_for = "package.json"

    def __init__(
        self, stack: Stack | None = None, *, platform_env: Mapping[str, str] | None = None
    ) -> None:
        self.stack = stack or HostStack()
        self.platform_env = os.environ if platform_env is None else platform_env

    def detect(self, build_dir: Path) -> str | None:
        return "Node.js" if (build_dir / PACKAGE_JSON).is_file() else None

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        package = read_package(build_dir)
        node = self.stack.node()
        if node is None or node.npm is None:
            missing = "Node.js" if node is None else "npm"
            raise CompileError(
                f"This stack has no {missing} — the operator must install it (Debian: nodejs npm)"
            )
        output.heading("Installing binaries")
        engines = package.get("engines")
        wanted = engines.get("node") if isinstance(engines, dict) else None
        if wanted is not None:
            output.detail(f"engines.node (package.json): {wanted}")
            check_engine(str(wanted), node.version)
        else:
            output.detail("engines.node (package.json): unspecified")
        output.detail(f"Using Node.js {node.label} from the stack")

        cache = cache_dir / "nodejs"
        home = make_dirs(cache_dir, "nodejs/home", env)
        environment = build_environment(env, env_dir, home, platform_env=self.platform_env)
        environment.setdefault("NODE_ENV", "production")
        environment.update(
            npm_config_cache=str(cache / "npm"),
            npm_config_update_notifier="false",
            npm_config_fund="false",
            npm_config_audit="false",
            npm_config_progress="false",
        )
        commands = BuildCommands(env, output, environment)
        npm = str(node.npm)

        output.heading("Installing dependencies")
        lockfile = next((n for n in LOCKFILES if (build_dir / n).is_file()), None)
        for other in OTHER_LOCKFILES:
            if lockfile is None and (build_dir / other).is_file():
                output.detail(f"Ignoring {other}: Dockyard installs with npm (commit a lockfile)")
        if lockfile is not None:
            output.detail(f"Installing node modules ({lockfile})")
            verb = "ci"
        else:
            output.detail("Installing node modules (no lockfile: npm install)")
            verb = "install"
        seconds = commands.run(
            [npm, verb, "--include=dev", "--prefer-offline"], cwd=build_dir, what=f"npm {verb}"
        )
        output.detail(f"Dependencies installed in {seconds:.2f} s")

        scripts = package.get("scripts")
        scripts = scripts if isinstance(scripts, dict) else {}
        build_script = next((s for s in ("heroku-postbuild", "build") if s in scripts), None)
        if build_script is not None:
            output.heading("Build")
            output.detail(f"Running {build_script}")
            commands.run([npm, "run", build_script], cwd=build_dir, what=f"npm run {build_script}")
        dev = package.get("devDependencies")
        if isinstance(dev, dict) and dev:
            output.heading("Pruning devDependencies")
            commands.run(
                [npm, "prune", "--omit=dev"], cwd=build_dir, what="npm prune", show=_not_blank
            )
        write_file(build_dir, PROFILE_SCRIPT, PROFILE.encode(), env)

    def release(self, build_dir: Path) -> BuildpackRelease:
        try:
            package = read_package(build_dir)
        except CompileError:
            return BuildpackRelease()
        scripts = package.get("scripts")
        has_start = isinstance(scripts, dict) and "start" in scripts
        if has_start or (build_dir / "server.js").is_file():
            return BuildpackRelease(default_process_types={"web": "npm start"})
        return BuildpackRelease()


def _not_blank(line: str) -> bool:
    return bool(line.strip())


def read_package(build_dir: Path) -> dict[str, Any]:
    path = build_dir / PACKAGE_JSON
    if path.stat().st_size > MAX_PACKAGE_JSON:
        raise CompileError(f"{PACKAGE_JSON} is larger than 1 MB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CompileError(f"{PACKAGE_JSON} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise CompileError(
            f"{PACKAGE_JSON} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise CompileError(f"{PACKAGE_JSON} must hold a JSON object")
    return data


def check_engine(wanted: str, version: Version) -> None:
    label = ".".join(str(p) for p in version)
    try:
        ok = satisfies(version, wanted)
    except ValueError as exc:
        raise CompileError(
            f'package.json: engines.node "{wanted}" is not a version range Dockyard understands '
            f'({exc}) — use e.g. "{version[0]}.x", "^{label}" or ">={version[0]}"'
        ) from exc
    if not ok:
        raise CompileError(
            f'package.json asks for Node.js "{wanted}" (engines.node), but this stack has '
            f'Node.js {label} — set engines.node to a range that includes it, e.g. "{version[0]}.x", '
            "or remove it"
        )


# -- semver ranges (the subset npm users write in engines.node) -----------------------------------

Partial = tuple[int | None, int | None, int | None]
Comparator = tuple[str, Version]
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+][0-9A-Za-z.-]*)?$")
_OPERATOR = re.compile(r"^(>=|<=|>|<|=|\^|~>?)?(.*)$")


def satisfies(version: Version, text: str) -> bool:
    """Whether ``version`` is in the range ``text``; ``ValueError`` for a range it cannot read."""
    alternatives = text.split("||")
    return any(
        all(_compare(version, op, bound) for op, bound in _comparators(alternative))
        for alternative in alternatives
    )


def _compare(version: Version, op: str, bound: Version) -> bool:
    return {
        ">=": version >= bound,
        "<=": version <= bound,
        ">": version > bound,
        "<": version < bound,
        "=": version == bound,
    }[op]


def _partial(text: str) -> Partial:
    match = _PARTIAL.match(text)
    if match is None:
        raise ValueError(f'"{text}" is not a version')
    parts: list[int | None] = []
    for index, group in enumerate(match.groups()):
        if group is None or group in "xX*" or (index > 0 and parts[-1] is None):
            parts.append(None)
        else:
            parts.append(int(group))
    return parts[0], parts[1], parts[2]


def _floor(p: Partial) -> Version:
    return (p[0] or 0, p[1] or 0, p[2] or 0)


def _next(p: Partial) -> Version:
    """The first version after everything ``p`` stands for (``1.2`` → ``1.3.0``)."""
    major, minor, patch = p
    if major is None:
        raise ValueError("unbounded")
    if minor is None:
        return (major + 1, 0, 0)
    if patch is None:
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def _comparators(text: str) -> list[Comparator]:
    text = re.sub(r"(>=|<=|>|<|=|\^|~>?)\s+", r"\1", text.strip())
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        low, high = _partial(hyphen[1]), _partial(hyphen[2])
        upper: list[Comparator] = (
            [("<=", _floor(high))] if high[2] is not None else _upper(high, "<")
        )
        return [(">=", _floor(low)), *upper]
    if text in ("", "*", "x", "X", "latest"):
        return []
    result: list[Comparator] = []
    for token in text.split():
        op_match = _OPERATOR.match(token)
        if op_match is None:  # pragma: no cover - the pattern matches any string
            raise ValueError(f'"{token}" is not a comparator')
        op, rest = op_match[1] or "", op_match[2]
        result.extend(_one(op, _partial(rest)))
    return result


def _upper(p: Partial, op: str) -> list[Comparator]:
    return [] if p[0] is None else [(op, _next(p))]


def _one(op: str, p: Partial) -> list[Comparator]:
    major, minor, patch = p
    if op in ("", "="):
        if patch is not None:
            return [("=", _floor(p))]
        return [] if major is None else [(">=", _floor(p)), ("<", _next(p))]
    if major is None:
        return [("<", (0, 0, 0))] if op in ("<", ">") else []
    if op == "^":
        if major > 0 or minor is None:
            ceiling: Version = (major + 1, 0, 0)
        elif minor > 0 or patch is None:
            ceiling = (0, minor + 1, 0)
        else:
            ceiling = (0, 0, patch + 1)
        return [(">=", _floor(p)), ("<", ceiling)]
    if op in ("~", "~>"):
        ceiling = (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)
        return [(">=", _floor(p)), ("<", ceiling)]
    if op == ">=":
        return [(">=", _floor(p))]
    if op == ">":
        return [(">", _floor(p))] if patch is not None else [(">=", _next(p))]
    if op == "<":
        return [("<", _floor(p))]
    # "<=": everything the partial version stands for, included
    return [("<=", _floor(p))] if patch is not None else [("<", _next(p))]
