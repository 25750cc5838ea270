"""Password rules of NIST SP 800-63B rev 4 and argon2id hashing."""

from __future__ import annotations

import pytest

from dockyard.auth.passwords import (
    MAX_LENGTH,
    HashCosts,
    PasswordHashing,
    check_new_password,
    common_passwords,
    normalize,
)

CHEAP = HashCosts(memory_kib=1024, time_cost=1, parallelism=1)


def reason(password: str, **context: str) -> str | None:
    rejection = check_new_password(password, **context)  # type: ignore[arg-type]
    return rejection.reason if rejection else None


def test_fifteen_characters_without_a_second_factor() -> None:
    assert reason("river lamp quiz") is None  # 15
    rejection = check_new_password("river lamp qui")  # 14
    assert rejection is not None and rejection.reason == "too_short"
    assert "at least 15" in rejection.message


def test_eight_characters_with_a_second_factor() -> None:
    assert check_new_password("tulip#mx", has_second_factor=True) is None
    too_short = check_new_password("tulip#m", has_second_factor=True)
    assert too_short is not None and "at least 8" in too_short.message


def test_up_to_1024_characters_of_any_unicode() -> None:
    assert reason("ñ" * 3 + "語" * 5 + "🚢 long voyage of the dockside crane" * 20) is None
    assert reason("x7Qp" * 256) == "repetitive"  # 1,024 but a pattern
    long_ok = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(MAX_LENGTH))
    assert reason(long_ok) is None
    assert reason(long_ok + "z") == "too_long"


def test_lengths_count_code_points_after_nfkc() -> None:
    # "ﬁ" (one ligature) is two characters once normalised; full-width digits become digits.
    assert normalize("ﬁ") == "fi"
    assert normalize("\uff11\uff12\uff13") == "123"
    typed = "ﬁve calm wolfs"  # 14 typed, 15 after NFKC
    assert len(typed) == 14 and len(normalize(typed)) == 15
    assert reason(typed) is None


def test_no_composition_rules() -> None:
    assert reason("all lower case words here") is None
    assert reason("ALL UPPER CASE WORDS HERE") is None


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("password123456789", "common_password"),
        ("aaaaaaaaaaaaaaa", "repetitive"),
        ("iloveyouiloveyou", "repetitive"),
        ("123456789012345", "sequential"),
        ("zyxwvutsrqponmlk", "sequential"),
        ("qwertyuiopasdfgh", "sequential"),
        ("dockyard2024!!!!!", "context_word"),
        ("Heroku!!!!!!!!!!!!", "context_word"),
        ("superman12345678", "common_password"),
    ],
)
def test_common_and_patterned_passwords_are_refused_with_the_reason(
    password: str, why: str
) -> None:
    assert reason(password) == why


def test_context_words_of_the_account() -> None:
    assert reason("alice@example.com!!", email="alice@example.com") == "context_word"
    assert reason("Wonderland 1234567", name="Alice Wonderland") == "context_word"
    assert reason("Wonderland 1234567") is None


def test_the_shipped_list_has_at_least_20000_passwords() -> None:
    common = common_passwords()
    assert len(common) >= 20_000
    assert {"123456", "password", "qwerty"} <= common
    assert reason("12345678", has_second_factor=True) == "common_password"


def test_hashes_are_argon2id_with_their_costs() -> None:
    hashing = PasswordHashing(CHEAP)
    stored = hashing.hash("a long enough passphrase")
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert "a long enough passphrase" not in stored
    assert hashing.verify(stored, "a long enough passphrase")
    assert not hashing.verify(stored, "a long enough passphrasf")


def test_the_whole_password_is_compared_never_truncated() -> None:
    hashing = PasswordHashing(CHEAP)
    password = "w" * 79 + "a" + "tail of a thousand characters " * 30
    stored = hashing.hash(password)
    assert hashing.verify(stored, password)
    assert not hashing.verify(stored, "w" * 79 + "b" + password[80:])  # differs at character 80
    assert not hashing.verify(stored, password[:-1])


def test_nfkc_forms_of_one_password_match() -> None:
    hashing = PasswordHashing(CHEAP)
    stored = hashing.hash("café au lait ﬁnally")
    assert hashing.verify(stored, "cafe\u0301 au lait finally")


def test_unknown_accounts_verify_against_a_dummy_and_fail() -> None:
    hashing = PasswordHashing(CHEAP)
    assert not hashing.verify(None, "")
    assert not hashing.verify(None, "dockyard dummy password for unknown accounts")
    assert not hashing.verify(hashing.hash("x" * 20), "x" * 5000)


def test_hashes_with_lower_costs_need_a_rehash() -> None:
    old = PasswordHashing(CHEAP).hash("a long enough passphrase")
    stronger = PasswordHashing(HashCosts(memory_kib=2048, time_cost=2, parallelism=1))
    assert stronger.needs_rehash(old)
    assert stronger.verify(old, "a long enough passphrase")
    assert not stronger.needs_rehash(stronger.hash("a long enough passphrase"))
