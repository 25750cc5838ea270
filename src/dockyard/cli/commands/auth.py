"""``login``, ``logout``, ``auth:whoami``, ``auth:token``: the token or API key kept in ``~/.netrc``."""

from __future__ import annotations

import click

from dockyard.cli.commands.accounts import password_login
from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.netrc import Credentials
from dockyard.errors import InvalidError, UnauthorizedError


@click.command("login")
@click.option("--email", help="Email of the account (asked for when missing).")
@click.option("--api-key", help="Log in with an API key instead of a password.")
@click.option(
    "-e", "--expires-in", type=int, help="Seconds the login token lasts (the API caps it)."
)
@pass_cli
def login(cli: CliContext, email: str | None, api_key: str | None, expires_in: int | None) -> None:
    """Log in with your email and password (and second factor), or with --api-key.

    A password login asks the API for a token (POST /oauth/authorizations, as heroku login -i
    does); the token or key is checked and stored in ~/.netrc."""
    if api_key is None and not email:
        email = click.prompt("Email", err=True).strip()
    if api_key is None:
        password = click.prompt("Password", hide_input=True, err=True)
        api_key = password_login(cli, email or "", password, expires_in)
    api_key = api_key.strip()
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
