"""Options of Heroku's app commands: ``-a/--app``, ``-r/--remote``, and ``--json`` on lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def app_options(func: F) -> F:
    """``-a/--app APP`` and ``-r/--remote REMOTE``: which app the command acts on."""
    func = click.option(
        "-r",
        "--remote",
        metavar="REMOTE",
        help="Git remote of the app (default: dockyard, then heroku).",
    )(func)
    return click.option(
        "-a",
        "--app",
        metavar="APP",
        envvar=None,
        help="App to run the command against (default: $DOCKYARD_APP, then the git remote).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(func)
