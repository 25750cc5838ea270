"""Heroku's confirmation flow for destructive commands: --confirm APP, or typing the name."""

from __future__ import annotations

import click

from dockyard.cli.output import Output
from dockyard.errors import InvalidError


def confirm_app(out: Output, app: str, confirm: str | None, warning: str) -> None:
    """Go on only when ``confirm`` (else what the user types) is exactly the app's name."""
    if confirm is None:
        out.warn(warning)
        out.warn(f"To proceed, type {app} or re-run this command with --confirm {app}")
        out.note("")
        confirm = click.prompt(
            "", prompt_suffix="> ", default="", show_default=False, err=True
        ).strip()
    if confirm != app:
        raise InvalidError(f"Confirmation {confirm} did not match {app}. Aborted.")
