"""Route records as they cross the API and the router's on-disk cache."""

from __future__ import annotations

import json

import pytest

from dockyard.domain.dataplane import Backend, Route, RouteTable
from dockyard.types import AppId, AppName


def _route(**kwargs: object) -> Route:
    return Route(
        app_id=AppId("app-1"),
        app_name=AppName("shop"),
        hostnames=("shop.example.com",),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_route_survives_a_json_round_trip_with_named_backends_and_crashed() -> None:
    route = _route(
        backends=(Backend("web.1", "127.0.0.1:4001"), Backend("web.2", "[::1]:4002")),
        web_quantity=2,
        crashed=True,
    )
    table = RouteTable((route,))
    again = RouteTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again == table


def test_a_backend_is_written_as_dyno_and_address() -> None:
    data = _route(backends=(Backend("web.1", "127.0.0.1:4001"),), web_quantity=1).to_json()
    assert data["backends"] == [{"dyno": "web.1", "address": "127.0.0.1:4001"}]
    assert data["crashed"] is False


def test_a_cached_table_with_bare_addresses_still_reads() -> None:
    """Route tables cached before backends had names list ``host:port`` strings and no ``crashed``."""
    old = {
        "routes": [
            {
                "app_id": "app-1",
                "app_name": "shop",
                "hostnames": ["shop.example.com"],
                "backends": ["127.0.0.1:4001", "127.0.0.1:4002"],
                "maintenance": False,
                "released": True,
                "web_quantity": 2,
            }
        ]
    }
    (route,) = RouteTable.from_json(old).routes
    assert route.backends == (Backend("", "127.0.0.1:4001"), Backend("", "127.0.0.1:4002"))
    assert route.crashed is False


def test_a_backend_without_a_dyno_name_reads_as_an_empty_name() -> None:
    assert Backend.from_json({"address": "127.0.0.1:4001", "dyno": None}) == Backend(
        "", "127.0.0.1:4001"
    )


@pytest.mark.parametrize("entry", [4001, None, ["127.0.0.1:4001"]])
def test_a_backend_of_another_shape_is_rejected(entry: object) -> None:
    with pytest.raises(ValueError, match="host:port string"):
        Backend.from_json(entry)


def test_a_backend_object_without_an_address_is_rejected() -> None:
    with pytest.raises(KeyError):
        Backend.from_json({"dyno": "web.1"})
