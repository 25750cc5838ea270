from __future__ import annotations

import base64
import struct

import pytest

from dockyard.domain.sshkeys import parse_public_key
from dockyard.errors import InvalidError


def _blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


def _rsa(bits: int) -> str:
    modulus = (1 << (bits - 1)) | 1
    return (
        "ssh-rsa "
        + _blob(b"ssh-rsa", b"\x01\x00\x01", modulus.to_bytes(bits // 8, "big"))
        + " me@host"
    )


def test_ed25519_keys_get_an_openssh_sha256_fingerprint() -> None:
    key = parse_public_key("ssh-ed25519 " + _blob(b"ssh-ed25519", b"k" * 32) + " laptop")
    assert key.fingerprint.startswith("SHA256:")
    assert key.comment == "laptop"


def test_rsa_of_2048_bits_is_accepted_and_1024_refused() -> None:
    assert parse_public_key(_rsa(2048)).type == "ssh-rsa"
    with pytest.raises(InvalidError, match="at least 2048 bits; this one has 1024"):
        parse_public_key(_rsa(1024))


def test_dsa_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidError, match="DSA keys are not accepted"):
        parse_public_key("ssh-dss " + _blob(b"ssh-dss", b"x"))


@pytest.mark.parametrize(
    "text", ["", "hello", "ssh-ed25519 !!!notbase64", "ssh-ed25519 " + _blob(b"ssh-rsa")]
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidError):
        parse_public_key(text)
