"""Security notifications: which events are told, and the words of their mails.

Every notification goes to every verified address of the account (its email first) and carries a
"this wasn't me" link: following it revokes the item the mail is about (when there is one) and ends
every session of the account. Mails never contain secrets; they name the item (a key's SHA256
fingerprint, a token's description), where the action came from (address, browser or client) and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EventText:
    subject: str
    summary: str
    """One sentence: what happened to the account."""


EVENTS: Mapping[str, EventText] = {
    "ssh_key_added": EventText(
        "A new SSH key was added to your account", "A new SSH key can now push to your apps."
    ),
    "ssh_key_removed": EventText(
        "An SSH key was removed from your account", "An SSH key was removed from your account."
    ),
    "token_created": EventText(
        "A new API token was created for your account",
        "A new API token (OAuth authorization) can now act for your account.",
    ),
    "mfa_enabled": EventText(
        "A second factor was added to your account",
        "A second factor (authenticator app or security key) was added to your account.",
    ),
    "mfa_disabled": EventText(
        "A second factor was removed from your account",
        "A second factor was removed from your account.",
    ),
    "recovery_code_used": EventText(
        "A recovery code was used to log in to your account",
        "One of your recovery codes was used in place of your second factor.",
    ),
    "recovery_codes_regenerated": EventText(
        "New recovery codes were created for your account",
        "New recovery codes were created; the old ones no longer work.",
    ),
    "password_changed": EventText(
        "Your password was changed", "The password of your account was changed."
    ),
    "password_reset": EventText(
        "Your password was reset",
        "The password of your account was reset through a link sent by email; every other "
        "session was ended.",
    ),
    "account_locked": EventText(
        "Your account was locked after too many failed logins",
        "There were 100 failed logins in a row, so logins are refused until the password is "
        "reset. Reset it with the password reset of the dashboard or `dockyard password:reset`.",
    ),
    "new_login": EventText(
        "New login to your account",
        "Your account was logged in to from an address or a device it had not used before.",
    ),
    "email_changed": EventText(
        "The email address of your account was changed",
        "The email address of your account was changed.",
    ),
    "collaborator_added": EventText(
        "A collaborator was added to your app", "A collaborator was added to one of your apps."
    ),
    "collaborator_removed": EventText(
        "A collaborator was removed from your app",
        "A collaborator was removed from one of your apps.",
    ),
    "transfer_requested": EventText(
        "An app transfer was requested", "A transfer of an app's ownership was requested."
    ),
    "transfer_accepted": EventText(
        "An app transfer was accepted", "A transfer of an app's ownership was accepted."
    ),
    "domain_added": EventText(
        "A domain was added to your app", "A custom domain was added to one of your apps."
    ),
}


def event_text(event: str) -> EventText:
    """The words of ``event``; ``KeyError`` for an event that is not in the list (a programming error)."""
    return EVENTS[event]


def render(
    event: str,
    details: Mapping[str, str],
    *,
    when: datetime,
    repudiation_url: str,
    link_valid_days: int,
) -> tuple[str, str]:
    """Subject and plain-text body of the notification of ``event``."""
    text = event_text(event)
    lines = [text.summary, ""]
    for key, value in details.items():
        if value:
            lines.append(f"  {key.replace('_', ' ').capitalize()}: {value}")
    lines.append(f"  When: {when.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    lines += [
        "",
        "If this was you, there is nothing to do.",
        "",
        "If this wasn't you, open this link at once: it revokes what was added and ends every",
        "session of your account. Then reset your password and check your second factors.",
        "",
        f"  {repudiation_url}",
        "",
        f"(The link works once, for {link_valid_days} days.)",
        "",
        "— Dockyard",
    ]
    return f"[Dockyard] {text.subject}", "\n".join(lines) + "\n"
