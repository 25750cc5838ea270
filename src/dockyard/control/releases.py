"""Releases: every deploy, config change and rollback appends one immutable release."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.formation import DEFAULT_SIZE, initial_quantity
from dockyard.domain.releases import rollback_description
from dockyard.errors import InvalidError
from dockyard.store import Tx
from dockyard.store.records import Account, App, Release


def append_release(
    tx: Tx,
    app: App,
    *,
    slug_id: str | None,
    config: Mapping[str, str],
    description: str,
    user: Account | None,
) -> Release:
    """Append a release inside ``tx`` and give every process type of its slug a formation entry
    (``web`` starts at one dyno, other types at zero, as on Heroku). The caller logs it after commit."""
    release = tx.create_release(
        app.id,
        slug_id=slug_id,
        config=config,
        description=description,
        user_id=None if user is None else user.id,
    )
    if slug_id is not None:
        slug = tx.get_slug(slug_id)
        for ptype in slug.process_types:
            tx.ensure_formation(app.id, ptype, quantity=initial_quantity(ptype), size=DEFAULT_SIZE)
    tx.update_app(app.id, released_at=release.created_at)
    return release


def log_release(platform: Platform, app: App, release: Release, user: Account | None) -> None:
    by = f" by {user.email}" if user else ""
    platform.log(app.id, "heroku", "api", f"Release v{release.version} created{by}")


def list_releases(platform: Platform, account: Account, app_ref: str) -> list[Release]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.list_releases(app.id)


def get_release(platform: Platform, account: Account, app_ref: str, release_ref: str) -> Release:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.get_release(app.id, release_ref)


def rollback(platform: Platform, account: Account, app_ref: str, release_ref: str) -> Release:
    """A new release that copies an earlier release's slug and config (Heroku's rollback)."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        target = tx.get_release(app.id, release_ref)
        if target.status != "succeeded":
            raise InvalidError(
                f"Release v{target.version} did not succeed and cannot be rolled back to"
            )
        if (
            target.slug_id is None
            and tx.current_release(app.id) is not None
            and any(r.slug_id for r in tx.list_releases(app.id))
        ):
            raise InvalidError(
                f"Release v{target.version} has no slug (nothing was deployed then); roll back to a "
                "release that was deployed"
            )
        tx.replace_config(app.id, target.config)
        release = append_release(
            tx,
            app,
            slug_id=target.slug_id,
            config=target.config,
            description=rollback_description(target.version),
            user=account,
        )
    platform.log(app.id, "heroku", "api", f"Rollback to v{target.version} by {account.email}")
    log_release(platform, app, release, account)
    return release


def release_slug(
    platform: Platform, account: Account, app_ref: str, slug_id: str, description: str | None = None
) -> Release:
    """Release an existing slug of this app with the current config (``POST /apps/{app}/releases``)."""
    from dockyard.errors import NotFoundError

    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        try:
            slug = tx.get_slug(slug_id)
        except NotFoundError:
            slug = None
        if slug is None or slug.app_id != app.id:
            raise NotFoundError(f"Couldn't find that slug: {slug_id}")
        release = append_release(
            tx,
            app,
            slug_id=slug.id,
            config=tx.get_config(app.id),
            description=description or f"Deploy {slug.commit[:8] if slug.commit else slug.id[:8]}",
            user=account,
        )
    log_release(platform, app, release, account)
    return release
