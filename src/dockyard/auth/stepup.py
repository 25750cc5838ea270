"""Step-up ("sudo mode"): which actions need a recent full re-authentication, and the typed app name.

Rules (docs/security.md):

- Interactive credentials (dashboard sessions, tokens minted by signing in) may perform a sensitive action
  only within ``STEP_UP_WINDOW`` (15 minutes) of the last full authentication — password and second factor at
  sign-in, or a second factor given again later (``Heroku-Two-Factor-Code``, ``/account/sudo``). Activity does
  not extend the window.
- Long-lived authorizations (automation: ``dky_`` API keys, ``authorizations:create`` tokens) do not prompt
  for actions on apps or SSH keys; they still need the typed app name where every caller does (deletion,
  transfer). Creating tokens and changing the sign-in (password, email, second factors) needs a second
  factor with them too: a leaked automation token cannot mint another token or take over the sign-in.
- App deletion and transfer always need ``confirm`` equal to the app name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dockyard.errors import AccessDeniedError
from dockyard.store.records import Account

STEP_UP_WINDOW = timedelta(minutes=15)

SensitiveAction = Literal[
    "ssh-key.add",
    "ssh-key.remove",
    "token.create",
    "password.change",
    "email.change",
    "mfa.change",
    "collaborator.change",
    "app.transfer",
    "app.delete",
    "domain.change",
    "formation.scale-to-zero",
    "billing.change",
    "app.security",
    "account.deactivate",
]
ACCOUNT_ACTIONS: frozenset[SensitiveAction] = frozenset(
    {"token.create", "password.change", "email.change", "mfa.change", "account.deactivate"}
)
"""Changes to the account's own sign-in credentials: step-up for every kind of credential, so a leaked
automation token cannot mint more tokens or take over the sign-in."""
CONFIRM_ACTIONS: frozenset[SensitiveAction] = frozenset({"app.delete", "app.transfer"})

CredentialKind = Literal["session", "login", "authorization", "api-key"]
INTERACTIVE_KINDS: frozenset[CredentialKind] = frozenset({"session", "login"})


class PolicyError(AccessDeniedError):
    """A request refused by a security policy; ``error_id`` is the Heroku-style id the API answers with
    (``two_factor``, ``confirmation_required``, ``mfa_enrollment_required``, ``webauthn_required``)."""

    def __init__(self, message: str, *, error_id: str, app: str | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.app = app


@dataclass(frozen=True)
class Credential:
    """How the caller of a request authenticated."""

    kind: CredentialKind
    id: str
    """The authorization, API key or session id."""
    scopes: frozenset[str]
    authenticated_at: datetime | None
    """The last full authentication on this credential (sign-in or step-up); None if never."""

    @property
    def interactive(self) -> bool:
        return self.kind in INTERACTIVE_KINDS


def in_sudo_mode(credential: Credential, now: datetime) -> bool:
    at = credential.authenticated_at
    return at is not None and at <= now < at + STEP_UP_WINDOW


def needs_step_up(credential: Credential, action: SensitiveAction, now: datetime) -> bool:
    if not credential.interactive and action not in ACCOUNT_ACTIONS:
        return False
    return not in_sudo_mode(credential, now)


def step_up_error(
    action: SensitiveAction, *, has_second_factor: bool, app: str | None = None
) -> PolicyError:
    if has_second_factor:
        return PolicyError(
            f"This action ({action}) needs a fresh second factor: authentication older than "
            f"{int(STEP_UP_WINDOW.total_seconds() // 60)} minutes is not enough. Send your current "
            "two-factor code in the Heroku-Two-Factor-Code header (the Heroku CLI and dockyard "
            "prompt for it), or re-authenticate with POST /account/sudo.",
            error_id="two_factor",
            app=app,
        )
    return PolicyError(
        f"This action ({action}) needs you to re-authenticate: POST /account/sudo with your "
        "password (dockyard auth:sudo). Better still, enable two-factor authentication "
        "(dockyard auth:2fa:enable).",
        error_id="reauthentication_required",
        app=app,
    )


def check_confirmation(action: SensitiveAction, app_name: str, confirm: str | None) -> None:
    """Deletion and transfer need the app's name typed again."""
    if action not in CONFIRM_ACTIONS:
        return
    if confirm is None or confirm.strip() != app_name:
        verb = "delete" if action == "app.delete" else "transfer"
        raise PolicyError(
            f"Confirm that you want to {verb} {app_name}: send confirm={app_name} "
            f"(dockyard apps:{'destroy' if verb == 'delete' else 'transfer'} --confirm {app_name}).",
            error_id="confirmation_required",
            app=app_name,
        )


@dataclass(frozen=True)
class Principal:
    """The caller of a request: the account and the credential it used."""

    account: Account
    credential: Credential
