"""``stack:build``: build this machine's stack image (the dynos' read-only root filesystem).

Like ``up``, the work happens in ``python -m dockyard.serve stack-build``, which replaces the CLI process."""

from __future__ import annotations

import click

from dockyard.cli.context import CliContext, pass_cli


@click.command(
    "stack:build",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def build(cli: CliContext, args: tuple[str, ...]) -> None:
    """Build the stack image dynos run on (debootstrap; a few minutes).

    Needs root; see dockyard stack:build --help."""
    cli.exec_serve("stack-build", *args)


COMMANDS = (build,)
ALIASES: dict[str, str] = {}
