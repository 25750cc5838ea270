"""``login``, ``logout``, ``auth:whoami``, ``auth:token``: the API key kept in ``~/.netrc``."""

from __future__ import annotations

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.netrc import Credentials
from dockyard.errors import InvalidError, UnauthorizedError


@click.command("login")
@click.option("--email", help="Email of the account (asked for when missing).")
@click.option("--api-key", help="API key of the account (asked for, hidden, when missing).")
@pass_cli
def login(cli: CliContext, email: str | None, api_key: str | None) -> None:
    """Log in with an email and an API key.

    The key is checked against the API, then stored in ~/.netrc."""
    if not email and not api_key:
        email = click.prompt("Email", err=True).strip()
    if not api_key:
        api_key = click.prompt("API key", hide_input=True, err=True).strip()
    if not api_key:
        raise InvalidError("The API key is empty — copy it from the dashboard's account page")
    account = cli.platform(api_key).account()
    if email and account.email.lower() != email.strip().lower():
        raise InvalidError(
            f"This API key belongs to {account.email}, not {email} — check the key or the email"
        )
    cli.netrc.put([cli.api_host], Credentials(account.email, api_key))
    cli.out.note(f"Logged in as {account.email}")
    if cli.env.get("DOCKYARD_API_KEY"):
        cli.out.warn("DOCKYARD_API_KEY is set and is used instead of the stored key")


@click.command("logout")
@pass_cli
def logout(cli: CliContext) -> None:
    """Forget the API key stored in ~/.netrc."""
    with cli.out.action("Logging out"):
        cli.netrc.remove([cli.api_host])


@click.command("auth:whoami")
@pass_cli
def whoami(cli: CliContext) -> None:
    """Print the email of the logged-in account."""
    cli.out.line(cli.platform().account().email)


@click.command("auth:token")
@pass_cli
def token(cli: CliContext) -> None:
    """Print the API key in use."""
    key = cli.api_key()
    if not key:
        raise UnauthorizedError("Not logged in — run dockyard login")
    cli.out.line(key)


COMMANDS = (login, logout, whoami, token)
ALIASES = {"auth:login": "login", "auth:logout": "logout", "whoami": "auth:whoami"}
