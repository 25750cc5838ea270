"""The one door to httpx: requests with Heroku's headers, and API errors mapped onto ``dockyard.errors``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from dockyard import __version__
from dockyard.errors import (
    AccessDeniedError,
    ApiError,
    ConflictError,
    DockyardError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
)

ACCEPT = "application/vnd.heroku+json; version=3"
USER_AGENT = f"dockyard-client/{__version__}"


def error_from_response(response: httpx.Response) -> DockyardError:
    """Map an error response (``{"id": ..., "message": ...}``) onto the error tree."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error_id = str(body.get("id") or f"http_{response.status_code}")
    message = str(body.get("message") or response.reason_phrase or "request failed")
    if error_id == "not_found" or response.status_code == 404:
        return NotFoundError(message)
    if error_id in ("invalid_params", "bad_request") or response.status_code == 422:
        return InvalidError(message, field=body.get("field"))
    if error_id == "conflict" or response.status_code == 409:
        return ConflictError(message)
    if error_id == "unauthorized" or response.status_code == 401:
        return UnauthorizedError(message)
    if error_id == "forbidden" or response.status_code == 403:
        return AccessDeniedError(message)
    if error_id == "rate_limit" or response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "60")
        return RateLimitedError(
            message, retry_after=int(retry_after) if retry_after.isdigit() else 60
        )
    if response.status_code == 503:
        return UnavailableError(message)
    return ApiError(message, error_id=error_id, status=response.status_code)


def _unreachable(base_url: str, exc: httpx.HTTPError) -> UnavailableError:
    return UnavailableError(
        f"cannot reach the Dockyard API at {base_url}: {exc or type(exc).__name__}"
    )


def _headers(token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if extra:
        headers.update(extra)
    return headers


class ApiClient:
    """Synchronous client; each failure is a ``DockyardError``."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )
        self._token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204, 206, 304),
    ) -> httpx.Response:
        try:
            response = self._client.request(
                method, path, json=json, headers=_headers(self._token, headers)
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code not in ok:
            raise error_from_response(response)
        return response

    def _same_origin(self, url: str) -> bool:
        if not url.startswith(("http://", "https://")):
            return True  # relative to base_url
        mine, theirs = urlsplit(self.base_url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    def stream_lines(self, method: str, url: str) -> Iterator[str]:
        """Yield text lines from a streaming endpoint (log sessions). The API key is sent only to the API's
        own origin; a session URL elsewhere carries its own one-time secret."""
        token = self._token if self._same_origin(url) else None
        try:
            with self._client.stream(
                method, url, headers=_headers(token, None), timeout=None
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise error_from_response(resp)
                yield from resp.iter_lines()
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def close(self) -> None:
        self._client.close()


class AsyncApiClient:
    """Asynchronous client for the data plane."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )
        self._token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204, 206, 304),
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method, path, json=json, headers=_headers(self._token, headers)
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code not in ok:
            raise error_from_response(response)
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
