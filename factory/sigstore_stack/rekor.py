"""A Rekor v1 transparency log kept in a directory: entries, signed entry timestamps, signed checkpoints.

The directory holds ``entries.jsonl``, one line per entry (its canonical body and integrated time), in
log order. A restart replays it into the Merkle tree, so old entries keep their indexes and proofs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory.sigstore_stack.entries import canonical_body
from factory.sigstore_stack.errors import EntryExists, EntryNotFound, EntryRejected
from factory.sigstore_stack.keys import key_id
from factory.sigstore_stack.merkle import MerkleTree, leaf_hash


class TransparencyLog:
    """The log in ``directory``, signing with ``key``; checkpoints name ``origin`` and are signed as
    ``name`` (no spaces)."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, origin: str, name: str) -> None:
        self._key = key
        self.log_id = key_id(key.public_key())
        self.origin = origin
        self._name = name
        self._lock = threading.Lock()
        self._tree = MerkleTree()
        self._entries: list[tuple[bytes, int]] = []  # (canonical body, integrated time)
        self._index: dict[str, int] = {}  # UUID (hex leaf hash) -> log index
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / "entries.jsonl"
        self._load()

    def _load(self) -> None:
        data = self._path.read_bytes() if self._path.exists() else b""
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            # A crash in the middle of an append: that entry was never acknowledged.
            with self._path.open("r+b") as f:
                f.truncate(len(complete))
        for line in complete.splitlines():
            record = json.loads(line)
            self._remember(base64.b64decode(record["body"]), record["integratedTime"])

    def _remember(self, body: bytes, integrated_time: int) -> int:
        index = self._tree.append(leaf_hash(body))
        self._entries.append((body, integrated_time))
        self._index[leaf_hash(body).hex()] = index
        return index

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, proposed: Any) -> dict[str, Any]:
        """Check ``proposed`` (a hashedrekord or dsse entry as the client posts it), append it durably and
        return the Rekor answer ``{uuid: entry}`` with its inclusion proof, checkpoint and SET.

        Raises ``EntryRejected`` for a bad entry and ``EntryExists`` for one already in the log."""
        body = canonical_body(proposed)
        uuid = leaf_hash(body).hex()
        with self._lock:
            if uuid in self._index:
                raise EntryExists(f"an equivalent entry already exists in the log with UUID {uuid}")
            integrated_time = int(time.time())
            line = json.dumps({"body": base64.b64encode(body).decode(), "integratedTime": integrated_time})
            with self._path.open("ab") as f:
                f.write(line.encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            index = self._remember(body, integrated_time)
            return self._render(index)

    def entry(self, uuid: str) -> dict[str, Any]:
        """The answer for the entry with ``uuid`` (64 hex digits, or 80 with Rekor's tree ID prefix)."""
        with self._lock:
            index = self._index.get(uuid[-64:].lower())
            if index is None:
                raise EntryNotFound(f"no entry with UUID {uuid}")
            return self._render(index)

    def entry_at(self, index: int) -> dict[str, Any]:
        """The answer for the entry at log index ``index``."""
        with self._lock:
            if not 0 <= index < len(self._entries):
                raise EntryNotFound(f"no entry at index {index}")
            return self._render(index)

    def retrieve(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers for a ``/entries/retrieve`` query: entries matching any of the proposed ``entries``,
        ``entryUUIDs`` or ``logIndexes``; unknown ones are left out."""
        found: list[dict[str, Any]] = []
        for proposed in query.get("entries") or []:
            with contextlib.suppress(EntryRejected, EntryNotFound):
                found.append(self.entry(leaf_hash(canonical_body(proposed)).hex()))
        for uuid in query.get("entryUUIDs") or []:
            with contextlib.suppress(EntryNotFound):
                found.append(self.entry(str(uuid)))
        for index in query.get("logIndexes") or []:
            with contextlib.suppress(EntryNotFound, ValueError, TypeError):
                found.append(self.entry_at(int(index)))
        return found

    def info(self) -> dict[str, Any]:
        """The answer for ``GET /api/v1/log``: tree size, root hash and signed tree head."""
        with self._lock:
            size = len(self._entries)
            root = self._tree.root(size)
            return {"rootHash": root.hex(), "treeSize": size, "signedTreeHead": self._checkpoint(size, root),
                    "treeID": self.origin.rsplit(" ", 1)[-1], "inactiveShards": []}

    def _render(self, index: int) -> dict[str, Any]:
        body, integrated_time = self._entries[index]
        size = len(self._entries)
        root = self._tree.root(size)
        encoded = base64.b64encode(body).decode()
        promise = rfc8785.dumps({"body": encoded, "integratedTime": integrated_time,
                                 "logID": self.log_id.hex(), "logIndex": index})
        set_signature = self._key.sign(promise, ec.ECDSA(hashes.SHA256()))
        proof = {"checkpoint": self._checkpoint(size, root),
                 "hashes": [h.hex() for h in self._tree.inclusion_proof(index, size)],
                 "logIndex": index, "rootHash": root.hex(), "treeSize": size}
        entry = {"body": encoded, "integratedTime": integrated_time, "logID": self.log_id.hex(), "logIndex": index,
                 "verification": {"inclusionProof": proof,
                                  "signedEntryTimestamp": base64.b64encode(set_signature).decode()}}
        return {leaf_hash(body).hex(): entry}

    def _checkpoint(self, size: int, root: bytes) -> str:
        """The signed note for the tree head (``size``, ``root``)."""
        note = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        signature = self._key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        return f"{note}\n\u2014 {self._name} {base64.b64encode(self.log_id[:4] + signature).decode()}\n"

    def public_key_pem(self) -> str:
        """The log's public key, PEM."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
