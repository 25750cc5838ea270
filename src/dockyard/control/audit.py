"""The audit events API for use cases: ``record(platform, event)``.

Call ``record`` **before** the change becomes visible — inside the store transaction that makes it
(a failed append raises and rolls the transaction back) or before any side effect. It returns only once
the audit writer has made the entry durable, and raises ``UnavailableError`` (HTTP 503) when the writer
cannot be reached: then the action must not happen. That is what makes the log impossible to switch off
quietly: stopping the writer stops every audited action.

    with platform.store.transaction() as tx:
        key = tx.add_ssh_key(...)
        audit.record_account_event(
            platform, "ssh_key.add", account, context, target=("ssh_key", key.id, key.fingerprint)
        )

``record_app_event`` does the same for an app (its owner's and collaborators' streams); ``record`` with
``event(...)`` builds any other event. ``context`` is the ``RequestContext`` the API hands in (``None``
in code that has none yet: it is then recorded as unknown).

Event names (``<noun>.<verb>``; the outcome is a separate field: ``success``, ``failure``, ``denied``).
New names may be added; keep to this shape and list them in docs/audit.md:

- accounts and credentials: ``auth.login``, ``auth.logout``, ``auth.mfa.enable``, ``auth.mfa.disable``,
  ``auth.mfa.verify``, ``auth.recovery_code.use``, ``auth.recovery_codes.regenerate``, ``auth.sudo``,
  ``auth.password.change``, ``auth.password.reset``, ``auth.session.revoke``, ``account.create``,
  ``account.update``, ``account.email.change``, ``account.deactivate``, ``api_key.create``,
  ``api_key.revoke``, ``oauth.authorization.create``, ``oauth.authorization.revoke``,
  ``ssh_key.add``, ``ssh_key.remove``
- apps: ``app.create``, ``app.rename``, ``app.delete``, ``app.restore``, ``app.transfer``,
  ``app.maintenance``, ``config.update``, ``formation.update``, ``build.create``, ``release.create``,
  ``release.rollback``, ``collaborator.add``, ``collaborator.remove``, ``domain.add``,
  ``domain.remove``, ``certificate.update``, ``addon.create``, ``addon.delete``, ``drain.add``,
  ``drain.remove``
- operators and the platform: ``staff.access``, ``platform.settings.update``, ``audit.writer.start``,
  ``audit.key.rotate``
"""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.audit.event import (
    SYSTEM_ACTOR,
    Actor,
    AuditEvent,
    AuditReceipt,
    DetailValue,
    Outcome,
    value_hash,
)
from dockyard.control.context import Platform
from dockyard.domain.requests import OPERATOR, SYSTEM, RequestContext
from dockyard.store.records import Account, App

__all__ = [
    "OPERATOR",
    "SYSTEM",
    "SYSTEM_ACTOR",
    "Actor",
    "AuditEvent",
    "AuditReceipt",
    "RequestContext",
    "event",
    "record",
    "record_account_event",
    "record_app_event",
    "value_hash",
]


def record(platform: Platform, event: AuditEvent) -> AuditReceipt:
    """Append ``event`` to the audit log; ``UnavailableError`` when it cannot (then do not act)."""
    return platform.audit.append(event)


def event(
    action: str,
    actor: Account | Actor | None,
    context: RequestContext,
    *,
    target: tuple[str, str] | tuple[str, str, str],
    account_id: str | None = None,
    app_id: str | None = None,
    outcome: Outcome = "success",
    details: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """Build an event: ``actor`` an account (or ``None`` for Dockyard itself), ``target`` as
    ``(type, id)`` or ``(type, id, name)``."""
    if isinstance(actor, Actor):
        who = actor
    elif actor is None:
        who = Actor("operator", "local") if context.auth_method == "operator" else SYSTEM_ACTOR
    else:
        who = Actor.account(actor.id)
    target_type, target_id = target[0], target[1]
    target_name = target[2] if len(target) == 3 else ""
    return AuditEvent(
        action=action,
        actor=who,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name,
        outcome=outcome,
        account_id=account_id,
        app_id=app_id,
        context=context,
        details=dict(details or {}),
    )


def record_app_event(
    platform: Platform,
    action: str,
    actor: Account | None,
    context: RequestContext | None,
    app: App,
    *,
    target: tuple[str, str] | tuple[str, str, str] | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> AuditReceipt:
    """Record an event about ``app`` (shown to its owner and collaborators); the target is the app
    unless given."""
    return record(
        platform,
        event(
            action,
            actor,
            context or RequestContext(),
            target=target or ("app", app.id, app.name),
            account_id=app.owner_id,
            app_id=app.id,
            details=details,
        ),
    )


def record_account_event(
    platform: Platform,
    action: str,
    account: Account,
    context: RequestContext | None,
    *,
    target: tuple[str, str] | tuple[str, str, str] | None = None,
    actor: Account | Actor | None = None,
    outcome: Outcome = "success",
    details: Mapping[str, DetailValue] | None = None,
) -> AuditReceipt:
    """Record an event about ``account`` (its credentials, settings, sign-ins): shown to that account.
    The actor is the account itself unless given."""
    return record(
        platform,
        event(
            action,
            account if actor is None else actor,
            context or RequestContext(),
            target=target or ("account", account.id, ""),
            account_id=account.id,
            outcome=outcome,
            details=details,
        ),
    )
