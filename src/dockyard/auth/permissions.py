"""Who may do what to an app. Owners may do everything; collaborators everything but delete and
transfer, as on Heroku."""

from __future__ import annotations

from typing import Literal

from dockyard.errors import AccessDeniedError, NotFoundError
from dockyard.store.records import Account, App

AppAction = Literal["read", "deploy", "operate", "manage", "delete"]
OWNER_ONLY: frozenset[AppAction] = frozenset({"delete"})


def check_app_access(
    account: Account, app: App, *, is_collaborator: bool, action: AppAction
) -> None:
    """Raise unless ``account`` may perform ``action`` on ``app``.

    Someone with no relation to the app gets ``NotFoundError``, so app names cannot be probed."""
    if account.id == app.owner_id:
        return
    if not is_collaborator:
        raise NotFoundError(f"Couldn't find that app: {app.name}")
    if action in OWNER_ONLY:
        raise AccessDeniedError(f"Only the owner of {app.name} ({app.owner_email}) can do this")
