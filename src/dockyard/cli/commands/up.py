"""``up``: run Dockyard itself on this machine.

The server is not imported here: the CLI process is replaced by ``python -m dockyard.serve up``
with the same arguments."""

from __future__ import annotations

import sys

import click

from dockyard.cli.context import CliContext, pass_cli


@click.command(
    "up",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def up(cli: CliContext, args: tuple[str, ...]) -> None:
    """Run Dockyard on this machine.

    Starts the API, router and agent; see dockyard up --help."""
    sys.stdout.flush()
    sys.stderr.flush()
    cli.execv(sys.executable, [sys.executable, "-m", "dockyard.serve", "up", *args])


COMMANDS = (up,)
ALIASES: dict[str, str] = {}
