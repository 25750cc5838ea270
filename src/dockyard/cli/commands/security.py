"""``auth:2fa`` (and ``:enable``, ``:disable``, ``:recovery-codes``), ``authorizations`` (and ``:create``,
``:info``, ``:revoke``), ``apps:transfer`` (and ``apps:transfers``, ``apps:transfers:accept``),
``access:add``, ``access:remove`` and ``admin:deactivate``.

A command the API answers with ``two_factor`` asks for a code and sends it again, as the Heroku CLI does.
"""

from __future__ import annotations

from typing import Any

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.client.security import SecurityClient
from dockyard.errors import InvalidError


def _client(cli: CliContext) -> SecurityClient:
    def prompt() -> str:
        code: str = click.prompt("Two-factor code", hide_input=True, err=True)
        return code.strip()

    return SecurityClient(cli.platform().api, prompt)


@click.command("auth:2fa")
@pass_cli
def two_factor(cli: CliContext) -> None:
    """Show whether two-factor authentication is on."""
    status = _client(cli).two_factor()
    state = "on" if status["enabled"] else f"off (required from {status['required_from']})"
    cli.out.line(f"Two-factor authentication is {state}")
    cli.out.line(f"Authenticator app: {'yes' if status['totp'] else 'no'}")
    cli.out.line(f"Security keys: {len(status['webauthn'])}")
    cli.out.line(f"Recovery codes left: {status['recovery_codes_left']}")


@click.command("auth:2fa:enable")
@pass_cli
def two_factor_enable(cli: CliContext) -> None:
    """Turn on two-factor authentication with an authenticator app."""
    client = _client(cli)
    started = client.begin_totp()
    cli.out.line("Add this account to your authenticator app:")
    cli.out.line(f"  {started['uri']}")
    cli.out.line(f"  (or type the secret {started['secret']})")
    code = click.prompt("Code from the app", err=True).strip()
    done = client.confirm_totp(code)
    cli.out.note("Two-factor authentication is on")
    _show_codes(cli, done.get("recovery_codes") or [])


@click.command("auth:2fa:disable")
@pass_cli
def two_factor_disable(cli: CliContext) -> None:
    """Remove the authenticator app (security keys stay)."""
    _client(cli).disable_totp()
    cli.out.note("The authenticator app was removed")


@click.command("auth:2fa:recovery-codes")
@pass_cli
def recovery_codes(cli: CliContext) -> None:
    """Make ten new recovery codes; the old ones stop working."""
    _show_codes(cli, _client(cli).recovery_codes())


def _show_codes(cli: CliContext, codes: list[str]) -> None:
    if not codes:
        return
    cli.out.line(
        "Recovery codes (each works once; keep them somewhere safe, they are not shown again):"
    )
    for code in codes:
        cli.out.line(f"  {code}")


def _authorization_line(item: dict[str, Any]) -> str:
    scopes = ",".join(item.get("scope") or [])
    used = item.get("last_used_at") or "never"
    return f"{item['id']}  {item.get('kind', '')}  {scopes}  {item.get('description', '')}  (last used {used})"


@click.command("authorizations")
@pass_cli
def authorizations(cli: CliContext) -> None:
    """List the account's OAuth authorizations and API keys."""
    for item in _client(cli).authorizations():
        cli.out.line(_authorization_line(item))


@click.command("authorizations:create")
@click.option("-s", "--scope", default="global", help="Comma-separated scopes (default global).")
@click.option("-d", "--description", default="", help="What the token is for.")
@click.option("-e", "--expires-in", type=int, default=None, help="Seconds (default 90 days).")
@click.option("-S", "--short", is_flag=True, help="Print only the token.")
@pass_cli
def authorizations_create(
    cli: CliContext, scope: str, description: str, expires_in: int | None, short: bool
) -> None:
    """Create a long-lived authorization for automation (needs a second factor)."""
    scopes = [s.strip() for s in scope.split(",") if s.strip()]
    if not scopes:
        raise InvalidError("Give at least one scope, e.g. --scope read")
    created = _client(cli).create_authorization(scopes, description, expires_in)
    token = created["access_token"]["token"]
    if short:
        cli.out.line(token)
        return
    cli.out.line(_authorization_line(created))
    cli.out.line(f"Token (shown once): {token}")


@click.command("authorizations:info")
@click.argument("authorization_id")
@pass_cli
def authorizations_info(cli: CliContext, authorization_id: str) -> None:
    """Show one authorization."""
    item = _client(cli).authorization(authorization_id)
    cli.out.line(_authorization_line(item))
    cli.out.line(f"Expires: {item.get('expires_at') or 'never'}")
    cli.out.line(f"Last used from: {item.get('last_used_ip') or '-'}")


@click.command("authorizations:revoke")
@click.argument("authorization_id")
@pass_cli
def authorizations_revoke(cli: CliContext, authorization_id: str) -> None:
    """Revoke an authorization or API key."""
    _client(cli).revoke_authorization(authorization_id)
    cli.out.note(f"Revoked {authorization_id}")


@click.command("apps:transfer")
@click.argument("recipient")
@click.option("-a", "--app", "app_name", help="The app (default: the git remote's).")
@click.option("-r", "--remote", help="Git remote of the app.")
@click.option("-c", "--confirm", help="The app's name, to skip the question.")
@pass_cli
def apps_transfer(
    cli: CliContext, recipient: str, app_name: str | None, remote: str | None, confirm: str | None
) -> None:
    """Offer the app to another account; it is theirs once they accept (you stay a collaborator)."""
    app = cli.resolve_app(app_name, remote)
    if confirm is None:
        confirm = click.prompt(f"To transfer {app} to {recipient}, type {app}", err=True).strip()
    if confirm != app:
        raise InvalidError(f"Confirmation {confirm} did not match {app}. Aborted.")
    offered = _client(cli).transfer(app, recipient, confirm)
    cli.out.note(f"Transfer of {app} to {recipient} requested ({offered['id']}); waiting for them")


@click.command("apps:transfers")
@pass_cli
def apps_transfers(cli: CliContext) -> None:
    """List app transfers you sent or received."""
    for item in _client(cli).transfers():
        cli.out.line(
            f"{item['id']}  {item['app']['name']}  {item['owner']['email']} -> "
            f"{item['recipient']['email']}  {item['state']}"
        )


@click.command("apps:transfers:accept")
@click.argument("transfer_id")
@click.option("--decline", is_flag=True, help="Decline instead.")
@pass_cli
def apps_transfers_accept(cli: CliContext, transfer_id: str, decline: bool) -> None:
    """Accept (or decline) an app offered to you."""
    done = _client(cli).answer_transfer(transfer_id, "declined" if decline else "accepted")
    cli.out.note(f"Transfer of {done['app']['name']} {done['state']}")


@click.command("access:add")
@click.argument("email")
@click.option("-a", "--app", "app_name")
@click.option("-r", "--remote")
@pass_cli
def access_add(cli: CliContext, email: str, app_name: str | None, remote: str | None) -> None:
    """Add a collaborator to the app."""
    app = cli.resolve_app(app_name, remote)
    _client(cli).add_collaborator(app, email)
    cli.out.note(f"Added {email} to {app} as a collaborator")


@click.command("access:remove")
@click.argument("email")
@click.option("-a", "--app", "app_name")
@click.option("-r", "--remote")
@pass_cli
def access_remove(cli: CliContext, email: str, app_name: str | None, remote: str | None) -> None:
    """Remove a collaborator from the app."""
    app = cli.resolve_app(app_name, remote)
    _client(cli).remove_collaborator(app, email)
    cli.out.note(f"Removed {email} from {app}")


@click.command("admin:deactivate")
@click.argument("email")
@pass_cli
def admin_deactivate(cli: CliContext, email: str) -> None:
    """Deactivate an account (operators): its sessions, tokens, OAuth grants and SSH keys are revoked."""
    done = _client(cli).deactivate(email)
    revoked = done["revoked"]
    cli.out.note(
        f"Deactivated {done['account']['email']}: {revoked['sessions']} session(s), "
        f"{revoked['authorizations']} authorization(s), {revoked['api_keys']} API key(s), "
        f"{revoked['ssh_keys']} SSH key(s) revoked"
    )


COMMANDS = (
    two_factor,
    two_factor_enable,
    two_factor_disable,
    recovery_codes,
    authorizations,
    authorizations_create,
    authorizations_info,
    authorizations_revoke,
    apps_transfer,
    apps_transfers,
    apps_transfers_accept,
    access_add,
    access_remove,
    admin_deactivate,
)
ALIASES: dict[str, str] = {
    "2fa": "auth:2fa",
    "sharing:add": "access:add",
    "sharing:remove": "access:remove",
}
