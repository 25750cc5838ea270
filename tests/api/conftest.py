from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from dockyard.api.app import create_app
from dockyard.control.accounts import create_user
from dockyard.control.context import Platform

INTERNAL_TOKEN = "internal-test-token"
ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass
class User:
    email: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Accept": ACCEPT}


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, internal_token=INTERNAL_TOKEN)) as test_client:
        yield test_client


@pytest.fixture
def alice(platform: Platform) -> User:
    return User("alice@example.com", create_user(platform, "alice@example.com").api_key)


@pytest.fixture
def bob(platform: Platform) -> User:
    return User("bob@example.com", create_user(platform, "bob@example.com").api_key)


def internal_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
