"""The audit log over HTTP.

Public (no credentials; what witnesses and verifiers need):
``GET /audit/checkpoint`` (the newest signed checkpoint, text), ``GET /audit/log-key`` (the log's verifier
key), ``GET /audit/proof/consistency?first=&second=``, ``GET /audit/proof/inclusion?index=&size=``,
``GET /audit/leaf-hashes?start=&end=``,
``GET /audit/cosignatures`` and ``POST /audit/cosignatures`` (``{"note": …}``: a witness hands in its
cosigned checkpoint).

Tenants: ``GET /account/audit-events`` (their account's and apps' events) and
``GET /apps/{app}/audit-events``, newest first, each event with its inclusion proof in the checkpoint
the answer carries; ``?before=<seq>&limit=`` pages back. ``…/audit-events/export`` gives the same as
JSON Lines. Operators (``audit.operators``): ``GET /audit/events`` and ``GET /audit/export`` (every
entry exactly as stored, one per line, to verify the whole log).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from dockyard.api.deps import current_account, platform
from dockyard.control import audit
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["audit"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]
Before = Annotated[int | None, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Size = Annotated[int, Query(ge=0)]
NOTE = "text/plain; charset=utf-8"


def page_json(page: audit.EventPage) -> dict[str, Any]:
    return {
        "checkpoint": page.checkpoint,
        "tree_size": page.size,
        "next_before": page.next_before if len(page.events) else None,
        "events": [event_json(e) for e in page.events],
    }


def event_json(entry: audit.AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "event": entry.fields,
        "entry": entry.raw,
        "leaf_hash": entry.leaf_hash,
        "inclusion_proof": entry.proof,
    }


def _jsonl(page: audit.EventPage) -> Iterator[bytes]:
    yield json.dumps({"checkpoint": page.checkpoint, "tree_size": page.size}).encode() + b"\n"
    for entry in page.events:
        yield json.dumps(event_json(entry)).encode() + b"\n"


# --- public --------------------------------------------------------------------------------------


@router.get("/audit/checkpoint", response_class=PlainTextResponse)
def get_checkpoint(plat: PlatformDep) -> PlainTextResponse:
    return PlainTextResponse(audit.checkpoint(plat), media_type=NOTE)


@router.get("/audit/log-key", response_class=PlainTextResponse)
def get_log_key(plat: PlatformDep) -> PlainTextResponse:
    return PlainTextResponse(audit.log_key(plat) + "\n", media_type=NOTE)


@router.get("/audit/proof/consistency")
def get_consistency(first: Size, second: Size, plat: PlatformDep) -> dict[str, Any]:
    hashes = audit.consistency_proof(plat, first, second)
    return {"first": first, "second": second, "hashes": hashes}


@router.get("/audit/leaf-hashes")
def get_leaf_hashes(start: Size, end: Size, plat: PlatformDep) -> dict[str, Any]:
    """The stored leaf hashes of a range of entries (at most 10,000): ``verify`` compares entries with
    them to name the first one that was changed."""
    return {"start": start, "hashes": audit.leaf_hashes(plat, start, end)}


@router.get("/audit/proof/inclusion")
def get_inclusion(index: Size, size: Size, plat: PlatformDep) -> dict[str, Any]:
    return {"index": index, "size": size, "hashes": audit.inclusion_proof(plat, index, size)}


@router.get("/audit/cosignatures")
def get_cosignatures(plat: PlatformDep) -> dict[str, Any]:
    return {"checkpoints": audit.cosigned(plat)}


class Cosignature(BaseModel):
    note: str = Field(max_length=64 * 1024)
    """The checkpoint with the witness's cosignature line added."""


@router.post("/audit/cosignatures", status_code=202)
def post_cosignature(plat: PlatformDep, body: Cosignature) -> dict[str, Any]:
    audit.add_cosignature(plat, body.note)
    return {"accepted": True}


# --- tenants -------------------------------------------------------------------------------------


@router.get("/account/audit-events")
def account_events(
    account: AccountDep, plat: PlatformDep, before: Before = None, limit: Limit = 100
) -> dict[str, Any]:
    return page_json(audit.account_events(plat, account, before=before, limit=limit))


@router.get("/account/audit-events/export")
def export_account_events(
    account: AccountDep, plat: PlatformDep, before: Before = None, limit: Limit = 1000
) -> StreamingResponse:
    page = audit.account_events(plat, account, before=before, limit=limit)
    return StreamingResponse(_jsonl(page), media_type="application/x-ndjson")


@router.get("/apps/{app}/audit-events")
def app_events(
    app: str, account: AccountDep, plat: PlatformDep, before: Before = None, limit: Limit = 100
) -> dict[str, Any]:
    return page_json(audit.app_events(plat, account, app, before=before, limit=limit))


@router.get("/apps/{app}/audit-events/export")
def export_app_events(
    app: str, account: AccountDep, plat: PlatformDep, before: Before = None, limit: Limit = 1000
) -> StreamingResponse:
    page = audit.app_events(plat, account, app, before=before, limit=limit)
    return StreamingResponse(_jsonl(page), media_type="application/x-ndjson")


# --- operators -----------------------------------------------------------------------------------


@router.get("/audit/events")
def all_events(
    account: AccountDep, plat: PlatformDep, before: Before = None, limit: Limit = 100
) -> dict[str, Any]:
    return page_json(audit.all_events(plat, account, before=before, limit=limit))


@router.get("/audit/export")
def export_all(account: AccountDep, plat: PlatformDep, start: Size = 0) -> StreamingResponse:
    audit.require_operator(plat, account)  # before the stream starts, so a refusal is a 403
    lines = (line.encode() + b"\n" for line in audit.export_entries(plat, account, start))
    return StreamingResponse(lines, media_type="application/x-ndjson")
