"""RFC 9162 §2.1 Merkle trees (the Certificate Transparency tree, same as RFC 6962): hashing, proofs,
and their verification.

- leaf ``SHA-256(0x00 ‖ entry)``, node ``SHA-256(0x01 ‖ left ‖ right)``, empty tree ``SHA-256("")``;
- a tree of n > 1 leaves splits at k, the largest power of two below n.

Proofs are built from the hashes of *complete* subtrees (2^level leaves starting at a multiple of 2^level),
which the log keeps on disk (``HashSource``): any other subtree hash is combined from at most log2(n) of
them, so a proof costs O(log² n) reads of 32 bytes at most, and usually far fewer. ``StoredHashes``
numbers them in the order they are computed (the scheme of Go's ``golang.org/x/mod/sumdb/tlog``), so a
log appends them to one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (recursive definition; for small trees and tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# --- stored hashes ----------------------------------------------------------------------------------


def stored_hash_index(level: int, index: int) -> int:
    """Position of the hash of the complete subtree (level, index) in the append order of all of them."""
    for _ in range(level):
        index = 2 * index + 1
    position = 0
    while index > 0:
        position += index
        index >>= 1
    return position + level


def stored_hash_count(size: int) -> int:
    """How many complete-subtree hashes a tree of ``size`` leaves has (its stored hashes file length / 32)."""
    if size == 0:
        return 0
    count = stored_hash_index(0, size - 1) + 1
    i = size - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def leaves_covered(stored: int) -> int:
    """The largest tree size whose stored hashes all fit in the first ``stored`` ones."""
    low, high = 0, max(1, stored)
    while low < high:  # stored_hash_count is increasing; find the largest size with count <= stored
        middle = (low + high + 1) // 2
        if stored_hash_count(middle) <= stored:
            low = middle
        else:
            high = middle - 1
    return low


class HashSource(Protocol):
    def stored(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of 2^level leaves starting at leaf index·2^level."""
        ...


class Frontier:
    """The right edge of a growing tree: the roots of its complete subtrees, largest first.

    ``append`` returns the stored hashes a new leaf completes (in stored order), so a log can write them;
    ``root`` is the tree's MTH in O(log n)."""

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} peaks")
        self.size = size
        self.peaks = list(peaks)

    @classmethod
    def from_source(cls, source: HashSource, size: int) -> Frontier:
        peaks: list[bytes] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                peaks.append(source.stored(level, start >> level))
                start += 1 << level
        return cls(size, peaks)

    def append(self, leaf: bytes) -> list[bytes]:
        new = [leaf]
        current = leaf
        index = self.size
        while index & 1:
            current = node_hash(self.peaks.pop(), current)
            new.append(current)
            index >>= 1
        self.peaks.append(current)
        self.size += 1
        return new

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        current = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            current = node_hash(peak, current)
        return current


class MemoryHashes:
    """All stored hashes of a tree in memory (for tests, verification and small logs)."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.hashes: list[bytes] = []
        self.frontier = Frontier()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        self.hashes.extend(self.frontier.append(leaf))

    def stored(self, level: int, index: int) -> bytes:
        return self.hashes[stored_hash_index(level, index)]


# --- proofs from stored hashes ----------------------------------------------------------------------


def subtree_hash(source: HashSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a subtree of the RFC's recursion (``start`` a multiple of the power of two
    ≥ end - start); O(log n) stored hashes."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return source.stored(level, start >> level)
    k = split_point(size)
    return node_hash(subtree_hash(source, start, start + k), subtree_hash(source, start + k, end))


def tree_root(source: HashSource, size: int) -> bytes:
    return subtree_hash(source, 0, size)


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            proof.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(source, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(source: HashSource, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 (empty when first is 0 or equals second)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first == 0 or first == second:
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                proof.append(subtree_hash(source, start, end))
            break
        k = split_point(n)
        if m <= k:
            proof.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(source, start, start + k))
            start += k
            m -= k
            whole = False
    proof.reverse()
    return proof


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2, step by step) -------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to, or ``None`` when the proof has the wrong shape."""
    if index >= size or index < 0:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Whether ``proof`` shows that the tree of ``second`` leaves extends the one of ``first`` leaves."""
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # every tree extends the empty one
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
