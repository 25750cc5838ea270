"""Drain URLs: what Logplex accepts (``syslog://``, ``syslog+tls://``, ``https://``, ``http://``), and the
address guard that keeps drains from reaching the platform itself or private networks (no SSRF).

The guard runs when a drain is added and again before every connection, on the addresses the host
name resolves to at that moment, so a name cannot be pointed at an internal address later.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from dockyard._util import proc
from dockyard.errors import InvalidError

Scheme = Literal["syslog", "syslog+tls", "https", "http"]
SCHEMES: tuple[Scheme, ...] = ("syslog", "syslog+tls", "https", "http")
MAX_URL_LENGTH = 2000
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DrainTarget:
    url: str
    scheme: Scheme
    host: str
    port: int
    path: str
    """For HTTP(S) drains: the path and query to POST to."""
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme in ("syslog+tls", "https")

    @property
    def http(self) -> bool:
        return self.scheme in ("https", "http")

    @property
    def redacted(self) -> str:
        """The URL without its password, for messages."""
        if self.password is None:
            return self.url
        return self.url.replace(f":{self.password}@", ":***@", 1)


def parse_drain_url(url: str) -> DrainTarget:
    """Check a drain URL's shape; ``InvalidError`` says what is wrong with it."""
    example = "e.g. syslog+tls://logs.example.com:6514 or https://user:pass@logs.example.com/drain"
    if not isinstance(url, str) or not url.strip():
        raise InvalidError(f"Url must be given ({example})", field="url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidError(f"Url is not a valid drain URL ({example})", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidError(f"Url is not a valid drain URL: {exc} ({example})", field="url") from exc
    scheme = next((known for known in SCHEMES if known == parts.scheme.lower()), None)
    if scheme is None:
        raise InvalidError(
            f"Url scheme must be syslog, syslog+tls, https or http, not {parts.scheme or 'none'} "
            f"({example})",
            field="url",
        )
    host = parts.hostname
    if not host:
        raise InvalidError(f"Url has no host ({example})", field="url")
    if scheme.startswith("syslog"):
        if port is None:
            raise InvalidError(f"A syslog drain needs a port ({example})", field="url")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise InvalidError("A syslog drain URL is only scheme://host:port", field="url")
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 0 < port < 65536:
        raise InvalidError("Url port must be from 1 to 65535", field="url")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return DrainTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def refusal(address: IpAddress, own: Iterable[IpNetwork] = ()) -> str | None:
    """Why a drain may not connect to ``address`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in own:
        if address.version == network.version and address in network:
            return "one of the platform's own addresses"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    return None


def host_addresses() -> list[IpNetwork]:
    """This host's own addresses (``ip -j addr``), as /32 and /128 networks."""
    found: list[IpNetwork] = []
    with contextlib.suppress(Exception):
        result = proc.run(["ip", "-j", "addr", "show"], check=False)
        if result.returncode == 0:
            for link in json.loads(result.stdout or b"[]"):
                for info in link.get("addr_info", []):
                    with contextlib.suppress(ValueError, TypeError):
                        found.append(ipaddress.ip_network(info["local"]))
    with contextlib.suppress(OSError):
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_network(str(sockaddr[0]).split("%")[0]))
    return found


class AddressGuard:
    """Resolves a drain's host and keeps only the addresses it may reach."""

    def __init__(self, *, allow_private: bool, own: Iterable[IpNetwork] = ()) -> None:
        self.allow_private = allow_private
        self.own = list(own)

    def check(self, addresses: Iterable[str], host: str) -> list[str]:
        """The addresses a drain to ``host`` may use; ``InvalidError`` when there is none."""
        allowed, reasons = [], []
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%")[0])
            except ValueError:
                continue
            reason = None if self.allow_private else refusal(address, self.own)
            if reason is None:
                allowed.append(text)
            else:
                reasons.append(f"{text} is {reason}")
        if not allowed:
            detail = "; ".join(dict.fromkeys(reasons)) or "it does not resolve"
            raise InvalidError(
                f"Drains may not send to {host}: {detail}. Drains go to public addresses only, "
                "unless the operator sets logs.allow_private_drains",
                field="url",
            )
        return allowed

    def resolve(self, host: str, port: int) -> list[str]:
        """Resolve now (blocking) and check."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise InvalidError(f"Drain host {host} does not resolve: {exc}", field="url") from exc
        return self.check([str(info[4][0]) for info in infos], host)

    async def resolve_async(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise InvalidError(f"Drain host {host} does not resolve: {exc}", field="url") from exc
        return self.check([str(info[4][0]) for info in infos], host)
