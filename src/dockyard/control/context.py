"""``Platform``: the handles every use case needs, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard._util.clock import Clock, SystemClock
from dockyard.audit.client import AuditTrail, SocketAuditTrail
from dockyard.logs.line import make_lines
from dockyard.logs.store import FileLogStore
from dockyard.settings import Settings
from dockyard.slug.store import SlugStore
from dockyard.store import SqlStore

STACK = "heroku-24"
"""The stack name apps report; the Dynos issue replaces it with Dockyard's own stack image."""


@dataclass
class Platform:
    settings: Settings
    store: SqlStore
    slugs: SlugStore
    logs: FileLogStore
    clock: Clock
    audit: AuditTrail
    """Where use cases append audit events (``control.audit.record``): the audit writer's socket."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        audit: AuditTrail | None = None,
    ) -> Platform:
        """Create the data directory layout, migrate the database, and return the handles. Audit events
        go to the ``audit-writer`` process through its socket unless ``audit`` says otherwise."""
        prepare_data_dir(settings)
        clock = clock or SystemClock()
        store = SqlStore(settings.sqlalchemy_url, clock=clock)
        if migrate:
            from dockyard.store.migrate import upgrade  # Alembic is slow to import; hooks skip it

            upgrade(store.engine)
        database = settings.data_dir / "dockyard.db"
        for path in (
            database,
            database.with_name("dockyard.db-wal"),
            database.with_name("dockyard.db-shm"),
        ):
            if path.exists():
                path.chmod(0o600)
        return cls(
            settings=settings,
            store=store,
            slugs=SlugStore(settings.slugs_dir),
            logs=FileLogStore(settings.logs_dir),
            clock=clock,
            audit=audit
            or SocketAuditTrail(settings.audit_socket, timeout=settings.audit.append_timeout),
        )

    def log(self, app_id: str, source: str, dyno: str, message: str) -> None:
        """Append a line to an app's log stream (``heroku[api]``, ``app[release.3]``…)."""
        self.logs.append(app_id, make_lines(source, dyno, message, self.clock.now()))

    def close(self) -> None:
        self.store.dispose()
        if isinstance(self.audit, SocketAuditTrail):
            self.audit.close()


def private_dirs(settings: Settings) -> tuple[Path, ...]:
    """Directories only the platform may read. Builds run as unprivileged users and reach their scratch
    space through the data directory, so everything else in it is closed to other users. (``dynos`` and
    slug mounts stay traversable: sandboxed dynos with user namespaces reach their root through them.)"""
    return (
        settings.secrets_dir,
        settings.repos_dir,
        settings.slugs_dir,
        settings.logs_dir,
        settings.state_dir,
    )


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory and close its private parts (also on installs made before this rule)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for directory in private_dirs(settings):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
