"""Collaborators: other accounts with access to an app (everything but delete and transfer)."""

from __future__ import annotations

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import ConflictError, NotFoundError
from dockyard.store.records import Account, App, Collaborator


def list_collaborators(
    platform: Platform, account: Account, app_ref: str
) -> tuple[App, list[Collaborator]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_collaborators(app.id)


def _find(collaborators: list[Collaborator], ref: str) -> Collaborator:
    for collaborator in collaborators:
        if ref.lower() in (collaborator.id, collaborator.email, collaborator.account_id):
            return collaborator
    raise NotFoundError(f"Couldn't find that collaborator: {ref}")


def get_collaborator(
    platform: Platform, account: Account, app_ref: str, ref: str
) -> tuple[App, Collaborator]:
    app, collaborators = list_collaborators(platform, account, app_ref)
    return app, _find(collaborators, ref)


def add_collaborator(
    platform: Platform,
    account: Account,
    app_ref: str,
    user: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Collaborator]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        invitee = tx.find_account(user)
        if invitee.id == app.owner_id:
            raise ConflictError(f"{invitee.email} owns {app.name} already")
        collaborator = tx.add_collaborator(app.id, invitee.id)
        _record(platform, "collaborator.add", account, context, app, collaborator)
    platform.log(app.id, "heroku", "api", f"Add {invitee.email} as collaborator by {account.email}")
    return app, collaborator


def remove_collaborator(
    platform: Platform,
    account: Account,
    app_ref: str,
    ref: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Collaborator]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        collaborator = _find(tx.list_collaborators(app.id), ref)
        tx.remove_collaborator(collaborator.id)
        _record(platform, "collaborator.remove", account, context, app, collaborator)
    platform.log(
        app.id, "heroku", "api", f"Remove {collaborator.email} as collaborator by {account.email}"
    )
    return app, collaborator


def _record(
    platform: Platform,
    action: str,
    account: Account,
    context: RequestContext | None,
    app: App,
    collaborator: Collaborator,
) -> None:
    audit.record_app_event(
        platform,
        action,
        account,
        context,
        app,
        target=("collaborator", collaborator.account_id, collaborator.email),
    )
