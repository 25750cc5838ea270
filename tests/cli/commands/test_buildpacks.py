"""buildpacks, buildpacks:set/add/remove/clear, with the Heroku CLI's messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi, Json, _ok


@dataclass
class BuildpackApi(FakeApi):
    """The fake API plus ``/apps/{app}/buildpack-installations`` (stores what it is given)."""

    installed: dict[str, list[str]] = field(default_factory=dict)

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        path = r"/apps/([^/]+)/buildpack-installations"
        return [
            ("GET", path, lambda r, b, a: _ok(self._shapes(a))),
            ("PUT", path, self._put),
            *super()._routes(),
        ]

    def _shapes(self, app: str) -> list[Json]:
        self._app(app)
        urls = self.installed.get(app, [])
        return [{"buildpack": {"url": u, "name": u}, "ordinal": i} for i, u in enumerate(urls)]

    def _put(self, request: httpx.Request, body: Json, app: str) -> httpx.Response:
        self.installed[app] = [u["buildpack"] for u in body["updates"]]
        return _ok(self._shapes(app))


@pytest.fixture
def fake() -> BuildpackApi:
    api = BuildpackApi()
    api.add_app("shop")
    return api


def _puts(fake: BuildpackApi) -> list[Any]:
    return [body for method, _path, body in fake.writes() if method == "PUT"]


def _given(fake: BuildpackApi, *urls: str) -> None:
    fake.installed["shop"] = list(urls)


def test_no_buildpacks(dock: Dock) -> None:
    result = dock("buildpacks", "-a", "shop")
    assert result.exit_code == 0
    assert result.stdout == "shop has no Buildpack URL set.\n"


def test_one_and_several_buildpacks(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "heroku/python")
    assert dock("buildpacks", "-a", "shop").stdout == "=== shop Buildpack URL\nheroku/python\n"
    _given(fake, "heroku/nodejs", "heroku/python")
    assert dock("buildpacks", "-a", "shop").stdout == (
        "=== shop Buildpack URLs\n1. heroku/nodejs\n2. heroku/python\n"
    )


def test_set_replaces_the_first_buildpack(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "heroku/nodejs", "heroku/python")
    result = dock("buildpacks:set", "heroku/static", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert _puts(fake) == [
        {"updates": [{"buildpack": "heroku/static"}, {"buildpack": "heroku/python"}]}
    ]
    assert result.stdout == (
        "Buildpack set. Next release on shop will use:\n"
        "  1. heroku/static\n"
        "  2. heroku/python\n"
        "Run git push dockyard main to create a new release using these buildpacks.\n"
    )


def test_set_on_an_empty_app(dock: Dock, fake: BuildpackApi) -> None:
    result = dock("buildpacks:set", "heroku/python", "-a", "shop")
    assert result.stdout == (
        "Buildpack set. Next release on shop will use heroku/python.\n"
        "Run git push dockyard main to create a new release using this buildpack.\n"
    )


def test_set_and_add_at_an_index(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "a", "b")
    dock("buildpacks:set", "c", "-i", "2", "-a", "shop")
    assert fake.installed["shop"] == ["a", "c"]
    dock("buildpacks:add", "d", "-i", "1", "-a", "shop")
    assert fake.installed["shop"] == ["d", "a", "c"]
    dock("buildpacks:add", "e", "-i", "9", "-a", "shop")
    assert fake.installed["shop"] == ["d", "a", "c", "e"]
    result = dock("buildpacks:add", "f", "-a", "shop")
    assert fake.installed["shop"] == ["d", "a", "c", "e", "f"]
    assert "Buildpack added. Next release on shop will use:\n  1. d\n" in result.stdout


def test_set_or_add_a_buildpack_already_there_is_refused(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "heroku/python")
    for command in ("buildpacks:set", "buildpacks:add"):
        result = dock(command, "heroku/python", "-a", "shop")
        assert result.exit_code == 1
        assert "The buildpack heroku/python is already set on your app." in result.stderr
    assert _puts(fake) == []


def test_bad_index(dock: Dock, fake: BuildpackApi) -> None:
    result = dock("buildpacks:add", "x", "-i", "0", "-a", "shop")
    assert result.exit_code == 1
    assert "Invalid index. Must be greater than 0." in result.stderr


def test_remove_by_url_and_by_index(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "a", "b", "c")
    result = dock("buildpacks:remove", "b", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.installed["shop"] == ["a", "c"]
    assert result.stdout.startswith("Buildpack removed. Next release on shop will use:\n")
    dock("buildpacks:remove", "-i", "2", "-a", "shop")
    assert fake.installed["shop"] == ["a"]
    last = dock("buildpacks:remove", "a", "-a", "shop")
    assert (
        last.stdout == "Buildpack removed. Next release on shop will detect buildpacks normally.\n"
    )
    assert fake.installed["shop"] == []


@pytest.mark.parametrize(
    ("installed", "args", "message"),
    [
        (["a"], ["a", "-i", "1"], "Please choose either index or Buildpack, but not both."),
        (["a"], [], "Must specify a buildpack to remove, either by index or URL."),
        ([], ["a"], "No buildpacks were found. Next release on shop will detect buildpack"),
        (["a"], ["-i", "2"], "Invalid index. Only valid value is 1."),
        (["a", "b"], ["-i", "3"], "Invalid index. Please choose a value between 1 and 2"),
        (["a"], ["z"], "Buildpack not found. Nothing was removed."),
    ],
)
def test_remove_errors(
    dock: Dock, fake: BuildpackApi, installed: list[str], args: list[str], message: str
) -> None:
    _given(fake, *installed)
    result = dock("buildpacks:remove", *args, "-a", "shop")
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert _puts(fake) == []


def test_clear(dock: Dock, fake: BuildpackApi) -> None:
    _given(fake, "a", "b")
    result = dock("buildpacks:clear", "-a", "shop")
    assert (
        result.stdout
        == "Buildpacks cleared. Next release on shop will detect buildpacks normally.\n"
    )
    assert _puts(fake) == [{"updates": []}]


def test_server_refusal_is_shown(dock: Dock, fake: BuildpackApi) -> None:
    fake.errors[("PUT", "/apps/shop/buildpack-installations")] = (
        422,
        {"id": "invalid_params", "message": "heroku/ruby is not a known buildpack."},
    )
    result = dock("buildpacks:set", "heroku/ruby", "-a", "shop")
    assert result.exit_code == 1
    assert "heroku/ruby is not a known buildpack." in result.stderr
