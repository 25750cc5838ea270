"""``signup``, ``password:change``, ``password:reset``, ``auth:sessions``, ``sessions:destroy`` and
``admin:outbox``: accounts, their passwords and their sessions."""

from __future__ import annotations

import base64
import socket
from typing import Any

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import json_option
from dockyard.client.http import ApiClient
from dockyard.errors import AccessDeniedError, InvalidError

TWO_FACTOR_STATUSES = (200, 201, 202, 403)


def _anonymous(cli: CliContext) -> ApiClient:
    client = cli.api_factory(cli.api_url, None)
    cli._clients.append(client)
    return client


def _authenticated(cli: CliContext) -> ApiClient:
    cli.platform()  # fails with "Not logged in" when there is no key
    client = cli.api_factory(cli.api_url, cli.api_key())
    cli._clients.append(client)
    return client


def new_password(prompt: str = "New password") -> str:
    password: str = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
    return password


def with_second_factor(
    client: ApiClient, method: str, path: str, *, json: Any, headers: dict[str, str] | None = None
) -> Any:
    """Send the request; when the API answers ``two_factor``, ask for a code and send it again with
    ``Heroku-Two-Factor-Code`` (as the Heroku CLI does)."""
    headers = dict(headers or {})
    response = client.request(method, path, json=json, headers=headers, ok=TWO_FACTOR_STATUSES)
    if response.status_code == 403:
        body = response.json() if response.content else {}
        if body.get("id") != "two_factor":
            raise AccessDeniedError(str(body.get("message") or "Forbidden"))
        code = click.prompt("Two-factor code", err=True).strip()
        headers["Heroku-Two-Factor-Code"] = code
        response = client.request(method, path, json=json, headers=headers)
    return response.json() if response.content else {}


def password_login(cli: CliContext, email: str, password: str, expires_in: int | None) -> str:
    """An OAuth token for ``email``: ``POST /oauth/authorizations`` with HTTP Basic, as ``heroku
    login -i`` does."""
    basic = base64.b64encode(f"{email}:{password}".encode()).decode("ascii")
    body: dict[str, Any] = {
        "scope": ["global"],
        "description": f"dockyard CLI login from {socket.gethostname()}",
    }
    if expires_in:
        body["expires_in"] = expires_in
    answer = with_second_factor(
        _anonymous(cli),
        "POST",
        "/oauth/authorizations",
        json=body,
        headers={"Authorization": f"Basic {basic}"},
    )
    token = (answer.get("access_token") or {}).get("token")
    if not token:
        raise InvalidError("The API did not hand out a token — is this a Dockyard API?")
    return str(token)


@click.command("signup")
@click.argument("email", required=False)
@click.option("--name", default="", help="Your name (shown to collaborators).")
@click.option("--token", help="Finish a sign-up with the secret of the link you were mailed.")
@pass_cli
def signup(cli: CliContext, email: str | None, name: str, token: str | None) -> None:
    """Sign up: mails a link to EMAIL; then finish with --token and choose a password.

    Passwords need 15 characters or more (8 once you add a second factor); a few unrelated words
    are easy to remember. Common passwords and ones built on your email or name are refused."""
    client = _anonymous(cli)
    if token:
        pending = client.request("GET", f"/signups/{token}/verify").json()
        cli.out.note(f"Signing up {pending.get('email')}")
        account = client.request(
            "POST", f"/signups/{token}/verify", json={"password": new_password("Password")}
        ).json()
        cli.out.note(f"Account created for {account.get('email')} — log in with dockyard login")
        return
    if not email:
        email = click.prompt("Email", err=True).strip()
    answer = client.request("POST", "/signups", json={"email": email, "name": name}).json()
    cli.out.note(str(answer.get("message", "Check your mailbox.")))


@click.command("password:reset")
@click.argument("email", required=False)
@click.option("--token", help="Set the new password with the secret of the link you were mailed.")
@pass_cli
def password_reset(cli: CliContext, email: str | None, token: str | None) -> None:
    """Forgot your password? Mails a reset link to EMAIL (valid 30 minutes); then run again with
    --token. A reset ends every session and does not replace your second factor."""
    client = _anonymous(cli)
    if token:
        account = client.request("GET", f"/password-resets/{token}").json()
        cli.out.note(f"Resetting the password of {account.get('user', {}).get('email')}")
        client.request(
            "POST",
            f"/password-resets/{token}/actions/finalize",
            json={"password": new_password()},
        )
        cli.out.note("Password changed; every session was ended — log in with dockyard login")
        return
    if not email:
        email = click.prompt("Email", err=True).strip()
    answer = client.request("POST", "/password-resets", json={"email": email}).json()
    cli.out.note(str(answer.get("message", "Check your mailbox.")))


@click.command("password:change")
@pass_cli
def password_change(cli: CliContext) -> None:
    """Change your password (your other sessions end; every address of the account is told)."""
    client = _authenticated(cli)
    current = click.prompt("Current password", hide_input=True, err=True)
    answer = with_second_factor(
        client,
        "PUT",
        "/account/password",
        json={"current_password": current, "password": new_password()},
    )
    cli.out.note(f"Password changed; {answer.get('sessions_ended', 0)} other session(s) ended")


@click.command("auth:sessions")
@json_option
@pass_cli
def sessions_list(cli: CliContext, as_json: bool) -> None:
    """List your sessions (dashboard logins) with their address and last use."""
    found = _authenticated(cli).request("GET", "/account/sessions").json()
    if as_json:
        cli.out.json(found)
        return
    if not found:
        cli.out.line("You have no sessions.")
        return
    rows = [
        [
            s["id"],
            s.get("kind") or "",
            s.get("ip_address") or "",
            s.get("user_agent") or "",
            s.get("last_seen_at") or "",
            "yes" if s.get("current") else "",
        ]
        for s in found
    ]
    cli.out.table(["ID", "Kind", "Address", "Client", "Last seen", "Current"], rows)


@click.command("sessions:destroy")
@click.argument("session_id")
@pass_cli
def sessions_destroy(cli: CliContext, session_id: str) -> None:
    """End one of your sessions (it stops working at once)."""
    with cli.out.action(f"Ending session {session_id}"):
        _authenticated(cli).request("DELETE", f"/account/sessions/{session_id}")


@click.command("admin:outbox", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def admin_outbox(cli: CliContext, args: tuple[str, ...]) -> None:
    """Show the mail waiting in the outbox (all mail, when no SMTP server is set)."""
    cli.exec_serve("admin", "outbox", *args)


COMMANDS = (
    signup,
    password_reset,
    password_change,
    sessions_list,
    sessions_destroy,
    admin_outbox,
)
ALIASES = {"sessions": "auth:sessions", "auth:signup": "signup"}
