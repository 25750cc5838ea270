"""Signed notes, checkpoints and cosignatures against the published vectors (Go's sumdb/note, the
C2SP example) and their failure modes."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from dockyard.audit.checkpoint import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    cosign,
    cosigned_message,
    key_id,
    open_checkpoint,
    sign_checkpoint,
    sign_note,
    signed_by,
    split_note,
)
from dockyard.errors import InvalidError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "signed_note.json").read_text())
GO = VECTORS["go_sumdb_note"]
ORIGIN = "dockyard.test/audit"


def test_the_go_signer_key_signs_the_go_note_byte_for_byte() -> None:
    signer = NoteSigner.from_skey(GO["signer_key"])
    assert signer.verifier.vkey() == GO["verifier_key"]
    assert signer.skey() == GO["signer_key"]
    assert sign_note(GO["text"], signer) == GO["text"] + "\n" + GO["signature_line"]


def test_a_note_with_two_signatures_verifies_for_each_known_key_only() -> None:
    note = GO["text"] + "\n" + GO["signature_line"] + GO["second_signature_line"]
    text, signatures = split_note(note)
    assert text == GO["text"]
    assert signed_by(text, signatures, NoteVerifier.from_vkey(GO["verifier_key"]))
    assert signed_by(text, signatures, NoteVerifier.from_vkey(GO["second_verifier_key"]))
    stranger = NoteSigner.generate("PeterNeumann").verifier  # same name, another key
    assert not signed_by(text, signatures, stranger)


def test_the_c2sp_example_note_verifies() -> None:
    example = VECTORS["c2sp_example"]
    verifier = NoteVerifier.from_vkey(example["verifier_key"])
    assert verifier.vkey() == example["verifier_key"]
    text, signatures = split_note(example["note"])
    assert text == "This is an example message.\n"
    assert signed_by(text, signatures, verifier)
    assert not signed_by("This is another message.\n", signatures, verifier)


def test_a_cosignature_key_id_uses_type_0x04() -> None:
    vkey = VECTORS["cosignature_key"]["verifier_key"]
    verifier = NoteVerifier.from_vkey(vkey)  # refuses a key whose id does not match
    assert verifier.key_type == COSIGNATURE_V1
    assert key_id(verifier.name, COSIGNATURE_V1, verifier.public_key) == int("da77ade7", 16)
    assert key_id(verifier.name, ED25519, verifier.public_key) != verifier.key_id


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # short key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "PeterNeumann+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(InvalidError):
        NoteVerifier.from_vkey(vkey)


def test_a_checkpoint_round_trips_and_its_signature_binds_every_line() -> None:
    signer = NoteSigner.generate(ORIGIN)
    checkpoint = Checkpoint(ORIGIN, 20852163, bytes(range(32)), 1_700_000_000)
    note = sign_checkpoint(checkpoint, signer)
    assert note.startswith(f"{ORIGIN}\n20852163\n{base64.b64encode(bytes(range(32))).decode()}\n")
    assert "\ntime 1700000000\n\n\u2014 " in note
    opened = open_checkpoint(note, signer.verifier)
    assert opened.checkpoint == checkpoint
    for forged in (
        note.replace("\n20852163\n", "\n20852164\n"),
        note.replace("time 1700000000", "time 1700000060"),
    ):
        with pytest.raises(InvalidError, match="does not verify"):
            open_checkpoint(forged, signer.verifier)
    with pytest.raises(InvalidError, match="not 'other"):
        open_checkpoint(note, NoteSigner.generate("other").verifier)


@pytest.mark.parametrize(
    "body",
    [
        "o\n07\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "o\n7\n",
        "o\n7\nAAAA\n",
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    ],
    ids=["leading-zero", "no-root", "short-root", "empty-extension", "no-newline", "no-origin"],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(InvalidError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    "note",
    [
        "text\n",
        "text\n\n",
        "text\n\n\u2014 name\n",
        "text\x01\n\n\u2014 name AAAAAAAA\n",
        "text\n\n- name AAAAAAAA\n",
    ],
    ids=["no-blank-line", "no-signature", "no-blob", "control-character", "hyphen-not-em-dash"],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(InvalidError):
        split_note(note)


def test_a_cosignature_signs_the_timestamp_and_the_whole_body() -> None:
    log = NoteSigner.generate(ORIGIN)
    witness = NoteSigner.generate("witness.example/w1", COSIGNATURE_V1)
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(32), 1_700_000_000), log)
    cosigned = cosign(note, witness, 1_700_000_042)
    opened = open_checkpoint(cosigned, log.verifier, (witness.verifier,))
    assert opened.cosigners == (("witness.example/w1", 1_700_000_042),)
    text, signatures = split_note(cosigned)
    blob = signatures[1].signature
    assert struct.unpack(">Q", blob[:8])[0] == 1_700_000_042
    assert witness.verifier.verify(cosigned_message(text, 1_700_000_042), blob[8:])
    assert cosigned_message(text, 7).startswith(b"cosignature/v1\ntime 7\n" + ORIGIN.encode())
    # cosigning again replaces this witness's line instead of adding one
    assert len(split_note(cosign(cosigned, witness, 1_700_000_100))[1]) == 2


def test_a_cosignature_over_another_timestamp_is_refused() -> None:
    log = NoteSigner.generate(ORIGIN)
    witness = NoteSigner.generate("witness.example/w1", COSIGNATURE_V1)
    cosigned = cosign(sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(32), 1), log), witness, 99)
    text, signatures = split_note(cosigned)
    blob = bytearray(signatures[1].signature)
    blob[7] ^= 1  # the timestamp now says 98
    forged = (
        text
        + "\n"
        + signatures[0].line()
        + NoteSignature(signatures[1].name, signatures[1].key_id, bytes(blob)).line()
    )
    with pytest.raises(InvalidError, match=r"cosignature of witness\.example/w1 does not verify"):
        open_checkpoint(forged, log.verifier, (witness.verifier,))


def test_keys_of_the_wrong_type_are_refused_for_each_role() -> None:
    log = NoteSigner.generate(ORIGIN)
    with pytest.raises(InvalidError, match="not a cosigning key"):
        cosign(sign_checkpoint(Checkpoint(ORIGIN, 1, bytes(32)), log), log, 1)
    with pytest.raises(InvalidError, match="origin"):
        sign_checkpoint(Checkpoint("another/log", 1, bytes(32)), log)
