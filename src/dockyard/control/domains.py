"""Domains: the default ``<app>.<platform domain>`` and custom hostnames."""

from __future__ import annotations

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.domains import is_platform_hostname, normalize_hostname
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from dockyard.store.records import Account, App, Domain


def list_domains(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[Domain]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_domains(app.id)


def get_domain(
    platform: Platform, account: Account, app_ref: str, domain_ref: str
) -> tuple[App, Domain]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.get_domain(app.id, domain_ref)


def add_domain(
    platform: Platform,
    account: Account,
    app_ref: str,
    hostname: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Domain]:
    host = normalize_hostname(hostname)
    if is_platform_hostname(host, platform.settings.domain):
        raise InvalidError(
            f"{host} is under the platform domain {platform.settings.domain}; apps get "
            f"<app>.{platform.settings.domain} automatically — add a domain you own",
            field="hostname",
        )
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        domain = tx.add_domain(app.id, host, "custom")
        audit.record_app_event(
            platform, "domain.add", account, context, app, target=("domain", domain.id, host)
        )
    platform.log(app.id, "heroku", "api", f"Add {host} domain by {account.email}")
    return app, domain


def remove_domain(
    platform: Platform,
    account: Account,
    app_ref: str,
    domain_ref: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Domain]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        domain = tx.get_domain(app.id, domain_ref)
        if domain.kind == "heroku":
            raise InvalidError(
                f"{domain.hostname} is the app's default domain and cannot be removed",
                field="hostname",
            )
        tx.delete_domain(domain.id)
        audit.record_app_event(
            platform,
            "domain.remove",
            account,
            context,
            app,
            target=("domain", domain.id, domain.hostname),
        )
    platform.log(app.id, "heroku", "api", f"Remove {domain.hostname} domain by {account.email}")
    return app, domain
