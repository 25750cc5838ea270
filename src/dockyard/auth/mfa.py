"""TOTP second factors (RFC 6238 over RFC 4226 HOTP): 160-bit secrets, 30-second steps, six digits.

A code is accepted for the current step and the one before it (clock drift and typing time), and each step's
code only once: the verifier keeps the last step it accepted and refuses that step and every earlier one.
Pure functions; the caller stores the secret and the last accepted step.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

SECRET_BYTES = 20
"""160 bits, the HMAC-SHA1 block size RFC 4226 recommends (NIST asks for at least 112)."""
STEP_SECONDS = 30
DIGITS = 6
ACCEPTED_PAST_STEPS = 1
"""The previous step is accepted too; no future step is."""


def new_totp_secret() -> str:
    """A new secret from the system CSPRNG, in unpadded base32 as authenticator apps expect it."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def time_step(moment: datetime) -> int:
    return int(moment.timestamp()) // STEP_SECONDS


def hotp(secret: str, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA1 of the big-endian counter, dynamic truncation, modulo 10^digits."""
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: str, moment: datetime) -> str:
    """The code an authenticator app shows at ``moment``."""
    return hotp(secret, time_step(moment))


def normalize_code(code: str) -> str:
    """Codes may be typed with spaces or a dash in the middle ("123 456")."""
    return "".join(ch for ch in code if not ch.isspace() and ch != "-")


@dataclass(frozen=True)
class TotpMatch:
    step: int
    """The time step the code belonged to; store it as the last accepted step."""


def verify_totp(
    secret: str, code: str, moment: datetime, *, last_step: int | None
) -> TotpMatch | None:
    """The step ``code`` is valid for at ``moment`` (current or previous step), or None.

    A step at or before ``last_step`` is refused: each code works once, and a code older than one already
    used cannot be replayed either."""
    given = normalize_code(code)
    if len(given) != DIGITS or not given.isdigit():
        return None
    now_step = time_step(moment)
    for step in range(now_step, now_step - ACCEPTED_PAST_STEPS - 1, -1):
        if last_step is not None and step <= last_step:
            return None
        if hmac.compare_digest(hotp(secret, step), given):
            return TotpMatch(step)
    return None


def provisioning_uri(secret: str, account_email: str, issuer: str = "Dockyard") -> str:
    """The ``otpauth://`` URI authenticator apps read from a QR code (Key Uri Format)."""
    label = quote(f"{issuer}:{account_email}")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"
