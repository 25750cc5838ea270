from __future__ import annotations

import pytest

from dockyard.domain.domains import normalize_hostname
from dockyard.errors import InvalidError


def test_hostnames_are_lowercased_without_a_trailing_dot() -> None:
    assert normalize_hostname("WWW.Example.COM.") == "www.example.com"
    assert normalize_hostname("*.example.com") == "*.example.com"


@pytest.mark.parametrize(
    "host", ["localhost", "bad_host.com", "-a.com", "a..com", "a" * 64 + ".com", ""]
)
def test_invalid_hostnames_are_refused(host: str) -> None:
    with pytest.raises(InvalidError, match="is invalid"):
        normalize_hostname(host)
