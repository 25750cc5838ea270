"""Looking an app up on behalf of an account, with the permission check in one place."""

from __future__ import annotations

from dockyard.auth.permissions import AppAction, check_app_access
from dockyard.errors import NotFoundError
from dockyard.store import Tx
from dockyard.store.records import Account, App


def app_for(tx: Tx, account: Account, id_or_name: str, action: AppAction = "read") -> App:
    """The app, if ``account`` may perform ``action`` on it; otherwise ``NotFoundError`` (no relation, or
    the app is soft-deleted) or ``AccessDeniedError`` (a collaborator and an owner-only action; a
    high-profile app and no WebAuthn credential). Operators with a support access may read."""
    app = tx.get_app(id_or_name)
    if tx.get_deletion(app.id) is not None:
        raise NotFoundError(f"Couldn't find that app: {id_or_name}")
    collaborator = account.id != app.owner_id and tx.is_collaborator(app.id, account.id)
    if (
        not collaborator
        and account.id != app.owner_id
        and action == "read"
        and tx.account_security(account.id).role == "admin"
        and tx.has_support_access(app.id, account.id, tx.clock.now())
    ):
        return app  # an operator's logged, time-limited support access (read only)
    high_profile = tx.app_is_high_profile(app.id)
    check_app_access(
        account,
        app,
        is_collaborator=collaborator,
        action=action,
        high_profile=high_profile,
        has_webauthn=not high_profile or bool(tx.list_webauthn_credentials(account.id)),
    )
    return app
