"""Schemathesis against the ASGI app: generated requests for every documented operation find no 500."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.api.app import create_app
from dockyard.control.accounts import create_user
from dockyard.control.apps import create_app as create_dockyard_app
from dockyard.control.context import Platform
from dockyard.control.releases import append_release
from tests.api.conftest import ACCEPT, INTERNAL_TOKEN


def _operations(platform: Platform) -> tuple[Any, str]:
    user = create_user(platform, "fuzz@example.com")
    app = create_dockyard_app(platform, user.account, "fuzz-app")
    with platform.store.transaction() as tx:
        slug = tx.create_slug(
            app.id,
            digest="b" * 64,
            size=1,
            process_types={"web": "serve"},
            commit=None,
            stack="heroku-24",
        )
        append_release(tx, app, slug_id=slug.id, config={}, description="Deploy", user=user.account)
    asgi = create_app(platform, internal_token=INTERNAL_TOKEN)
    return schemathesis.openapi.from_asgi("/openapi.json", asgi), user.api_key


def test_no_operation_answers_a_server_error(platform: Platform) -> None:
    """Every documented operation, fed generated input, answers without a 5xx. Half the cases aim at a
    real app so the deeper code runs, not only the 404 path."""
    schema, api_key = _operations(platform)
    headers = {"Authorization": f"Bearer {api_key}", "Accept": ACCEPT}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(), aim_at_real_app=st.booleans())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any, aim_at_real_app: bool) -> None:
            if aim_at_real_app and "app" in (case.path_parameters or {}):
                case.path_parameters["app"] = "fuzz-app"
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )

        check()
    assert failures == []
