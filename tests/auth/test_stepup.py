"""Step-up rules: a 15-minute window from the last full authentication, not extended by activity; what
long-lived authorizations may do without prompting; typed confirmations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockyard.auth.oauth import scope_allows
from dockyard.auth.stepup import Credential, PolicyError, check_confirmation, needs_step_up

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _login(at: datetime | None) -> Credential:
    return Credential("login", "g1", frozenset({"global"}), at)


def test_window_is_15_minutes_from_authentication() -> None:
    credential = _login(T0)
    assert not needs_step_up(credential, "app.delete", T0 + timedelta(minutes=14, seconds=59))
    assert needs_step_up(credential, "app.delete", T0 + timedelta(minutes=15))


def test_long_lived_credentials_do_not_prompt_for_app_actions_but_do_for_tokens() -> None:
    key = Credential("api-key", "k1", frozenset({"global"}), None)
    for action in ("app.delete", "collaborator.change", "domain.change", "ssh-key.add"):
        assert not needs_step_up(key, action, T0)  # type: ignore[arg-type]
    for action in ("token.create", "mfa.change", "password.change", "email.change"):
        assert needs_step_up(key, action, T0)  # type: ignore[arg-type]


def test_deletion_and_transfer_need_the_typed_name() -> None:
    with pytest.raises(PolicyError) as refused:
        check_confirmation("app.delete", "shop", None)
    assert refused.value.error_id == "confirmation_required"
    with pytest.raises(PolicyError):
        check_confirmation("app.transfer", "shop", "shp")
    check_confirmation("app.delete", "shop", "shop")
    check_confirmation("domain.change", "shop", None)


@pytest.mark.parametrize(
    ("scopes", "method", "path", "allowed"),
    [
        ({"read"}, "GET", "/apps/{app}", True),
        ({"read"}, "DELETE", "/apps/{app}", False),
        ({"read"}, "GET", "/apps/{app}/config-vars", False),
        ({"read-protected"}, "GET", "/apps/{app}/config-vars", True),
        ({"write"}, "PATCH", "/apps/{app}/config-vars", False),
        ({"write-protected"}, "PATCH", "/apps/{app}/config-vars", True),
        ({"write"}, "PATCH", "/apps/{app}/formation", True),
        ({"identity"}, "GET", "/account", True),
        ({"identity"}, "GET", "/apps", False),
        ({"write-protected"}, "POST", "/account/keys", False),
        ({"global"}, "POST", "/account/keys", True),
    ],
)
def test_scopes(scopes: set[str], method: str, path: str, allowed: bool) -> None:
    assert scope_allows(scopes, method, path) is allowed
