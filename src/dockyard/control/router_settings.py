"""How the router treats one app (``/apps/{app}/router-settings``): the response cache, redirects
of plain HTTP to HTTPS, HSTS, and the app's own connection limit.

Every change reaches the router with the next route table (within a second); turning the cache on
or off, like a deploy, starts the app's cache afresh.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from dockyard.store.records import Account, App
from dockyard.store.routing import RouterConfig

REDIRECTS = (0, 301, 308)
MAX_HSTS_AGE = 2 * 365 * 24 * 3600
PRELOAD_MIN_AGE = 365 * 24 * 3600
"""What the HSTS preload list asks for (hstspreload.org), with ``includeSubDomains``."""
MAX_CONNECTION_LIMIT = 1_000_000
FIELDS = (
    "cache",
    "https_redirect",
    "hsts_max_age",
    "hsts_include_subdomains",
    "hsts_preload",
    "connection_limit",
)


def hsts_value(config: RouterConfig) -> str:
    """The ``Strict-Transport-Security`` value for the app's HTTPS responses, or ``""``."""
    if config.hsts_max_age is None:
        return ""
    value = f"max-age={config.hsts_max_age}"
    if config.hsts_include_subdomains:
        value += "; includeSubDomains"
    if config.hsts_preload:
        value += "; preload"
    return value


def _checked(config: RouterConfig) -> RouterConfig:
    if config.https_redirect not in REDIRECTS:
        raise InvalidError(
            f"https_redirect must be 301, 308 or null (no redirect), not {config.https_redirect}",
            field="https_redirect",
        )
    age = config.hsts_max_age
    if age is not None and not 0 <= age <= MAX_HSTS_AGE:
        raise InvalidError(
            f"hsts_max_age must be between 0 and {MAX_HSTS_AGE} seconds (two years), or null "
            "for no HSTS",
            field="hsts_max_age",
        )
    if config.hsts_preload and (
        age is None or age < PRELOAD_MIN_AGE or not config.hsts_include_subdomains
    ):
        raise InvalidError(
            f"hsts_preload needs hsts_max_age of at least {PRELOAD_MIN_AGE} (a year) and "
            "hsts_include_subdomains, as the preload list requires",
            field="hsts_preload",
        )
    if not 0 <= config.connection_limit <= MAX_CONNECTION_LIMIT:
        raise InvalidError(
            f"connection_limit must be between 1 and {MAX_CONNECTION_LIMIT}, or null (0) for "
            "the router's default",
            field="connection_limit",
        )
    return config


def get_settings(platform: Platform, account: Account, app_ref: str) -> tuple[App, RouterConfig]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.router_config(app.id)


def update_settings(
    platform: Platform,
    account: Account,
    app_ref: str,
    changes: dict[str, Any],
    *,
    context: RequestContext | None = None,
) -> tuple[App, RouterConfig]:
    """Apply ``changes`` (field → value; ``https_redirect`` and ``connection_limit`` null mean
    none and the default) to the app's settings."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidError(f"unknown router settings: {', '.join(sorted(unknown))}")
    values = dict(changes)
    for name in ("cache", "hsts_include_subdomains", "hsts_preload"):
        if name in values and not isinstance(values[name], bool):
            raise InvalidError(f"{name} must be true or false", field=name)
    if "https_redirect" in values and values["https_redirect"] is None:
        values["https_redirect"] = 0
    if "connection_limit" in values and values["connection_limit"] is None:
        values["connection_limit"] = 0
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        current = tx.router_config(app.id)
        config = _checked(dataclasses.replace(current, **values))
        saved = tx.set_router_config(config)
        audit.record_app_event(
            platform,
            "router_settings.update",
            account,
            context,
            app,
            details={name: str(getattr(saved, name)) for name in FIELDS if name in changes},
        )
    described = ", ".join(f"{name}={getattr(saved, name)}" for name in FIELDS if name in changes)
    platform.log(app.id, "heroku", "api", f"Set router {described} by {account.email}")
    return app, saved
