"""The response cache (the Varnish layer of Heroku's old stack): off by default, on per app.

A response is stored when all of these hold:

- the request is a ``GET`` without a body, without ``Authorization`` and without
  ``Cache-Control: no-store``;
- the response says ``Cache-Control: public`` with ``s-maxage`` or ``max-age`` (``s-maxage`` wins,
  as for any shared cache), and neither ``no-store``, ``private`` nor ``no-cache``;
- it has no ``Set-Cookie``, does not ``Vary: *``, has a status in ``CACHEABLE``, and a body of at
  most ``max_object_bytes``.

It stays fresh for its max-age less the ``Age`` it came with. A later ``GET`` or ``HEAD`` for the
same scheme, host, path and query, whose request headers named by the response's ``Vary`` have the
same values, is answered from memory with ``Age`` and ``X-Cache: HIT`` (but never a request with
``Authorization``); other responses of an app with the cache on carry ``X-Cache: MISS``. A client's
``Cache-Control: no-cache`` does not bypass the cache (as in Varnish: the cache shields the app).

Memory is bounded by ``max_bytes``: the least recently used responses are evicted first. An app's
responses are all forgotten when its release changes (deploy, rollback, config change), when it
turns the cache off, and when it leaves the route table.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.domain.dataplane import RouteTable
from dockyard.router.tls import hsts

if TYPE_CHECKING:
    from dockyard.router.exchange import Exchange

CACHEABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
"""Statuses stored when the response allows it (RFC 9110 §15.1, less 206 which needs ranges)."""

HIT = b"X-Cache: HIT\r\n"
MISS = b"X-Cache: MISS\r\n"
ENTRY_OVERHEAD = 256
"""Bytes counted per stored response on top of its key, head and body (the objects around them)."""

_DROPPED = frozenset(
    {b"content-length", b"transfer-encoding", b"age", b"x-cache", b"connection", b"keep-alive"}
)
"""Response headers not stored: the cache writes its own."""

EntryKey = tuple[str, bytes, tuple[bytes, ...], tuple[bytes, ...]]
"""App id, the request's scheme, host and target, the names the response varies on, their values."""


def request_headers(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    """The method, target and headers (lowercase names, repeated ones joined by ``, ``) of a
    request head as the router forwards it."""
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target = rest.rpartition(b" ")[0]
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        old = headers.get(name)
        headers[name] = value if old is None else old + b", " + value
    return method, target, headers


def directives(value: bytes) -> dict[bytes, bytes]:
    """``Cache-Control`` directives: lowercase names, their values (b"" without one)."""
    found: dict[bytes, bytes] = {}
    for item in value.split(b","):
        name, _, arg = item.strip().partition(b"=")
        if name:
            found[name.strip().lower()] = arg.strip().strip(b'"')
    return found


def _seconds(value: bytes) -> int | None:
    return int(value) if value.isdigit() else None


def freshness(control: bytes) -> int | None:
    """Seconds a shared cache may keep a response with this ``Cache-Control``: its ``s-maxage``,
    else its ``max-age``; None when it is not ``public`` or is ``no-store``, ``private`` or
    ``no-cache``."""
    found = directives(control)
    if b"public" not in found or found.keys() & {b"no-store", b"private", b"no-cache"}:
        return None
    if b"s-maxage" in found:
        return _seconds(found[b"s-maxage"])
    return _seconds(found.get(b"max-age", b""))


def _scan(parts: list[bytes]) -> tuple[bytes, bytes, bytes, int] | None:
    """The head to store, ``Cache-Control``, ``Vary`` and ``Age`` of a response head; None when
    it sets a cookie."""
    kept: list[bytes] = [parts[0]]
    control = vary = b""
    age = 0
    i = 1
    count = len(parts)
    while i + 2 < count:
        if parts[i + 1] != b": ":
            i += 1
            continue
        name, value = parts[i], parts[i + 2]
        i += 4
        lower = name.lower()
        if lower == b"set-cookie":
            return None
        if lower == b"cache-control":
            control = control + b"," + value if control else value
        elif lower == b"vary":
            vary = vary + b"," + value if vary else value
        elif lower == b"age":
            age = _seconds(value.strip()) or 0
        if lower not in _DROPPED:
            kept += (name, b": ", value, b"\r\n")
    return b"".join(kept), control, vary, age


class Entry:
    """A stored response."""

    __slots__ = ("app_id", "body", "head", "key", "size", "status", "stored_at", "ttl")

    def __init__(
        self, key: EntryKey, status: int, head: bytes, body: bytes, stored_at: float, ttl: float
    ) -> None:
        self.key = key
        self.app_id = key[0]
        self.status = status
        self.head = head
        """The status line and the stored headers."""
        self.body = body
        self.stored_at = stored_at
        """When the response was new, on the cache's clock (its arrival less the ``Age`` it came
        with)."""
        self.ttl = ttl
        """Seconds it is fresh from ``stored_at`` (its max-age)."""
        self.size = len(key[1]) + len(head) + len(body) + ENTRY_OVERHEAD

    def response_head(self, now: float) -> bytes:
        """Status line and headers with ``Content-Length``, ``Age`` and ``X-Cache: HIT``; the
        caller adds its own headers and the blank line."""
        age = int(now - self.stored_at)
        return self.head + b"Content-Length: %d\r\nAge: %d\r\n%b" % (len(self.body), age, HIT)


class Fill:
    """A response on its way from a dyno that the cache may store: ``head`` with the response's
    status and head parts, ``body`` with each piece of body, ``done`` at its end."""

    __slots__ = (
        "_age",
        "_cache",
        "_chunks",
        "_head",
        "_key",
        "_names",
        "_request",
        "_size",
        "_status",
        "_ttl",
    )

    def __init__(
        self, cache: ResponseCache, key: tuple[str, bytes], request: dict[bytes, bytes]
    ) -> None:
        self._cache = cache
        self._key = key
        self._request = request
        self._chunks: list[bytes] = []
        self._size = 0
        self._head = b""
        self._names: tuple[bytes, ...] = ()
        self._status = 0
        self._ttl = 0.0
        self._age = 0.0

    def head(self, status: int, parts: list[bytes]) -> bool:
        """Whether the response may be stored; ``parts`` is the status line followed by
        ``name, b": ", value, b"\r\n"`` for each header, as the router forwards them (whole lines
        the router added, such as ``Transfer-Encoding``, are skipped)."""
        if status not in CACHEABLE:
            return False
        scanned = _scan(parts)
        if scanned is None:
            return False
        kept, control, vary, age = scanned
        max_age = freshness(control)
        if max_age is None or max_age - age <= 0:
            return False
        names = tuple(sorted({n.strip().lower() for n in vary.split(b",") if n.strip()}))
        if b"*" in names:
            return False
        self._status = status
        self._names = names
        self._ttl = float(max_age)
        self._age = float(age)
        self._head = kept
        return True

    def body(self, data: bytes) -> None:
        if self._size < 0:
            return
        self._size += len(data)
        if self._size > self._cache.max_object_bytes:
            self._size = -1  # too large: given up
            self._chunks.clear()
            return
        self._chunks.append(data)

    def done(self) -> None:
        """The whole response went through: store it."""
        if self._size < 0 or not self._head:
            return
        values = tuple(self._request.get(name, b"") for name in self._names)
        app_id, target = self._key
        key: EntryKey = (app_id, target, self._names, values)
        self._cache.store(
            key, self._status, self._head, b"".join(self._chunks), self._ttl, self._age
        )


class ResponseCache:
    """Stored responses of the apps that turned the cache on, least recently used first."""

    def __init__(
        self,
        max_bytes: int,
        max_object_bytes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self.clock = clock
        self.entries: OrderedDict[EntryKey, Entry] = OrderedDict()
        self.size = 0
        self._vary: dict[tuple[str, bytes], tuple[bytes, ...]] = {}
        """The names the newest stored response of each app and target varies on."""
        self._releases: dict[str, int] = {}
        """The release each app with the cache on had in the last table."""
        self.hits = 0
        self.misses = 0

    def request(self, app_id: str, scheme: bytes, host: bytes, head: bytes) -> Entry | Fill | None:
        """What to do with a request of an app with the cache on: answer it with a stored
        ``Entry``; forward it with a ``Fill`` that may store the response; or forward it with
        nothing to store (None)."""
        method, target, headers = request_headers(head)
        if method not in (b"GET", b"HEAD") or b"authorization" in headers:
            self.misses += 1
            return None
        if b"content-length" in headers or b"transfer-encoding" in headers:
            self.misses += 1
            return None
        key = (app_id, scheme + b"://" + host.lower() + target)
        names = self._vary.get(key)
        if names is not None:
            values = tuple(headers.get(name, b"") for name in names)
            full: EntryKey = (app_id, key[1], names, values)
            entry = self.entries.get(full)
            if entry is not None:
                if self.clock() - entry.stored_at < entry.ttl:
                    self.entries.move_to_end(full)
                    self.hits += 1
                    return entry
                self._remove(full)
        self.misses += 1
        if method != b"GET" or b"no-store" in directives(headers.get(b"cache-control", b"")):
            return None
        return Fill(self, key, headers)

    def store(
        self, key: EntryKey, status: int, head: bytes, body: bytes, ttl: float, age: float = 0.0
    ) -> None:
        """Keep a response that was ``age`` seconds old on arrival and is fresh for ``ttl``."""
        if key[0] not in self._releases:
            return  # the app turned the cache off (or left) while the response was coming
        entry = Entry(key, status, head, body, self.clock() - age, ttl)
        if entry.size > self.max_bytes:
            return
        if key in self.entries:
            self._remove(key)
        self.entries[key] = entry
        self.size += entry.size
        self._vary[(key[0], key[1])] = key[2]
        while self.size > self.max_bytes:
            self._remove(next(iter(self.entries)))

    def _remove(self, key: EntryKey) -> None:
        entry = self.entries.pop(key)
        self.size -= entry.size

    def purge(self, app_id: str) -> int:
        """Forget every response of an app; how many there were."""
        doomed = [key for key in self.entries if key[0] == app_id]
        for key in doomed:
            self._remove(key)
        for vary_key in [k for k in self._vary if k[0] == app_id]:
            del self._vary[vary_key]
        return len(doomed)

    def apply(self, table: RouteTable) -> None:
        """A new route table: purge the apps that were deployed (their release changed), turned
        the cache off, or left."""
        releases = {str(r.app_id): r.release_version for r in table.routes if r.cache}
        for app_id, release in self._releases.items():
            if releases.get(app_id) != release:
                self.purge(app_id)
        self._releases = releases

    def enabled(self, app_id: str) -> bool:
        return app_id in self._releases


# -- the proxy's hook --------------------------------------------------------------------------------

_CLOSE_VIA = b"Connection: close\r\nVia: 1.1 dockyard\r\n\r\n"
_KEEP_ALIVE_VIA = b"Connection: keep-alive\r\nVia: 1.1 dockyard\r\n\r\n"
_VIA = b"Via: 1.1 dockyard\r\n\r\n"
CACHE_DYNO = b"cache"
"""What the log line says as ``dyno=`` for a response served from the cache."""


class Pending:
    """``Exchange.cache_entry`` of a request whose response the hook decorates (and may store)."""

    __slots__ = ("fill", "headers")

    def __init__(self, fill: Fill | None, headers: bytes) -> None:
        self.fill = fill
        self.headers = headers
        """Header lines added to the response (``X-Cache: MISS``, ``Strict-Transport-Security``)."""


class CacheHook:
    """The proxy's ``cache`` hook, set while some app has the cache or HSTS on: answers from the
    ``ResponseCache``, stores what it may, and adds ``X-Cache`` to the responses of apps with the
    cache on and ``Strict-Transport-Security`` to the HTTPS responses of apps that set HSTS."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def lookup(self, ex: Exchange) -> tuple[int, bytes] | None:
        target = ex.target
        if target is None:
            return None
        route = target.route
        scheme = ex.client.scheme
        extra = hsts(route) if scheme == b"https" else b""
        if route.cache and self.cache.enabled(target.app_id):
            found = (
                self.cache.request(target.app_id, scheme, ex.host, ex.head)
                if ex.head is not None
                else None
            )
            if isinstance(found, Entry):
                return found.status, self._hit(ex, found, extra)
            ex.cache_entry = Pending(found, extra + MISS)
        elif extra:
            ex.cache_entry = Pending(None, extra)
        return None

    def _hit(self, ex: Exchange, entry: Entry, extra: bytes) -> bytes:
        ex.backend = CACHE_DYNO
        if not ex.keep_alive or ex.client.proxy.closing:
            ex.keep_alive = False
            tail = _CLOSE_VIA
        else:
            tail = _KEEP_ALIVE_VIA if ex.http10 else _VIA
        head = entry.response_head(self.cache.clock()) + extra + tail
        if ex.head_only or entry.status in (204, 304):
            return head
        return head + entry.body

    def response_head(self, ex: Exchange, status: int, head: list[bytes]) -> None:
        pending = ex.cache_entry
        if not isinstance(pending, Pending):
            return
        fill = pending.fill
        if fill is None or not fill.head(status, head):
            ex.cache_entry = None
        head.append(pending.headers)

    def response_body(self, ex: Exchange, body: bytes) -> None:
        pending = ex.cache_entry
        if isinstance(pending, Pending) and pending.fill is not None:
            pending.fill.body(body)

    def response_end(self, ex: Exchange, complete: bool) -> None:
        pending = ex.cache_entry
        ex.cache_entry = None
        if complete and isinstance(pending, Pending) and pending.fill is not None:
            pending.fill.done()
