"""Soft deletion of apps: a deleted app is hidden and stopped at once, kept for ``RETENTION`` (7 days) during
which its owner can restore it, and purged for good afterwards.

While deleted, the app's name stays reserved (nobody else can take it and its hostname), its dynos are
scaled to zero and maintenance mode is on; a restore puts the formation and maintenance mode back.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

from dockyard.control import audit, certificates
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import AccessDeniedError, NotFoundError
from dockyard.store.records import Account, App
from dockyard.store.security import AppDeletion

RETENTION = timedelta(days=7)


def soft_delete(
    platform: Platform, account: Account, app_ref: str, *, context: RequestContext | None = None
) -> App:
    """Delete the app (the owner only; the API checked step-up and the typed name)."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "delete")
        formation: dict[str, int] = {f.type: f.quantity for f in tx.list_formation(app.id)}
        tx.add_deletion(
            app.id,
            deleted_by=account.id,
            purge_at=platform.clock.now() + RETENTION,
            formation=formation,
            maintenance=app.maintenance,
        )
        for ptype, quantity in formation.items():
            if quantity:
                tx.update_formation(app.id, ptype, quantity=0)
        tx.update_app(app.id, maintenance=True)
        audit.record_app_event(platform, "app.delete", account, context, app)
    platform.log(app.id, "heroku", "api", f"Deleted by {account.email} (restorable for 7 days)")
    purge_due(platform)
    return app


def list_deleted(platform: Platform, account: Account) -> list[tuple[AppDeletion, str]]:
    purge_due(platform)
    with platform.store.read() as tx:
        return tx.deletions_of_owner(account.id)


def restore(platform: Platform, account: Account, app_ref: str) -> App:
    """Bring a soft-deleted app back (its owner only, before the purge)."""
    purge_due(platform)
    with platform.store.transaction() as tx:
        app = tx.get_app(app_ref)
        if app.owner_id != account.id:
            if tx.is_collaborator(app.id, account.id):
                raise AccessDeniedError(f"Only the owner of {app.name} can restore it")
            raise NotFoundError(f"Couldn't find that app: {app_ref}")
        deletion = tx.get_deletion(app.id)
        if deletion is None:
            raise NotFoundError(f"{app.name} is not deleted")
        tx.remove_deletion(app.id)
        for ptype, quantity in deletion.formation.items():
            if quantity:
                tx.update_formation(app.id, ptype, quantity=quantity)
        restored = tx.update_app(app.id, maintenance=deletion.maintenance)
        audit.record_app_event(platform, "app.restore", account, None, restored)
    platform.log(app.id, "heroku", "api", f"Restored by {account.email}")
    return restored


def purge_due(platform: Platform) -> list[str]:
    """Purge every app whose retention ended; returns their names."""
    now = platform.clock.now()
    with platform.store.read() as tx:
        due = [(d, tx.get_app(d.app_id)) for d in tx.deletions_due(now)]
    purged: list[str] = []
    for _deletion, app in due:
        purge_app(platform, app)
        purged.append(app.name)
    return purged


def purge_app(platform: Platform, app: App) -> None:
    """Delete the app and everything it owns for good — its records, the private keys of its
    certificates, its git repository, build cache and log history; its dynos stop when the agent
    next reconciles."""
    with platform.store.transaction() as tx:
        endpoint_ids = [endpoint.id for endpoint in tx.list_sni_endpoints(app.id)]
        tx.delete_app(app.id)
    for endpoint_id in endpoint_ids:
        certificates.key_file(platform.settings, endpoint_id).unlink(missing_ok=True)
    shutil.rmtree(platform.settings.repos_dir / f"{app.id}.git", ignore_errors=True)
    shutil.rmtree(platform.settings.cache_dir / app.id, ignore_errors=True)
    (platform.settings.build_dir / "locks" / f"{app.id}.lock").unlink(missing_ok=True)
    platform.logs.delete(app.id)
