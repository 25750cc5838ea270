"""``logs``: the app's recent log lines, with ``--tail`` the lines that follow, with ``--since`` a search
of the history. The drains commands are registered with this topic (``drains.py``)."""

from __future__ import annotations

import sys
from typing import cast

import click

from dockyard.cli.commands import drains
from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options
from dockyard.client.platform import LogSource


@click.command("logs")
@click.option(
    "-n", "--num", type=click.IntRange(min=0), default=None, help="Number of lines (default 100)."
)
@click.option("-t", "--tail", is_flag=True, help="Keep streaming new lines.")
@click.option(
    "-s", "--source", type=click.Choice(["app", "heroku"]), help="Only app or platform lines."
)
@click.option("-d", "--dyno-name", "dyno", help="Only the lines of one dyno, e.g. web.1.")
@click.option("-p", "--process-type", "ptype", help="Only the lines of one process type, e.g. web.")
@click.option("--since", help="Search the history from a time (2026-03-01T12:00:00Z) or age (2h).")
@click.option("--until", help="Search the history up to a time or age.")
@click.option("--grep", help="Only lines containing this text.")
@app_options
@pass_cli
def logs(
    cli: CliContext,
    num: int | None,
    tail: bool,
    source: str | None,
    dyno: str | None,
    ptype: str | None,
    since: str | None,
    until: str | None,
    grep: str | None,
    app: str | None,
    remote: str | None,
) -> None:
    """Show an app's logs."""
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    if num is None and not (since or until):
        num = 100
    url = client.create_log_session(
        name,
        lines=num,
        tail=tail,
        source=cast("LogSource | None", source),
        dyno=dyno or ptype,
        since=since,
        until=until,
        grep=grep,
    )
    for line in client.log_lines(url):
        click.echo(line)
        sys.stdout.flush()


COMMANDS = (logs, *drains.COMMANDS)
ALIASES: dict[str, str] = dict(drains.ALIASES)
