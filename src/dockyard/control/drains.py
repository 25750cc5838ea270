"""Log drains: ``/apps/{app}/log-drains`` (add, list, show, remove) and the list the logs process ships.

A drain's URL is checked twice against the address guard (no SSRF through drains): here, on the
addresses its host resolves to when it is added, and by the logs process before every connection.
Platform log lines name a drain by its token only: a URL may carry a password.
"""

from __future__ import annotations

import contextlib
import ipaddress

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from dockyard.logs import channel
from dockyard.logs.drains import DrainConfig
from dockyard.logs.drainurl import AddressGuard, IpNetwork, host_addresses, parse_drain_url
from dockyard.store import SqlStore
from dockyard.store.drains import LogDrain
from dockyard.store.records import Account, App


def address_guard(platform: Platform) -> AddressGuard:
    settings = platform.settings
    if settings.logs.allow_private_drains:
        return AddressGuard(allow_private=True)
    own: list[IpNetwork] = [*host_addresses()]
    with contextlib.suppress(ValueError):
        own.append(ipaddress.ip_network(settings.network.private_range))
    return AddressGuard(allow_private=False, own=own)


def list_drains(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[LogDrain]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_log_drains(app.id)


def get_drain(
    platform: Platform, account: Account, app_ref: str, drain_ref: str
) -> tuple[App, LogDrain]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.get_log_drain(app.id, drain_ref)


def add_drain(
    platform: Platform,
    account: Account,
    app_ref: str,
    url: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, LogDrain]:
    target = parse_drain_url(url)
    with platform.store.read() as tx:
        app_for(tx, account, app_ref, "manage")  # who may, before any DNS lookup
    address_guard(platform).resolve(target.host, target.port)
    limit = platform.settings.logs.max_drains
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        if tx.count_log_drains(app.id) >= limit:
            raise InvalidError(
                f"{app.name} already has {limit} log drains, the most an app may have — remove "
                "one first (drains:remove)",
                field="url",
            )
        drain = tx.add_log_drain(app.id, target.url)
        _record(platform, "drain.add", account, context, app, drain)
    platform.log(app.id, "heroku", "api", f"Add drain {drain.token} by {account.email}")
    channel.drains_changed(platform.logs)
    return app, drain


def remove_drain(
    platform: Platform,
    account: Account,
    app_ref: str,
    drain_ref: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, LogDrain]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        drain = tx.get_log_drain(app.id, drain_ref)
        tx.delete_log_drain(app.id, drain.id)
        _record(platform, "drain.remove", account, context, app, drain)
    platform.log(app.id, "heroku", "api", f"Remove drain {drain.token} by {account.email}")
    channel.drains_changed(platform.logs)
    return app, drain


def _record(
    platform: Platform,
    action: str,
    account: Account,
    context: RequestContext | None,
    app: App,
    drain: LogDrain,
) -> None:
    """Audit a drain change by its token: the URL may carry a password."""
    audit.record_app_event(
        platform, action, account, context, app, target=("log_drain", drain.id, drain.token)
    )


def drain_configs(store: SqlStore) -> list[DrainConfig]:
    """Every app's drains, for the logs process."""
    with store.read() as tx:
        return [DrainConfig(d.id, d.app_id, d.token, d.url) for d in tx.all_log_drains()]
