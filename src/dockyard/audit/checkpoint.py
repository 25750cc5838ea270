"""Signed checkpoints: the C2SP ``signed-note``, ``tlog-checkpoint`` and ``tlog-cosignature`` formats with
Ed25519 (``cryptography``).

A signed note is text ending in a newline, a blank line, then signature lines
``— <key name> base64(4-byte key id ‖ signature)``. A key id is
``SHA-256(name ‖ "\\n" ‖ type ‖ public key)[:4]``: type 0x01 for an Ed25519 note signature (the log),
0x04 for a timestamped Ed25519 cosignature (a witness), which signs
``"cosignature/v1\\ntime <t>\\n" ‖ checkpoint body`` and carries ``t`` (8 bytes, big-endian) before the
signature. Keys travel as Go's ``golang.org/x/mod/sumdb/note`` strings: a verifier key
``<name>+<hex id>+<base64(type ‖ public key)>``, a signer key ``PRIVATE+KEY+<name>+<hex id>+<base64(type ‖
seed)>``.

A checkpoint's body is ``<origin>\\n<tree size>\\n<base64 root>\\n`` and Dockyard adds one extension line,
``time <unix seconds>``, so a checkpoint of an idle log still changes every interval (Ed25519 signatures
are deterministic) and a witness can tell a fresh one from a replayed one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dockyard.errors import InvalidError

EM_DASH = "\u2014"
ED25519 = 0x01
COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 64
_NAME = re.compile(r"^[^\s+]+$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})$")


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    check_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that checks one kind of signature line (by name and key id)."""

    name: str
    key_type: int
    public_key: bytes

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.key_type, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex id>+<base64(type ‖ key)>``; the id must match the name and key."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise InvalidError(f"{vkey!r} is not a verifier key (<name>+<hex id>+<base64 key>)")
        name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise InvalidError(f"verifier key {name}: the key is not base64") from exc
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise InvalidError(f"verifier key {name}: not an Ed25519 key (type 0x01 or 0x04)")
        verifier = cls(check_name(name), raw[0], raw[1:])
        if verifier.key_id != int(hex_id, 16):
            raise InvalidError(f"verifier key {name}: the key id does not match the name and key")
        return verifier

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([self.key_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A private Ed25519 key with its name and signature type."""

    name: str
    key_type: int
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> NoteSigner:
        return cls(check_name(name), key_type, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise InvalidError("not a signer key (PRIVATE+KEY+<name>+<hex id>+<base64 key>)")
        _, _, name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise InvalidError(f"signer key {name}: the key is not base64") from exc
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise InvalidError(f"signer key {name}: not an Ed25519 key (type 0x01 or 0x04)")
        signer = cls(check_name(name), raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id) or signer.verifier.key_id != int(hex_id, 16):
            raise InvalidError(f"signer key {name}: the key id does not match the name and key")
        return signer

    def skey(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([self.key_type]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id:08x}+{encoded}"

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_type, _raw_public(self.private_key.public_key()))

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes
    """The bytes after the key id: for a cosignature, the 8-byte timestamp then the signature."""

    def line(self) -> str:
        blob = struct.pack(">I", self.key_id) + self.signature
        return f"{EM_DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text (with its final newline) and the signature lines of a signed note."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise InvalidError("a signed note holds no control characters but newlines")
    if not note.endswith("\n"):
        raise InvalidError("a signed note ends with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise InvalidError("a signed note has a blank line between its text and its signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures: list[NoteSignature] = []
    for line in block.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise InvalidError(f"signature line {line!r} is not '— <name> <base64>'")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise InvalidError(f"signature of {parts[1]} is not base64") from exc
        if len(blob) < 5:
            raise InvalidError(f"signature of {parts[1]} is too short")
        signatures.append(NoteSignature(check_name(parts[1]), int.from_bytes(blob[:4]), blob[4:]))
    if not signatures:
        raise InvalidError("a signed note has at least one signature")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidError(f"a signed note has at most {MAX_SIGNATURES} signatures")
    return text, signatures


def sign_note(text: str, signer: NoteSigner) -> str:
    """``text`` signed by ``signer`` (an Ed25519 note signature)."""
    if not text.endswith("\n"):
        raise InvalidError("the text of a note ends with a newline")
    signature = NoteSignature(signer.name, signer.verifier.key_id, signer.sign(text.encode()))
    return text + "\n" + signature.line()


def signed_by(text: str, signatures: list[NoteSignature], verifier: NoteVerifier) -> bool:
    """Whether one of ``signatures`` is a valid note signature (type 0x01) of ``verifier`` over ``text``."""
    if verifier.key_type != ED25519:
        raise InvalidError(f"{verifier.name} is not a note-signing key (type 0x01)")
    for signature in signatures:
        if signature.name == verifier.name and signature.key_id == verifier.key_id:
            return verifier.verify(text.encode(), signature.signature)
    return False


# --- checkpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    timestamp: int | None = None
    """Unix seconds from the ``time`` extension line; ``None`` when the checkpoint has none."""

    def body(self) -> str:
        text = f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
        if self.timestamp is not None:
            text += f"time {self.timestamp}\n"
        return text

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        if not body.endswith("\n"):
            raise InvalidError("a checkpoint ends with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidError("a checkpoint has an origin, a tree size and a root hash line")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise InvalidError("a checkpoint's origin line is empty")
        if not _DECIMAL.match(size_text):
            raise InvalidError(f"checkpoint tree size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise InvalidError("a checkpoint's root hash is not base64") from exc
        if len(root) != 32:
            raise InvalidError("a checkpoint's root hash is not 32 bytes")
        timestamp: int | None = None
        for line in extensions:
            if not line:
                raise InvalidError("a checkpoint has no empty extension lines")
            if line.startswith("time ") and _DECIMAL.match(line[5:]):
                timestamp = int(line[5:])
        return cls(origin, int(size_text), root, timestamp)


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str
    """The whole signed note as published (the log's signature and any cosignatures)."""
    cosigners: tuple[tuple[str, int], ...] = ()
    """Names and timestamps of the verified cosignatures (only those checked against given keys)."""


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    if signer.name != checkpoint.origin:
        raise InvalidError("the log's key name must be the checkpoint's origin")
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(
    note: str, log_key: NoteVerifier, witnesses: tuple[NoteVerifier, ...] = ()
) -> SignedCheckpoint:
    """Parse a signed checkpoint and check the log's signature and the cosignatures of ``witnesses``
    that are present. ``InvalidError`` names what is wrong."""
    text, signatures = split_note(note)
    checkpoint = Checkpoint.parse(text)
    if checkpoint.origin != log_key.name:
        raise InvalidError(f"the checkpoint is for log {checkpoint.origin!r}, not {log_key.name!r}")
    if not signed_by(text, signatures, log_key):
        raise InvalidError(f"the checkpoint's signature by {log_key.name} does not verify")
    cosigners: list[tuple[str, int]] = []
    for witness in witnesses:
        timestamp = cosigned_by(text, signatures, witness)
        if timestamp is not None:
            cosigners.append((witness.name, timestamp))
    return SignedCheckpoint(checkpoint, note, tuple(cosigners))


# --- cosignatures -----------------------------------------------------------------------------------


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosign(note: str, witness: NoteSigner, timestamp: int) -> str:
    """Add ``witness``'s ``cosignature/v1`` line to a signed checkpoint (after checking it elsewhere)."""
    if witness.key_type != COSIGNATURE_V1:
        raise InvalidError(f"{witness.name} is not a cosigning key (type 0x04)")
    text, signatures = split_note(note)
    blob = struct.pack(">Q", timestamp) + witness.sign(cosigned_message(text, timestamp))
    kept = [
        s
        for s in signatures
        if not (s.name == witness.name and s.key_id == witness.verifier.key_id)
    ]
    kept.append(NoteSignature(witness.name, witness.verifier.key_id, blob))
    return text + "\n" + "".join(s.line() for s in kept)


def cosigned_by(text: str, signatures: list[NoteSignature], witness: NoteVerifier) -> int | None:
    """The timestamp of ``witness``'s valid cosignature over ``text``; ``None`` when it has none, and
    ``InvalidError`` when it has one that does not verify."""
    if witness.key_type != COSIGNATURE_V1:
        raise InvalidError(f"{witness.name} is not a cosigning key (type 0x04)")
    for signature in signatures:
        if signature.name != witness.name or signature.key_id != witness.key_id:
            continue
        if len(signature.signature) != 8 + 64:
            raise InvalidError(f"the cosignature of {witness.name} has the wrong length")
        timestamp = struct.unpack(">Q", signature.signature[:8])[0]
        if not witness.verify(cosigned_message(text, timestamp), signature.signature[8:]):
            raise InvalidError(f"the cosignature of {witness.name} does not verify")
        return int(timestamp)
    return None
