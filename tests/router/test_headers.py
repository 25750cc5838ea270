"""Header classification: usual spellings by one lookup, any other spelling by the fallback."""

from __future__ import annotations

import pytest

from dockyard.router import headers
from dockyard.router.headers import REQUEST_KINDS, RESPONSE_KINDS, kind_of


def classify(table: dict[bytes, int], name: bytes) -> int:
    kind = table.get(name)
    return kind_of(table, name) if kind is None else kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (b"Host", headers.HOST),
        (b"HOST", headers.HOST),
        (b"content-length", headers.CONTENT_LENGTH),
        (b"Transfer-Encoding", headers.TRANSFER_ENCODING),
        (b"X-Forwarded-For", headers.FORWARDED_FOR),
        (b"x-request-id", headers.REQUEST_ID),
        (b"X-REQUEST-ID", headers.REQUEST_ID),
        (b"Via", headers.VIA),
        (b"Connection", headers.CONNECTION),
        (b"Keep-Alive", headers.DROP),
        (b"TE", headers.DROP),
        (b"Trailer", headers.DROP),
        (b"Upgrade", headers.UPGRADE),
        (b"Expect", headers.EXPECT),
        (b"Proxy-Authorization", headers.DROP),
        (b"proxy-anything-else", headers.DROP),
        (b"X-Forwarded-Proto", headers.DROP),
        (b"x-forwarded-port", headers.DROP),
        (b"X-Request-Start", headers.DROP),
        (b"User-Agent", headers.PLAIN),
        (b"uSeR-aGeNt", headers.PLAIN),
        (b"X-Custom", headers.PLAIN),
    ],
)
def test_request_header_kinds(name: bytes, kind: int) -> None:
    assert classify(REQUEST_KINDS, name) == kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (b"Content-Length", headers.CONTENT_LENGTH),
        (b"transfer-encoding", headers.TRANSFER_ENCODING),
        (b"Connection", headers.CONNECTION),
        (b"Keep-Alive", headers.DROP),
        (b"Proxy-Authenticate", headers.DROP),
        (b"Upgrade", headers.UPGRADE),
        (b"ETag", headers.PLAIN),
        (b"Set-Cookie", headers.PLAIN),
        (b"X-Request-Id", headers.PLAIN),
        (b"Via", headers.PLAIN),
    ],
)
def test_response_header_kinds(name: bytes, kind: int) -> None:
    assert classify(RESPONSE_KINDS, name) == kind


def test_every_table_key_agrees_with_the_lowercase_fallback() -> None:
    for table in (REQUEST_KINDS, RESPONSE_KINDS):
        for name, kind in table.items():
            assert kind_of(table, name) == kind, name


def test_connection_tokens_and_drop_named() -> None:
    tokens = headers.connection_tokens(b"keep-alive, X-Private ,Close, x-other")
    assert tokens == {b"x-private", b"x-other"}
    parts = [b"GET / HTTP/1.1\r\n"]
    for name in (b"X-Private", b"Accept", b"X-Other"):
        parts += (name, b": ", b"v", b"\r\n")
    assert b"".join(headers.drop_named(parts, tokens)) == b"GET / HTTP/1.1\r\nAccept: v\r\n"
