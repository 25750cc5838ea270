"""What the control plane tells the data plane (desired dynos, routes) and what it hears back (dynos)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dockyard.control.context import Platform
from dockyard.control.oneoff import live_one_offs
from dockyard.domain.dataplane import Backend, DesiredDyno, DynoReport, Route, RouteTable
from dockyard.errors import NotFoundError
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


def _one_offs(tx: Tx, now: datetime) -> list[DesiredDyno]:
    """The one-off dynos still wanted, each in the slug and config of the release it was asked for
    in, plus the variables of its request."""
    dynos = []
    apps = {app.id: app for app in tx.list_apps()}
    for one_off in live_one_offs(tx, None, now):
        app = apps.get(one_off.app_id)
        if app is None:
            continue
        try:
            release = tx.get_release(app.id, one_off.release_version)
        except NotFoundError:
            continue
        if release.slug_id is None:
            continue
        ptype, _, index = one_off.name.partition(".")
        dynos.append(
            DesiredDyno(
                app_id=app.id,
                app_name=app.name,
                process_type=ProcessType(ptype),
                index=int(index) if index.isdigit() else 0,
                release_version=release.version,
                slug_digest=SlugDigest(tx.get_slug(release.slug_id).digest),
                command=one_off.command,
                env={**release.config, **one_off.env},
                size=one_off.size,
                kind="one-off",
                dyno_id=one_off.id,
                time_to_live=float(one_off.time_to_live),
                attach=one_off.attach,
                tty=one_off.tty,
            )
        )
    return dynos


def desired_dynos(platform: Platform, host: str) -> list[DesiredDyno]:
    """Every dyno that should run: the formations, then the one-off dynos. One host runs everything
    for now; placement across hosts comes with the Kubernetes runtime."""
    del host
    with platform.store.read() as tx:
        formation = [d for app in tx.list_apps() for d in _desired_for_app(tx, app.id)]
        return formation + _one_offs(tx, platform.clock.now())


_SERVING = frozenset({"up", "starting"})
"""Dyno states that keep an app from being reported as crashed."""


def route_table(platform: Platform) -> RouteTable:
    """Every app's route. The output depends only on the stored state, never on the order records come
    back in: its ETag is what tells the routers whether anything changed."""
    with platform.store.read() as tx:
        domains: dict[str, list[str]] = {}
        for domain in tx.list_domains():
            domains.setdefault(domain.app_id, []).append(domain.hostname)
        backends: dict[str, list[Backend]] = {}
        web_states: dict[str, set[str]] = {}
        for dyno in tx.list_dynos():
            if dyno.type != "web":
                continue
            web_states.setdefault(dyno.app_id, set()).add(dyno.state)
            if dyno.state == "up" and dyno.address:
                backends.setdefault(dyno.app_id, []).append(Backend(dyno.name, dyno.address))
        routes = []
        for app in tx.list_apps():  # ordered by name
            release = tx.current_release(app.id)
            web = [f for f in tx.list_formation(app.id) if f.type == "web"]
            quantity = web[0].quantity if web else 0
            states = web_states.get(app.id, set())
            routes.append(
                Route(
                    app_id=app.id,
                    app_name=app.name,
                    hostnames=tuple(sorted(domains.get(app.id, []))),
                    backends=tuple(
                        sorted(backends.get(app.id, []), key=lambda b: (b.dyno, b.address))
                    ),
                    maintenance=app.maintenance,
                    released=release is not None and release.slug_id is not None,
                    web_quantity=quantity,
                    crashed=quantity > 0 and "crashed" in states and not states & _SERVING,
                )
            )
    return RouteTable(tuple(routes))


def record_dynos(platform: Platform, host: str, reports: Sequence[DynoReport]) -> None:
    """Store what ``host`` runs. A one-off dyno reported ``down`` or ``crashed`` has run: it is no
    longer wanted, so the agent forgets it and it leaves ``ps``."""
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
            next_retry_at=None if r.next_retry_at is None else _parse_time(r.next_retry_at, now),
        )
        for r in reports
    ]
    finished = {r.id for r in reports if r.kind == "one-off" and r.state in ("down", "crashed")}
    with platform.store.transaction() as tx:
        tx.replace_dynos(host, records)
        if finished:
            for one_off in tx.list_one_off_dynos(states=["pending"]):
                if one_off.id in finished:
                    tx.set_one_off_dyno_state(one_off.id, "exited")


def _parse_time(text: str, default: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return default
    return value if value.tzinfo is not None else default
