"""WebAuthn (Level 2) security keys and passkeys: the options a browser needs, and the checks of what the
authenticator answers, done with ``cryptography``.

Registration (``navigator.credentials.create``) and assertion (``navigator.credentials.get``) are verified as
the specification's §7.1 and §7.2 say: the client data's type, challenge and origin; the RP id hash, the
user-present flag (and user-verified when asked), the signature counter; and the signature over
``authenticatorData || SHA-256(clientDataJSON)`` with the credential's COSE key. Keys: ES256 (P-256), EdDSA
(Ed25519) and RS256. Attestation is not required (``attestation: "none"``): ``none`` and self-attested
``packed`` statements are accepted, and a ``packed`` statement is checked against the credential key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from dockyard.auth import cbor
from dockyard.errors import InvalidError

CHALLENGE_BYTES = 32
TIMEOUT_MS = 120_000
ALG_ES256 = -7
ALG_EDDSA = -8
ALG_RS256 = -257
SUPPORTED_ALGORITHMS = (ALG_ES256, ALG_EDDSA, ALG_RS256)

_FLAG_UP = 0x01
_FLAG_UV = 0x04
_FLAG_AT = 0x40


class WebAuthnError(InvalidError):
    """What the authenticator sent does not verify; the message says which check failed."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise WebAuthnError("a field is not valid base64url") from exc


def new_challenge() -> str:
    return b64url(secrets.token_bytes(CHALLENGE_BYTES))


@dataclass(frozen=True)
class RelyingParty:
    id: str
    """The registrable domain the credentials are bound to (the platform domain)."""
    name: str
    origins: tuple[str, ...]
    """Origins the browser may report (``https://dashboard.example.com``)."""


def registration_options(
    rp: RelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    challenge: str,
    exclude: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptions`` as JSON (binary fields base64url)."""
    return {
        "rp": {"id": rp.id, "name": rp.name},
        "user": {"id": b64url(user_handle), "name": user_name, "displayName": display_name},
        "challenge": challenge,
        "pubKeyCredParams": [{"type": "public-key", "alg": a} for a in SUPPORTED_ALGORITHMS],
        "timeout": TIMEOUT_MS,
        "excludeCredentials": [{"type": "public-key", "id": c} for c in exclude],
        "authenticatorSelection": {"residentKey": "preferred", "userVerification": "preferred"},
        "attestation": "none",
    }


def assertion_options(
    rp: RelyingParty, *, challenge: str, allow: tuple[str, ...]
) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptions`` as JSON."""
    return {
        "rpId": rp.id,
        "challenge": challenge,
        "timeout": TIMEOUT_MS,
        "allowCredentials": [{"type": "public-key", "id": c} for c in allow],
        "userVerification": "preferred",
    }


@dataclass(frozen=True)
class AuthenticatorData:
    rp_id_hash: bytes
    flags: int
    sign_count: int
    credential_id: bytes | None
    public_key: bytes | None
    """The credential's COSE key as sent (CBOR), when attested credential data is present."""
    aaguid: bytes | None


def parse_authenticator_data(data: bytes) -> AuthenticatorData:
    if len(data) < 37:
        raise WebAuthnError("authenticator data is shorter than 37 bytes")
    rp_id_hash, flags = data[:32], data[32]
    sign_count = struct.unpack(">I", data[33:37])[0]
    credential_id = public_key = aaguid = None
    if flags & _FLAG_AT:
        if len(data) < 55:
            raise WebAuthnError("attested credential data is truncated")
        aaguid = data[37:53]
        length = struct.unpack(">H", data[53:55])[0]
        credential_id = data[55 : 55 + length]
        if len(credential_id) != length:
            raise WebAuthnError("the credential id is truncated")
        _, used = cbor.decode_first(data[55 + length :])
        public_key = data[55 + length : 55 + length + used]
    return AuthenticatorData(rp_id_hash, flags, sign_count, credential_id, public_key, aaguid)


def _verify_signature(cose_key: bytes, signature: bytes, signed: bytes) -> None:
    key = cbor.decode(cose_key)
    if not isinstance(key, dict):
        raise WebAuthnError("the credential public key is not a COSE key")
    alg = key.get(3)
    try:
        if alg == ALG_ES256 and key.get(1) == 2 and key.get(-1) == 1:
            x, y = key.get(-2), key.get(-3)
            if not isinstance(x, bytes) or not isinstance(y, bytes):
                raise WebAuthnError("the EC2 key lacks its coordinates")
            point = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
            point.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif alg == ALG_EDDSA and key.get(1) == 1 and key.get(-1) == 6:
            raw = key.get(-2)
            if not isinstance(raw, bytes):
                raise WebAuthnError("the OKP key lacks its x coordinate")
            ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(signature, signed)
        elif alg == ALG_RS256 and key.get(1) == 3:
            n, e = key.get(-1), key.get(-2)
            if not isinstance(n, bytes) or not isinstance(e, bytes):
                raise WebAuthnError("the RSA key lacks n or e")
            public = rsa.RSAPublicNumbers(
                int.from_bytes(e, "big"), int.from_bytes(n, "big")
            ).public_key()
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise WebAuthnError(f"unsupported credential key (COSE alg {alg})")
    except InvalidSignature as exc:
        raise WebAuthnError("the signature does not verify with the credential's key") from exc
    except ValueError as exc:
        raise WebAuthnError(f"the credential key is malformed: {exc}") from exc


def _client_data(raw: bytes, kind: str, challenge: str, rp: RelyingParty) -> None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebAuthnError("clientDataJSON is not JSON") from exc
    if not isinstance(data, dict) or data.get("type") != kind:
        raise WebAuthnError(f"clientDataJSON.type is not {kind}")
    given = data.get("challenge")
    if not isinstance(given, str) or not secrets.compare_digest(
        given.rstrip("="), challenge.rstrip("=")
    ):
        raise WebAuthnError("the challenge does not match the one this server issued")
    if data.get("origin") not in rp.origins:
        raise WebAuthnError(f"origin {data.get('origin')!r} is not one of this platform's origins")
    if data.get("crossOrigin") is True:
        raise WebAuthnError("cross-origin ceremonies are not accepted")


def _check_flags(auth: AuthenticatorData, rp: RelyingParty, require_uv: bool) -> None:
    if not secrets.compare_digest(auth.rp_id_hash, hashlib.sha256(rp.id.encode()).digest()):
        raise WebAuthnError(f"the credential is for another relying party than {rp.id}")
    if not auth.flags & _FLAG_UP:
        raise WebAuthnError("the authenticator did not report user presence")
    if require_uv and not auth.flags & _FLAG_UV:
        raise WebAuthnError("the authenticator did not verify the user (PIN or biometric)")


@dataclass(frozen=True)
class RegisteredCredential:
    credential_id: str
    """base64url"""
    public_key: str
    """The COSE key, base64url of its CBOR."""
    sign_count: int
    aaguid: str
    user_verified: bool


def verify_registration(
    rp: RelyingParty,
    *,
    challenge: str,
    client_data_json: str,
    attestation_object: str,
    require_user_verification: bool = False,
) -> RegisteredCredential:
    """Check a ``navigator.credentials.create`` response (its fields base64url, as JSON carries them)."""
    client_raw = b64url_decode(client_data_json)
    _client_data(client_raw, "webauthn.create", challenge, rp)
    attestation = cbor.decode(b64url_decode(attestation_object))
    if not isinstance(attestation, dict) or not isinstance(attestation.get("authData"), bytes):
        raise WebAuthnError("the attestation object has no authenticator data")
    auth_raw: bytes = attestation["authData"]
    auth = parse_authenticator_data(auth_raw)
    _check_flags(auth, rp, require_user_verification)
    if auth.credential_id is None or auth.public_key is None:
        raise WebAuthnError("the authenticator sent no credential")
    fmt = attestation.get("fmt")
    statement = attestation.get("attStmt")
    if fmt == "packed" and isinstance(statement, dict):
        signature = statement.get("sig")
        if not isinstance(signature, bytes) or "x5c" in statement:
            raise WebAuthnError("only self-attested packed statements are accepted")
        _verify_signature(
            auth.public_key, signature, auth_raw + hashlib.sha256(client_raw).digest()
        )
    elif fmt != "none":
        raise WebAuthnError(f"attestation format {fmt!r} is not accepted (ask for none)")
    _verify_key_is_usable(auth.public_key)
    return RegisteredCredential(
        credential_id=b64url(auth.credential_id),
        public_key=b64url(auth.public_key),
        sign_count=auth.sign_count,
        aaguid=(auth.aaguid or b"").hex(),
        user_verified=bool(auth.flags & _FLAG_UV),
    )


def _verify_key_is_usable(cose_key: bytes) -> None:
    key = cbor.decode(cose_key)
    if not isinstance(key, dict) or key.get(3) not in SUPPORTED_ALGORITHMS:
        raise WebAuthnError("the credential uses an algorithm this platform does not support")


@dataclass(frozen=True)
class VerifiedAssertion:
    credential_id: str
    sign_count: int
    user_verified: bool


def verify_assertion(
    rp: RelyingParty,
    *,
    challenge: str,
    credential_id: str,
    client_data_json: str,
    authenticator_data: str,
    signature: str,
    public_key: str,
    stored_sign_count: int,
    require_user_verification: bool = False,
) -> VerifiedAssertion:
    """Check a ``navigator.credentials.get`` response against the stored credential."""
    client_raw = b64url_decode(client_data_json)
    _client_data(client_raw, "webauthn.get", challenge, rp)
    auth_raw = b64url_decode(authenticator_data)
    auth = parse_authenticator_data(auth_raw)
    _check_flags(auth, rp, require_user_verification)
    _verify_signature(
        b64url_decode(public_key),
        b64url_decode(signature),
        auth_raw + hashlib.sha256(client_raw).digest(),
    )
    if (auth.sign_count or stored_sign_count) and auth.sign_count <= stored_sign_count:
        raise WebAuthnError(
            "the authenticator's signature counter went backwards: the credential may have been "
            "cloned; it stays registered, but this sign-in is refused"
        )
    return VerifiedAssertion(credential_id, auth.sign_count, bool(auth.flags & _FLAG_UV))
