"""``domains``, ``domains:add``, ``domains:remove``."""

from __future__ import annotations

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option


@click.command("domains")
@app_options
@json_option
@pass_cli
def domains(cli: CliContext, app: str | None, remote: str | None, as_json: bool) -> None:
    """List an app's domains.

    The platform domain, then custom domains with their DNS target."""
    name = cli.resolve_app(app, remote)
    found = sorted(cli.platform().domains(name), key=lambda d: d.hostname)
    out = cli.out
    if as_json:
        out.json([d.raw for d in found])
        return
    platform = [d for d in found if d.kind != "custom"]
    custom = [d for d in found if d.kind == "custom"]
    out.header(f"{name} Dockyard Domain")
    for domain in platform:
        out.line(domain.hostname)
    if custom:
        out.line()
        out.header(f"{name} Custom Domains")
        out.table(
            ["Domain Name", "DNS Record Type", "DNS Target", "Status"],
            [[d.hostname, "CNAME", d.cname or "", d.status or ""] for d in custom],
        )


@click.command("domains:add")
@click.argument("hostname")
@app_options
@json_option
@pass_cli
def add(cli: CliContext, hostname: str, app: str | None, remote: str | None, as_json: bool) -> None:
    """Add a custom domain to an app."""
    name = cli.resolve_app(app, remote)
    out = cli.out
    with out.action(f"Adding {hostname} to {name}"):
        domain = cli.platform().add_domain(name, hostname)
    if as_json:
        out.json(domain.raw)
        return
    if domain.cname:
        out.line(f"Configure your app's DNS provider to point to the DNS Target {domain.cname}")


@click.command("domains:remove")
@click.argument("hostname")
@app_options
@pass_cli
def remove(cli: CliContext, hostname: str, app: str | None, remote: str | None) -> None:
    """Remove a custom domain from an app."""
    name = cli.resolve_app(app, remote)
    with cli.out.action(f"Removing {hostname} from {name}"):
        cli.platform().remove_domain(name, hostname)


COMMANDS = (domains, add, remove)
ALIASES = {"domains:index": "domains"}
