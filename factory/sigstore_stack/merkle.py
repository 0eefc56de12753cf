"""An RFC 6962 Merkle tree over a log's entries: tree heads and inclusion proofs."""

from __future__ import annotations

import hashlib


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf holding ``data``."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1): where RFC 6962 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """An append-only list of leaf hashes with RFC 6962 tree hashes and inclusion proofs."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        # Hashes of complete subtrees (power-of-two sizes): appends never change them.
        self._complete: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, leaf: bytes) -> int:
        """Add the leaf hash ``leaf``; returns its index."""
        self._leaves.append(leaf)
        return len(self._leaves) - 1

    def root(self, size: int) -> bytes:
        """The tree head of the first ``size`` leaves."""
        if not 0 <= size <= len(self._leaves):
            raise IndexError(f"no tree of size {size}: the log has {len(self._leaves)} leaves")
        return self._hash(0, size) if size else hashlib.sha256(b"").digest()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves, bottom up."""
        if not 0 <= index < size <= len(self._leaves):
            raise IndexError(f"no leaf {index} in a tree of size {size}")
        path: list[bytes] = []
        start = 0
        while size > 1:
            k = _split(size)
            if index < k:
                path.append(self._hash(start + k, size - k))
                size = k
            else:
                path.append(self._hash(start, k))
                start, index, size = start + k, index - k, size - k
        path.reverse()
        return path

    def _hash(self, start: int, size: int) -> bytes:
        if size == 1:
            return self._leaves[start]
        cached = self._complete.get((start, size))
        if cached is not None:
            return cached
        k = _split(size)
        digest = _node_hash(self._hash(start, k), self._hash(start + k, size - k))
        if size & (size - 1) == 0:
            self._complete[(start, size)] = digest
        return digest
