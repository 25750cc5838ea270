"""Builds as records: list and info (the build itself runs from a git push, see ``deploys``)."""

from __future__ import annotations

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.store.records import Account, App, Build


def list_builds(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[Build]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_builds(app.id)


def get_build(
    platform: Platform, account: Account, app_ref: str, build_id: str
) -> tuple[App, Build]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.get_build(app.id, build_id)
