"""``drains``, ``drains:add URL``, ``drains:remove URL|TOKEN``: ship an app's log to syslog or HTTPS."""

from __future__ import annotations

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option


@click.command("drains")
@app_options
@json_option
@pass_cli
def drains(cli: CliContext, app: str | None, remote: str | None, as_json: bool) -> None:
    """List an app's log drains (with --json, their tokens too)."""
    name = cli.resolve_app(app, remote)
    found = cli.platform().drains(name)
    out = cli.out
    if as_json:
        out.json([d.raw for d in found])
        return
    if not found:
        out.line(f"{name} has no drains.")
        return
    out.header("Drains")
    for drain in found:
        out.line(f"{drain.url} ({drain.token})")


@click.command("drains:add")
@click.argument("url")
@app_options
@json_option
@pass_cli
def add(cli: CliContext, url: str, app: str | None, remote: str | None, as_json: bool) -> None:
    """Add a log drain: syslog://host:port, syslog+tls://host:port or https://… ."""
    name = cli.resolve_app(app, remote)
    drain = cli.platform().add_drain(name, url)
    if as_json:
        cli.out.json(drain.raw)
        return
    cli.out.line(f"Successfully added drain {drain.url} (token {drain.token})")


@click.command("drains:remove")
@click.argument("url_or_token")
@app_options
@pass_cli
def remove(cli: CliContext, url_or_token: str, app: str | None, remote: str | None) -> None:
    """Remove a log drain by its URL or token."""
    name = cli.resolve_app(app, remote)
    drain = cli.platform().remove_drain(name, url_or_token)
    cli.out.line(f"Successfully removed drain {drain.url}")


COMMANDS = (drains, add, remove)
ALIASES = {"drains:index": "drains"}
