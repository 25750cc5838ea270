"""Apps: create (with a generated name when none is given), list, info, rename, maintenance, delete."""

from __future__ import annotations

import random

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import STACK, Platform
from dockyard.domain.apps import generate_app_name, validate_app_name
from dockyard.domain.domains import default_hostname
from dockyard.domain.requests import RequestContext
from dockyard.errors import ConflictError, InvalidError
from dockyard.store.records import Account, App

_NAME_ATTEMPTS = 20


def create_app(
    platform: Platform,
    account: Account,
    name: str | None = None,
    *,
    rng: random.Random | None = None,
    context: RequestContext | None = None,
) -> App:
    """Create an app with release v1 ("Initial release") and its default domain."""
    if name is not None:
        name = validate_app_name(name)
    with platform.store.transaction() as tx:
        if name is None:
            for _ in range(_NAME_ATTEMPTS):
                candidate = generate_app_name(rng)
                if not tx.app_name_taken(candidate):
                    name = candidate
                    break
            else:
                raise ConflictError("Could not find a free app name; give one explicitly")
        app = tx.create_app(name, account.id, STACK)
        tx.add_domain(app.id, default_hostname(app.name, platform.settings.domain), "heroku")
        tx.create_release(
            app.id, slug_id=None, config={}, description="Initial release", user_id=account.id
        )
        audit.record_app_event(platform, "app.create", account, context, app)
    platform.log(app.id, "heroku", "api", f"Release v1 created by {account.email}")
    return app


def list_apps(platform: Platform, account: Account) -> list[App]:
    """The account's apps (owned or collaborating), without soft-deleted ones."""
    with platform.store.read() as tx:
        deleted = tx.deleted_app_ids()
        return [app for app in tx.list_apps(account.id) if app.id not in deleted]


def get_app(platform: Platform, account: Account, app_ref: str) -> App:
    with platform.store.read() as tx:
        return app_for(tx, account, app_ref)


def update_app(
    platform: Platform,
    account: Account,
    app_ref: str,
    *,
    name: str | None = None,
    maintenance: bool | None = None,
    context: RequestContext | None = None,
) -> App:
    if name is not None:
        name = validate_app_name(name)
    if maintenance is not None and not isinstance(maintenance, bool):
        raise InvalidError("maintenance must be true or false", field="maintenance")
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        if name is not None and name != app.name:
            app_for(tx, account, app_ref, "rename")  # renaming is the owner's alone
        old_name = app.name
        updated = tx.update_app(app.id, name=name, maintenance=maintenance)
        if name is not None and name != old_name:
            tx.rename_default_domain(app.id, default_hostname(name, platform.settings.domain))
            audit.record_app_event(
                platform,
                "app.rename",
                account,
                context,
                updated,
                details={"from": old_name, "to": name},
            )
        if maintenance is not None and maintenance != app.maintenance:
            audit.record_app_event(
                platform,
                "app.maintenance",
                account,
                context,
                updated,
                details={"maintenance": maintenance},
            )
    if name is not None and name != old_name:
        platform.log(
            app.id, "heroku", "api", f"Rename from {old_name} to {name} by {account.email}"
        )
    if maintenance is not None and maintenance != app.maintenance:
        state = "on" if maintenance else "off"
        platform.log(app.id, "heroku", "api", f"Maintenance mode {state} by {account.email}")
    return updated


def delete_app(
    platform: Platform, account: Account, app_ref: str, *, context: RequestContext | None = None
) -> App:
    """Soft-delete the app (``control.deletions``): stopped and hidden at once, restorable by its owner
    for 7 days, purged afterwards. Audited as ``app.delete``."""
    from dockyard.control import deletions

    return deletions.soft_delete(platform, account, app_ref, context=context)
