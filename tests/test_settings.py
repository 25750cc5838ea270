from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidError
from dockyard.settings import load_settings
from tests.conftest import make_settings


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"HOME": str(tmp_path), "DOCKYARD_CONFIG": str(_toml(tmp_path, ""))})
    assert settings.domain == "dockyard.localhost"
    assert settings.api.port == 5000
    assert settings.app_url("shop").startswith("http://shop.dockyard.localhost")


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(text)
    return path


def test_the_toml_file_and_the_environment_both_apply_and_env_wins(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        'domain = "paas.example"\n[api]\nport = 7000\nhost = "10.1.2.3"\n',
    )
    env = {"HOME": str(tmp_path), "DOCKYARD_CONFIG": str(config), "DOCKYARD_API_PORT": "7001"}
    settings = load_settings(env)
    assert settings.domain == "paas.example"
    assert settings.api.host == "10.1.2.3"
    assert settings.api.port == 7001


def test_the_data_directory_holds_the_sqlite_database(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "DOCKYARD_DATA_DIR": str(tmp_path / "d"),
        "DOCKYARD_CONFIG": str(_toml(tmp_path, "")),
    }
    settings = load_settings(env)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'd' / 'dockyard.db'}"
    assert load_settings({**env, "DOCKYARD_DATABASE_URL": "postgresql://x/y"}).sqlalchemy_url == (
        "postgresql://x/y"
    )


def test_bad_values_and_unknown_keys_are_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="DOCKYARD_API_PORT: 'abc' is not a valid int"):
        load_settings(
            {
                "HOME": str(tmp_path),
                "DOCKYARD_CONFIG": str(_toml(tmp_path, "")),
                "DOCKYARD_API_PORT": "abc",
            }
        )
    with pytest.raises(InvalidError, match="unknown setting"):
        load_settings(
            {"HOME": str(tmp_path), "DOCKYARD_CONFIG": str(_toml(tmp_path, "colour = 1\n"))}
        )
    with pytest.raises(InvalidError, match="does not exist"):
        load_settings({"HOME": str(tmp_path), "DOCKYARD_CONFIG": str(tmp_path / "missing.toml")})


def test_settings_survive_the_environment_of_a_child_process(tmp_path: Path) -> None:
    """``to_env`` is how a process hands its settings to the processes it starts (the supervisor
    to the API, agent and router; the git endpoints to the hook): loading them back gives the same
    settings, values of every kind and of several sections included."""
    settings = make_settings(
        tmp_path / "data",
        DOCKYARD_DOMAIN="paas.example",
        DOCKYARD_API_PORT="5123",
        DOCKYARD_ROUTER_TLS="false",
        DOCKYARD_AGENT_DRAIN_SECONDS="0.25",
        DOCKYARD_AGENT_CRASH_BACKOFF="1m, 2m",
        DOCKYARD_BUILD_MAX_SLUG_BYTES="1048576",
    )
    assert load_settings(settings.to_env()) == settings
