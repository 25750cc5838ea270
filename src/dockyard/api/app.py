"""The ASGI app factory of the Platform API."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from dockyard import __version__
from dockyard.api import errors, policy
from dockyard.api.deps import ApiState
from dockyard.api.middleware import HerokuHeadersMiddleware
from dockyard.api.routes import (
    account,
    admin,
    app_transfers,
    apps,
    audit,
    buildpack_installations,
    builds,
    collaborators,
    config_vars,
    deleted_apps,
    domains,
    dyno_sizes,
    dynos,
    formation,
    internal,
    log_drains,
    log_sessions,
    login,
    oauth,
    password_resets,
    pre_authorizations,
    releases,
    router_settings,
    security,
    sessions,
    signups,
    slugs,
    sni_endpoints,
    sources,
    two_factor,
    well_known,
)
from dockyard.auth.ratelimit import RateLimiter
from dockyard.auth.stepup import PolicyError
from dockyard.control.context import Platform
from dockyard.control.logsessions import LogSessions
from dockyard.errors import DockyardError

ROUTERS = (
    account,
    admin,
    app_transfers,
    apps,
    audit,
    buildpack_installations,
    builds,
    collaborators,
    config_vars,
    deleted_apps,
    domains,
    dyno_sizes,
    dynos,
    formation,
    internal,
    log_drains,
    log_sessions,
    login,
    oauth,
    password_resets,
    pre_authorizations,
    releases,
    router_settings,
    security,
    sessions,
    signups,
    slugs,
    sni_endpoints,
    sources,
    two_factor,
    well_known,
)


def create_app(
    platform: Platform, *, internal_token: str, extra_routes: Sequence[BaseRoute] = ()
) -> FastAPI:
    """The API app. ``extra_routes`` are mounted first (git smart HTTP lives on the API host)."""
    app = FastAPI(
        title="Dockyard Platform API",
        version=__version__,
        description="Heroku Platform API v3 compatible. Send `Accept: application/vnd.heroku+json; "
        "version=3` and `Authorization: Bearer <API key>`.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(policy.enforce)],
    )
    app.state.dockyard = ApiState(
        platform=platform,
        limiter=RateLimiter(platform.settings.api.rate_limit_per_hour, platform.clock),
        log_sessions=LogSessions(platform),
        internal_token=internal_token,
    )
    for route in extra_routes:
        app.router.routes.append(route)
    for module in ROUTERS:
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.add_exception_handler(DockyardError, errors.handle_dockyard_error)
    app.add_exception_handler(PolicyError, policy.handle_policy_error)
    app.add_exception_handler(RequestValidationError, errors.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, errors.handle_http_error)
    app.add_exception_handler(Exception, errors.handle_unexpected)
    app.add_middleware(HerokuHeadersMiddleware)
    return app
