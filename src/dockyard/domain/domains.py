"""Hostnames: the default ``<app>.<platform domain>`` and custom domains."""

from __future__ import annotations

import re

from dockyard.errors import InvalidError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_hostname(hostname: str) -> str:
    """Lowercase, strip a trailing dot, and check every label; a leading ``*.`` wildcard is allowed."""
    if not isinstance(hostname, str):
        raise InvalidError("hostname must be a string", field="hostname")
    host = hostname.strip().lower().rstrip(".")
    labels = host.split(".")
    check = labels[1:] if labels[:1] == ["*"] else labels
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in check)
        or not check
    ):
        raise InvalidError(
            f"Hostname {hostname!r} is invalid — give a fully qualified domain such as www.example.com",
            field="hostname",
        )
    return host


def default_hostname(app_name: str, platform_domain: str) -> str:
    return f"{app_name}.{platform_domain}"


def is_platform_hostname(hostname: str, platform_domain: str) -> bool:
    return hostname == platform_domain or hostname.endswith("." + platform_domain)
