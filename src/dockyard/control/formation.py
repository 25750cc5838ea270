"""Formation (scaling and dyno sizes) and dyno restarts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.formation import (
    check_total,
    validate_process_type,
    validate_quantity,
    validate_size,
)
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError, NotFoundError
from dockyard.store import Tx
from dockyard.store.records import Account, App, Dyno, FormationEntry


@dataclass(frozen=True)
class FormationUpdate:
    type: str
    quantity: int | None = None
    size: str | None = None


def _command(tx: Tx, app: App, ptype: str) -> str:
    release = tx.current_release(app.id)
    if release is None or release.slug_id is None:
        return ""
    return tx.get_slug(release.slug_id).process_types.get(ptype, "")


def formation_commands(tx: Tx, app: App) -> dict[str, str]:
    release = tx.current_release(app.id)
    if release is None or release.slug_id is None:
        return {}
    return dict(tx.get_slug(release.slug_id).process_types)


def list_formation(
    platform: Platform, account: Account, app_ref: str
) -> tuple[App, list[FormationEntry], dict[str, str]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_formation(app.id), formation_commands(tx, app)


def get_formation(
    platform: Platform, account: Account, app_ref: str, ptype: str
) -> tuple[App, FormationEntry, str]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.get_formation(app.id, ptype), _command(tx, app, ptype)


def update_formation(
    platform: Platform,
    account: Account,
    app_ref: str,
    updates: Sequence[FormationUpdate],
    *,
    context: RequestContext | None = None,
) -> tuple[App, list[FormationEntry], dict[str, str]]:
    """Apply all updates or none."""
    if not updates:
        raise InvalidError("Give at least one formation update", field="updates")
    checked = [
        FormationUpdate(
            type=validate_process_type(u.type),
            quantity=None if u.quantity is None else validate_quantity(u.quantity),
            size=None if u.size is None else validate_size(u.size),
        )
        for u in updates
    ]
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "operate")
        current: dict[str, FormationEntry] = {f.type: f for f in tx.list_formation(app.id)}
        for update in checked:
            if update.type == "release":
                raise InvalidError(
                    "The release process type runs once per release (the release phase) and cannot "
                    "be scaled",
                    field="type",
                )
            if update.type not in current:
                raise NotFoundError(
                    f"Couldn't find that process type ({update.type}). Check the Procfile of the "
                    "current release for the types it declares."
                )
        quantities: dict[str, int] = {t: f.quantity for t, f in current.items()}
        quantities.update({u.type: u.quantity for u in checked if u.quantity is not None})
        check_total(quantities)
        changed = [
            tx.update_formation(app.id, u.type, quantity=u.quantity, size=u.size) for u in checked
        ]
        commands = formation_commands(tx, app)
        audit.record_app_event(
            platform,
            "formation.update",
            account,
            context,
            app,
            target=("formation", app.id, app.name),
            details={
                "formation": {
                    f.type: f"{current[f.type].quantity}:{current[f.type].size} -> "
                    f"{f.quantity}:{f.size}"
                    for f in changed
                }
            },
        )
    summary = ", ".join(f"{f.type}@{f.quantity}:{_display_size(f.size)}" for f in changed)
    platform.log(app.id, "heroku", "api", f"Scaled to {summary} by {account.email}")
    return app, changed, commands


def _display_size(size: str) -> str:
    return "-".join(
        part.capitalize() if not part[:1].isdigit() else part.upper() for part in size.split("-")
    )


def list_dynos(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[Dyno]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_dynos(app.id)


def get_dyno(platform: Platform, account: Account, app_ref: str, dyno_ref: str) -> tuple[App, Dyno]:
    app, dynos = list_dynos(platform, account, app_ref)
    for dyno in dynos:
        if dyno_ref in (dyno.name, dyno.id):
            return app, dyno
    raise NotFoundError(f"Couldn't find that dyno: {dyno_ref}")


def restart(platform: Platform, account: Account, app_ref: str, target: str | None = None) -> App:
    """Restart every dyno (``target`` None), one process type (``web``) or one dyno (``web.1``)."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "operate")
        if target is None:
            tx.update_app(app.id, bump_restart=True)
            what = "all dynos"
        else:
            ptype, _, index = target.partition(".")
            if index and not index.isdigit():
                raise NotFoundError(f"Couldn't find that dyno: {target}")
            entry = tx.get_formation(app.id, ptype)
            if index:
                if not 1 <= int(index) <= entry.quantity:
                    raise NotFoundError(f"Couldn't find that dyno: {target}")
                tx.update_formation(app.id, ptype, restart_dyno=int(index))
            else:
                tx.update_formation(app.id, ptype, restart_all=True)
            what = target
    platform.log(app.id, "heroku", "api", f"Restart {what} by {account.email}")
    return app
