"""SSH public keys: which kinds are accepted, and their SHA256 fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from dockyard.errors import InvalidError

MIN_RSA_BITS = 2048
ACCEPTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str

    @property
    def fingerprint(self) -> str:
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def openssh(self) -> str:
        text = f"{self.type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text


def _fields(blob: bytes) -> list[bytes]:
    fields = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated")
        fields.append(blob[offset : offset + length])
        offset += length
    return fields


def parse_public_key(text: str) -> PublicKey:
    """Parse one OpenSSH public key line; DSA and RSA under 2048 bits are refused with the reason."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise InvalidError(
            'This is not an OpenSSH public key (expected "ssh-ed25519 AAAA… comment")',
            field="public_key",
        )
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type == "ssh-dss":
        raise InvalidError(
            "DSA keys are not accepted (they are insecure): create an ed25519 key with "
            "`ssh-keygen -t ed25519`",
            field="public_key",
        )
    if key_type not in ACCEPTED_TYPES:
        raise InvalidError(
            f"Key type {key_type!r} is not accepted; use ed25519, ecdsa or RSA ≥ "
            f"{MIN_RSA_BITS} bits",
            field="public_key",
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
        fields = _fields(blob)
    except (binascii.Error, ValueError) as exc:
        raise InvalidError(
            "The key data is not valid base64 OpenSSH key material", field="public_key"
        ) from exc
    if not fields or fields[0].decode("ascii", "replace") != key_type:
        raise InvalidError("The key data does not match its declared type", field="public_key")
    if key_type == "ssh-rsa":
        if len(fields) != 3:
            raise InvalidError("The RSA key data is malformed", field="public_key")
        bits = int.from_bytes(fields[2], "big").bit_length()
        if bits < MIN_RSA_BITS:
            raise InvalidError(
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}. "
                "Create an ed25519 key with `ssh-keygen -t ed25519`",
                field="public_key",
            )
    return PublicKey(key_type, blob, comment)
