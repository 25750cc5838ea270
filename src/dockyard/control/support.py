"""Operators' support access to a tenant's app: asked for with a reason, time-limited, read-only, and listed
to the app's owner and collaborators (``GET /apps/{app}/support-access``) so that no operator reads a
tenant's app unseen. Operators can never read or set a user's password: no route or use case does.
"""

from __future__ import annotations

from datetime import timedelta

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.control.revocation import require_operator
from dockyard.errors import InvalidError
from dockyard.store.records import Account
from dockyard.store.security import SupportAccess

ACCESS_LIFETIME = timedelta(hours=4)


def grant(platform: Platform, operator: Account, app_ref: str, reason: str) -> SupportAccess:
    require_operator(platform, operator)
    if len(reason.strip()) < 10:
        raise InvalidError(
            "Give the reason for this access (a ticket or a sentence, at least 10 characters)",
            field="reason",
        )
    with platform.store.transaction() as tx:
        app = tx.get_app(app_ref)
        access = tx.add_support_access(
            app.id, operator.id, reason.strip()[:2000], platform.clock.now() + ACCESS_LIFETIME
        )
    platform.log(
        app.id,
        "heroku",
        "api",
        f"Support access by operator {operator.email} for {int(ACCESS_LIFETIME.total_seconds() // 3600)}"
        f" h: {reason.strip()[:200]}",
    )
    return access


def list_for_app(platform: Platform, account: Account, app_ref: str) -> list[SupportAccess]:
    """Every support access to the app, for its owner and collaborators."""
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.list_support_access(app.id)
