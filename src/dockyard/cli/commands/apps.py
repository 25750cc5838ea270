"""``apps``, ``apps:create``, ``apps:info``, ``apps:rename``, ``apps:destroy``, ``git:remote``.

Git remotes use the app's HTTPS URL from the API; with ``--ssh`` they use
``$DOCKYARD_GIT_SSH_URL/<app>.git`` instead, which defaults to ``ssh://git@<API host>:2222``.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import click

from dockyard.cli import remotes
from dockyard.cli.confirmation import confirm_app
from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.cli.output import format_time
from dockyard.client.platform import App
from dockyard.errors import CommandError, InvalidError

SSH_URL_VAR = "DOCKYARD_GIT_SSH_URL"
DEFAULT_SSH_PORT = 2222


def ssh_git_url(cli: CliContext, app: str) -> str:
    """``ssh://git@<host>:<port>/<app>.git``: from ``$DOCKYARD_GIT_SSH_URL`` (e.g.
    ``ssh://git@git.example.com:2222``), else the API's host and port 2222."""
    base = cli.env.get(SSH_URL_VAR, "").strip().rstrip("/")
    if not base:
        host = cli.api_host
        host = f"[{host}]" if ":" in host else host
        base = f"ssh://git@{host}:{DEFAULT_SSH_PORT}"
    try:
        parts = urlsplit(base)
        valid = parts.scheme == "ssh" and bool(parts.hostname) and parts.path in ("", "/")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise InvalidError(
            f"{SSH_URL_VAR} {base!r} is not an ssh:// URL of a host — set it like "
            "ssh://git@git.example.com:2222"
        )
    return f"{base}/{app}.git"


def _git_url(cli: CliContext, app: App, ssh: bool) -> str:
    if ssh:
        return ssh_git_url(cli, app.name)
    return app.git_url or remotes.git_url(cli.api_url, app.name)


def _urls(cli: CliContext, app: App, ssh: bool = False) -> str:
    return f"{app.web_url} | {_git_url(cli, app, ssh)}"


def _remotes_or_none(cli: CliContext) -> dict[str, str] | None:
    try:
        return cli.git_remotes()
    except CommandError:
        return None


@click.command("apps")
@json_option
@pass_cli
def apps_list(cli: CliContext, as_json: bool) -> None:
    """List your apps.

    Apps you collaborate on follow under their own heading."""
    client = cli.platform()
    apps = sorted(client.apps(), key=lambda a: a.name)
    out = cli.out
    if as_json:
        out.json([a.raw for a in apps])
        return
    email = client.account().email
    owned = [a for a in apps if a.owner_email in (None, email)]
    shared = [a for a in apps if a not in owned]
    out.header(f"{email} Apps")
    for app in owned:
        out.line(app.name)
    if not owned:
        out.line("You have no apps.")
    if shared:
        out.line()
        out.header("Collaborated Apps")
        out.table(["Name", "Owner"], [[a.name, a.owner_email or ""] for a in shared], headers=False)


@click.command("apps:create")
@click.argument("name", required=False)
@click.option(
    "-r", "--remote", default=remotes.DEFAULT_REMOTE, show_default=True, help="Git remote to add."
)
@click.option("--no-remote", is_flag=True, help="Do not add a git remote.")
@click.option("--ssh", is_flag=True, help="Use the git remote over SSH (see dockyard keys:add).")
@json_option
@pass_cli
def create(
    cli: CliContext, name: str | None, remote: str, no_remote: bool, ssh: bool, as_json: bool
) -> None:
    """Create an app and add its git remote.

    Without NAME the API picks a name."""
    out = cli.out
    client = cli.platform()
    with out.action(f"Creating {name}" if name else "Creating app") as action:
        app = client.create_app(name)
        if not name:
            action.done(app.name)
    if as_json:
        out.json(app.raw)
    else:
        out.line(_urls(cli, app, ssh))
    if no_remote:
        return
    found = _remotes_or_none(cli)
    if found is None:
        return
    url = _git_url(cli, app, ssh)
    if remote not in found:
        remotes.add(cli.workdir, cli.env, remote, url)
        out.note(f"Git remote {remote} added")
    elif found[remote] != url:
        out.warn(
            f"Git remote {remote} already points at {found[remote]}; "
            f"run dockyard git:remote -a {app.name} to point it at the new app"
        )


@click.command("apps:info")
@app_options
@json_option
@pass_cli
def info(cli: CliContext, app: str | None, remote: str | None, as_json: bool) -> None:
    """Show an app's URLs, owner, stack and dynos."""
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    record = client.app(name)
    out = cli.out
    if as_json:
        out.json(record.raw)
        return
    counts = Counter(d.type for d in client.dynos(name))
    out.header(record.name)
    out.pairs(
        [
            ("Dynos", ", ".join(f"{t}: {n}" for t, n in sorted(counts.items()))),
            ("Git URL", record.git_url),
            ("Maintenance", "on" if record.maintenance else "off"),
            ("Owner", record.owner_email or ""),
            ("Released At", format_time(record.released_at, cli.timezone)),
            ("Stack", record.stack or ""),
            ("Web URL", record.web_url),
        ]
    )


@click.command("apps:rename")
@click.argument("newname")
@app_options
@pass_cli
def rename(cli: CliContext, newname: str, app: str | None, remote: str | None) -> None:
    """Rename an app.

    Git remotes of this repository that pointed at it follow."""
    old = cli.resolve_app(app, remote)
    out = cli.out
    with out.action(f"Renaming {old} to {newname}"):
        renamed = cli.platform().rename_app(old, newname)
    out.line(_urls(cli, renamed))
    found = _remotes_or_none(cli)
    if not found:
        return
    new_url = renamed.git_url or remotes.git_url(cli.api_url, renamed.name)
    old_url = new_url.replace(f"/{renamed.name}.git", f"/{old}.git")
    for name in remotes.pointing_at(found, cli.api_url, old, old_url):
        remotes.set_url(cli.workdir, cli.env, name, new_url)
        out.note(f"Git remote {name} updated")
    out.note("Don't forget to update git remotes for all other local checkouts of the app.")


@click.command("apps:destroy")
@click.argument("app_name", required=False, metavar="[APP]")
@app_options
@click.option("-c", "--confirm", metavar="APP", help="The app's name, to skip the question.")
@pass_cli
def destroy(
    cli: CliContext, app_name: str | None, app: str | None, remote: str | None, confirm: str | None
) -> None:
    """Delete an app and its add-ons.

    Git remotes of this repository that point at it are removed."""
    name = app_name or cli.resolve_app(app, remote)
    out = cli.out
    confirm_app(out, name, confirm, f"WARNING: This will delete {name} including all add-ons.")
    with out.action(f"Destroying {name} (including all add-ons)"):
        deleted = cli.platform().delete_app(name)
    found = _remotes_or_none(cli)
    for remote_name in remotes.pointing_at(found or {}, cli.api_url, name, deleted.git_url or None):
        remotes.remove(cli.workdir, cli.env, remote_name)
        out.note(f"Git remote {remote_name} removed")


@click.command("git:remote")
@app_options
@click.option("--ssh", is_flag=True, help="Use the git URL over SSH (see dockyard keys:add).")
@pass_cli
def git_remote(cli: CliContext, app: str | None, remote: str | None, ssh: bool) -> None:
    """Point a git remote at an app.

    The remote is named dockyard unless -r says otherwise. With --ssh it is
    $DOCKYARD_GIT_SSH_URL/<app>.git (default ssh://git@<API host>:2222/<app>.git)."""
    name = cli.resolve_app(app, None)
    record = cli.platform().app(name)
    found = cli.git_remotes()
    if found is None:
        raise InvalidError(
            "Not inside a git repository — run git init, or cd into the app's repository"
        )
    remote = remote or remotes.DEFAULT_REMOTE
    url = _git_url(cli, record, ssh)
    if remote in found:
        remotes.set_url(cli.workdir, cli.env, remote, url)
    else:
        remotes.add(cli.workdir, cli.env, remote, url)
    cli.out.line(f"set git remote {remote} to {url}")


COMMANDS = (apps_list, create, info, rename, destroy, git_remote)
ALIASES = {
    "apps:index": "apps",
    "list": "apps",
    "create": "apps:create",
    "info": "apps:info",
    "rename": "apps:rename",
    "destroy": "apps:destroy",
}
