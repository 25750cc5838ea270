"""Config vars: every change makes a new release (and so restarts the dynos).

When the current slug declares a release command, the new release is pending until that command
has run in the background; the config vars themselves are changed at once (as on Heroku), and the
dynos keep the previous release if the command fails."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.control.releases import append_release, launch, log_release
from dockyard.domain.config import apply_changes, describe_changes
from dockyard.domain.requests import RequestContext
from dockyard.store.records import Account


def get_config(platform: Platform, account: Account, app_ref: str) -> dict[str, str]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.get_config(app.id)


def update_config(
    platform: Platform,
    account: Account,
    app_ref: str,
    changes: Mapping[str, str | None],
    *,
    context: RequestContext | None = None,
) -> dict[str, str]:
    """Apply ``changes`` (None unsets) and release; unchanged config makes no release. The audit event
    names the keys and holds hashes of the new values, never the values."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "operate")
        current = tx.get_config(app.id)
        updated = apply_changes(current, changes)
        if updated == current:
            return current
        tx.replace_config(app.id, updated)
        latest = tx.current_release(app.id)
        description = describe_changes(current, changes)
        release = append_release(
            tx,
            app,
            slug_id=None if latest is None else latest.slug_id,
            config=updated,
            description=description,
            user=account,
        )
        audit.record_app_event(
            platform,
            "config.update",
            account,
            context,
            app,
            target=("config", app.id, app.name),
            details={
                "changes": {
                    key: None if value is None else audit.value_hash(app.id, key, value)
                    for key, value in sorted(changes.items())
                    if current.get(key) != value
                },
                "release": release.version,
            },
        )
    # Only key names reach the log, never values.
    platform.log(app.id, "heroku", "api", f"{description} by {account.email}")
    log_release(platform, app, release, account)
    launch(platform, app, release)
    return updated
