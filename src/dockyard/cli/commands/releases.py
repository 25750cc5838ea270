"""``releases``, ``releases:info``, ``releases:rollback`` (alias ``rollback``)."""

from __future__ import annotations

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.cli.output import format_time
from dockyard.client.platform import PlatformClient, Release
from dockyard.errors import InvalidError, NotFoundError


def _version(text: str) -> int:
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not raw.isdigit() or int(raw) < 1:
        raise click.BadParameter(f"{text!r} is not a release version such as v12")
    return int(raw)


def _current(releases: list[Release]) -> Release | None:
    """The release that is running: the one marked current, else the newest that succeeded."""
    marked = [r for r in releases if r.current]
    if marked:
        return marked[-1]
    succeeded = [r for r in releases if r.status == "succeeded"]
    return succeeded[-1] if succeeded else None


def _description(release: Release) -> str:
    if release.status == "pending":
        return f"{release.description} (release command executing)"
    if release.status == "failed":
        return f"{release.description} (release command failed)"
    return release.description


@click.command("releases")
@click.option("-n", "--num", type=click.IntRange(min=1), default=15, show_default=True)
@app_options
@json_option
@pass_cli
def releases(cli: CliContext, num: int, app: str | None, remote: str | None, as_json: bool) -> None:
    """List an app's releases, newest first."""
    name = cli.resolve_app(app, remote)
    found = cli.platform().releases(name)
    newest = list(reversed(found))[:num]
    out = cli.out
    if as_json:
        out.json([r.raw for r in newest])
        return
    if not found:
        out.line(f"{name} has no releases.")
        return
    current = _current(found)
    out.header(f"{name} Releases" + (f" - Current: v{current.version}" if current else ""))
    out.table(
        ["Version", "Description", "User", "Time"],
        [
            [
                f"v{r.version}",
                _description(r),
                r.user_email or "",
                format_time(r.created_at, cli.timezone),
            ]
            for r in newest
        ],
        headers=False,
    )


def _pick(client: PlatformClient, app: str, release: str | None) -> Release:
    if release is not None:
        return client.release(app, _version(release))
    current = _current(client.releases(app))
    if current is None:
        raise NotFoundError(f"{app} has no releases yet — deploy with git push first")
    return current


@click.command("releases:info")
@click.argument("release", required=False, metavar="[vN]")
@app_options
@json_option
@pass_cli
def info(
    cli: CliContext, release: str | None, app: str | None, remote: str | None, as_json: bool
) -> None:
    """Show one release (the current one by default)."""
    name = cli.resolve_app(app, remote)
    found = _pick(cli.platform(), name, release)
    out = cli.out
    if as_json:
        out.json(found.raw)
        return
    out.header(f"Release v{found.version}")
    out.pairs(
        [
            ("By", found.user_email or ""),
            ("Change", _description(found)),
            ("Current", "yes" if found.current else "no"),
            ("Slug", found.slug_id or ""),
            ("Status", found.status),
            ("When", format_time(found.created_at, cli.timezone)),
        ]
    )


def _previous(releases: list[Release]) -> Release:
    """Where Heroku's rollback goes back to: the newest succeeded release before the current one."""
    current = _current(releases)
    if current is None:
        raise InvalidError("There is no release to roll back from — deploy with git push first")
    earlier = [r for r in releases if r.version < current.version and r.status == "succeeded"]
    if not earlier:
        raise InvalidError(
            f"v{current.version} is the first release; there is nothing to roll back to"
        )
    return earlier[-1]


@click.command("releases:rollback")
@click.argument("release", required=False, metavar="[vN]")
@app_options
@pass_cli
def rollback(cli: CliContext, release: str | None, app: str | None, remote: str | None) -> None:
    """Roll back to an earlier release.

    By default, to the release before the current one."""
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    target = (
        client.release(name, _version(release)) if release else _previous(client.releases(name))
    )
    out = cli.out
    with out.action(f"Rolling back {name} to v{target.version}") as action:
        created = client.rollback(name, target.id or target.version)
        action.done(f"v{created.version}")
    out.warn("Rollback affects code and config vars; it doesn't add or remove add-ons.")


COMMANDS = (releases, info, rollback)
ALIASES = {"rollback": "releases:rollback"}
