"""RFC 9162 hashing and proofs: the published RFC 6962 vectors, a second implementation written
straight from the RFC's recursive definitions, every size up to 64, and property tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.audit import merkle
from dockyard.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryHashes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion,
    stored_hash_count,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots_hex"]]


# --- the second implementation: RFC 9162 §2.1 read literally, on lists ------------------------------


def ref_mth(data: list[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if complete else [ref_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, data[:k], complete), ref_mth(data[k:])]
    return [*ref_subproof(m - k, data[k:], False), ref_mth(data[:k])]


def ref_proof(m: int, data: list[bytes]) -> list[bytes]:
    return ref_subproof(m, data, True) if 0 < m < len(data) else []


def ref_root_from_path(m: int, n: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """Top-down: the last proof element is the sibling at the root's split (independent of the
    bit-shifting verifier)."""
    if n == 1:
        return leaf if not path else None
    if not path:
        return None
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        left = ref_root_from_path(m, k, leaf, path[:-1])
        return None if left is None else hashlib.sha256(b"\x01" + left + path[-1]).digest()
    right = ref_root_from_path(m - k, n - k, leaf, path[:-1])
    return None if right is None else hashlib.sha256(b"\x01" + path[-1] + right).digest()


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


# --- the published vectors --------------------------------------------------------------------------


def test_roots_of_the_rfc6962_vectors() -> None:
    hashes = MemoryHashes()
    assert tree_root(hashes, 0) == EMPTY_ROOT == bytes.fromhex(VECTORS["empty_root_hex"])
    for size, (leaf, root) in enumerate(zip(LEAVES, ROOTS, strict=True), start=1):
        hashes.append(leaf_hash(leaf))
        assert tree_root(hashes, size) == root
        assert hashes.frontier.root() == root
        assert merkle.root_of([leaf_hash(x) for x in LEAVES[:size]]) == root


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-{v['size']}")
def test_inclusion_proofs_of_the_rfc6962_vectors(vector: dict[str, object]) -> None:
    index, size = int(str(vector["index"])), int(str(vector["size"]))
    expected = [bytes.fromhex(h) for h in vector["proof_hex"]]  # type: ignore[attr-defined]
    hashes = MemoryHashes(leaf_hash(x) for x in LEAVES)
    assert inclusion_proof(hashes, index, size) == expected
    assert verify_inclusion(index, size, leaf_hash(LEAVES[index]), expected, ROOTS[size - 1])


@pytest.mark.parametrize(
    "vector", VECTORS["consistency"], ids=lambda v: f"{v['first']}-{v['second']}"
)
def test_consistency_proofs_of_the_rfc6962_vectors(vector: dict[str, object]) -> None:
    first, second = int(str(vector["first"])), int(str(vector["second"]))
    expected = [bytes.fromhex(h) for h in vector["proof_hex"]]  # type: ignore[attr-defined]
    hashes = MemoryHashes(leaf_hash(x) for x in LEAVES)
    assert consistency_proof(hashes, first, second) == expected
    assert verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], expected)


def test_the_base64_consistency_vector() -> None:
    import base64

    vector = VECTORS["consistency_json_6_7"]
    proof = [base64.b64decode(h) for h in vector["proof"]]
    root1, root2 = base64.b64decode(vector["root1"]), base64.b64decode(vector["root2"])
    assert verify_consistency(6, 7, root1, root2, proof)
    assert not verify_consistency(6, 7, b"WrongRoot", root2, proof)


def test_corrupted_vector_proofs_fail() -> None:
    """The probes of transparency-dev's verifier tests: wrong index, size, leaf, root; garbage
    before or after; a flipped bit; a missing or an extra element."""
    index, size = 5, 8
    leaf = leaf_hash(LEAVES[index])
    proof = inclusion_proof(MemoryHashes(leaf_hash(x) for x in LEAVES), index, size)
    root = ROOTS[size - 1]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, b"WrongLeaf", proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, some),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [proof[0], some, *proof[1:]], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, leaf, flipped, root))
    for probe in probes:
        assert not verify_inclusion(*probe), probe[:2]


def test_consistency_edge_cases_of_the_vectors() -> None:
    one, two = b"don't care 1", b"don't care 2"
    assert not verify_consistency(0, 0, one, two, [])
    assert not verify_consistency(1, 1, one, two, [])
    assert verify_consistency(0, 0, one, one, [])
    assert verify_consistency(0, 1, one, two, [])
    assert verify_consistency(1, 1, two, two, [])
    assert not verify_consistency(1, 0, one, two, [])
    assert not verify_consistency(2, 1, one, two, [])
    assert not verify_consistency(1, 2, one, two, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


# --- against the second implementation, exhaustively for small trees --------------------------------


def test_roots_and_every_inclusion_proof_up_to_64_match_the_rfc_definitions() -> None:
    data = entries(64)
    hashes = MemoryHashes(leaf_hash(x) for x in data)
    for size in range(1, 65):
        root = ref_mth(data[:size])
        assert tree_root(hashes, size) == root
        for index in range(size):
            proof = inclusion_proof(hashes, index, size)
            assert proof == ref_path(index, data[:size])
            leaf = leaf_hash(data[index])
            assert root_from_inclusion(index, size, leaf, proof) == root
            assert ref_root_from_path(index, size, leaf, proof) == root


def test_every_consistency_proof_up_to_64_matches_the_rfc_definitions() -> None:
    data = entries(64)
    hashes = MemoryHashes(leaf_hash(x) for x in data)
    roots = [ref_mth(data[:n]) for n in range(65)]
    for second in range(1, 65):
        for first in range(0, second + 1):
            proof = consistency_proof(hashes, first, second)
            assert proof == ref_proof(first, data[:second]), (first, second)
            assert verify_consistency(first, second, roots[first], roots[second], proof)


def test_stored_hashes_are_numbered_in_the_order_a_log_appends_them() -> None:
    hashes = MemoryHashes()
    for n, leaf in enumerate(leaf_hash(x) for x in entries(200)):
        hashes.append(leaf)
        assert len(hashes.hashes) == stored_hash_count(n + 1)
        assert merkle.leaves_covered(len(hashes.hashes)) == n + 1
    data = entries(200)
    for level in range(8):
        for index in range(200 >> level):
            start, width = index << level, 1 << level
            assert hashes.stored(level, index) == ref_mth(data[start : start + width])


def test_a_frontier_rebuilt_from_stored_hashes_continues_the_tree() -> None:
    data = entries(100)
    hashes = MemoryHashes(leaf_hash(x) for x in data[:37])
    frontier = Frontier.from_source(hashes, 37)
    assert frontier.root() == ref_mth(data[:37])
    for item in data[37:]:
        frontier.append(leaf_hash(item))
    assert frontier.root() == ref_mth(data)


# --- properties -------------------------------------------------------------------------------------


def _altered(value: bytes, position: int, bit: int) -> bytes:
    position %= len(value)
    return value[:position] + bytes([value[position] ^ (1 << bit)]) + value[position + 1 :]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=1500),
    data=st.data(),
)
def test_inclusion_proofs_verify_and_fail_for_any_altered_byte(
    size: int, data: st.DataObject
) -> None:
    hashes = MemoryHashes(leaf_hash(b"%d" % i) for i in range(size))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = tree_root(hashes, size)
    leaf = leaf_hash(b"%d" % index)
    proof = inclusion_proof(hashes, index, size)
    assert len(proof) <= (size - 1).bit_length()
    assert verify_inclusion(index, size, leaf, proof, root)
    position = data.draw(st.integers(min_value=0, max_value=10_000))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    assert not verify_inclusion(index, size, _altered(leaf, position, bit), proof, root)
    assert not verify_inclusion(index, size, leaf, proof, _altered(root, position, bit))
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        changed = list(proof)
        changed[which] = _altered(changed[which], position, bit)
        assert not verify_inclusion(index, size, leaf, changed, root)


@settings(max_examples=150, deadline=None)
@given(second=st.integers(min_value=2, max_value=1500), data=st.data())
def test_consistency_proofs_verify_and_fail_for_any_altered_byte(
    second: int, data: st.DataObject
) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second - 1))
    hashes = MemoryHashes(leaf_hash(b"%d" % i) for i in range(second))
    old, new = tree_root(hashes, first), tree_root(hashes, second)
    proof = consistency_proof(hashes, first, second)
    assert verify_consistency(first, second, old, new, proof)
    position = data.draw(st.integers(min_value=0, max_value=10_000))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    assert not verify_consistency(first, second, _altered(old, position, bit), new, proof)
    assert not verify_consistency(first, second, old, _altered(new, position, bit), proof)
    which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    changed = list(proof)
    changed[which] = _altered(changed[which], position, bit)
    assert not verify_consistency(first, second, old, new, changed)
    assert not verify_consistency(first, second, old, new, proof[:-1])
