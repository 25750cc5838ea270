"""Read and write ``~/.netrc`` the way Heroku's CLI does.

One ``machine`` entry per host holds the account's email as ``login``, its API key as ``password``.
Writing keeps every other entry (other machines, ``default``, ``macdef`` macros, comments) byte for
byte, replaces the entry of the host concerned, and writes the file atomically with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidError


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str


@dataclass
class _Entry:
    start: int
    end: int
    machine: str | None
    """None for the ``default`` entry."""
    fields: dict[str, str] = field(default_factory=dict)


def _skip_space(text: str, pos: int) -> int:
    """Skip whitespace and comments (a ``#`` starting a token comments out the rest of the line)."""
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text[pos] == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline + 1
        else:
            break
    return pos


def _read_token(text: str, pos: int) -> tuple[str, int]:
    """The token at ``pos`` (plain, or double-quoted with backslash escapes) and where it ends."""
    if text[pos] == '"':
        pos += 1
        chars: list[str] = []
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            chars.append(text[pos])
            pos += 1
        return "".join(chars), min(pos + 1, len(text))
    start = pos
    while pos < len(text) and not text[pos].isspace():
        pos += 1
    return text[start:pos], pos


def _entries(text: str) -> list[_Entry]:
    """The file's entries with their character spans (text before the first one belongs to none)."""
    entries: list[_Entry] = []
    current: _Entry | None = None
    pos = _skip_space(text, 0)
    while pos < len(text):
        token_start = pos
        token, pos = _read_token(text, pos)
        if token in ("machine", "default", "macdef"):
            if current is not None:
                current.end = token_start
                entries.append(current)
            if token == "macdef":  # noqa: S105 - a netrc keyword, not a password
                # A macro runs from its name to the first empty line; it is not a machine entry.
                blank = text.find("\n\n", pos)
                end = len(text) if blank < 0 else blank + 2
                entries.append(_Entry(token_start, end, machine=""))
                current = None
                pos = _skip_space(text, end)
                continue
            machine: str | None = None
            if token == "machine":  # noqa: S105 - a netrc keyword, not a password
                pos = _skip_space(text, pos)
                machine, pos = _read_token(text, pos) if pos < len(text) else ("", pos)
            current = _Entry(token_start, len(text), machine)
        elif current is not None and token in ("login", "password", "account"):
            pos = _skip_space(text, pos)
            if pos < len(text):
                value, pos = _read_token(text, pos)
                current.fields[token] = value
        pos = _skip_space(text, pos)
    if current is not None:
        current.end = len(text)
        entries.append(current)
    return entries


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in '"\\#' for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _check(value: str, what: str) -> None:
    if not value or "\n" in value or "\r" in value:
        raise InvalidError(f"the {what} for .netrc must be one non-empty line", field=what)


class Netrc:
    """The netrc file at ``path``; each method reads it afresh so concurrent edits are not lost."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise InvalidError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    def get(self, host: str) -> Credentials | None:
        """The login and password for ``host``, else those of a ``default`` entry, else None."""
        fallback: Credentials | None = None
        for entry in _entries(self._text()):
            login = entry.fields.get("login", "")
            password = entry.fields.get("password", "")
            if entry.machine == host and password:
                return Credentials(login, password)
            if entry.machine is None and password and fallback is None:
                fallback = Credentials(login, password)
        return fallback

    def hosts(self) -> list[str]:
        return [e.machine for e in _entries(self._text()) if e.machine]

    def put(self, hosts: list[str], credentials: Credentials) -> None:
        """Replace (or add) the entries of ``hosts`` with these credentials."""
        _check(credentials.login, "login")
        _check(credentials.password, "password")
        text = self._without(self._text(), set(hosts))
        blocks = [
            f"machine {_quote(host)}\n  login {_quote(credentials.login)}\n"
            f"  password {_quote(credentials.password)}\n"
            for host in dict.fromkeys(hosts)
        ]
        if text and not text.endswith("\n"):
            text += "\n"
        self._write(text + "".join(blocks))

    def remove(self, hosts: list[str]) -> bool:
        """Drop the entries of ``hosts``; True when there was one to drop."""
        text = self._text()
        remaining = self._without(text, set(hosts))
        if remaining == text:
            return False
        self._write(remaining)
        return True

    @staticmethod
    def _without(text: str, hosts: set[str]) -> str:
        # A ``default`` entry must stay last, so new machine entries go before it.
        kept: list[str] = []
        cursor = 0
        for entry in _entries(text):
            if entry.machine is not None and entry.machine in hosts:
                kept.append(text[cursor : entry.start])
                cursor = entry.end
        kept.append(text[cursor:])
        return "".join(kept)

    def _write(self, text: str) -> None:
        text = self._default_last(text)
        target = self.path.resolve() if self.path.is_symlink() else self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".netrc.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
            raise

    @staticmethod
    def _default_last(text: str) -> str:
        """Tools stop reading at ``default``, so move ``default`` entries after the machines."""
        entries = _entries(text)
        defaults = [e for e in entries if e.machine is None]
        if not defaults or all(e.start > m.start for e in defaults for m in entries if m.machine):
            return text
        moved = "".join(text[e.start : e.end] for e in defaults)
        for entry in reversed(defaults):
            text = text[: entry.start] + text[entry.end :]
        if text and not text.endswith("\n"):
            text += "\n"
        return text + (moved if moved.endswith("\n") else moved + "\n")
