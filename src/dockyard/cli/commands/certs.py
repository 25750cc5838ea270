"""``certs``, ``certs:add CRT KEY``, ``certs:update CRT KEY``, ``certs:info``, ``certs:remove``: an
app's own TLS certificates (Heroku's SNI endpoints).

Apps answer HTTPS from the start with the platform's certificate; these commands are for custom
domains. The certificate file holds the server's certificate first, then its intermediates; the key
file holds its private key without a passphrase.
"""

from __future__ import annotations

from pathlib import Path

import click

from dockyard.cli.confirmation import confirm_app
from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.cli.output import Output, format_time
from dockyard.client.platform import PlatformClient, SniEndpoint
from dockyard.errors import InvalidError, NotFoundError

MAX_FILE = 64 * 1024


def _read(path: Path, what: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise InvalidError(f"Cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE:
        raise InvalidError(f"{path} is too large to be a {what}")
    return data.decode("utf-8", "replace")


def _files(cli: CliContext, crt: Path, key: Path) -> tuple[str, str]:
    crt = crt if crt.is_absolute() else cli.workdir / crt
    key = key if key.is_absolute() else cli.workdir / key
    return _read(crt, "certificate"), _read(key, "private key")


def _trust(endpoint: SniEndpoint) -> str:
    if endpoint.ca_signed:
        return "SSL certificate is verified by a root authority."
    if endpoint.self_signed or endpoint.issuer == endpoint.subject:
        return "SSL certificate is self signed."
    return "SSL certificate is not trusted."


def _details(cli: CliContext, endpoint: SniEndpoint) -> None:
    out = cli.out
    out.line("Certificate details:")
    out.pairs(
        [
            ("Common Name(s)", ", ".join(endpoint.cert_domains)),
            ("Expires At", format_time(endpoint.expires_at, cli.timezone)),
            ("Issuer", endpoint.issuer),
            ("Starts At", format_time(endpoint.starts_at, cli.timezone)),
            ("Subject", endpoint.subject),
        ]
    )
    out.line(_trust(endpoint))


def _pick(client: PlatformClient, app: str, name: str | None) -> SniEndpoint:
    """The endpoint named ``name`` (a name or id), or the app's only one."""
    if name:
        return client.sni_endpoint(app, name)
    found = client.sni_endpoints(app)
    if not found:
        raise NotFoundError(f"{app} has no SSL certificates — add one with dockyard certs:add")
    if len(found) > 1:
        names = ", ".join(sorted(e.name for e in found))
        raise InvalidError(f"{app} has several SSL certificates ({names}) — choose one with --name")
    return found[0]


def _name_option(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--endpoint", "endpoint", metavar="ID", help="Certificate (by id).")(func)
    return click.option("--name", "name", metavar="NAME", help="Certificate (by name).")(func)


@click.command("certs")
@app_options
@json_option
@pass_cli
def certs(cli: CliContext, app: str | None, remote: str | None, as_json: bool) -> None:
    """List an app's SSL certificates."""
    name = cli.resolve_app(app, remote)
    found = sorted(cli.platform().sni_endpoints(name), key=lambda e: e.name)
    out: Output = cli.out
    if as_json:
        out.json([e.raw for e in found])
        return
    if not found:
        out.line(f"{name} has no SSL certificates.")
        out.line("Use dockyard certs:add CRT KEY to add one.")
        return
    out.table(
        ["Name", "Common Name(s)", "Expires", "Trusted", "Type", "Domains"],
        [
            [
                e.name,
                ", ".join(e.cert_domains),
                format_time(e.expires_at, cli.timezone),
                "True" if e.ca_signed else "False",
                "SNI",
                str(len(e.domains)),
            ]
            for e in found
        ],
    )


@click.command("certs:add")
@click.argument("crt", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@app_options
@json_option
@pass_cli
def add(
    cli: CliContext, crt: Path, key: Path, app: str | None, remote: str | None, as_json: bool
) -> None:
    """Add an SSL certificate to an app.

    CRT holds the certificate and its intermediates (PEM), KEY its private key."""
    name = cli.resolve_app(app, remote)
    chain, private_key = _files(cli, crt, key)
    with cli.out.action(f"Adding SSL certificate to {name}"):
        endpoint = cli.platform().add_sni_endpoint(name, chain, private_key)
    if as_json:
        cli.out.json(endpoint.raw)
        return
    _details(cli, endpoint)


@click.command("certs:update")
@click.argument("crt", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@_name_option
@app_options
@pass_cli
def update(
    cli: CliContext,
    crt: Path,
    key: Path,
    name: str | None,
    endpoint: str | None,
    app: str | None,
    remote: str | None,
) -> None:
    """Replace an app's SSL certificate (its name stays)."""
    app_name = cli.resolve_app(app, remote)
    chain, private_key = _files(cli, crt, key)
    client = cli.platform()
    current = _pick(client, app_name, name or endpoint)
    with cli.out.action(f"Updating SSL certificate {current.name} for {app_name}"):
        updated = client.update_sni_endpoint(app_name, current.id, chain, private_key)
    _details(cli, updated)


@click.command("certs:info")
@_name_option
@app_options
@json_option
@pass_cli
def info(
    cli: CliContext,
    name: str | None,
    endpoint: str | None,
    app: str | None,
    remote: str | None,
    as_json: bool,
) -> None:
    """Show an app's SSL certificate."""
    app_name = cli.resolve_app(app, remote)
    client = cli.platform()
    with cli.out.action(f"Fetching SSL certificate info for {app_name}"):
        found = _pick(client, app_name, name or endpoint)
    if as_json:
        cli.out.json(found.raw)
        return
    _details(cli, found)


@click.command("certs:remove")
@_name_option
@click.option("--confirm", metavar="APP", help="The app's name, to skip the prompt.")
@app_options
@pass_cli
def remove(
    cli: CliContext,
    name: str | None,
    endpoint: str | None,
    confirm: str | None,
    app: str | None,
    remote: str | None,
) -> None:
    """Remove an SSL certificate from an app.

    Its custom domains get the platform's certificate again."""
    app_name = cli.resolve_app(app, remote)
    client = cli.platform()
    found = _pick(client, app_name, name or endpoint)
    confirm_app(
        cli.out,
        app_name,
        confirm,
        f"WARNING: Destructive Action - you cannot rollback this change\n"
        f"This command will remove the endpoint {found.name} from {app_name}.",
    )
    with cli.out.action(f"Removing SSL certificate {found.name} from {app_name}"):
        client.remove_sni_endpoint(app_name, found.id)


COMMANDS = (certs, add, update, info, remove)
ALIASES = {"certs:index": "certs"}
