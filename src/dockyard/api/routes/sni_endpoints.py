"""``/apps/{app}/sni-endpoints``: an app's own TLS certificates (Heroku's SNI endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, SniEndpointCreate, sni_endpoint_json
from dockyard.control import certificates
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["sni-endpoints"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/sni-endpoints")
def list_sni_endpoints(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, found = certificates.list_endpoints(plat, account, app)
    return list_response(
        range_, [sni_endpoint_json(record, e, d) for e, d in found], ("id", "name")
    )


@router.post("/apps/{app}/sni-endpoints", status_code=201)
def add_sni_endpoint(
    app: str, body: SniEndpointCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    record, (endpoint, domains) = certificates.add_endpoint(
        plat, account, app, body.certificate_chain, body.private_key, context=context
    )
    return JSONResponse(sni_endpoint_json(record, endpoint, domains), status_code=201)


@router.get("/apps/{app}/sni-endpoints/{endpoint}")
def sni_endpoint_info(app: str, endpoint: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, (found, domains) = certificates.get_endpoint(plat, account, app, endpoint)
    return sni_endpoint_json(record, found, domains)


@router.patch("/apps/{app}/sni-endpoints/{endpoint}")
def update_sni_endpoint(
    app: str,
    endpoint: str,
    body: SniEndpointCreate,
    account: AccountDep,
    plat: PlatformDep,
    context: ContextDep,
) -> JSON:
    record, (updated, domains) = certificates.update_endpoint(
        plat, account, app, endpoint, body.certificate_chain, body.private_key, context=context
    )
    return sni_endpoint_json(record, updated, domains)


@router.delete("/apps/{app}/sni-endpoints/{endpoint}")
def remove_sni_endpoint(
    app: str, endpoint: str, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSON:
    record, (removed, domains) = certificates.remove_endpoint(
        plat, account, app, endpoint, context=context
    )
    return sni_endpoint_json(record, removed, domains)
