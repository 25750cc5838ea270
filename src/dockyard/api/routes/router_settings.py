"""``/apps/{app}/router-settings``: how the router treats an app (Dockyard's own resource).

Fields: ``cache`` (the response cache, off by default), ``https_redirect`` (301, 308 or null),
``hsts_max_age`` (seconds, or null for no ``Strict-Transport-Security``),
``hsts_include_subdomains``, ``hsts_preload``, ``connection_limit`` (requests in flight before
H22; null for the router's default). ``PATCH`` changes the fields it names.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.schemas import JSON, RouterSettingsUpdate, router_settings_json
from dockyard.control import router_settings
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["router-settings"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/router-settings")
def router_settings_info(app: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, config = router_settings.get_settings(plat, account, app)
    return router_settings_json(record, config)


@router.patch("/apps/{app}/router-settings")
def update_router_settings(
    app: str,
    body: RouterSettingsUpdate,
    account: AccountDep,
    plat: PlatformDep,
    context: ContextDep,
) -> JSON:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    record, config = router_settings.update_settings(plat, account, app, changes, context=context)
    return router_settings_json(record, config)
