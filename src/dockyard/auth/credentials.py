"""Reading an API key out of an ``Authorization`` header, the one way for the API and for git."""

from __future__ import annotations

import base64
import binascii


def api_key_from_authorization(header: str | None) -> str | None:
    """``Bearer <key>``; or HTTP Basic with the key as the password (what ``~/.netrc`` gives git and the
    Heroku CLI), or as a lone user name when the password is empty."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return password or user or None
