"""The Procfile: ``<process type>: <command>`` lines in the repository root."""

from __future__ import annotations

import re

from dockyard.errors import ProcfileError
from dockyard.types import ProcessType

PROCESS_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_LINE = re.compile(r"^(?P<type>[^:\s]*)\s*:\s*(?P<command>.*)$")


def parse_procfile(data: bytes) -> dict[ProcessType, str]:
    """Parse a Procfile; blank lines and ``#`` comments are skipped.

    Raises ``ProcfileError`` naming the line for non-UTF-8 content, a line without a colon, an invalid
    process type, a type without a command, or a type given twice."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data[: exc.start].count(b"\n") + 1
        raise ProcfileError(
            f"Procfile line {line_no}: the file is not valid UTF-8 (byte {exc.start}) — save it as UTF-8"
        ) from exc
    text = text.removeprefix("\ufeff")
    processes: dict[ProcessType, str] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProcfileError(
                f'Procfile line {line_no}: {_quote(line)} is not "<type>: <command>" — '
                'e.g. "web: python3 -m http.server $PORT"'
            )
        ptype, command = match["type"], match["command"].strip()
        if not PROCESS_TYPE_PATTERN.fullmatch(ptype):
            raise ProcfileError(
                f"Procfile line {line_no}: process type {ptype!r} is invalid — use letters, digits, "
                'dashes and underscores (e.g. "web", "worker")'
            )
        if not command:
            raise ProcfileError(
                f'Procfile line {line_no}: "{ptype}" has no command — add one, '
                'e.g. "web: gunicorn app:app"'
            )
        if ptype in processes:
            raise ProcfileError(
                f'Procfile line {line_no}: process type "{ptype}" is defined twice — keep one line per type'
            )
        processes[ProcessType(ptype)] = command
    if not processes:
        raise ProcfileError(
            'Procfile defines no process types — add a line such as "web: python3 -m http.server $PORT"'
        )
    return processes


def _quote(line: str, limit: int = 60) -> str:
    shown = line if len(line) <= limit else line[: limit - 1] + "…"
    return f'"{shown}"'
