"""WebAuthn registration and assertion against a software authenticator (ES256 and EdDSA)."""

from __future__ import annotations

import pytest

from dockyard.auth import webauthn
from dockyard.auth.webauthn import RelyingParty, WebAuthnError
from tests.auth.softauthn import SoftAuthenticator

RP = RelyingParty("dockyard.test", "Dockyard", ("https://dockyard.test",))


def _register(device: SoftAuthenticator, fmt: str = "none") -> webauthn.RegisteredCredential:
    challenge = webauthn.new_challenge()
    options = webauthn.registration_options(
        RP, user_handle=b"user-1", user_name="a@b.c", display_name="A", challenge=challenge
    )
    answer = device.create(options, fmt=fmt)
    return webauthn.verify_registration(RP, challenge=challenge, **answer)


def _assert(
    device: SoftAuthenticator, stored: webauthn.RegisteredCredential, count: int, **kwargs: object
) -> webauthn.VerifiedAssertion:
    challenge = webauthn.new_challenge()
    options = webauthn.assertion_options(RP, challenge=challenge, allow=(stored.credential_id,))
    answer = device.get(options, **kwargs)  # type: ignore[arg-type]
    return webauthn.verify_assertion(
        RP, challenge=challenge, public_key=stored.public_key, stored_sign_count=count, **answer
    )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_register_then_sign_in(alg: str) -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test", alg)  # type: ignore[arg-type]
    stored = _register(device)
    assert stored.credential_id == webauthn.b64url(device.credential_id)
    result = _assert(device, stored, 0)
    assert result.sign_count == 1 and result.user_verified


def test_self_attested_packed_statement_is_checked() -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test")
    assert _register(device, fmt="packed").sign_count == 0


def test_another_origin_is_refused() -> None:
    device = SoftAuthenticator("https://evil.test", "dockyard.test")
    with pytest.raises(WebAuthnError, match="origin"):
        _register(device)


def test_another_relying_party_is_refused() -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test")
    challenge = webauthn.new_challenge()
    options = webauthn.registration_options(
        RP, user_handle=b"u", user_name="a", display_name="a", challenge=challenge
    )
    options["rp"]["id"] = "evil.test"
    with pytest.raises(WebAuthnError, match="relying party"):
        webauthn.verify_registration(RP, challenge=challenge, **device.create(options))


def test_a_different_challenge_is_refused() -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test")
    options = webauthn.registration_options(
        RP, user_handle=b"u", user_name="a", display_name="a", challenge=webauthn.new_challenge()
    )
    with pytest.raises(WebAuthnError, match="challenge"):
        webauthn.verify_registration(
            RP, challenge=webauthn.new_challenge(), **device.create(options)
        )


def test_a_tampered_assertion_is_refused() -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test")
    stored = _register(device)
    with pytest.raises(WebAuthnError, match="signature"):
        _assert(device, stored, 0, tamper=True)


def test_a_counter_that_goes_backwards_is_refused() -> None:
    device = SoftAuthenticator("https://dockyard.test", "dockyard.test")
    stored = _register(device)
    _assert(device, stored, 0)
    with pytest.raises(WebAuthnError, match="counter"):
        _assert(device, stored, 5)
