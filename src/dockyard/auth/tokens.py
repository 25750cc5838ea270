"""API keys: random, prefixed so leaked keys can be found by grep, and stored only as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "dky_"


def new_api_key() -> str:
    """A new API key with 256 bits from the system CSPRNG."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
