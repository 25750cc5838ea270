"""``/apps/{app}/formation``: list, batch update, per-type info and update."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, FormationBatch, FormationTypeUpdate, formation_json
from dockyard.control import formation
from dockyard.control.context import Platform
from dockyard.control.formation import FormationUpdate
from dockyard.store.records import Account

router = APIRouter(tags=["formation"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/formation")
def list_formation(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, entries, commands = formation.list_formation(plat, account, app)
    items = [formation_json(record, e, commands.get(e.type, "")) for e in entries]
    return list_response(range_, items, ("type", "id"))


@router.patch("/apps/{app}/formation")
def batch_update(
    app: str, body: FormationBatch, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> list[JSON]:
    updates = [FormationUpdate(u.type, u.quantity, u.size) for u in body.updates]
    record, entries, commands = formation.update_formation(
        plat, account, app, updates, context=context
    )
    return [formation_json(record, e, commands.get(e.type, "")) for e in entries]


@router.get("/apps/{app}/formation/{ptype}")
def formation_info(app: str, ptype: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, entry, command = formation.get_formation(plat, account, app, ptype)
    return formation_json(record, entry, command)


@router.patch("/apps/{app}/formation/{ptype}")
def update_type(
    app: str,
    ptype: str,
    body: FormationTypeUpdate,
    account: AccountDep,
    plat: PlatformDep,
    context: ContextDep,
) -> JSON:
    update = FormationUpdate(ptype, body.quantity, body.size)
    record, entries, commands = formation.update_formation(
        plat, account, app, [update], context=context
    )
    return formation_json(record, entries[0], commands.get(ptype, ""))
