"""``GitRepos``: one bare repository per app, ``<root>/<app_id>.git``, named by id so renaming an
app moves nothing. Each repository's ``pre-receive`` hook runs ``python -m dockyard.git.hooks
pre-receive`` with the interpreter that installed it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from dockyard._util import proc
from dockyard.errors import InvalidError

DEPLOY_REFS = ("refs/heads/main", "refs/heads/master")
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_CONFIG = (
    ("receive.denyDeletes", "true"),
    ("receive.denyNonFastForwards", "false"),  # Heroku accepts force pushes
    ("receive.fsckObjects", "true"),  # reject malformed objects from hostile clients
    ("core.logAllRefUpdates", "false"),
    ("gc.auto", "0"),  # no gc racing a push; the operator's maintenance job packs repositories
)


def hook_script(python: str | None = None) -> str:
    """The ``pre-receive`` hook: the absolute interpreter path is written when it is installed."""
    interpreter = shlex.quote(python or sys.executable)
    return f"#!/bin/sh\nexec {interpreter} -m dockyard.git.hooks pre-receive\n"


class GitRepos:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, app_id: str) -> Path:
        if not _APP_ID.fullmatch(app_id):
            raise InvalidError(f"{app_id!r} is not an app id")
        return self.root / f"{app_id}.git"

    def exists(self, app_id: str) -> bool:
        return (self.path(app_id) / "HEAD").is_file()

    def ensure(self, app_id: str) -> Path:
        """The app's bare repository, created on first use; the hook is (re)installed every time so
        it follows the interpreter the platform runs with."""
        path = self.path(app_id)
        if not (path / "HEAD").is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            partial = self.root / f".{app_id}.git.partial"
            shutil.rmtree(partial, ignore_errors=True)
            proc.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", partial])
            for key, value in _CONFIG:
                proc.run(["git", "config", "--file", partial / "config", key, value])
            proc.run(["git", "config", "--file", partial / "config", "core.hooksPath", "hooks"])
            for sample in (partial / "hooks").glob("*.sample"):
                sample.unlink()
            try:
                os.rename(partial, path)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)  # another request created it first
                if not (path / "HEAD").is_file():
                    raise
        install_hook(path)
        return path

    def delete(self, app_id: str) -> None:
        path = self.path(app_id)
        if path.exists():
            trash = self.root / f".{app_id}.git.deleted"
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)


def install_hook(repo: Path, python: str | None = None) -> None:
    hooks = repo / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-receive"
    script = hook_script(python)
    if hook.is_file() and hook.read_text(encoding="utf-8") == script and os.access(hook, os.X_OK):
        return
    partial = hooks / ".pre-receive.partial"
    partial.write_text(script, encoding="utf-8")
    partial.chmod(0o755)
    os.replace(partial, hook)


def set_head(repo: Path, ref: str) -> None:
    """Point the repository's HEAD at the branch that was deployed, so clones check it out."""
    if ref not in DEPLOY_REFS:
        raise InvalidError(f"{ref} is not a deployable branch")
    current = proc.run(
        ["git", "symbolic-ref", "--quiet", "HEAD"], cwd=repo, check=False
    ).text.strip()
    if current != ref:
        proc.run(["git", "symbolic-ref", "HEAD", ref], cwd=repo)
