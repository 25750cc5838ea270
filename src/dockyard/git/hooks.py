"""``python -m dockyard.git.hooks pre-receive``: the hook every app repository runs on a push.

git runs it in the bare repository with the pushed ``<old> <new> <ref>`` lines on stdin and relays
its output to the pusher as ``remote:`` lines. The app and the pusher come from ``DOCKYARD_APP_ID``
and ``DOCKYARD_ACCOUNT_ID``, set by the git endpoint (smart HTTP or SSH) after it authenticated the
push (``hook_environment``); the platform's settings come from the usual ``DOCKYARD_*`` variables. A
non-zero exit makes git reject the push.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from dockyard.build.output import BuildOutput
from dockyard.control.context import Platform
from dockyard.control.deploys import RefUpdate, deploy_push, deployable_ref
from dockyard.errors import DockyardError
from dockyard.git.repos import set_head
from dockyard.settings import Settings, load_settings

APP_ID_VAR = "DOCKYARD_APP_ID"
ACCOUNT_ID_VAR = "DOCKYARD_ACCOUNT_ID"
USAGE = "usage: python -m dockyard.git.hooks pre-receive"


def hook_environment(
    settings: Settings, app_id: str, account_id: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for ``git receive-pack`` / ``upload-pack`` run on behalf of an authorized
    account: ``base`` (default: this process's) without ``GIT_*`` variables, the platform's
    settings, and the app and account the hook deploys as."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("GIT_")}
    env.update(settings.to_env())
    env[APP_ID_VAR] = app_id
    env[ACCOUNT_ID_VAR] = account_id
    return env


def parse_ref_lines(text: str) -> list[RefUpdate]:
    refs: list[RefUpdate] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            refs.append((parts[0], parts[1], parts[2]))
    return refs


class _Writer:
    """Writes whole lines to a stream, flushed at once so the pusher sees progress live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def pre_receive(stdin: TextIO, stdout: TextIO, environ: Mapping[str, str], repo: Path) -> int:
    emit = _Writer(stdout)
    output = BuildOutput(emit)
    app_id = environ.get(APP_ID_VAR)
    account_id = environ.get(ACCOUNT_ID_VAR)
    if not app_id or not account_id:
        output.error("This repository accepts pushes only through Dockyard's git endpoint")
        output.error("Push failed")
        return 1
    refs = parse_ref_lines(stdin.read())
    try:
        platform = Platform.open(load_settings(environ), migrate=False)
    except DockyardError as exc:
        output.error(f"The platform is not available: {exc.message}")
        output.error("Push failed")
        return 1
    try:
        deploy_push(platform, app_id, account_id, refs, repo, output)
    except Exception:  # deploy_push has reported the reason on the output already
        with contextlib.suppress(OSError):  # the pusher may be gone
            output.blank()
            output.error("Push failed")
        return 1
    finally:
        platform.close()
    with contextlib.suppress(DockyardError):  # the release stands; clones then name the branch
        set_head(repo, deployable_ref(refs)[0])
    return 0


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so the build is recorded as failed


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["pre-receive"]:
        sys.stderr.write(USAGE + "\n")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    repo = Path(os.environ.get("GIT_DIR", ".")).resolve()
    return pre_receive(sys.stdin, sys.stdout, os.environ, repo)


if __name__ == "__main__":
    sys.exit(main())
