"""Recovery codes: ten single-use codes of 80 random bits each, stored only as argon2id hashes.

A code is shown once, when the set is made; making a new set replaces the old one. Codes are typed as four
groups of four base32 characters (``abcd-efgh-ijkm-npqr``); case, spaces and dashes do not matter.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CODE_COUNT = 10
CODE_BYTES = 10
"""80 bits per code: over the 64 bits NIST rev 4 asks of saved recovery codes."""

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
"""OWASP's minimum argon2id parameters; codes carry 80 bits, so more cost buys nothing."""


def _canonical(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_recovery_codes(count: int = CODE_COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii").lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def hash_recovery_code(code: str) -> str:
    return _HASHER.hash(_canonical(code))


def looks_like_recovery_code(code: str) -> bool:
    """16 base32 characters once dashes and spaces are gone (TOTP codes are 6 digits)."""
    text = _canonical(code)
    return len(text) == 16 and all(ch in "abcdefghijklmnopqrstuvwxyz234567" for ch in text)


def match_recovery_code(code: str, hashes: Sequence[tuple[str, str]]) -> str | None:
    """The id of the stored ``(id, hash)`` pair ``code`` matches, or None. Every hash is tried, so the time
    taken does not tell which position matched."""
    if not looks_like_recovery_code(code):
        return None
    given = _canonical(code)
    found = None
    for code_id, digest in hashes:
        try:
            if _HASHER.verify(digest, given) and found is None:
                found = code_id
        except (VerificationError, InvalidHashError):
            continue
    return found
