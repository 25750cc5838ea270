"""Passwords as NIST SP 800-63B rev 4 wants them: what may be chosen, and how they are kept.

Rules (docs/security.md):

- At least ``MIN_LENGTH`` (15) characters while the account has no second factor, at least
  ``MIN_LENGTH_WITH_SECOND_FACTOR`` (8) once it has one; at most ``MAX_LENGTH`` (1,024). Characters are
  Unicode code points after NFKC normalisation; any character may be used; there are no composition rules
  ("a digit and a symbol"); the whole password is always hashed and compared, never truncated.
- A new password is refused, with the reason, when it is one of the shipped common passwords
  (``data/common-passwords.txt.gz``, 30,000 from the most used passwords of public breaches), repeats a
  short pattern, is a keyboard or alphabet sequence, or is a common password or a context word (the
  product's name, the email address and its parts, the account's name) with only digits or symbols
  around it.
- Hashes are argon2id PHC strings, which carry their own costs; a hash made with lower costs than the
  current ones is replaced at the next successful login.
"""

from __future__ import annotations

import gzip
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 15
"""Shortest password of an account whose password is its only factor."""
MIN_LENGTH_WITH_SECOND_FACTOR = 8
MAX_LENGTH = 1024
PRODUCT_WORDS = ("dockyard", "heroku")
"""Context words every password is checked against, besides the account's own."""

Reason = Literal[
    "too_short", "too_long", "common_password", "repetitive", "sequential", "context_word"
]

_KEYBOARD_ROWS = (
    "`1234567890-=",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qwertzuiopü",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",
    "qwertyuiopasdfghjklzxcvbnm",
    "abcdefghijklmnopqrstuvwxyz",
)
_FILLER = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$", re.DOTALL)
"""A password's core: what is left when leading and trailing digits, symbols and spaces go."""


@dataclass(frozen=True)
class Rejection:
    """Why a new password was refused, in words to show the user."""

    reason: Reason
    message: str


def normalize(password: str) -> str:
    """The form that is hashed and counted: NFKC (so the same password typed on two keyboards matches)."""
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased."""
    data = resources.files("dockyard.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    words = gzip.decompress(data).decode("utf-8").split("\n")
    return frozenset(word.strip().casefold() for word in words if word.strip())


def context_words(email: str = "", name: str = "") -> tuple[str, ...]:
    """Words a password must not be built on: the product's names, the email address, its local part and
    the words of its domain, and the words of the account's name (those of 4 characters or more)."""
    words: list[str] = list(PRODUCT_WORDS)
    email = email.strip().casefold()
    if email:
        local, _, domain = email.rpartition("@")
        words += [email, local, domain.rsplit(".", 1)[0]]
        words += re.split(r"[^\w]+", local)
    words += re.split(r"[^\w]+", name.casefold())
    unique: list[str] = []
    for word in words:
        if len(word) >= 4 and word not in unique:
            unique.append(word)
    return tuple(unique)


def _repetitive(text: str) -> bool:
    """One short pattern over and over (``aaaaaaaa``, ``abcabcabc``) or hardly any distinct characters."""
    if len(set(text)) <= 3:
        return True
    n = len(text)
    return any(n % size == 0 and text == text[:size] * (n // size) for size in range(1, n // 2 + 1))


def _sequential(text: str) -> bool:
    """A run along the alphabet, the digits (``1234567890123``, either way) or a keyboard row."""
    if len(text) < 4:
        return False
    codes = [ord(c) for c in text]
    steps = {b - a for a, b in itertools.pairwise(codes)}
    if text.isdigit():
        steps = {(b - a) % 10 for a, b in itertools.pairwise(codes)}
        if steps in ({1}, {9}):
            return True
    elif steps in ({1}, {-1}):
        return True
    for row in _KEYBOARD_ROWS:
        line = row * (len(text) // len(row) + 2)
        if text in line or text in line[::-1]:
            return True
    return False


def _trivial(text: str, common: frozenset[str], context: Iterable[str]) -> bool:
    return (
        len(text) < 4 or text in common or text in context or _repetitive(text) or _sequential(text)
    )


def check_new_password(
    password: str,
    *,
    has_second_factor: bool = False,
    email: str = "",
    name: str = "",
) -> Rejection | None:
    """None when ``password`` may be chosen, else why not. ``has_second_factor`` lowers the minimum
    length to 8 (the password is then one factor of two)."""
    text = normalize(password)
    minimum = MIN_LENGTH_WITH_SECOND_FACTOR if has_second_factor else MIN_LENGTH
    if len(text) < minimum:
        extra = "" if has_second_factor else " (8 once the account has a second factor)"
        return Rejection(
            "too_short",
            f"This password has {len(text)} characters; use at least {minimum}{extra}. A few "
            "unrelated words make a long password that is easy to remember.",
        )
    if len(text) > MAX_LENGTH:
        return Rejection(
            "too_long", f"This password has {len(text)} characters; use at most {MAX_LENGTH}."
        )
    folded = text.casefold()
    common = common_passwords()
    if folded in common:
        return Rejection(
            "common_password",
            "This password is on the list of the most common passwords that attackers try first; "
            "choose another.",
        )
    if _repetitive(folded):
        return Rejection(
            "repetitive", "This password repeats a few characters or one pattern; choose another."
        )
    compact = re.sub(r"\s+", "", folded)
    if _sequential(compact):
        return Rejection(
            "sequential",
            "This password is a sequence of the alphabet, the digits or a keyboard row; choose "
            "another.",
        )
    context = context_words(email, name)
    core_match = _FILLER.match(folded)
    core = core_match.group(1) if core_match else folded
    if core and core != folded and core not in context and _trivial(core, common, context):
        return Rejection(
            "common_password",
            "This password is a common password or pattern with digits or symbols added; choose "
            "another.",
        )
    for word in context:
        if word in folded:
            rest = folded
            for other in context:
                rest = rest.replace(other, " ")
            if _trivial(re.sub(r"[\W\d_]+", "", rest), common, context):
                return Rejection(
                    "context_word",
                    f"This password is built on {word!r} (the product's name, your email address "
                    "or your name); choose another.",
                )
    return None


@dataclass(frozen=True)
class HashCosts:
    """argon2id costs: memory in KiB, passes, lanes."""

    memory_kib: int = 65536
    time_cost: int = 3
    parallelism: int = 4


class PasswordHashing:
    """argon2id with the given costs (``HashCosts``); verifies hashes made with any costs."""

    def __init__(self, costs: HashCosts) -> None:
        self.costs = costs
        self._hasher = PasswordHasher(
            time_cost=costs.time_cost,
            memory_cost=costs.memory_kib,
            parallelism=costs.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = self._hasher.hash("dockyard dummy password for unknown accounts")

    def hash(self, password: str) -> str:
        return self._hasher.hash(normalize(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches. A missing hash (unknown account, no password) costs the same
        time as a wrong password, so the answer does not tell them apart."""
        oversized = len(password) > 4 * MAX_LENGTH  # never a valid password: hash no megabytes
        try:
            if password_hash is None or oversized:
                self._hasher.verify(self._dummy, "\0" if oversized else normalize(password) + "\0")
                return False
            return self._hasher.verify(password_hash, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other costs than the current ones (or another algorithm)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
