"""``buildpacks``, ``buildpacks:set``, ``buildpacks:add``, ``buildpacks:remove``, ``buildpacks:clear``.

The messages are the Heroku CLI's. An app without buildpacks has them detected at each build.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.cli.remotes import DEFAULT_REMOTE
from dockyard.client.platform import BuildpackInstallation, PlatformClient
from dockyard.errors import InvalidError, NotFoundError


def _push(remote: str | None) -> str:
    return f"git push {remote or DEFAULT_REMOTE} main"


def _display(cli: CliContext, urls: Sequence[str], indent: str) -> None:
    if len(urls) == 1:
        cli.out.line(urls[0])
        return
    for number, url in enumerate(urls, start=1):
        cli.out.line(f"{indent}{number}. {url}")


def _display_update(
    cli: CliContext, app: str, remote: str | None, urls: list[str], action: str
) -> None:
    if len(urls) == 1:
        cli.out.line(f"Buildpack {action}. Next release on {app} will use {urls[0]}.")
        cli.out.line(f"Run {_push(remote)} to create a new release using this buildpack.")
        return
    cli.out.line(f"Buildpack {action}. Next release on {app} will use:")
    _display(cli, urls, "  ")
    cli.out.line(f"Run {_push(remote)} to create a new release using these buildpacks.")


def _urls(installed: Sequence[BuildpackInstallation]) -> list[str]:
    return [b.url for b in installed]


def _find(installed: Sequence[BuildpackInstallation], reference: str) -> int:
    for position, buildpack in enumerate(installed):
        if reference in (buildpack.url, buildpack.name):
            return position
    return -1


def _check_index(index: int | None) -> None:
    if index is not None and index <= 0:
        raise InvalidError("Invalid index. Must be greater than 0.")


def _check_not_set(installed: Sequence[BuildpackInstallation], reference: str) -> None:
    if _find(installed, reference) != -1:
        raise InvalidError(f"The buildpack {reference} is already set on your app.")


def _clear(cli: CliContext, client: PlatformClient, app: str, plural: str, action: str) -> None:
    client.set_buildpacks(app, [])
    cli.out.line(
        f"Buildpack{plural} {action}. Next release on {app} will detect buildpacks normally."
    )


@click.command("buildpacks")
@app_options
@json_option
@pass_cli
def buildpacks(cli: CliContext, app: str | None, remote: str | None, as_json: bool) -> None:
    """Show an app's buildpacks."""
    name = cli.resolve_app(app, remote)
    installed = cli.platform().buildpacks(name)
    if as_json:
        cli.out.json([b.raw for b in installed])
    elif not installed:
        cli.out.line(f"{name} has no Buildpack URL set.")
    else:
        cli.out.header(f"{name} Buildpack URL{'s' if len(installed) > 1 else ''}")
        _display(cli, _urls(installed), "")


@click.command("buildpacks:set")
@click.argument("buildpack")
@app_options
@click.option(
    "-i", "--index", type=int, default=None, help="1-based position of the buildpack to replace."
)
@pass_cli
def set_(
    cli: CliContext, buildpack: str, app: str | None, remote: str | None, index: int | None
) -> None:
    """Set an app's buildpack, replacing the first one (or the one at --index)."""
    _check_index(index)
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    installed = client.buildpacks(name)
    _check_not_set(installed, buildpack)
    urls = _urls(installed)
    position = 0 if index is None else min(index - 1, len(urls))
    urls[position : position + 1] = [buildpack]
    _display_update(cli, name, remote, _urls(client.set_buildpacks(name, urls)), "set")


@click.command("buildpacks:add")
@click.argument("buildpack")
@app_options
@click.option("-i", "--index", type=int, default=None, help="1-based position to insert it at.")
@pass_cli
def add(
    cli: CliContext, buildpack: str, app: str | None, remote: str | None, index: int | None
) -> None:
    """Add a buildpack to an app, last or at --index."""
    _check_index(index)
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    installed = client.buildpacks(name)
    _check_not_set(installed, buildpack)
    urls = _urls(installed)
    position = len(urls) if index is None else min(index - 1, len(urls))
    urls.insert(position, buildpack)
    _display_update(cli, name, remote, _urls(client.set_buildpacks(name, urls)), "added")


@click.command("buildpacks:remove")
@click.argument("buildpack", required=False)
@app_options
@click.option(
    "-i", "--index", type=int, default=None, help="1-based position of the one to remove."
)
@pass_cli
def remove(
    cli: CliContext,
    buildpack: str | None,
    app: str | None,
    remote: str | None,
    index: int | None,
) -> None:
    """Remove a buildpack from an app, by URL or --index."""
    if index is not None and buildpack:
        raise InvalidError("Please choose either index or Buildpack, but not both.")
    if index is None and not buildpack:
        raise InvalidError(
            "Usage: dockyard buildpacks:remove [BUILDPACK_URL]. Must specify a buildpack to "
            "remove, either by index or URL."
        )
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    installed = client.buildpacks(name)
    if not installed:
        raise NotFoundError(
            f"No buildpacks were found. Next release on {name} will detect buildpack normally."
        )
    if index is not None:
        if not 1 <= index <= len(installed):
            if len(installed) == 1:
                raise InvalidError("Invalid index. Only valid value is 1.")
            raise InvalidError(
                f"Invalid index. Please choose a value between 1 and {len(installed)}"
            )
        position = index - 1
    else:
        position = _find(installed, buildpack or "")
    if position == -1:
        raise NotFoundError("Buildpack not found. Nothing was removed.")
    if len(installed) == 1:
        _clear(cli, client, name, "", "removed")
        return
    urls = _urls(installed)
    del urls[position]
    _display_update(cli, name, remote, _urls(client.set_buildpacks(name, urls)), "removed")


@click.command("buildpacks:clear")
@app_options
@pass_cli
def clear(cli: CliContext, app: str | None, remote: str | None) -> None:
    """Clear all buildpacks set on the app; the next build detects them."""
    name = cli.resolve_app(app, remote)
    _clear(cli, cli.platform(), name, "s", "cleared")


COMMANDS = (buildpacks, set_, add, remove, clear)
ALIASES: dict[str, str] = {}
