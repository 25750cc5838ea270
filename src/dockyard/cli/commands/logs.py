"""``logs``: the app's recent log lines, and with ``--tail`` the lines that follow."""

from __future__ import annotations

import sys
from typing import cast

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options
from dockyard.client.platform import LogSource


@click.command("logs")
@click.option("-n", "--num", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("-t", "--tail", is_flag=True, help="Keep streaming new lines.")
@click.option(
    "-s", "--source", type=click.Choice(["app", "heroku"]), help="Only app or platform lines."
)
@click.option("-d", "--dyno-name", "dyno", help="Only the lines of one dyno, e.g. web.1.")
@click.option("-p", "--process-type", "ptype", help="Only the lines of one process type, e.g. web.")
@app_options
@pass_cli
def logs(
    cli: CliContext,
    num: int,
    tail: bool,
    source: str | None,
    dyno: str | None,
    ptype: str | None,
    app: str | None,
    remote: str | None,
) -> None:
    """Show an app's logs."""
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    url = client.create_log_session(
        name,
        lines=num,
        tail=tail,
        source=cast("LogSource | None", source),
        dyno=dyno or ptype,
    )
    for line in client.log_lines(url):
        click.echo(line)
        sys.stdout.flush()


COMMANDS = (logs,)
ALIASES: dict[str, str] = {}
