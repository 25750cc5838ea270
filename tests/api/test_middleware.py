"""The Heroku headers middleware hands the request id to the platform log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dockyard.api.middleware import HerokuHeadersMiddleware
from dockyard.logs.platformlog import JsonFormatter

log = logging.getLogger("dockyard.tests.middleware")
GIVEN = "0123456789abcdef0123456789"


class Events(logging.Handler):
    """The platform log's JSON events, kept in memory."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter("api"))
        self.events: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(json.loads(self.format(record)))


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def sync_endpoint(request: Request) -> PlainTextResponse:  # run in a worker thread
    log.info("sync handler")
    return PlainTextResponse("ok")


async def async_endpoint(request: Request) -> PlainTextResponse:
    log.info("async handler")
    return PlainTextResponse("ok")


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Route("/sync", sync_endpoint), Route("/async", async_endpoint)])
    with TestClient(HerokuHeadersMiddleware(app)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_events_logged_while_handling_a_request_carry_its_given_id(
    client: TestClient, events: Events, path: str
) -> None:
    response = client.get(path, headers={"X-Request-Id": GIVEN})
    assert response.headers["Request-Id"] == GIVEN
    [event] = events.events
    assert event["request_id"] == GIVEN


def test_a_generated_request_id_reaches_the_log_too(client: TestClient, events: Events) -> None:
    response = client.get("/async")
    [event] = events.events
    assert event["request_id"] == response.headers["Request-Id"]
