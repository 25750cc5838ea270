"""One-off dynos: ``heroku run`` / ``dockyard run`` (``POST /apps/{app}/dynos``) and stopping them.

A one-off dyno is stored as desired state (``one_off_dynos``) and reaches the agent with the other
desired dynos. It runs the command once, in the slug and config of the release that was current when
it was asked for (plus the request's ``env``), and is never restarted. An attached one's output and
input go through the rendezvous service to the client, which connects to its ``attach_url``
(``rendezvous://<host>:<port>/<secret>?sha256=<certificate fingerprint>``); a detached one's output
goes to the app's logs as ``app[run.1234]``.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dockyard._util.secretfile import ensure_secret_file
from dockyard.control import formation
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.config import CONFIG_KEY_PATTERN, MAX_CONFIG_BYTES
from dockyard.domain.dataplane import attach_secret
from dockyard.domain.formation import DYNO_SIZES, validate_process_type, validate_size
from dockyard.errors import ConflictError, InvalidError, NotFoundError
from dockyard.store import Tx
from dockyard.store.records import Account, App, OneOffDyno

MAX_TIME_TO_LIVE = 24 * 60 * 60
"""Seconds; Heroku's limit for ``time_to_live``, and the default."""
MAX_COMMAND = 10_000
MAX_CONCURRENT = 50
"""One-off dynos an app may run at once (Heroku: 50 on basic and standard, 1 on eco)."""
MAX_CONCURRENT_ECO = 1
EXPIRY_GRACE = timedelta(hours=1)
"""A one-off dyno still pending this long after its time to live ran out is no longer wanted, even
if no agent reported its end."""


@dataclass(frozen=True)
class RunRequest:
    """What ``POST /apps/{app}/dynos`` asks for, checked."""

    command: str
    attach: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    size: str | None = None
    type: str = "run"
    time_to_live: int = MAX_TIME_TO_LIVE
    tty: bool = True

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> RunRequest:
        """Heroku's fields: ``command`` (required), ``attach``, ``env``, ``size``, ``type``,
        ``time_to_live`` and ``force_no_tty``. Raises ``InvalidError`` naming the bad field."""
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            raise InvalidError('Give the command to run, e.g. {"command": "bash"}', field="command")
        if len(command) > MAX_COMMAND or "\x00" in command:
            raise InvalidError(
                f"The command must be at most {MAX_COMMAND} characters, without NUL bytes",
                field="command",
            )
        size = body.get("size")
        ptype = body.get("type")
        return cls(
            command=command,
            attach=_flag(body, "attach"),
            env=_env(body.get("env")),
            size=None if size is None else validate_size(str(size)),
            type="run" if ptype is None else validate_process_type(str(ptype)),
            time_to_live=_time_to_live(body.get("time_to_live")),
            tty=not _flag(body, "force_no_tty"),
        )


def _flag(body: Mapping[str, object], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidError(f"{name} must be true or false, not {value!r}", field=name)
    return value


def _env(value: object) -> dict[str, str]:
    """The request's variables. Numbers are taken as text (the Heroku CLI sends ``COLUMNS`` and
    ``LINES`` as numbers) and null values are left out (it sends ``TERM`` even when unset)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidError('env must be an object, e.g. {"TERM": "xterm"}', field="env")
    env: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not CONFIG_KEY_PATTERN.fullmatch(key):
            raise InvalidError(
                f"env: {key!r} is not a variable name — use letters, digits and underscores",
                field="env",
            )
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidError(f"env: the value of {key} must be text", field="env")
        env[key] = str(raw)
    if sum(len(k.encode()) + len(v.encode()) for k, v in env.items()) > MAX_CONFIG_BYTES:
        raise InvalidError(f"env is larger than {MAX_CONFIG_BYTES} bytes", field="env")
    return env


def _time_to_live(value: object) -> int:
    if value is None:
        return MAX_TIME_TO_LIVE
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidError("time_to_live must be a number of seconds", field="time_to_live")
    if not 1 <= value <= MAX_TIME_TO_LIVE:
        raise InvalidError(
            f"time_to_live must be between 1 and {MAX_TIME_TO_LIVE} seconds (24 hours)",
            field="time_to_live",
        )
    return math.ceil(value)


@dataclass(frozen=True)
class StartedRun:
    app: App
    dyno: OneOffDyno
    attach_url: str | None


def run(platform: Platform, account: Account, app_ref: str, request: RunRequest) -> StartedRun:
    """Ask for a one-off dyno; the agent starts it within a round."""
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "operate")
        release = tx.current_release(app.id)
        if release is None or release.slug_id is None:
            raise ConflictError(
                f"{app.name} has no release to run a command in yet — deploy it first "
                f"(git push the code to {app.name})"
            )
        size = request.size or _default_size(tx, app)
        live = live_one_offs(tx, app.id, now)
        limit = MAX_CONCURRENT_ECO if size == "eco" else MAX_CONCURRENT
        if len(live) >= limit:
            raise InvalidError(
                f"{app.name} already runs {len(live)} one-off dynos, the most it may run at once "
                f"with {size} dynos — stop one first (dockyard ps:stop run.NNNN)",
                field="size",
            )
        taken = {str(d.name) for d in live} | {str(d.name) for d in tx.list_dynos(app.id)}
        dyno = tx.add_one_off_dyno(
            app.id,
            name=_free_name(request.type, taken),
            command=request.command,
            env=request.env,
            size=size,
            attach=request.attach,
            tty=request.tty,
            time_to_live=request.time_to_live,
            release_version=release.version,
        )
    platform.log(
        app.id,
        "heroku",
        "api",
        f"Starting process with command `{request.command}` by user {account.email}",
    )
    url = attach_url(platform, dyno.id) if request.attach else None
    return StartedRun(app, dyno, url)


def stop(platform: Platform, account: Account, app_ref: str, dyno_ref: str) -> App:
    """Stop a one-off dyno (SIGTERM, SIGKILL after the stop timeout). For a dyno of the formation,
    as on Heroku's Common Runtime, stopping it means it is restarted."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "operate")
        try:
            dyno = tx.get_one_off_dyno(app.id, dyno_ref)
        except NotFoundError:
            dyno = None
        if dyno is not None and dyno.state == "pending":
            tx.set_one_off_dyno_state(dyno.id, "stopped")
    if dyno is None or dyno.state != "pending":
        formation.restart(platform, account, app_ref, dyno_ref)
        return app
    platform.log(app.id, "heroku", "api", f"Stop {dyno.name} by user {account.email}")
    return app


def live_one_offs(tx: Tx, app_id: str | None, now: datetime) -> list[OneOffDyno]:
    """The pending one-off dynos that may still run (not past their time to live plus a grace)."""
    return [d for d in tx.list_one_off_dynos(app_id, states=["pending"]) if not expired(d, now)]


def expired(dyno: OneOffDyno, now: datetime) -> bool:
    return now > dyno.created_at + timedelta(seconds=dyno.time_to_live) + EXPIRY_GRACE


def attach_url(platform: Platform, dyno_id: str) -> str:
    """``rendezvous://<host>:<port>/<secret>``, with the certificate's fingerprint once the
    rendezvous service has made its certificate (``dockyard run`` pins it)."""
    settings = platform.settings
    key = ensure_secret_file(settings.rendezvous_key_file)
    url = f"{settings.rendezvous_url}/{attach_secret(key, dyno_id)}"
    try:
        pem = settings.rendezvous_cert_file.read_text(encoding="ascii")
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    except (OSError, ValueError):
        return url
    return f"{url}?sha256={digest}"


def _default_size(tx: Tx, app: App) -> str:
    """The size of the app's web dynos, else of its first process type, else standard-1x."""
    entries = {str(f.type): f for f in tx.list_formation(app.id)}
    entry = entries.get("web") or next(iter(entries.values()), None)
    if entry is not None and entry.size in DYNO_SIZES:
        return entry.size
    return "standard-1x"


def _free_name(ptype: str, taken: set[str]) -> str:
    """``run.1234``: four random digits (five when the app has thousands), not in use."""
    for digits in (4, 4, 4, 5, 6):
        for _ in range(20):
            name = f"{ptype}.{10 ** (digits - 1) + secrets.randbelow(9 * 10 ** (digits - 1))}"
            if name not in taken:
                return name
    raise ConflictError("No free one-off dyno name; stop some one-off dynos first")
