"""``/apps/{app}/domains``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, DomainCreate, domain_json
from dockyard.control import domains
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["domains"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/domains")
def list_domains(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, found = domains.list_domains(plat, account, app)
    return list_response(
        range_, [domain_json(record, d, plat.settings) for d in found], ("id", "hostname")
    )


@router.post("/apps/{app}/domains", status_code=201)
def add_domain(
    app: str, body: DomainCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    record, domain = domains.add_domain(plat, account, app, body.hostname, context=context)
    return JSONResponse(domain_json(record, domain, plat.settings), status_code=201)


@router.get("/apps/{app}/domains/{domain}")
def domain_info(app: str, domain: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = domains.get_domain(plat, account, app, domain)
    return domain_json(record, found, plat.settings)


@router.delete("/apps/{app}/domains/{domain}")
def remove_domain(
    app: str, domain: str, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSON:
    record, removed = domains.remove_domain(plat, account, app, domain, context=context)
    return domain_json(record, removed, plat.settings)
