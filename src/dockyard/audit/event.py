"""Audit events: what the platform hands the writer, and the canonical bytes an entry is hashed from.

An event says who (``actor``, how it authenticated, from where), did what (``action``) to what
(``target``), with which ``outcome``, and whose stream shows it (``account_id``, ``app_id``). The writer
adds ``seq`` (the entry's index in the log) and ``ts`` (UTC, never earlier than the previous entry's), and
stores the entry as canonical JSON: sorted keys, no spaces, UTF-8, no floats, one line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError

Outcome = Literal["success", "failure", "denied"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure", "denied")
ActorType = Literal["account", "operator", "system", "anonymous"]
ACTOR_TYPES: tuple[ActorType, ...] = ("account", "operator", "system", "anonymous")

DetailValue = str | int | bool | None | Sequence[str] | Mapping[str, str | None]
"""Details are small and flat: strings, integers, booleans, lists of strings, maps of strings."""

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}$")
MAX_FIELD = 1024
MAX_ENTRY_BYTES = 16 * 1024

JsonObject = dict[str, object]


@dataclass(frozen=True)
class Actor:
    """Who acted: an account (its id), the operator on the host, Dockyard itself, or nobody known."""

    type: ActorType
    id: str = ""
    """The account id for ``account``; a name for ``operator`` (e.g. the Unix user); empty otherwise."""

    @classmethod
    def account(cls, account_id: str) -> Actor:
        return cls("account", account_id)


SYSTEM_ACTOR = Actor("system")
ANONYMOUS = Actor("anonymous")


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. ``action`` is ``<noun>.<verb>`` (``ssh_key.add``); docs/audit.md lists them."""

    action: str
    actor: Actor
    target_type: str
    """What was acted on: ``app``, ``account``, ``ssh_key``, ``config``, ``domain``, ``collaborator``…"""
    target_id: str
    target_name: str = ""
    """A human name of the target at the time (app name, key fingerprint, hostname); optional."""
    outcome: Outcome = "success"
    account_id: str | None = None
    """The tenant account whose audit stream shows the event (besides the acting account's)."""
    app_id: str | None = None
    """The app whose audit stream shows the event (owner and collaborators read it)."""
    context: RequestContext = field(default_factory=RequestContext)
    details: Mapping[str, DetailValue] = field(default_factory=dict)
    """Extra facts: never secrets. Config changes carry key names and hashes of values only."""

    def to_json(self) -> JsonObject:
        """The event as a JSON object (without ``seq`` and ``ts``, which the writer adds)."""
        return {
            "action": self.action,
            "actor": {"type": self.actor.type, "id": self.actor.id},
            "auth": self.context.auth_method,
            "ip": self.context.address,
            "ua": self.context.user_agent,
            "request_id": self.context.request_id,
            "target": {"type": self.target_type, "id": self.target_id, "name": self.target_name},
            "outcome": self.outcome,
            "account": self.account_id,
            "app": self.app_id,
            "details": {key: _detail(value) for key, value in self.details.items()},
        }


@dataclass(frozen=True)
class AuditReceipt:
    """What an append returns: the entry's index in the log and its RFC 9162 leaf hash (hex)."""

    seq: int
    leaf_hash: str

    def to_json(self) -> JsonObject:
        return {"seq": self.seq, "leaf_hash": self.leaf_hash}


def _detail(value: DetailValue) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    return list(value)


def canonical(obj: Mapping[str, object]) -> bytes:
    """Canonical JSON: sorted keys, compact separators, UTF-8; the exact bytes a leaf is hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def validate_event(obj: object) -> JsonObject:
    """Check an event object received by the writer (``AuditEvent.to_json`` shape) and return it.

    Raises ``InvalidError`` naming the first field that is wrong."""
    if not isinstance(obj, dict):
        raise InvalidError("an audit event must be a JSON object")
    event = cast(JsonObject, obj)
    expected = {
        "action",
        "actor",
        "auth",
        "ip",
        "ua",
        "request_id",
        "target",
        "outcome",
        "account",
        "app",
        "details",
    }
    if set(event) != expected:
        raise InvalidError(
            f"audit event fields {sorted(event)} differ from {sorted(expected)}", field="event"
        )
    action = event["action"]
    if not isinstance(action, str) or not ACTION_PATTERN.match(action):
        raise InvalidError(f"audit action {action!r} is not <noun>.<verb>", field="action")
    if event["outcome"] not in OUTCOMES:
        raise InvalidError(f"audit outcome {event['outcome']!r} is not one of {OUTCOMES}")
    _check_parties(event)
    for name in ("auth", "ip", "ua", "request_id"):
        if not isinstance(event[name], str) or len(str(event[name])) > MAX_FIELD:
            raise InvalidError(f"audit field {name} must be a string of at most {MAX_FIELD}")
    for name in ("account", "app"):
        if event[name] is not None and not isinstance(event[name], str):
            raise InvalidError(f"audit field {name} must be a string or null", field=name)
    if not isinstance(event["details"], dict):
        raise InvalidError("audit details must be an object", field="details")
    return event


def _check_parties(event: JsonObject) -> None:
    actor = event["actor"]
    if (
        not isinstance(actor, dict)
        or set(actor) != {"type", "id"}
        or actor["type"] not in ACTOR_TYPES
        or not isinstance(actor["id"], str)
    ):
        raise InvalidError(f"audit actor {actor!r} is not {{type, id}}", field="actor")
    target = event["target"]
    if (
        not isinstance(target, dict)
        or set(target) != {"type", "id", "name"}
        or not all(isinstance(v, str) for v in target.values())
    ):
        raise InvalidError(f"audit target {target!r} is not {{type, id, name}}", field="target")


def no_floats(text: str) -> float:
    """``json.loads(..., parse_float=no_floats)``: entries hold no floating-point numbers (they do not
    round-trip byte for byte)."""
    raise InvalidError(f"audit events hold no floating-point numbers ({text})")


def parse_event_request(line: bytes) -> dict[str, object]:
    """A request line of the writer's protocol, refusing floats and oversized events."""
    if len(line) > MAX_ENTRY_BYTES + 1024:
        raise InvalidError(f"an audit event may be at most {MAX_ENTRY_BYTES} bytes")
    decoded = json.loads(line, parse_float=no_floats)
    if not isinstance(decoded, dict):
        raise InvalidError("a request is a JSON object")
    return cast(dict[str, object], decoded)


def value_hash(scope: str, key: str, value: str) -> str:
    """``sha256:<hex>`` of a secret value bound to its scope and key (e.g. an app id and a config var
    name), so the log shows that a value changed without holding it. Whoever knows the value can check it."""
    digest = hashlib.sha256(
        b"dockyard-audit-value\x00"
        + scope.encode()
        + b"\x00"
        + key.encode()
        + b"\x00"
        + value.encode()
    )
    return "sha256:" + digest.hexdigest()
