"""What the control plane tells the data plane (desired dynos, routes) and what it hears back (dynos),
and ``Changes``: when to tell it again.

The agent and the router ask with long polls: the API holds a request whose ``If-None-Match`` is still
current until ``Changes`` says the stored state may have changed, then looks again. ``notify`` is
called after commits the data plane cares about in this process (dyno reports, deploys); commits of
other processes and of code that does not notify are seen through a cheap signature of the database
(the SQLite files' sizes and modification times, looked at every ``WATCH_INTERVAL`` while a poll
waits) or, for a database without local files, by looking again every ``RECHECK_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from pathlib import Path

from dockyard.control.context import Platform
from dockyard.control.oneoff import live_one_offs
from dockyard.control.router_settings import hsts_value
from dockyard.domain.dataplane import (
    AppCertificate,
    Backend,
    DesiredDyno,
    DynoReport,
    Route,
    RouteTable,
)
from dockyard.errors import NotFoundError
from dockyard.store import SqlStore, Tx
from dockyard.store.records import Dyno
from dockyard.store.routing import RouterConfig
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
        certificates: dict[str, list[AppCertificate]] = {}
        for endpoint in tx.list_sni_endpoints():  # ordered by name
            cert = endpoint.certificate
            certificates.setdefault(endpoint.app_id, []).append(
                AppCertificate(
                    endpoint.id, cert.fingerprint, cert.cert_domains, cert.expires_at.isoformat()
                )
            )
        router_configs = tx.list_router_configs()
        routes = []
        for app in tx.list_apps():  # ordered by name
            release = tx.current_release(app.id)
            router = router_configs.get(app.id) or RouterConfig(app.id)
            web = [f for f in tx.list_formation(app.id) if f.type == "web"]
            quantity = web[0].quantity if web else 0
            states = web_states.get(app.id, set())
            config = release.config if release is not None else {}
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
                    error_page_url=config.get("ERROR_PAGE_URL", ""),
                    maintenance_page_url=config.get("MAINTENANCE_PAGE_URL", ""),
                    release_version=release.version if release is not None else 0,
                    cache=router.cache,
                    https_redirect=router.https_redirect,
                    hsts=hsts_value(router),
                    connection_limit=router.connection_limit,
                    certificates=tuple(certificates.get(app.id, ())),
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


# -- change notifications --------------------------------------------------------------------------

WATCH_INTERVAL = 0.05
"""Seconds between two looks at the SQLite files while a long poll waits."""
RECHECK_INTERVAL = 1.0
"""Seconds after which a waiting long poll looks again when the database has no local files."""


class Changes:
    """Tells long polls when the stored state may have changed. Thread-safe: ``notify`` may be called
    from any thread, ``wait`` from any event loop.

    ``watch`` returns a signature of the database that changes with every commit of any process
    (``None``: no such signature; then ``wait`` returns every ``recheck_interval``)."""

    def __init__(
        self,
        watch: Callable[[], Hashable] | None = None,
        *,
        watch_interval: float = WATCH_INTERVAL,
        recheck_interval: float = RECHECK_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watch = watch
        self.watch_interval = watch_interval
        self.recheck_interval = float("inf") if watch is not None else recheck_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._signature = watch() if watch is not None else None
        self._settle_at: float | None = None

    @property
    def generation(self) -> int:
        """Read it before reading the state: ``wait`` returns at once when it moved since."""
        with self._lock:
            return self._generation

    @property
    def waiting(self) -> int:
        """Long polls waiting right now."""
        with self._lock:
            return len(self._waiters)

    def notify(self) -> None:
        """The stored state may have changed: wake every waiting long poll."""
        with self._lock:
            self._generation += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits there
                loop.call_soon_threadsafe(_wake, future)

    def look(self) -> None:
        """Notify when the database's signature changed since the last look. A change is notified
        once more ``watch_interval`` later: a commit's last write to the file may come just before
        readers can see it."""
        if self.watch is None:
            return
        current = self.watch()
        now = self._monotonic()
        with self._lock:
            changed = current != self._signature
            self._signature = current
            settled = self._settle_at is not None and now >= self._settle_at
            if changed:
                self._settle_at = now + self.watch_interval
            elif settled:
                self._settle_at = None
        if changed or settled:
            self.notify()

    async def wait(self, generation: int, timeout: float) -> bool:
        """Wait until the state may have changed since ``generation`` was read (True) or
        ``timeout`` seconds have passed (False)."""
        loop = asyncio.get_running_loop()
        start = self._monotonic()
        deadline = start + max(0.0, timeout)
        recheck_at = start + self.recheck_interval
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._generation != generation:
                return True
            self._waiters.append((loop, future))
        try:
            while True:
                self.look()
                with self._lock:
                    if self._generation != generation:
                        return True
                now = self._monotonic()
                if now >= deadline:
                    return False
                if now >= recheck_at:
                    return True
                pause = min(deadline, recheck_at) - now
                if self.watch is not None:
                    pause = min(pause, self.watch_interval)
                await asyncio.wait({future}, timeout=pause)
        finally:
            future.cancel()
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def database_files(url: str) -> tuple[Path, ...]:
    """The files an SQLite database URL writes on every commit (the database and its write-ahead
    log); none for other databases."""
    scheme, separator, rest = url.partition(":///")
    path = rest.split("?", 1)[0]
    if not scheme.startswith("sqlite") or not separator or path in ("", ":memory:"):
        return ()
    database = Path(path)
    return (database, database.with_name(database.name + "-wal"))


def file_signature(paths: Sequence[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    """Inode, size and modification time of each file (None when it is missing)."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            found.append(None)
            continue
        found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


_CHANGES: weakref.WeakKeyDictionary[SqlStore, Changes] = weakref.WeakKeyDictionary()
_CHANGES_LOCK = threading.Lock()


def changes(platform: Platform) -> Changes:
    """The change notifications of ``platform``'s store in this process (one per store)."""
    with _CHANGES_LOCK:
        found = _CHANGES.get(platform.store)
        if found is None:
            files = database_files(platform.store.url)
            found = Changes((lambda: file_signature(files)) if files else None)
            # Every commit of this process wakes the long polls at once; commits of other processes
            # (another API replica) are seen through the database files or the periodic recheck.
            platform.store.commit_listeners.append(found.notify)
            _CHANGES[platform.store] = found
        return found
