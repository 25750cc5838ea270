"""The ``dockyard`` command and its single exit point.

Exit codes: 0 on success; 1 when Dockyard reports an error (printed as one `` !    message`` line
on stderr) or a confirmation fails; 2 for usage errors (as click does); 130 on Ctrl-C.

Tests run the real command with their own ``CliContext``:
``main(args, obj=CliContext(api_factory=...))`` or ``CliRunner().invoke(cli, args, obj=...)``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from dockyard import __version__
from dockyard.cli.commands import (
    accounts,
    apps,
    audit,
    auth,
    buildpacks,
    certs,
    config,
    domains,
    keys,
    logs,
    ps,
    releases,
    run,
    security,
    stack,
    up,
)
from dockyard.cli.context import CliContext
from dockyard.cli.output import ERROR_PREFIX
from dockyard.errors import DockyardError

INTERRUPTED = 130
_TOPICS = (
    auth,
    accounts,
    apps,
    config,
    ps,
    run,
    releases,
    buildpacks,
    domains,
    certs,
    logs,
    keys,
    stack,
    up,
    audit,
    security,
)


class ReportedError(click.ClickException):
    """A ``DockyardError`` on its way out: one `` !    message`` line on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        text = " ".join(self.message.split())
        click.echo(f"{ERROR_PREFIX}{text}", err=True)


def _interrupted(exc: BaseException) -> bool:
    """Whether an ``Abort`` came from Ctrl-C (click's prompts raise ``Abort() from None``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class DockyardGroup(click.Group):
    """Heroku's ``topic:command`` names, hidden aliases, Dockyard errors turned into exit codes."""

    aliases: dict[str, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DockyardError as exc:
            raise ReportedError(exc.message) from exc
        except KeyboardInterrupt:
            click.echo(err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except click.exceptions.Abort as exc:
            if _interrupted(exc):
                click.echo(err=True)
                raise click.exceptions.Exit(INTERRUPTED) from None
            raise


@click.group(cls=DockyardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="dockyard")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Dockyard: git push your apps to your own machines, Heroku style."""
    obj = ctx.ensure_object(CliContext)
    ctx.call_on_close(obj.close)


for _topic in _TOPICS:
    for _command in _topic.COMMANDS:
        cli.add_command(_command)
    cli.aliases.update(_topic.ALIASES)


def main(argv: Sequence[str] | None = None, *, obj: CliContext | None = None) -> NoReturn:
    """Run ``dockyard`` with ``argv`` (default: the process arguments) and exit with its code."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dockyard", obj=obj)
    sys.exit(0)  # cli.main exits by itself in standalone mode; this line keeps NoReturn honest
