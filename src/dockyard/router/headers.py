"""What the router does with each header, looked up with one dict access per header.

The tables hold the usual spellings (``Content-Type`` and ``content-type``) of the headers the router acts
on and of the common ones it forwards untouched, so most headers are classified without lowercasing.
Other spellings fall back to ``kind_of``. Hop-by-hop headers (RFC 9110 §7.6.1: ``Connection`` and what it
names, ``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``, ``Upgrade``) are never forwarded, except
``Upgrade`` (and a ``Connection: Upgrade`` of the router's own) when a request switches protocols.
"""

from __future__ import annotations

# Header kinds.
PLAIN = 0
"""Forwarded as it is."""
HOST = 1
CONTENT_LENGTH = 2
TRANSFER_ENCODING = 3
FORWARDED_FOR = 4
REQUEST_ID = 5
VIA = 6
CONNECTION = 7
DROP = 8
"""Hop-by-hop, or replaced by the router's own value."""
UPGRADE = 9
"""Hop-by-hop, but passed on (with ``Connection: Upgrade``) when the protocol switches."""
EXPECT = 10

_HOP_BY_HOP = (
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
)

_COMMON_REQUEST = (
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "content-encoding",
    "content-type",
    "cookie",
    "dnt",
    "forwarded",
    "from",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "origin",
    "pragma",
    "priority",
    "range",
    "referer",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "upgrade-insecure-requests",
    "user-agent",
    "x-csrf-token",
    "x-requested-with",
)

_COMMON_RESPONSE = (
    "accept-ranges",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "access-control-max-age",
    "age",
    "alt-svc",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-range",
    "content-security-policy",
    "content-type",
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "nel",
    "permissions-policy",
    "pragma",
    "referrer-policy",
    "report-to",
    "retry-after",
    "server",
    "server-timing",
    "set-cookie",
    "strict-transport-security",
    "vary",
    "www-authenticate",
    "x-content-type-options",
    "x-frame-options",
    "x-powered-by",
    "x-request-id",
    "x-runtime",
    "x-xss-protection",
)


def _spellings(name: str) -> tuple[bytes, ...]:
    canonical = "-".join(part.capitalize() for part in name.split("-"))
    special = {"etag": "ETag", "www-authenticate": "WWW-Authenticate", "te": "TE", "dnt": "DNT"}
    return tuple({name.encode(), canonical.encode(), special.get(name, canonical).encode()})


def _table(kinds: dict[str, int]) -> dict[bytes, int]:
    return {spelling: kind for name, kind in kinds.items() for spelling in _spellings(name)}


REQUEST_KINDS = _table(
    {
        **dict.fromkeys(_COMMON_REQUEST, PLAIN),
        **dict.fromkeys(_HOP_BY_HOP, DROP),
        "x-forwarded-proto": DROP,
        "x-forwarded-port": DROP,
        "x-request-start": DROP,
        "host": HOST,
        "content-length": CONTENT_LENGTH,
        "transfer-encoding": TRANSFER_ENCODING,
        "x-forwarded-for": FORWARDED_FOR,
        "x-request-id": REQUEST_ID,
        "via": VIA,
        "connection": CONNECTION,
        "upgrade": UPGRADE,
        "expect": EXPECT,
    }
)
"""Request headers: lowercase keys for every kind, usual spellings for the common ones."""

RESPONSE_KINDS = _table(
    {
        **dict.fromkeys(_COMMON_RESPONSE, PLAIN),
        **dict.fromkeys(_HOP_BY_HOP, DROP),
        "content-length": CONTENT_LENGTH,
        "transfer-encoding": TRANSFER_ENCODING,
        "connection": CONNECTION,
        "upgrade": UPGRADE,
    }
)

PLAIN_CONNECTION_VALUES = frozenset(
    {b"keep-alive", b"Keep-Alive", b"close", b"Close", b"keep-alive, close"}
)
"""``Connection`` values that name no other header, so nothing else has to be removed."""


def kind_of(table: dict[bytes, int], name: bytes) -> int:
    """The kind of a header spelled in an unusual way (the tables know the usual ones)."""
    lname = name.lower()
    kind = table.get(lname)
    if kind is not None:
        return kind
    return DROP if lname.startswith(b"proxy-") else PLAIN


def connection_tokens(value: bytes) -> set[bytes]:
    """Names listed in a ``Connection`` header, lowercased, less ``close`` and ``keep-alive``."""
    tokens = {token.strip().lower() for token in value.split(b",")}
    tokens.difference_update((b"close", b"keep-alive", b""))
    return tokens


def drop_named(parts: list[bytes], names: set[bytes]) -> list[bytes]:
    """Remove the headers named in ``names`` (those a ``Connection`` header lists) from a head kept
    as ``[first line, name, b": ", value, b"\\r\\n", name, ...]``."""
    kept = [parts[0]]
    for i in range(1, len(parts), 4):
        if parts[i].lower() not in names:
            kept += parts[i : i + 4]
    return kept
