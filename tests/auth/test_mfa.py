"""TOTP per RFC 6238: test vectors, 160-bit secrets, current and previous step only, each code once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from dockyard.auth import mfa

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_rfc_6238_sha1_vectors() -> None:
    """Appendix B of RFC 6238, truncated to the six digits authenticator apps show."""
    for seconds, expected in ((59, "287082"), (1111111109, "081804"), (1234567890, "005924")):
        assert mfa.totp(RFC_SECRET, datetime.fromtimestamp(seconds, UTC)) == expected


def test_secrets_are_160_bits_and_random() -> None:
    secret = mfa.new_totp_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert secret != mfa.new_totp_secret()


def test_current_and_previous_step_accepted_older_and_future_refused() -> None:
    now = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)
    current = mfa.totp(RFC_SECRET, now)
    previous = mfa.totp(RFC_SECRET, now - timedelta(seconds=30))
    older = mfa.totp(RFC_SECRET, now - timedelta(seconds=61))
    future = mfa.totp(RFC_SECRET, now + timedelta(seconds=30))
    assert mfa.verify_totp(RFC_SECRET, current, now, last_step=None) is not None
    assert mfa.verify_totp(RFC_SECRET, previous, now, last_step=None) is not None
    assert mfa.verify_totp(RFC_SECRET, older, now, last_step=None) is None
    assert mfa.verify_totp(RFC_SECRET, future, now, last_step=None) is None


def test_a_code_works_once_and_older_codes_cannot_follow() -> None:
    now = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)
    code = mfa.totp(RFC_SECRET, now)
    match = mfa.verify_totp(RFC_SECRET, code, now, last_step=None)
    assert match is not None
    assert mfa.verify_totp(RFC_SECRET, code, now, last_step=match.step) is None
    previous = mfa.totp(RFC_SECRET, now - timedelta(seconds=30))
    assert mfa.verify_totp(RFC_SECRET, previous, now, last_step=match.step) is None


def test_spaces_are_ignored_and_garbage_refused() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    code = mfa.totp(RFC_SECRET, now)
    assert mfa.verify_totp(RFC_SECRET, f"{code[:3]} {code[3:]}", now, last_step=None)
    assert mfa.verify_totp(RFC_SECRET, "abcdef", now, last_step=None) is None
    assert mfa.verify_totp(RFC_SECRET, "", now, last_step=None) is None


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = mfa.provisioning_uri("JBSWY3DPEHPK3PXP", "ada@example.com")
    assert uri.startswith("otpauth://totp/Dockyard%3Aada%40example.com?")
    assert "secret=JBSWY3DPEHPK3PXP" in uri and "period=30" in uri
