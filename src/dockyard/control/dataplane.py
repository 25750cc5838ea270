"""What the control plane tells the data plane (desired dynos, routes) and what it hears back (dynos)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dockyard.control.context import Platform
from dockyard.domain.dataplane import DesiredDyno, DynoReport, Route, RouteTable
from dockyard.store import Tx
from dockyard.store.records import Dyno
from dockyard.types import ProcessType, SlugDigest


def _desired_for_app(tx: Tx, app_id: str) -> list[DesiredDyno]:
    app = tx.get_app(app_id)
    release = tx.current_release(app.id)
    if release is None or release.slug_id is None:
        return []
    slug = tx.get_slug(release.slug_id)
    dynos = []
    for entry in tx.list_formation(app.id):
        command = slug.process_types.get(entry.type)
        if command is None:
            continue
        for index in range(1, entry.quantity + 1):
            generation = (
                f"{app.restart_generation}.{entry.restart_generation}."
                f"{entry.dyno_generations.get(str(index), 0)}"
            )
            dynos.append(
                DesiredDyno(
                    app_id=app.id,
                    app_name=app.name,
                    process_type=ProcessType(entry.type),
                    index=index,
                    release_version=release.version,
                    slug_digest=SlugDigest(slug.digest),
                    command=command,
                    env=dict(release.config),
                    size=entry.size,
                    generation=generation,
                )
            )
    return dynos


def desired_dynos(platform: Platform, host: str) -> list[DesiredDyno]:
    """Every dyno that should run. One host runs everything for now; placement across hosts comes with
    the Kubernetes runtime."""
    del host
    with platform.store.read() as tx:
        return [d for app in tx.list_apps() for d in _desired_for_app(tx, app.id)]


def route_table(platform: Platform) -> RouteTable:
    with platform.store.read() as tx:
        domains: dict[str, list[str]] = {}
        for domain in tx.list_domains():
            domains.setdefault(domain.app_id, []).append(domain.hostname)
        backends: dict[str, list[str]] = {}
        for dyno in tx.list_dynos():
            if dyno.type == "web" and dyno.state == "up" and dyno.address:
                backends.setdefault(dyno.app_id, []).append(dyno.address)
        routes = []
        for app in tx.list_apps():
            release = tx.current_release(app.id)
            web = [f for f in tx.list_formation(app.id) if f.type == "web"]
            routes.append(
                Route(
                    app_id=app.id,
                    app_name=app.name,
                    hostnames=tuple(sorted(domains.get(app.id, []))),
                    backends=tuple(sorted(backends.get(app.id, []))),
                    maintenance=app.maintenance,
                    released=release is not None and release.slug_id is not None,
                    web_quantity=web[0].quantity if web else 0,
                )
            )
    return RouteTable(tuple(routes))


def record_dynos(platform: Platform, host: str, reports: Sequence[DynoReport]) -> None:
    now = platform.clock.now()
    records = [
        Dyno(
            id=r.id,
            app_id=r.app_id,
            name=r.name,
            type=r.process_type,
            release_version=r.release_version,
            state=r.state,
            command=r.command,
            size=r.size,
            address=r.address,
            host=host,
            started_at=_parse_time(r.started_at, now),
            updated_at=now,
        )
        for r in reports
    ]
    with platform.store.transaction() as tx:
        tx.replace_dynos(host, records)


def _parse_time(text: str, default: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return default
    return value if value.tzinfo is not None else default
