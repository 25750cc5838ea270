"""Persistence: SQLAlchemy 2 over SQLite (WAL, the embedded default) or PostgreSQL, with Alembic migrations.

Callers use ``SqlStore.transaction()`` / ``SqlStore.read()`` and get frozen records back; ORM objects never
leave this package.
"""

from dockyard.store.records import (
    Account,
    ApiKey,
    App,
    Build,
    BuildpackInstallation,
    Collaborator,
    Domain,
    Dyno,
    FormationEntry,
    OneOffDyno,
    Release,
    Slug,
    Source,
    SshKey,
)
from dockyard.store.sql import SqlStore, Tx

__all__ = [
    "Account",
    "ApiKey",
    "App",
    "Build",
    "BuildpackInstallation",
    "Collaborator",
    "Domain",
    "Dyno",
    "FormationEntry",
    "OneOffDyno",
    "Release",
    "Slug",
    "Source",
    "SqlStore",
    "SshKey",
    "Tx",
]
