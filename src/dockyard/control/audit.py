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

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from dockyard.audit.client import SocketAuditTrail
from dockyard.audit.event import (
    SYSTEM_ACTOR,
    Actor,
    AuditEvent,
    AuditReceipt,
    DetailValue,
    Outcome,
    value_hash,
)
from dockyard.audit.merkle import leaf_hash
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import OPERATOR, SYSTEM, RequestContext
from dockyard.errors import AccessDeniedError, UnavailableError
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


# --- reading the log: tenants (their account and apps), operators (everything), the public ---------


@dataclass(frozen=True)
class AuditEntry:
    """One entry as stored (``raw``, the exact bytes hashed into the tree) with its inclusion proof in
    the tree of ``EventPage.size`` entries."""

    seq: int
    raw: str
    proof: list[str]

    @property
    def fields(self) -> dict[str, object]:
        decoded: dict[str, object] = json.loads(self.raw)
        return decoded

    @property
    def leaf_hash(self) -> str:
        return leaf_hash(self.raw.encode()).hex()


@dataclass(frozen=True)
class EventPage:
    checkpoint: str
    """The signed checkpoint the proofs lead to (its tree size is ``size``)."""
    size: int
    events: list[AuditEntry]

    @property
    def next_before(self) -> int | None:
        """Pass as ``before`` for the next (older) page; ``None`` when this page is the last."""
        return self.events[-1].seq if self.events else None


def reader(platform: Platform) -> SocketAuditTrail:
    """The writer's socket, for reading (a platform whose trail is a fake has nothing to read)."""
    if isinstance(platform.audit, SocketAuditTrail):
        return platform.audit
    raise UnavailableError("This platform's audit trail is not the audit writer: nothing to read")


def is_operator(platform: Platform, account: Account) -> bool:
    """Accounts listed in ``audit.operators`` read every account's events."""
    operators = {e.strip().lower() for e in platform.settings.audit.operators.split(",")}
    return account.email.lower() in operators - {""}


def checkpoint(platform: Platform) -> str:
    """The newest signed checkpoint (signed now if entries were appended since the last one)."""
    return str(reader(platform).call({"op": "checkpoint"})["note"])


def log_key(platform: Platform) -> str:
    """The log's verifier key (``<origin>+<hex id>+<base64 key>``): pin it in witnesses and verifiers."""
    return str(reader(platform).call({"op": "checkpoint"})["vkey"])


def cosigned(platform: Platform) -> list[str]:
    """The newest checkpoint each known witness cosigned."""
    notes = reader(platform).call({"op": "cosigned"})["notes"]
    return [str(n) for n in notes] if isinstance(notes, list) else []


def add_cosignature(platform: Platform, note: str) -> None:
    """Keep a witness's cosigned checkpoint (``InvalidError`` unless it verifies)."""
    reader(platform).call({"op": "cosign", "note": note})


def consistency_proof(platform: Platform, first: int, second: int) -> list[str]:
    hashes = reader(platform).call({"op": "consistency", "first": first, "second": second})
    return [str(h) for h in _list(hashes["hashes"])]


def leaf_hashes(platform: Platform, start: int, end: int) -> list[str]:
    """The stored leaf hashes of entries ``start`` to ``end - 1`` (at most 10,000), base64."""
    answer = reader(platform).call({"op": "leaves", "start": start, "end": end})
    return [str(h) for h in _list(answer["hashes"])]


def inclusion_proof(platform: Platform, index: int, size: int) -> list[str]:
    hashes = reader(platform).call({"op": "inclusion", "index": index, "size": size})
    return [str(h) for h in _list(hashes["hashes"])]


def account_events(
    platform: Platform, account: Account, *, before: int | None = None, limit: int = 100
) -> EventPage:
    """Events of ``account`` (about it, or done by it) and of every app it owns or collaborates on."""
    with platform.store.read() as tx:
        apps = tx.list_apps(account.id)
    keys = [f"account:{account.id}", *(f"app:{app.id}" for app in apps)]
    return _events(platform, keys, before, limit)


def app_events(
    platform: Platform,
    account: Account,
    app_ref: str,
    *,
    before: int | None = None,
    limit: int = 100,
) -> EventPage:
    """Events of one app the account may read."""
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
    return _events(platform, [f"app:{app.id}"], before, limit)


def all_events(
    platform: Platform, account: Account, *, before: int | None = None, limit: int = 100
) -> EventPage:
    """Every event: operators only (``audit.operators``)."""
    require_operator(platform, account)
    return _events(platform, None, before, limit)


def require_operator(platform: Platform, account: Account) -> None:
    if not is_operator(platform, account):
        raise AccessDeniedError(
            "Only operators (listed in the audit.operators setting) may read every account's "
            "audit events; your own are at /account/audit-events"
        )


def export_entries(platform: Platform, account: Account, start: int = 0) -> Iterator[str]:
    """Every entry from ``start`` on, exactly as stored (one JSON object per line): operators only."""
    require_operator(platform, account)
    log = reader(platform)
    position = start
    while True:
        answer = log.call({"op": "entries", "start": position, "end": position + 2000})
        entries = [str(e) for e in _list(answer["entries"])]
        if not entries:
            return
        yield from entries
        position += len(entries)


def _events(
    platform: Platform, keys: list[str] | None, before: int | None, limit: int
) -> EventPage:
    request: dict[str, object] = {"op": "events", "keys": keys, "limit": limit}
    if before is not None:
        request["before"] = before
    answer = reader(platform).call(request)
    events = [
        AuditEntry(int(str(e["seq"])), str(e["entry"]), [str(h) for h in _list(e["proof"])])
        for e in _list(answer["events"])
        if isinstance(e, dict)
    ]
    return EventPage(str(answer["checkpoint"]), int(str(answer["size"])), events)


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
