"""How the CLI talks to people: rich tables on a terminal, plain columns when piped, exact JSON with
``--json``, and Heroku-style progress lines ("Creating shop... done") on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

ERROR_PREFIX = " !    "


def size_label(size: str) -> str:
    """``standard-2x`` → ``Standard-2X``, as Heroku prints dyno sizes."""
    head, _, rest = size.partition("-")
    return head[:1].upper() + head[1:] + ("-" + rest.upper() if rest else "")


def format_time(moment: datetime | None, tz: tzinfo | None) -> str:
    """``2026/01/02 10:00:00 +0000``, in ``tz`` (the local zone when None)."""
    if moment is None:
        return ""
    return moment.astimezone(tz).strftime("%Y/%m/%d %H:%M:%S %z")


def ago(moment: datetime | None, now: datetime) -> str:
    """``~ 5m ago``: the coarsest whole unit of the time since ``moment``."""
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"~ {seconds // length}{unit} ago"
    return f"~ {seconds}s ago"


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)


class Action:
    """The end of a progress line: ``done`` with an optional detail such as ``v7``."""

    def __init__(self) -> None:
        self.detail = ""

    def done(self, detail: str) -> None:
        self.detail = detail


class Output:
    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = sys.stdout.isatty() if terminal is None else terminal

    def _console(self, *, stderr: bool = False) -> Console:
        # Built per call so it writes to whatever sys.stdout is now (click's test runner swaps it).
        return Console(stderr=stderr, force_terminal=self.terminal, highlight=False, soft_wrap=True)

    # -- stdout ---------------------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        click.echo(text)

    def json(self, data: Any) -> None:
        click.echo(dumps(data))

    def header(self, text: str) -> None:
        if self.terminal:
            self._console().print(Text(f"=== {text}", style="bold"))
        else:
            click.echo(f"=== {text}")

    def pairs(self, items: Sequence[tuple[str, str]]) -> None:
        """``Key:   value`` lines with the values aligned."""
        width = max((len(key) for key, _ in items), default=0) + 1
        for key, value in items:
            click.echo(f"{key + ':':<{width}} {value}".rstrip())

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[str]], *, headers: bool = True
    ) -> None:
        if self.terminal:
            table = Table(
                box=box.SIMPLE_HEAD if headers else None, show_header=headers, pad_edge=False
            )
            for column in columns:
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(*row)
            self._console().print(table)
            return
        widths = [len(c) if headers else 0 for c in columns]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        if headers:
            click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
            click.echo("  ".join("─" * w for w in widths))
        for row in rows:
            click.echo(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    # -- stderr ---------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        click.echo(text, err=True)

    def warn(self, text: str) -> None:
        click.echo(f"{ERROR_PREFIX}{text}", err=True)

    @contextmanager
    def action(self, message: str) -> Iterator[Action]:
        """``message... done`` on stderr; ``message... !`` when the block fails."""
        click.echo(f"{message}... ", nl=False, err=True)
        action = Action()
        try:
            yield action
        except BaseException:
            click.echo("!", err=True)
            raise
        click.echo(f"done{', ' + action.detail if action.detail else ''}", err=True)
