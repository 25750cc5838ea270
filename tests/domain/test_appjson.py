"""app.json: parsing, the errors that name the key, and the env vars of the first deploy."""

from __future__ import annotations

import json

import pytest

from dockyard.domain.appjson import (
    Addon,
    EnvVar,
    FormationSpec,
    Script,
    env_changes,
    parse_app_json,
)
from dockyard.errors import InvalidError


def _parse(manifest: object) -> object:
    return parse_app_json(json.dumps(manifest).encode())


def test_full_manifest_is_parsed() -> None:
    manifest = parse_app_json(
        json.dumps(
            {
                "name": "Shop",
                "description": "A small shop",
                "keywords": ["python", "flask"],
                "website": "https://example.com/",
                "env": {
                    "SECRET_KEY": {"description": "signs sessions", "generator": "secret"},
                    "WEB_CONCURRENCY": {"value": "2", "required": False},
                    "GREETING": "hello",
                    "API_TOKEN": {"description": "from the provider"},
                },
                "formation": {"web": {"quantity": 2, "size": "Standard-2X"}, "worker": {}},
                "scripts": {"postdeploy": "python seed.py", "pr-predestroy": "true"},
                "addons": ["heroku-postgresql:mini", {"plan": "heroku-redis", "as": "CACHE"}],
                "buildpacks": [{"url": "heroku/python"}],
                "unknown-key": [1, 2, 3],
            }
        ).encode()
    )
    assert manifest.name == "Shop"
    assert manifest.keywords == ("python", "flask")
    assert manifest.env == (
        EnvVar("SECRET_KEY", description="signs sessions", generator="secret"),
        EnvVar("WEB_CONCURRENCY", value="2", required=False),
        EnvVar("GREETING", value="hello"),
        EnvVar("API_TOKEN", description="from the provider"),
    )
    assert manifest.formation == (
        FormationSpec("web", 2, "standard-2x"),
        FormationSpec("worker", None, None),
    )
    assert manifest.postdeploy == Script("python seed.py")
    assert manifest.addons == (Addon("heroku-postgresql:mini"), Addon("heroku-redis", "CACHE"))
    assert manifest.buildpacks == ("heroku/python",)


def test_postdeploy_object_with_size() -> None:
    manifest = parse_app_json(
        b'{"scripts": {"postdeploy": {"command": "./seed", "size": "standard-2x"}}}'
    )
    assert manifest.postdeploy == Script("./seed", "standard-2x")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            {"formation": {"web": {"quantity": "two"}}},
            "app.json: formation.web.quantity must be a whole number",
        ),
        (
            {"formation": {"web": {"quantity": 1.5}}},
            "app.json: formation.web.quantity must be a whole number",
        ),
        (
            {"formation": {"web": {"quantity": 101}}},
            "app.json: formation.web.quantity must be between 0 and 100",
        ),
        (
            {"formation": {"web": {"size": "huge"}}},
            "app.json: formation.web.size 'huge' is not a dyno size",
        ),
        ({"formation": {"release": {"quantity": 1}}}, "app.json: formation.release cannot be"),
        ({"formation": {"bad type!": {}}}, "app.json: formation.bad type! is not a valid"),
        ({"formation": [1]}, "app.json: formation must be an object, not a list"),
        ({"env": {"1BAD": "x"}}, "app.json: env.1BAD is not a valid config var name"),
        ({"env": {"HEROKU_X": "x"}}, "app.json: env.HEROKU_X uses a reserved prefix"),
        ({"env": {"A": 3}}, "app.json: env.A must be an object, not a number"),
        ({"env": {"A": {"required": "yes"}}}, "app.json: env.A.required must be true or false"),
        ({"env": {"A": {"value": 3}}}, "app.json: env.A.value must be a string, not a number"),
        ({"env": {"A": {"generator": "uuid"}}}, 'app.json: env.A.generator must be "secret"'),
        ({"scripts": {"postdeploy": 7}}, "app.json: scripts.postdeploy must be a string"),
        ({"scripts": {"postdeploy": "  "}}, "app.json: scripts.postdeploy is empty"),
        ({"buildpacks": [{"uri": "x"}]}, "app.json: buildpacks.0.url must be a string, not null"),
        ({"buildpacks": "heroku/python"}, "app.json: buildpacks must be a list, not a string"),
        ({"addons": [{"as": "X"}]}, "app.json: addons.0.plan must be a string, not null"),
        ({"name": "x" * 31}, "app.json: name must be at most 30 characters long"),
        ({"keywords": ["a", 1]}, "app.json: keywords.1 must be a string, not a number"),
        ([], "app.json must hold a JSON object, not a list"),
    ],
)
def test_malformed_manifest_names_the_key(manifest: object, message: str) -> None:
    with pytest.raises(InvalidError) as caught:
        _parse(manifest)
    assert caught.value.message.startswith(message), caught.value.message


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(
        InvalidError, match=r"app.json is not valid JSON: line 2 column 2: Extra data"
    ):
        parse_app_json(b'{"name": "x"\n}}')


def test_non_utf8_and_oversized_files_are_refused() -> None:
    with pytest.raises(InvalidError, match="not valid UTF-8"):
        parse_app_json(b'{"name": "\xff"}')
    with pytest.raises(InvalidError, match="over the limit"):
        parse_app_json(b" " * (300 * 1024))


def test_deeply_nested_json_is_refused_cleanly() -> None:
    with pytest.raises(InvalidError):
        parse_app_json(b"[" * 100_000 + b"]" * 100_000)


def test_env_changes_fill_unset_vars_and_keep_set_ones() -> None:
    manifest = parse_app_json(
        b'{"env": {"SECRET_KEY": {"generator": "secret"}, "MODE": {"value": "prod"},'
        b' "KEPT": {"value": "default"}, "OPTIONAL": {"required": false}}}'
    )
    changes = env_changes(manifest, {"KEPT": "mine"}, lambda: "s3cr3t")
    assert changes == {"SECRET_KEY": "s3cr3t", "MODE": "prod"}


def test_env_changes_name_every_missing_required_var() -> None:
    manifest = parse_app_json(b'{"env": {"API_TOKEN": {}, "SET": {}, "OTHER": {"required": true}}}')
    with pytest.raises(InvalidError) as caught:
        env_changes(manifest, {"SET": "1"}, lambda: "unused")
    assert "required config vars not set: API_TOKEN, OTHER" in caught.value.message
    assert "config:set API_TOKEN=... OTHER=..." in caught.value.message
