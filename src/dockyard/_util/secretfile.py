"""Secrets kept in files readable by their owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_secret_file(path: Path, *, nbytes: int = 32) -> str:
    """Return the secret in ``path``, creating it (mode 0600, in a 0700 directory) on first use."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(nbytes))
    return path.read_text(encoding="ascii").strip()
