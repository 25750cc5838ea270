"""``ProcfileBuildpack``: for apps that need no build step, only a Procfile naming their
commands."""

from __future__ import annotations

from pathlib import Path

from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.output import BuildOutput
from dockyard.domain.procfile import parse_procfile
from dockyard.errors import ProcfileError
from dockyard.types import ProcessType

PROCFILE = "Procfile"
MAX_PROCFILE_BYTES = 64 * 1024


def read_procfile(build_dir: Path) -> bytes | None:
    """The bytes of ``build_dir/Procfile``, or None when there is none. A Procfile that is a link
    out of the tree, not a regular file, or unreasonably large raises ``ProcfileError``."""
    path = build_dir / PROCFILE
    if not path.exists() and not path.is_symlink():
        return None
    root = build_dir.resolve()
    target = path.resolve()
    if not target.is_relative_to(root):
        raise ProcfileError(
            "Procfile is a link that points outside the repository — commit a real file"
        )
    if not target.is_file():
        raise ProcfileError("Procfile is not a regular file — commit a text file named Procfile")
    if target.stat().st_size > MAX_PROCFILE_BYTES:
        raise ProcfileError(
            f"Procfile is larger than {MAX_PROCFILE_BYTES // 1024} KB — "
            "keep one short line per process type"
        )
    return target.read_bytes()


def load_procfile(build_dir: Path) -> dict[ProcessType, str] | None:
    """The parsed Procfile, None when there is none; ``ProcfileError`` names the offending line."""
    data = read_procfile(build_dir)
    return None if data is None else parse_procfile(data)


class ProcfileBuildpack:
    """Detects a Procfile in the repository root; compiling only validates it."""

    name = "dockyard/procfile"

    def detect(self, build_dir: Path) -> str | None:
        path = build_dir / PROCFILE
        return "Procfile" if path.is_file() or path.is_symlink() else None

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        processes = load_procfile(build_dir)
        if processes is None:
            raise ProcfileError("No Procfile found in the repository root")
        output.detail("No build step needed: the Procfile's commands run as committed")

    def release(self, build_dir: Path) -> BuildpackRelease:
        return BuildpackRelease()
