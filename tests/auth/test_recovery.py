"""Recovery codes: ten, at least 64 bits each, argon2id-hashed, matched once."""

from __future__ import annotations

import base64

from dockyard.auth import recovery


def test_ten_codes_of_80_bits() -> None:
    codes = recovery.new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        raw = code.replace("-", "").upper()
        assert len(base64.b32decode(raw)) * 8 >= 64


def test_hashes_are_argon2id_and_match_their_code_only() -> None:
    codes = recovery.new_recovery_codes(3)
    stored = [(str(i), recovery.hash_recovery_code(c)) for i, c in enumerate(codes)]
    assert all(h.startswith("$argon2id$") and codes[0] not in h for _, h in stored)
    assert recovery.match_recovery_code(codes[1], stored) == "1"
    assert recovery.match_recovery_code(codes[2].upper().replace("-", " "), stored) == "2"
    assert recovery.match_recovery_code("aaaa-bbbb-cccc-dddd", stored) is None
    assert recovery.match_recovery_code("123456", stored) is None
