from __future__ import annotations

import base64

from dockyard.auth.credentials import api_key_from_authorization


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_bearer_and_basic_both_carry_the_key() -> None:
    assert api_key_from_authorization("Bearer dky_key") == "dky_key"
    assert api_key_from_authorization(_basic("anything:dky_key")) == "dky_key"
    assert api_key_from_authorization(_basic("dky_key:")) == "dky_key"


def test_anything_else_carries_no_key() -> None:
    assert api_key_from_authorization("Basic !!!") is None
    assert api_key_from_authorization("Digest x") is None
    assert api_key_from_authorization("Bearer ") is None
    assert api_key_from_authorization(None) is None
