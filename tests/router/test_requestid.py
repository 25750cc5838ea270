"""Request ids: Heroku's rule for keeping a client's id, and cheap new ids."""

from __future__ import annotations

import re

import pytest

from dockyard.router.requestid import RequestIds, is_valid_request_id


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"a" * 20, True),
        (b"A-Za-z0-9+/=" * 16 + b"abcdefgh", True),  # exactly 200
        (b"550e8400-e29b-41d4-a716-446655440000", True),
        (b"a" * 19, False),
        (b"a" * 201, False),
        (b"a" * 19 + b"_", False),
        (b"a" * 20 + b"\n", False),
        (b"", False),
    ],
)
def test_validity_follows_herokus_rule(value: bytes, valid: bool) -> None:
    assert is_valid_request_id(value) is valid


def test_new_ids_are_valid_hex_and_unique_across_refills() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(5000)]  # more than one pooled block
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(rb"[0-9a-f]{32}", i) for i in made)
    assert all(is_valid_request_id(i) for i in made)
