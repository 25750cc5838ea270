"""App transfers: the owner offers an app to another account, the recipient accepts or declines.

On acceptance the recipient becomes the owner and the old owner a collaborator (as on Heroku); both are
notified of the request and of the acceptance. Offering is a sensitive action (step-up) and needs the app's
name typed again (``confirm``); the API checks both before calling ``offer``.
"""

from __future__ import annotations

from typing import Literal

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import AccessDeniedError, ConflictError, InvalidError, NotFoundError
from dockyard.store.records import Account, App
from dockyard.store.security import AppTransfer


def _notify(
    platform: Platform, account: Account, event: str, details: dict[str, str], transfer_id: str
) -> None:
    from dockyard.control import notifications

    notifications.notify(platform, account, event, details, item=("transfer", transfer_id))


def offer(
    platform: Platform, account: Account, app_ref: str, recipient: str
) -> tuple[App, AppTransfer]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "transfer")
        target = tx.find_account(recipient)
        if target.id == app.owner_id:
            raise ConflictError(f"{target.email} owns {app.name} already")
        if tx.account_security(target.id).deactivated_at is not None:
            raise InvalidError(f"{target.email} cannot receive apps", field="recipient")
        transfer = tx.create_transfer(app.id, account.id, target.id)
    details = {"app": app.name, "from": account.email, "to": target.email}
    _notify(platform, account, "transfer_requested", details, transfer.id)
    _notify(platform, target, "transfer_requested", details, transfer.id)
    platform.log(
        app.id, "heroku", "api", f"Transfer to {target.email} requested by {account.email}"
    )
    return app, transfer


def list_transfers(
    platform: Platform, account: Account
) -> list[tuple[AppTransfer, str, dict[str, str]]]:
    """Transfers the account sent or received, with the app's name and the emails by account id."""
    with platform.store.read() as tx:
        found = tx.list_transfers(account.id)
        emails = tx.account_emails_by_id(
            sorted({t.sender_id for t in found} | {t.recipient_id for t in found})
        )
        return [(t, tx.get_app(t.app_id).name, emails) for t in found]


def get_transfer(platform: Platform, account: Account, transfer_id: str) -> AppTransfer:
    with platform.store.read() as tx:
        transfer = tx.get_transfer(transfer_id)
    if account.id not in (transfer.sender_id, transfer.recipient_id):
        raise NotFoundError(f"Couldn't find that app transfer: {transfer_id}")
    return transfer


def answer(
    platform: Platform, account: Account, transfer_id: str, state: Literal["accepted", "declined"]
) -> AppTransfer:
    """The recipient accepts (becoming the owner; the old owner stays as a collaborator) or declines."""
    transfer = get_transfer(platform, account, transfer_id)
    if account.id != transfer.recipient_id:
        raise AccessDeniedError("Only the recipient of a transfer can accept or decline it")
    with platform.store.transaction() as tx:
        if not tx.finish_transfer(transfer.id, state):
            raise ConflictError(f"This transfer is {tx.get_transfer(transfer.id).state} already")
        app = tx.get_app(transfer.app_id)
        sender = tx.get_account(transfer.sender_id)
        if state == "accepted":
            if app.owner_id != transfer.sender_id:
                raise ConflictError(f"{app.name} changed owner since the transfer was offered")
            for collaborator in tx.list_collaborators(app.id):
                if collaborator.account_id == account.id:
                    tx.remove_collaborator(collaborator.id)
            tx.set_app_owner(app.id, account.id)
            tx.add_collaborator(app.id, sender.id)
        done = tx.get_transfer(transfer.id)
    if state == "accepted":
        details = {"app": app.name, "from": sender.email, "to": account.email}
        _notify(platform, sender, "transfer_accepted", details, transfer.id)
        _notify(platform, account, "transfer_accepted", details, transfer.id)
        platform.log(app.id, "heroku", "api", f"Transferred to {account.email} from {sender.email}")
    return done


def cancel_transfer_by_id(platform: Platform, account: Account, item_id: str) -> None:
    """Cancel a pending transfer (the sender's "this wasn't me" link, or the sender changing their mind)."""
    with platform.store.transaction() as tx:
        try:
            transfer = tx.get_transfer(item_id)
        except NotFoundError:
            return
        if account.id in (transfer.sender_id, transfer.recipient_id):
            tx.finish_transfer(transfer.id, "cancelled")
