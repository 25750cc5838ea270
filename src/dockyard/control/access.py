"""Looking an app up on behalf of an account, with the permission check in one place."""

from __future__ import annotations

from dockyard.auth.permissions import AppAction, check_app_access
from dockyard.store import Tx
from dockyard.store.records import Account, App


def app_for(tx: Tx, account: Account, id_or_name: str, action: AppAction = "read") -> App:
    """The app, if ``account`` may perform ``action`` on it; otherwise ``NotFoundError`` or
    ``AccessDeniedError``."""
    app = tx.get_app(id_or_name)
    collaborator = account.id != app.owner_id and tx.is_collaborator(app.id, account.id)
    check_app_access(account, app, is_collaborator=collaborator, action=action)
    return app
