""".slugignore: paths removed from the build directory after the source is exported and before
any buildpack runs (Heroku's slug compiler does the same).

The syntax is .gitignore's without negation: one pattern a line, ``#`` starts a comment, a pattern
with a ``/`` at its start or in its middle is matched against the path from the repository root,
otherwise against the name at any depth; a trailing ``/`` matches directories only; ``*``, ``?``,
``[...]`` and ``**`` work as in git. Lines starting with ``!`` are ignored, with a warning.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.build.output import BuildOutput

SLUGIGNORE = ".slugignore"
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    dirs_only: bool
    source: str


def _translate(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_slugignore(text: str, output: BuildOutput | None = None) -> list[Pattern]:
    patterns: list[Pattern] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            if output is not None:
                output.detail(
                    f".slugignore line {number}: {line!r} ignored — negation (!) is not supported"
                )
            continue
        dirs_only = line.endswith("/")
        glob = line.rstrip("/")
        anchored = "/" in glob
        glob = glob.lstrip("/")
        if not glob:
            continue
        prefix = "" if anchored else "(?:.*/)?"
        try:
            regex = re.compile(f"^{prefix}{_translate(glob)}$", re.DOTALL)
        except re.error:
            if output is not None:
                output.detail(f".slugignore line {number}: {line!r} ignored — not a valid pattern")
            continue
        patterns.append(Pattern(regex, dirs_only, line))
    return patterns


def apply_slugignore(build_dir: Path, output: BuildOutput) -> int:
    """Remove what ``build_dir/.slugignore`` lists; returns the number of paths removed."""
    path = build_dir / SLUGIGNORE
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        output.detail(".slugignore ignored: it is not a regular file of at most 64 KB")
        return 0
    patterns = parse_slugignore(path.read_text("utf-8", errors="replace"), output)
    if not patterns:
        return 0
    removed = 0
    for dirpath, dirnames, filenames in os.walk(build_dir):
        relative_dir = os.path.relpath(dirpath, build_dir)
        base = "" if relative_dir == "." else relative_dir + "/"
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            is_link = os.path.islink(full)
            if _matches(patterns, base + name, is_dir=not is_link):
                if is_link:
                    os.unlink(full)
                else:
                    shutil.rmtree(full)
                dirnames.remove(name)
                removed += 1
        for name in filenames:
            if _matches(patterns, base + name, is_dir=False):
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    if removed:
        output.detail(f"Removed {removed} path(s) listed in .slugignore")
    return removed


def _matches(patterns: list[Pattern], relative: str, *, is_dir: bool) -> bool:
    return any(p.regex.match(relative) and (is_dir or not p.dirs_only) for p in patterns)
