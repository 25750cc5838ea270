"""The platform log: Dockyard's own processes log structured JSON, one event per line, for the
operator's monitoring system.

``configure(settings, process)`` adds, to the root logger, a file handler on
``logs.platform_log_file`` (default ``<data dir>/logs/platform.jsonl``; reopened when logrotate moves
it) and, with ``logs.platform_syslog``, a syslog handler (UDP or TCP). Each event::

    {"time": "2026-03-01T12:00:00.250000+00:00", "level": "warning", "process": "agent",
     "pid": 4242, "logger": "dockyard.agent", "message": "…", "request_id": "…", "exc": "…"}

``request_id`` comes from ``extra={"request_id": …}`` or from ``request_id_var``, which request
handlers may set for the duration of a request.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

from dockyard.logs.line import format_timestamp
from dockyard.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("dockyard_request_id", default=None)
_HANDLER_NAME = "dockyard-platform-log"


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": format_timestamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "process": self.process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            event["request_id"] = request_id
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


def platform_log_path(settings: Settings) -> Path:
    if settings.logs.platform_log_file:
        return Path(settings.logs.platform_log_file)
    return settings.logs_dir / "platform.jsonl"


def configure(settings: Settings, process: str) -> list[logging.Handler]:
    """Add the platform log's handlers to the root logger (once per process); the handlers."""
    root = logging.getLogger()
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return []
    formatter = JsonFormatter(process)
    handlers: list[logging.Handler] = []
    path = platform_log_path(settings)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        file_handler: logging.Handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
        os.chmod(path, 0o600)
        handlers.append(file_handler)
    except OSError as exc:
        logging.getLogger("dockyard").warning("cannot write the platform log %s: %s", path, exc)
    if settings.logs.platform_syslog:
        scheme, _, rest = settings.logs.platform_syslog.partition("://")
        host, _, port = rest.partition(":")
        kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
        try:
            handlers.append(
                logging.handlers.SysLogHandler(address=(host, int(port or 514)), socktype=kind)
            )
        except OSError as exc:
            logging.getLogger("dockyard").warning(
                "cannot reach the platform syslog %s: %s", settings.logs.platform_syslog, exc
            )
    for handler in handlers:
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(formatter)
        handler.setLevel(logging.INFO)
        root.addHandler(handler)
    return handlers
