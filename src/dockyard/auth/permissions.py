"""Who may do what to an app. Two roles, as on Heroku's personal apps: the owner may do everything;
collaborators everything but delete, transfer or rename the app, manage paid add-ons and view invoices.

Someone with no relation to the app gets ``NotFoundError``, so app names cannot be probed; a collaborator
trying an owner-only action gets ``AccessDeniedError``. Apps flagged high-profile also require their owner
and collaborators to have a WebAuthn credential (phishing-resistant MFA) before anything is allowed.
"""

from __future__ import annotations

from typing import Literal

from dockyard.auth.stepup import PolicyError
from dockyard.errors import AccessDeniedError, NotFoundError
from dockyard.store.records import Account, App

Role = Literal["owner", "collaborator"]
AppAction = Literal[
    "read",
    "deploy",
    "operate",
    "manage",
    "rename",
    "delete",
    "transfer",
    "paid-addons",
    "invoices",
]
OWNER_ONLY: frozenset[AppAction] = frozenset(
    {"delete", "transfer", "rename", "paid-addons", "invoices"}
)
ROLE_ACTIONS: dict[Role, frozenset[AppAction]] = {
    "owner": frozenset(
        {
            "read",
            "deploy",
            "operate",
            "manage",
            "rename",
            "delete",
            "transfer",
            "paid-addons",
            "invoices",
        }
    ),
    "collaborator": frozenset({"read", "deploy", "operate", "manage"}),
}


def role_of(account: Account, app: App, *, is_collaborator: bool) -> Role | None:
    if account.id == app.owner_id:
        return "owner"
    return "collaborator" if is_collaborator else None


def check_app_access(
    account: Account,
    app: App,
    *,
    is_collaborator: bool,
    action: AppAction,
    high_profile: bool = False,
    has_webauthn: bool = True,
) -> None:
    """Raise unless ``account`` may perform ``action`` on ``app``."""
    role = role_of(account, app, is_collaborator=is_collaborator)
    if role is None:
        raise NotFoundError(f"Couldn't find that app: {app.name}")
    if high_profile and not has_webauthn:
        raise PolicyError(
            f"{app.name} is a high-profile app: its owner and collaborators must sign in with a "
            "security key or passkey. Register one (dockyard auth:2fa, or the dashboard's security "
            "page), then try again.",
            error_id="webauthn_required",
            app=app.name,
        )
    if action not in ROLE_ACTIONS[role]:
        raise AccessDeniedError(f"Only the owner of {app.name} ({app.owner_email}) can do this")
