"""``config``, ``config:get``, ``config:set``, ``config:unset``.

Each change makes a new release and restarts the app."""

from __future__ import annotations

import re
import shlex

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.client.platform import PlatformClient

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key(text: str) -> str:
    if not _KEY.fullmatch(text):
        raise click.BadParameter(
            f"{text!r} is not a valid config var name — use letters, digits and underscores, "
            "not starting with a digit (e.g. DATABASE_URL)"
        )
    return text


def _joined(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"


def _version(client: PlatformClient, app: str) -> str:
    latest = client.latest_release(app)
    return f"v{latest.version}" if latest else ""


@click.command("config")
@app_options
@json_option
@click.option(
    "-s", "--shell", is_flag=True, help="Print KEY=value lines for a shell or a .env file."
)
@pass_cli
def config(
    cli: CliContext, app: str | None, remote: str | None, as_json: bool, shell: bool
) -> None:
    """Show an app's config vars."""
    name = cli.resolve_app(app, remote)
    values = cli.platform().config_vars(name)
    out = cli.out
    if as_json:
        out.json(values)
    elif shell:
        for key in sorted(values):
            out.line(f"{key}={shlex.quote(values[key])}")
    else:
        out.header(f"{name} Config Vars")
        out.pairs([(key, values[key]) for key in sorted(values)])


@click.command("config:get")
@click.argument("key")
@app_options
@click.option("-s", "--shell", is_flag=True, help="Print KEY=value.")
@pass_cli
def get(cli: CliContext, key: str, app: str | None, remote: str | None, shell: bool) -> None:
    """Print one config var's value.

    An unset var prints an empty line."""
    name = cli.resolve_app(app, remote)
    value = cli.platform().config_vars(name).get(key, "")
    cli.out.line(f"{key}={shlex.quote(value)}" if shell else value)


@click.command("config:set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@app_options
@pass_cli
def set_(cli: CliContext, pairs: tuple[str, ...], app: str | None, remote: str | None) -> None:
    """Set config vars and restart the app."""
    changes: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair} is invalid. Must be in the format KEY=value.")
        changes[_key(key)] = value
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    out = cli.out
    with out.action(f"Setting {_joined(list(changes))} and restarting {name}") as action:
        result = client.update_config_vars(name, changes)
        action.done(_version(client, name))
    out.pairs([(key, result.get(key, str(changes[key]))) for key in changes])


@click.command("config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_options
@pass_cli
def unset(cli: CliContext, keys: tuple[str, ...], app: str | None, remote: str | None) -> None:
    """Remove config vars and restart the app."""
    changes: dict[str, str | None] = {_key(key): None for key in keys}
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    with cli.out.action(f"Unsetting {_joined(list(changes))} and restarting {name}") as action:
        client.update_config_vars(name, changes)
        action.done(_version(client, name))


COMMANDS = (config, get, set_, unset)
ALIASES = {"config:add": "config:set", "config:remove": "config:unset"}
