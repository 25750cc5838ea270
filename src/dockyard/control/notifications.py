"""Security notifications and their "this wasn't me" links.

Use cases call ``notify(platform, account, event, details, item=(kind, id), context=ctx)`` after a
security-relevant change; the events and their words are in ``dockyard.auth.notify.EVENTS``. A mail goes
to every verified address of the account. Its link (``/repudiations/<secret>``, 128+ bits, stored
hashed, usable once for 30 days) shows what happened; POSTing to its ``actions/revoke`` revokes the
item through ``REVOKERS`` and ends every session and refresh token of the account. The link does not act
on GET, so mail scanners that open links cannot trigger it.

``REVOKERS`` is the one table from item kind to the function that revokes such an item
(``function(platform, account, item_id)``), resolved when a link is used. Kinds whose function does not
exist yet (another subsystem's) are logged, and the sessions still end.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dockyard.auth import notify as texts
from dockyard.auth.tokens import hash_token
from dockyard.control import audit, mail, oauth
from dockyard.control import sessions as session_cases
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError, NotFoundError
from dockyard.store.credentials import Repudiation
from dockyard.store.records import Account

log = logging.getLogger("dockyard.notifications")
LINK_LIFETIME = timedelta(days=30)
LINK_PREFIX = "dyn_"

REVOKERS: Mapping[str, str] = {
    "session": "dockyard.control.sessions:revoke_by_id",
    "password": "dockyard.control.passwords:disable_password",
    "ssh_key": "dockyard.control.keys:remove_key",
    "authorization": "dockyard.control.oauth:revoke_authorization_by_id",
    "second_factor": "dockyard.control.mfa:remove_second_factor_by_id",
    "collaborator": "dockyard.control.collaborators:remove_collaborator_by_id",
    "transfer": "dockyard.control.transfer:cancel_transfer_by_id",
    "domain": "dockyard.control.domains:remove_domain_by_id",
}


def _resolve(reference: str) -> Callable[..., Any] | None:
    module_name, _, name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    function = getattr(module, name, None)
    return function if callable(function) else None


def revoke_refresh_tokens(platform: Platform, account_id: str) -> None:
    """End the account's OAuth refresh tokens (sign-in grants and authorizations keep no way to
    renew themselves)."""
    oauth.revoke_refresh_tokens(platform, account_id)


def link_url(platform: Platform, token: str) -> str:
    return f"{platform.settings.api_url}/repudiations/{token}"


def notify(
    platform: Platform,
    account: Account,
    event: str,
    details: Mapping[str, str] | None = None,
    *,
    item: tuple[str, str] | None = None,
    context: RequestContext | None = None,
    extra_addresses: tuple[str, ...] = (),
) -> int:
    """Mail ``event`` to every verified address of ``account`` (and ``extra_addresses``, e.g. the old
    address after an email change), with a "this wasn't me" link revoking ``item`` (kind, id). Returns
    the number of mails sent."""
    text = texts.event_text(event)  # an unknown event is a programming error: fail before anything
    if item is not None and item[0] not in REVOKERS:
        raise InvalidError(f"notification item kind {item[0]!r} has no revoker")
    token = LINK_PREFIX + secrets.token_urlsafe(24)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        tx.create_repudiation(
            account.id,
            hash_token(token),
            event=event,
            item_kind=item[0] if item else "",
            item_id=item[1] if item else "",
            expires_at=now + LINK_LIFETIME,
        )
        addresses = tx.notification_addresses(account.id)
    for extra in extra_addresses:
        if extra.lower() not in addresses:
            addresses.append(extra.lower())
    shown = dict(details or {})
    if context is not None:
        shown.setdefault("from_address", context.address)
        shown.setdefault("browser_or_client", context.user_agent)
    subject, body = texts.render(
        event,
        shown,
        when=now,
        repudiation_url=link_url(platform, token),
        link_valid_days=LINK_LIFETIME.days,
    )
    for address in addresses:
        mail.send(platform, mail.Mail(address, subject, body))
    log.info("notified %s of %s (%s)", account.id, event, text.subject)
    return len(addresses)


@dataclass(frozen=True)
class RepudiationInfo:
    event: str
    subject: str
    item_kind: str
    item_id: str
    created_at: str
    used: bool


def _find(platform: Platform, token: str) -> Repudiation:
    with platform.store.read() as tx:
        found = tx.repudiation_for_token(hash_token(token))
    if found is None or found.expires_at <= platform.clock.now():
        raise NotFoundError("This link is unknown or has expired.")
    return found


def describe(platform: Platform, token: str) -> RepudiationInfo:
    found = _find(platform, token)
    return RepudiationInfo(
        event=found.event,
        subject=texts.event_text(found.event).subject,
        item_kind=found.item_kind,
        item_id=found.item_id,
        created_at=found.created_at.isoformat(),
        used=found.used_at is not None,
    )


def repudiate(platform: Platform, token: str, *, context: RequestContext) -> RepudiationInfo:
    """ "This wasn't me": revoke the item, end every session and refresh token. Works once."""
    found = _find(platform, token)
    with platform.store.transaction() as tx:
        if not tx.use_repudiation(found.id):
            raise NotFoundError("This link was already used.")
        account = tx.get_account(found.account_id)
        audit.record(
            platform,
            audit.event(
                "auth.repudiate",
                account,
                context,
                target=(found.item_kind or "account", found.item_id or account.id),
                account_id=account.id,
                details={"event": found.event},
            ),
        )
    if found.item_kind:
        revoker = _resolve(REVOKERS.get(found.item_kind, ""))
        if revoker is None:
            log.warning("cannot revoke %s %s: no revoker yet", found.item_kind, found.item_id)
        else:
            with contextlib.suppress(NotFoundError):  # already gone
                revoker(platform, account, found.item_id)
    session_cases.revoke_all(platform, account.id)
    revoke_refresh_tokens(platform, account.id)
    info = describe(platform, token)
    return info
