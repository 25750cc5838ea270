"""Config vars: key rules, reserved prefixes, and the 32 KB per-app budget."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dockyard.errors import ConfigVarError

CONFIG_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIXES = ("DOCKYARD_", "HEROKU_")
MAX_CONFIG_BYTES = 32 * 1024
"""All keys and values of one app together, encoded as UTF-8."""


def validate_key(key: str) -> None:
    if not CONFIG_KEY_PATTERN.fullmatch(key):
        raise ConfigVarError(
            f"Config var key {key!r} is invalid: use letters, digits and underscores, not starting with a "
            "digit (e.g. DATABASE_URL)",
            field=key,
        )
    if key.upper().startswith(RESERVED_PREFIXES):
        raise ConfigVarError(
            f"Config var key {key!r} uses a reserved prefix ({', '.join(RESERVED_PREFIXES)}): "
            "choose another name",
            field=key,
        )


def config_size(config: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in config.items())


def apply_changes(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """Return the config after ``changes`` (``None`` unsets a key), or raise without changing anything."""
    updated = dict(current)
    for key, value in changes.items():
        if not isinstance(key, str):
            raise ConfigVarError(f"Config var key {key!r} must be a string")
        if value is None:
            updated.pop(key, None)
            continue
        validate_key(key)
        if not isinstance(value, str):
            raise ConfigVarError(f"Config var {key} must be a string or null", field=key)
        if "\x00" in value:
            raise ConfigVarError(
                f"Config var {key} contains a NUL character, which cannot be passed to a process",
                field=key,
            )
        updated[key] = value
    size = config_size(updated)
    if size > MAX_CONFIG_BYTES:
        raise ConfigVarError(
            f"Config vars would total {size} bytes, over the limit of {MAX_CONFIG_BYTES} bytes per app: "
            "store large values in a file or an add-on instead"
        )
    return updated


def describe_changes(current: Mapping[str, str], changes: Mapping[str, str | None]) -> str:
    """A release description in Heroku's words: ``Set FOO, BAR config vars`` / ``Remove FOO config var``."""
    set_keys = [k for k, v in changes.items() if v is not None]
    removed = [k for k, v in changes.items() if v is None and k in current]
    parts = []
    if set_keys:
        parts.append(f"Set {', '.join(set_keys)} config var{'s' if len(set_keys) > 1 else ''}")
    if removed:
        parts.append(f"Remove {', '.join(removed)} config var{'s' if len(removed) > 1 else ''}")
    return " and ".join(parts) or "Config vars unchanged"
