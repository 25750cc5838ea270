"""``app.json``: the app manifest in the repository root, parsed and checked without side effects.

Dockyard reads the keys Heroku defines (``name``, ``description``, ``keywords``, ``website``,
``repository``, ``logo``, ``success_url``, ``scripts``, ``env``, ``formation``, ``addons``,
``buildpacks``, ``stack``, ``image``, ``environments``) and ignores unknown ones, as Heroku does. A
malformed file raises ``InvalidError`` whose message names the key and what is wrong, e.g.
``app.json: formation.web.quantity must be a whole number``.

What the manifest does happens on an app's first deploy only (see ``dockyard.control.releases``):
``env`` fills config vars that are not set yet, ``formation`` scales the process types,
``buildpacks`` is used when the app has no buildpack installations, and ``scripts.postdeploy`` runs
once after the first successful release.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dockyard.domain.config import CONFIG_KEY_PATTERN, RESERVED_PREFIXES
from dockyard.domain.formation import (
    DYNO_SIZES,
    FORMATION_TYPE_PATTERN,
    MAX_DYNOS_PER_APP,
    check_total,
)
from dockyard.errors import InvalidError

FILENAME = "app.json"
MAX_BYTES = 256 * 1024
"""An app.json larger than this is refused before it is parsed."""
MAX_NAME_LENGTH = 30
SECRET_BYTES = 32
"""``generator: "secret"`` makes a value of this many random bytes, written as hex (64 characters)."""
RELEASE_TYPE = "release"
"""The release-phase process type: it runs once per release and is never scaled."""

Generator = Literal["secret"]
_STRING_KEYS = ("name", "description", "website", "repository", "logo", "success_url", "stack")


@dataclass(frozen=True)
class EnvVar:
    """One entry of ``env``: a config var the app expects."""

    key: str
    description: str = ""
    value: str | None = None
    """Set when the var is unset on the first deploy."""
    required: bool = True
    """Heroku's default: a var without ``value`` or ``generator`` must be set before the first deploy."""
    generator: Generator | None = None


@dataclass(frozen=True)
class FormationSpec:
    """One entry of ``formation``: the quantity and size a process type gets on the first deploy."""

    type: str
    quantity: int | None = None
    size: str | None = None


@dataclass(frozen=True)
class Script:
    """A ``scripts`` entry: the command, and optionally the dyno size it runs on."""

    command: str
    size: str | None = None


@dataclass(frozen=True)
class Addon:
    """An ``addons`` entry (string shorthand ``"heroku-postgresql:mini"`` or an object)."""

    plan: str
    as_: str | None = None
    options: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AppJson:
    name: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    website: str | None = None
    repository: str | None = None
    logo: str | None = None
    success_url: str | None = None
    stack: str | None = None
    env: tuple[EnvVar, ...] = ()
    formation: tuple[FormationSpec, ...] = ()
    postdeploy: Script | None = None
    addons: tuple[Addon, ...] = ()
    buildpacks: tuple[str, ...] = ()
    """Buildpack URLs or names, in order."""


def _fail(where: str, problem: str) -> InvalidError:
    return InvalidError(f"{FILENAME}: {where} {problem}", field=where)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, not {_type_name(value)}")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be an object, not {_type_name(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"must be a list, not {_type_name(value)}")
    return value


def parse_app_json(data: bytes) -> AppJson:
    """Parse and check an app.json; raise ``InvalidError`` naming the key and the problem."""
    if len(data) > MAX_BYTES:
        raise InvalidError(
            f"{FILENAME} is {len(data)} bytes, over the limit of {MAX_BYTES} bytes — keep it to the "
            "manifest (large data belongs in the repository or an add-on)"
        )
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidError(
            f"{FILENAME} is not valid UTF-8 (byte {exc.start}) — save it as UTF-8"
        ) from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidError(
            f"{FILENAME} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise InvalidError(f"{FILENAME} is nested too deeply to be a manifest") from exc
    if not isinstance(raw, dict):
        raise InvalidError(f"{FILENAME} must hold a JSON object, not {_type_name(raw)}")
    return _manifest(raw)


def _manifest(raw: dict[str, Any]) -> AppJson:
    strings: dict[str, str | None] = {}
    for key in _STRING_KEYS:
        strings[key] = None if raw.get(key) is None else _string(raw[key], key)
    name = strings["name"]
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise _fail("name", f"must be at most {MAX_NAME_LENGTH} characters long")
    keywords: tuple[str, ...] = ()
    if raw.get("keywords") is not None:
        items = _list(raw["keywords"], "keywords")
        keywords = tuple(_string(k, f"keywords.{i}") for i, k in enumerate(items))
    for key in ("image",):
        if raw.get(key) is not None:
            _string(raw[key], key)
    if raw.get("environments") is not None:
        _object(raw["environments"], "environments")
    return AppJson(
        name=name,
        description=strings["description"],
        keywords=keywords,
        website=strings["website"],
        repository=strings["repository"],
        logo=strings["logo"],
        success_url=strings["success_url"],
        stack=strings["stack"],
        env=_env(raw.get("env")),
        formation=_formation(raw.get("formation")),
        postdeploy=_postdeploy(raw.get("scripts")),
        addons=_addons(raw.get("addons")),
        buildpacks=_buildpacks(raw.get("buildpacks")),
    )


def _env(value: object) -> tuple[EnvVar, ...]:
    if value is None:
        return ()
    entries = _object(value, "env")
    found = []
    for key, spec in entries.items():
        where = f"env.{key}"
        if not CONFIG_KEY_PATTERN.fullmatch(key):
            raise _fail(
                where,
                "is not a valid config var name: use letters, digits and underscores, not "
                "starting with a digit",
            )
        if key.upper().startswith(RESERVED_PREFIXES):
            raise _fail(where, f"uses a reserved prefix ({', '.join(RESERVED_PREFIXES)})")
        if isinstance(spec, str):  # the shorthand "KEY": "value"
            found.append(EnvVar(key, value=spec))
            continue
        fields = _object(spec, where)
        description = fields.get("description")
        required = fields.get("required", True)
        if not isinstance(required, bool):
            raise _fail(f"{where}.required", "must be true or false")
        default = fields.get("value")
        if default is not None:
            default = _string(default, f"{where}.value")
            if "\x00" in default:
                raise _fail(f"{where}.value", "contains a NUL character")
        generator = fields.get("generator")
        if generator is not None and generator != "secret":
            raise _fail(f"{where}.generator", f'must be "secret", not {json.dumps(generator)}')
        found.append(
            EnvVar(
                key,
                description=""
                if description is None
                else _string(description, f"{where}.description"),
                value=default,
                required=required,
                generator="secret" if generator is not None else None,
            )
        )
    return tuple(found)


def _size(value: object, where: str) -> str:
    size = _string(value, where)
    if size.lower() not in DYNO_SIZES:
        raise _fail(where, f"{size!r} is not a dyno size: use one of {', '.join(DYNO_SIZES)}")
    return size.lower()


def _formation(value: object) -> tuple[FormationSpec, ...]:
    if value is None:
        return ()
    entries = _object(value, "formation")
    found = []
    for ptype, spec in entries.items():
        where = f"formation.{ptype}"
        if not FORMATION_TYPE_PATTERN.fullmatch(ptype):
            raise _fail(where, "is not a valid process type: use letters, digits, - and _")
        if ptype == RELEASE_TYPE:
            raise _fail(where, "cannot be scaled: the release command runs once per release")
        fields = _object(spec, where)
        quantity = fields.get("quantity")
        if quantity is not None:
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                raise _fail(f"{where}.quantity", "must be a whole number")
            if not 0 <= quantity <= MAX_DYNOS_PER_APP:
                raise _fail(f"{where}.quantity", f"must be between 0 and {MAX_DYNOS_PER_APP}")
        size = fields.get("size")
        found.append(
            FormationSpec(ptype, quantity, None if size is None else _size(size, f"{where}.size"))
        )
    try:
        check_total({f.type: f.quantity or 0 for f in found})
    except InvalidError as exc:
        raise _fail("formation", f"is too large: {exc.message}") from exc
    return tuple(found)


def _postdeploy(value: object) -> Script | None:
    if value is None:
        return None
    scripts = _object(value, "scripts")
    for key, script in scripts.items():
        if isinstance(script, dict):
            _object(script, f"scripts.{key}")
        elif script is not None:
            _string(script, f"scripts.{key}")
    spec = scripts.get("postdeploy")
    if spec is None:
        return None
    if isinstance(spec, str):
        command, size = spec, None
    else:
        fields = _object(spec, "scripts.postdeploy")
        command = _string(fields.get("command"), "scripts.postdeploy.command")
        size_value = fields.get("size")
        size = None if size_value is None else _size(size_value, "scripts.postdeploy.size")
    if not command.strip():
        raise _fail("scripts.postdeploy", "is empty: give the command to run, or leave it out")
    return Script(command, size)


def _addons(value: object) -> tuple[Addon, ...]:
    if value is None:
        return ()
    found = []
    for i, item in enumerate(_list(value, "addons")):
        where = f"addons.{i}"
        if isinstance(item, str):
            found.append(Addon(item))
            continue
        fields = _object(item, where)
        plan = _string(fields.get("plan"), f"{where}.plan")
        as_ = fields.get("as")
        options = fields.get("options")
        found.append(
            Addon(
                plan,
                None if as_ is None else _string(as_, f"{where}.as"),
                None if options is None else _object(options, f"{where}.options"),
            )
        )
    return tuple(found)


def _buildpacks(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    found = []
    for i, item in enumerate(_list(value, "buildpacks")):
        where = f"buildpacks.{i}"
        url = _string(_object(item, where).get("url"), f"{where}.url").strip()
        if not url:
            raise _fail(f"{where}.url", "is empty")
        found.append(url)
    return tuple(found)


def env_changes(
    manifest: AppJson, config: Mapping[str, str], generate_secret: Callable[[], str]
) -> dict[str, str]:
    """The config vars the first deploy sets from ``env``: each var not in ``config`` gets its
    ``value``, or a generated secret; ``InvalidError`` names the required vars that have neither."""
    changes: dict[str, str] = {}
    missing: list[str] = []
    for var in manifest.env:
        if var.key in config:
            continue
        if var.value is not None:
            changes[var.key] = var.value
        elif var.generator == "secret":
            changes[var.key] = generate_secret()
        elif var.required:
            missing.append(var.key)
    if missing:
        names = ", ".join(missing)
        example = " ".join(f"{key}=..." for key in missing)
        raise InvalidError(
            f"{FILENAME}: required config var{'s' if len(missing) > 1 else ''} not set: {names} "
            f"— set {'them' if len(missing) > 1 else 'it'} with `dockyard config:set {example}` "
            "and deploy again",
            field="env",
        )
    return changes
