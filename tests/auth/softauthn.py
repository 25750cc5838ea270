"""A software WebAuthn authenticator for tests: real ES256 or Ed25519 keys, real clientDataJSON,
authenticatorData and signatures, encoded with a small CBOR encoder of its own."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dockyard.auth.webauthn import b64url, b64url_decode


def cbor(value: Any) -> bytes:
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str
    alg: Literal["ES256", "EdDSA"] = "ES256"
    counter: int = 0
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))

    def __post_init__(self) -> None:
        self.key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if self.alg == "ES256"
            else ed25519.Ed25519PrivateKey.generate()
        )

    def cose_key(self) -> bytes:
        if self.alg == "ES256":
            numbers = self.key.public_key().public_numbers()
            return cbor(
                {
                    1: 2,
                    3: -7,
                    -1: 1,
                    -2: numbers.x.to_bytes(32, "big"),
                    -3: numbers.y.to_bytes(32, "big"),
                }
            )
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cbor({1: 1, 3: -8, -1: 6, -2: raw})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        ).encode()

    def _auth_data(self, flags: int, attested: bool, rp_id: str | None = None) -> bytes:
        data = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        data += bytes([flags]) + struct.pack(">I", self.counter)
        if attested:
            data += b"\x00" * 16 + struct.pack(">H", len(self.credential_id))
            data += self.credential_id + self.cose_key()
        return data

    def _sign(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            signature: bytes = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
            return signature
        ed_signature: bytes = self.key.sign(data)
        return ed_signature

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, fmt: str = "none"
    ) -> dict[str, str]:
        """What a browser sends back from ``navigator.credentials.create``."""
        client = self._client_data("webauthn.create", options["challenge"], origin)
        auth = self._auth_data(0x41 | 0x04, attested=True, rp_id=options["rp"]["id"])
        statement: dict[str, Any] = {}
        if fmt == "packed":
            statement = {
                "alg": -7 if self.alg == "ES256" else -8,
                "sig": self._sign(auth + hashlib.sha256(client).digest()),
            }
        attestation = cbor({"fmt": fmt, "attStmt": statement, "authData": auth})
        return {"client_data_json": b64url(client), "attestation_object": b64url(attestation)}

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        counter_step: int = 1,
        tamper: bool = False,
    ) -> dict[str, str]:
        """What a browser sends back from ``navigator.credentials.get``."""
        self.counter += counter_step
        client = self._client_data("webauthn.get", options["challenge"], origin)
        auth = self._auth_data(0x01 | 0x04, attested=False, rp_id=options["rpId"])
        signature = self._sign(auth + hashlib.sha256(client).digest())
        if tamper:
            auth = auth[:-1] + bytes([auth[-1] ^ 1])
        return {
            "credential_id": b64url(self.credential_id),
            "client_data_json": b64url(client),
            "authenticator_data": b64url(auth),
            "signature": b64url(signature),
        }


__all__ = ["SoftAuthenticator", "b64url", "b64url_decode", "cbor"]
