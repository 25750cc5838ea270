"""Downloading a file over HTTP(S) with a size limit (a build's ``source_blob.url``)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from dockyard.errors import InvalidError, UnavailableError

CHUNK = 1 << 16
MAX_REDIRECTS = 5


def _size(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size} bytes"


def download(
    url: str,
    target: Path,
    *,
    max_bytes: int,
    timeout: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Save what ``url`` serves into ``target`` (created; it must not exist) and return its size.

    Only ``http`` and ``https`` are fetched, following at most ``MAX_REDIRECTS`` redirects. Raises
    ``InvalidError`` when the server answers with an error or sends more than ``max_bytes`` (declared
    or actual; ``target`` is removed then), ``UnavailableError`` when it cannot be reached."""
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidError(f"{url} is not an http(s) URL", field="url")
    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                transport=transport,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidError(
                    f"Downloading {url} failed: the server answered {response.status_code} "
                    f"{response.reason_phrase}",
                    field="url",
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise InvalidError(
                    f"{url} is {_size(int(declared))}, over the limit of {_size(max_bytes)}",
                    field="url",
                )
            return _save(response, target, url, max_bytes)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"Cannot download {url}: {exc or type(exc).__name__}") from exc


def _save(response: httpx.Response, target: Path, url: str, max_bytes: int) -> int:
    total = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in response.iter_bytes(CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise InvalidError(
                        f"{url} sends more than {_size(max_bytes)}, the limit", field="url"
                    )
                handle.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return total
