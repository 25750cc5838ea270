"""``python -m dockyard.git.hooks pre-receive``: the hook every app repository runs on a push.

git runs it in the bare repository with the pushed ``<old> <new> <ref>`` lines on stdin and relays
its output to the pusher as ``remote:`` lines; a non-zero exit makes git reject the push. The git
endpoint (smart HTTP or SSH) that authenticated the push sets the hook's environment
(``hook_environment``): the app, the pusher, the API's local address and the file holding the
platform's internal token.

The hook builds nothing itself. It hands the push to the API, which has the platform loaded
(``POST /internal/v1/pushes``, authenticated with the internal token): the API checks the push,
builds and releases it in a thread under the app's build lock, and streams the output back, one
JSON object a line (``{"line": "..."}``, then ``{"ok": true}`` or ``{"ok": false}``). The hook
relays the lines and exits 0 only on ``ok``. So that a push does not pay for starting the control
plane, this module imports only small parts of the standard library and speaks HTTP/1.1 over a
plain socket. When the API does not answer, the push fails and says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dockyard.settings import Settings

APP_ID_VAR = "DOCKYARD_APP_ID"
ACCOUNT_ID_VAR = "DOCKYARD_ACCOUNT_ID"
API_ADDRESS_VAR = "DOCKYARD_API_ADDRESS"
"""``host:port`` (``[host]:port`` for IPv6) where the API listens, reached directly (not through
``api.public_url``: the hook runs on the API's host)."""
TOKEN_FILE_VAR = "DOCKYARD_INTERNAL_TOKEN_FILE"  # noqa: S105 — a variable's name, not a secret
PUSHES_PATH = "/internal/v1/pushes"
USAGE = "usage: python -m dockyard.git.hooks pre-receive"
ERROR = " !     "
CONNECT_TIMEOUT = 10.0
LOST = "The connection to the Dockyard API was lost during the build"
RefUpdate = tuple[str, str, str]


def api_address(settings: Settings) -> str:
    """Where the hook reaches the API: its listening address, a wildcard one by loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(  # noqa: S104
        settings.api.host, settings.api.host
    )
    return f"[{host}]:{settings.api.port}" if ":" in host else f"{host}:{settings.api.port}"


def hook_environment(
    settings: Settings, app_id: str, account_id: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for ``git receive-pack`` / ``upload-pack`` run on behalf of an authorized
    account: ``base`` (default: this process's) without ``GIT_*`` variables, and what the hook
    needs to hand the push to the API."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("GIT_")}
    env[APP_ID_VAR] = app_id
    env[ACCOUNT_ID_VAR] = account_id
    env[API_ADDRESS_VAR] = api_address(settings)
    env[TOKEN_FILE_VAR] = str(settings.internal_token_file)
    return env


def parse_ref_lines(text: str) -> list[RefUpdate]:
    refs: list[RefUpdate] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            refs.append((parts[0], parts[1], parts[2]))
    return refs


class HookError(Exception):
    """The push cannot be handed to the API; the message says why."""


# -- a minimal HTTP/1.1 client (http.client alone costs more to import than the whole request) ------


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise HookError(f"{API_ADDRESS_VAR}={address!r} is not host:port")
    return host.strip("[]"), int(port)


def _read_line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(65536)
    if not line.endswith(b"\n"):
        raise HookError(LOST)
    return line.rstrip(b"\r\n")


def _body(reader: io.BufferedReader, headers: Mapping[str, str]) -> Iterator[bytes]:
    """The response body as it arrives: chunked, sized, or up to the end of the connection."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(_read_line(reader).split(b";", 1)[0], 16)
            if size == 0:
                return
            chunk = reader.read(size)
            if len(chunk) < size:
                raise HookError(LOST)
            yield chunk
            _read_line(reader)
    length = headers.get("content-length")
    if length is not None:
        yield reader.read(int(length))
        return
    while chunk := reader.read1(65536):
        yield chunk


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def post_stream(
    address: str, path: str, token: str, payload: object
) -> tuple[int, Iterator[bytes]]:
    """POST ``payload`` as JSON; the status and the body's lines, read as they come."""
    host, port = _split_address(address)
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/x-ndjson\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise HookError(
            f"The Dockyard API does not answer on {address} ({exc.strerror or exc}), so the push "
            "cannot be built. Push again once it runs (`dockyard up` starts it)"
        ) from exc
    sock.settimeout(None)  # a build takes what it takes; the API enforces its timeouts
    reader = sock.makefile("rb")
    sock.sendall(head.encode("latin-1") + body)
    status_line = _read_line(reader).split(b" ", 2)
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise HookError("the API answered with something that is not HTTP")
    headers: dict[str, str] = {}
    while line := _read_line(reader):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()

    def lines() -> Iterator[bytes]:
        try:
            yield from _lines(_body(reader, headers))
        finally:
            reader.close()
            sock.close()

    return int(status_line[1]), lines()


# -- the hook ----------------------------------------------------------------------------------------


class _Writer:
    """Writes whole lines to a stream, flushed at once so the pusher sees progress live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def error(self, message: str) -> None:
        for part in message.splitlines() or [""]:
            self(ERROR + part)


def _error_message(status: int, lines: Iterator[bytes]) -> str:
    text = b"\n".join(lines).decode("utf-8", "replace")
    try:
        message = str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        message = text.strip() or "no reason given"
    return f"The Dockyard API refused the push ({status}): {message}"


def hand_over(environ: Mapping[str, str], payload: Mapping[str, object], emit: _Writer) -> bool:
    """Send the push to the API and relay its output; True when it was released."""
    address = environ.get(API_ADDRESS_VAR, "")
    token_file = environ.get(TOKEN_FILE_VAR, "")
    if not address or not token_file:
        raise HookError("This repository accepts pushes only through Dockyard's git endpoint")
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise HookError(
            f"Cannot read the platform's internal token ({exc.strerror or exc}: {token_file}), "
            "so the push cannot be handed to the API. Has the API run on this host? "
            "`dockyard up` starts it and creates the token"
        ) from exc
    status, lines = post_stream(address, PUSHES_PATH, token, payload)
    if status != 200:
        raise HookError(_error_message(status, lines))
    for raw in lines:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "line" in message:
            emit(str(message["line"]))
        elif "ok" in message:
            return message["ok"] is True
    raise HookError(LOST)


def pre_receive(stdin: TextIO, stdout: TextIO, environ: Mapping[str, str], repo: Path) -> int:
    emit = _Writer(stdout)
    app_id = environ.get(APP_ID_VAR)
    account_id = environ.get(ACCOUNT_ID_VAR)
    if not app_id or not account_id:
        emit.error("This repository accepts pushes only through Dockyard's git endpoint")
        emit.error("Push failed")
        return 1
    refs = parse_ref_lines(stdin.read())
    payload = {
        "app_id": app_id,
        "account_id": account_id,
        "refs": refs,
        "repo": str(repo),
        # where git keeps the pushed objects until the hook accepts them (its quarantine)
        "git_env": {k: v for k, v in environ.items() if k.startswith("GIT_")},
    }
    try:
        released = hand_over(environ, payload, emit)
    except HookError as exc:
        emit.error(str(exc))
        released = False
    except OSError as exc:  # the API went away mid-build, or the pusher did
        emit.error(f"The connection to the Dockyard API failed during the build: {exc}")
        released = False
    if not released:
        with contextlib.suppress(OSError):  # the pusher may be gone
            emit("")
            emit.error("Push failed")
        return 1
    from dockyard.errors import DockyardError
    from dockyard.git.repos import set_head

    with contextlib.suppress(DockyardError):  # the release stands; clones then name the branch
        set_head(repo, _deployed_ref(refs))
    return 0


def _deployed_ref(refs: Sequence[RefUpdate]) -> str:
    return next((ref for _old, _new, ref in refs), "")


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # closes the connection: the API fails the build


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["pre-receive"]:
        sys.stderr.write(USAGE + "\n")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    repo = Path(os.environ.get("GIT_DIR", ".")).resolve()
    return pre_receive(sys.stdin, sys.stdout, os.environ, repo)


if __name__ == "__main__":
    sys.exit(main())
