"""``up`` and ``admin:*``: run Dockyard itself on this machine, and its operator commands.

The server is not imported here: the CLI process is replaced by ``python -m dockyard.serve ...``
with the same arguments."""

from __future__ import annotations

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
    cli.exec_serve("up", *args)


@click.command(
    "admin:create-user",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def create_user(cli: CliContext, args: tuple[str, ...]) -> None:
    """Create an account on this machine's Dockyard and print its API key."""
    cli.exec_serve("admin", "create-user", *args)


@click.command(
    "admin:list-users",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def list_users(cli: CliContext, args: tuple[str, ...]) -> None:
    """List the accounts of this machine's Dockyard."""
    cli.exec_serve("admin", "list-users", *args)


COMMANDS = (up, create_user, list_users)
ALIASES: dict[str, str] = {}
