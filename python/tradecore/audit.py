"""Tamper-evident audit trail: a hash-chained, Merkle-summarised, append-only log with signed
checkpoints (the SEC 17a-4(f) audit-trail alternative).

Layout of a log directory::

    segment-<first index, 20 digits>.audit   records, in order; a new segment past segment_bytes
    checkpoints.audit                         signed checkpoints, in order
    .lock                                     held (flock) by the one writer

Every file starts with an 8-byte magic and a big-endian u32 format version (segments add the u64
index of their first record). Then frames: ``u32 body length | u32 CRC-32 of the body | body``.

A record body (all integers big-endian)::

    u64 index | i64 time_ns | u16 len, kind (UTF-8) | u16 len, source (UTF-8)
    | u32 len, payload | prev_hash (32) | hash (32)

``hash = SHA-256(b"tradecore/audit/record/v1\\x00" || body without its last 32 bytes)``: it covers
the index, time, kind, source, payload and the previous record's hash (32 zero bytes for record
0), so each record commits to the whole history before it. The Merkle tree is RFC 9162's (RFC
6962's) over the record hashes: ``leaf = SHA-256(0x00 || record hash)``, ``node = SHA-256(0x01
|| left || right)``, the split at the largest power of two below the size; its inclusion and
consistency proofs are the standard ones.

A checkpoint body::

    u64 tree_size | root (32) | head (32, hash of record tree_size - 1) | i64 time_ns
    | key_id (32, SHA-256 of the raw Ed25519 public key) | signature (64)

signed with Ed25519 over ``b"tradecore/audit/checkpoint/v1\\x00" || tree_size || root || head ||
time_ns``.

Durability: ``append`` writes the frame with one ``write`` and, with ``fsync=True`` (default),
``fdatasync``s before returning, so a returned index survives a power loss. With
``fsync=False`` records reach the OS at once (they survive a crash of the process) and the disk
on ``sync()``, ``checkpoint()`` and ``close()``. A crash during a write can leave a torn last
frame: ``open`` refuses such a log (``TornTailError``) unless ``recover=True``, which keeps the
torn bytes in ``torn-<segment>-<offset>.bin``, truncates them and appends an ``audit.recovered``
record saying so; it refuses even then when a checkpoint covers the lost record. There is no
update or delete path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HASH_SIZE = 32
SIG_SIZE = 64
ZERO_HASH = bytes(HASH_SIZE)
EMPTY_ROOT = hashlib.sha256(b"").digest()
RECORD_DOMAIN = b"tradecore/audit/record/v1\x00"
CHECKPOINT_DOMAIN = b"tradecore/audit/checkpoint/v1\x00"

SEGMENT_MAGIC = b"TCAUDSEG"
CHECKPOINT_MAGIC = b"TCAUDCKP"
EXPORT_MAGIC = b"TCAUDEXP"
VERSION = 1
_SEG_HEADER = struct.Struct(">8sIQ")  # magic, version, first index
_FILE_HEADER = struct.Struct(">8sI")  # magic, version
_FRAME = struct.Struct(">II")  # body length, CRC-32
_CKP = struct.Struct(">Q32s32sq32s64s")
_RECORD_FIXED = struct.Struct(">Qq")
# The smallest body of any frame: a record with one-byte kind and source and no payload.
_MIN_BODY = _RECORD_FIXED.size + 2 + 1 + 2 + 1 + 4 + 2 * 32

DEFAULT_SEGMENT_BYTES = 64 << 20
MAX_PAYLOAD = 16 << 20
MAX_NAME = 1024
MAX_FRAME = MAX_PAYLOAD + 2 * MAX_NAME + 256
KEY_FILE_ENV = "TRADECORE_AUDIT_KEY_FILE"
PUBLIC_KEY_FILE_ENV = "TRADECORE_AUDIT_PUBLIC_KEY_FILE"
CHECKPOINTS_FILE = "checkpoints.audit"
RECOVERED_KIND = "audit.recovered"
_SEGMENT_RE = re.compile(r"^segment-(\d{20})\.audit$")


class AuditError(Exception):
    """A log that cannot be opened or read as it is."""


class CorruptLogError(AuditError):
    """The log on disk fails verification; ``problem`` names the first bad record."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class TornTailError(AuditError):
    """The last frame of a file is incomplete (a crash during a write)."""

    def __init__(self, file: Path, offset: int, size: int, index: int) -> None:
        super().__init__(
            f"{file}: torn last record at byte {offset} ({size} bytes, record {index} would "
            "have been there), left by a crash during a write; the record was never "
            "acknowledged. Open with recover=True to keep the bytes aside, truncate them and "
            "record the recovery"
        )
        self.file, self.offset, self.size, self.index = file, offset, size, index


# --- RFC 9162 Merkle tree -------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (already ``leaf_hash``ed): the root of a tree of ``len(leaves)``."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 section 2.1.3.1 over leaf hashes."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_path(leaves[:k], index), merkle_root(leaves[k:])]
    return [*inclusion_path(leaves[k:], index - k), merkle_root(leaves[:k])]


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 9162 section 2.1.4.1 over leaf hashes (empty when
    old_size is 0 or n)."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(leaves, old_size, True)


def _subproof(leaves: Sequence[bytes], m: int, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, complete), merkle_root(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, False), merkle_root(leaves[:k])]


def _hashes_ok(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the
    tree of ``tree_size`` leaves whose root is ``root``?"""
    if not _hashes_ok(leaf, root, *proof) or not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: does ``proof`` show the tree of ``old_size`` with root
    ``old_root`` is a prefix of the tree of ``new_size`` with root ``new_root``? Equal sizes
    need equal roots and an empty proof; size 0 needs the empty root and an empty proof."""
    if not _hashes_ok(old_root, new_root, *proof) or not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
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
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class _CompactRange:
    """The roots of the perfect subtrees covering leaves [0, n): O(log n) state for the root
    of a growing tree."""

    def __init__(self) -> None:
        self.size = 0
        self.nodes: list[bytes] = []  # left to right, largest first

    def append(self, leaf: bytes) -> None:
        self.nodes.append(leaf)
        self.size += 1
        # Merge the two rightmost subtrees while they are the same height: as many times as
        # the new size has trailing zero bits.
        n = self.size
        while n & 1 == 0:
            right = self.nodes.pop()
            self.nodes[-1] = node_hash(self.nodes[-1], right)
            n >>= 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            r = node_hash(left, r)
        return r


# --- records and checkpoints ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    index: int
    time_ns: int
    kind: str
    source: str
    payload: bytes
    prev_hash: bytes
    hash: bytes

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.hash)

    def computed_hash(self) -> bytes:
        fields = (self.index, self.time_ns, self.kind, self.source, self.payload)
        return record_hash(*fields, self.prev_hash)

    def to_json(self) -> dict[str, object]:
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "type": "record",
            "index": self.index,
            "time_ns": self.time_ns,
            "kind": self.kind,
            "source": self.source,
            "payload_hex": self.payload.hex(),
            "payload_text": text,
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
            "leaf_hash": self.leaf_hash.hex(),
        }


def _record_prefix(
    index: int, time_ns: int, kind: bytes, source: bytes, payload: bytes, prev: bytes
) -> bytes:
    return b"".join(
        (
            _RECORD_FIXED.pack(index, time_ns),
            struct.pack(">H", len(kind)),
            kind,
            struct.pack(">H", len(source)),
            source,
            struct.pack(">I", len(payload)),
            payload,
            prev,
        )
    )


def record_hash(
    index: int, time_ns: int, kind: str, source: str, payload: bytes, prev_hash: bytes
) -> bytes:
    """The record hash: SHA-256 of the domain tag and the record's canonical encoding."""
    prefix = _record_prefix(index, time_ns, kind.encode(), source.encode(), payload, prev_hash)
    return hashlib.sha256(RECORD_DOMAIN + prefix).digest()


def _decode_record(body: bytes) -> Record:
    """A record from its frame body; ValueError when the body does not parse."""
    try:
        index, time_ns = _RECORD_FIXED.unpack_from(body, 0)
        pos = _RECORD_FIXED.size
        (n,) = struct.unpack_from(">H", body, pos)
        kind = body[pos + 2 : pos + 2 + n].decode("utf-8")
        pos += 2 + n
        (n,) = struct.unpack_from(">H", body, pos)
        source = body[pos + 2 : pos + 2 + n].decode("utf-8")
        pos += 2 + n
        (n,) = struct.unpack_from(">I", body, pos)
        payload = body[pos + 4 : pos + 4 + n]
        pos += 4 + n
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"record body does not parse: {exc}") from None
    if len(payload) != n or len(body) != pos + 2 * HASH_SIZE:
        raise ValueError("record body has the wrong length for its fields")
    return Record(index, time_ns, kind, source, payload, body[pos : pos + 32], body[pos + 32 :])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the log had ``tree_size`` records, Merkle root ``root`` and last
    record hash ``head`` at ``time_ns``."""

    tree_size: int
    root: bytes
    head: bytes
    time_ns: int
    key_id: bytes
    signature: bytes

    def signed_message(self) -> bytes:
        return checkpoint_message(self.tree_size, self.root, self.head, self.time_ns)

    def verify_signature(self, public_key: Ed25519PublicKey) -> bool:
        """True when ``public_key`` is the checkpoint's key and its signature verifies."""
        if self.key_id != key_id(public_key):
            return False
        try:
            public_key.verify(self.signature, self.signed_message())
        except InvalidSignature:
            return False
        return True

    def encode(self) -> bytes:
        return _CKP.pack(
            self.tree_size, self.root, self.head, self.time_ns, self.key_id, self.signature
        )

    @classmethod
    def decode(cls, body: bytes) -> Checkpoint:
        if len(body) != _CKP.size:
            raise ValueError(f"checkpoint body is {len(body)} bytes, not {_CKP.size}")
        return cls(*_CKP.unpack(body))

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> Checkpoint:
        """The inverse of ``to_json`` (a checkpoint kept outside the log); ValueError naming
        the field that is missing or malformed."""
        try:
            fields = []
            for name, size in (("root", 32), ("head", 32), ("key_id", 32), ("signature", 64)):
                value = bytes.fromhex(str(obj[name]))
                if len(value) != size:
                    raise ValueError(f"checkpoint.{name}: must be {size} bytes of hex")
                fields.append(value)
            tree_size, time_ns = obj["tree_size"], obj["time_ns"]
        except KeyError as exc:
            raise ValueError(f"checkpoint.{exc.args[0]}: missing") from None
        if not isinstance(tree_size, int) or tree_size < 0:
            raise ValueError("checkpoint.tree_size: must be a non-negative integer")
        if not isinstance(time_ns, int):
            raise ValueError("checkpoint.time_ns: must be an integer")
        root, head, kid, sig = fields
        return cls(tree_size, root, head, time_ns, kid, sig)

    def to_json(self) -> dict[str, object]:
        return {
            "type": "checkpoint",
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "head": self.head.hex(),
            "time_ns": self.time_ns,
            "key_id": self.key_id.hex(),
            "signature": self.signature.hex(),
        }


def checkpoint_message(tree_size: int, root: bytes, head: bytes, time_ns: int) -> bytes:
    return CHECKPOINT_DOMAIN + struct.pack(">Q32s32sq", tree_size, root, head, time_ns)


# --- keys ----------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(
        public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).digest()


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo), or 32 raw bytes, or their hex."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            raw = bytes.fromhex(text.decode()) if len(text) == 64 else bytes(data)
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"public_key: not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("public_key: not an Ed25519 public key")
    return key


class Signer:
    """An Ed25519 signing key. Its repr and str show only the key id; the key is never
    logged or exported."""

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Signer:
        """Load a PKCS#8 PEM Ed25519 private key (``openssl genpkey -algorithm ed25519``)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"audit key file {path}: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            # The message of the library could quote key material: say only what is wrong.
            raise ValueError(
                f"audit key file {path}: not an unencrypted PEM Ed25519 private key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"audit key file {path}: not an Ed25519 private key")
        return cls(key)

    @classmethod
    def from_env(cls) -> Signer | None:
        """The key named by ``TRADECORE_AUDIT_KEY_FILE``; None when the variable is unset."""
        path = os.environ.get(KEY_FILE_ENV, "")
        return cls.from_file(path) if path else None

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the private key as PKCS#8 PEM, readable by the owner only; refuses to
        overwrite a file."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())

    def public_key_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id.hex()[:16]})"

    __str__ = __repr__


# --- reading files -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    offset: int  # of the frame header in its file
    body: bytes | None  # None when the CRC does not match
    end: int


@dataclass(frozen=True, slots=True)
class _Torn:
    offset: int
    size: int


def _frames(data: bytes, start: int) -> Iterator[_Frame | _Torn]:
    """The frames of ``data`` from ``start``; a ``_Torn`` for an incomplete last frame."""
    pos, n = start, len(data)
    while pos < n:
        if n - pos < _FRAME.size:
            yield _Torn(pos, n - pos)
            return
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > MAX_FRAME:
            yield _Frame(pos, None, n)  # a length no writer produces: corrupt from here
            return
        if end > n:
            # A length that runs past the end: a write cut short, unless a whole frame follows
            # (then the length field itself was changed).
            yield _Frame(pos, None, n) if _whole_frame_after(data, pos + 1) else _Torn(pos, n - pos)
            return
        body = data[pos + _FRAME.size : end]
        yield _Frame(pos, body if zlib.crc32(body) == crc else None, end)
        pos = end


def _whole_frame_after(data: bytes, start: int) -> bool:
    """Whether a complete frame with a matching CRC starts anywhere from ``start`` on."""
    n = len(data)
    for pos in range(start, n - _FRAME.size + 1):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length >= _MIN_BODY and end <= n and zlib.crc32(data[pos + _FRAME.size : end]) == crc:
            return True
    return False


def _frame(body: bytes) -> bytes:
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _segments(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.iterdir():
        m = _SEGMENT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, and where: ``index`` is the record (or, for ``checkpoint`` problems,
    the checkpoint's position in its file; ``record`` then the first record it implicates)."""

    kind: str  # frame | index | hash | chain | torn | segment | checkpoint
    index: int
    message: str
    record: int | None = None

    def __str__(self) -> str:
        return self.message


class _Chain:
    """Checks records one by one: index in sequence, hash matching the contents, prev_hash
    matching the previous record's hash."""

    def __init__(self) -> None:
        self.count = 0
        self.head = ZERO_HASH
        self.leaves = bytearray()

    def check(self, rec: Record, where: str) -> Problem | None:
        i = self.count
        if rec.index != i:
            return Problem(
                "index",
                i,
                f"record {i} ({where}) carries index {rec.index}: a record was deleted, "
                "inserted or moved here",
            )
        if rec.computed_hash() != rec.hash:
            return Problem(
                "hash",
                i,
                f"record {i} ({where}): its contents do not match its hash (the kind, source, "
                "time, payload or the stored hash was edited)",
            )
        if rec.prev_hash != self.head:
            return Problem(
                "chain",
                i,
                f"record {i} ({where}): prev_hash does not match record {i - 1}'s hash "
                "(a record before it was edited, deleted, inserted or reordered)",
            )
        self.count += 1
        self.head = rec.hash
        self.leaves += leaf_hash(rec.hash)
        return None


def _scan_records(directory: Path) -> tuple[_Chain, Problem | None, tuple[Path, _Torn] | None]:
    chain = _Chain()
    segments = _segments(directory)
    for pos, (first, path) in enumerate(segments):
        last_segment = pos == len(segments) - 1
        data = path.read_bytes()
        if len(data) < _SEG_HEADER.size:
            if last_segment:
                return chain, None, (path, _Torn(0, len(data)))
            return chain, Problem("segment", chain.count, f"{path.name}: header is cut"), None
        magic, version, header_first = _SEG_HEADER.unpack_from(data, 0)
        if magic != SEGMENT_MAGIC or version != VERSION:
            msg = f"{path.name}: not an audit segment of version {VERSION}"
            return chain, Problem("segment", chain.count, msg), None
        if first != chain.count or header_first != chain.count:
            msg = (
                f"{path.name} starts at record {header_first} but record {chain.count} comes "
                "next: a segment was deleted, inserted or renamed"
            )
            return chain, Problem("segment", chain.count, msg), None
        for fr in _frames(data, _SEG_HEADER.size):
            where = f"{path.name} byte {fr.offset}"
            if isinstance(fr, _Torn):
                if last_segment:
                    return chain, None, (path, fr)
                msg = f"record {chain.count} ({where}) is cut short inside the log"
                return chain, Problem("torn", chain.count, msg), None
            if fr.body is None:
                msg = (
                    f"record {chain.count} ({where}): frame checksum does not match "
                    "(its bytes were changed)"
                )
                return chain, Problem("frame", chain.count, msg), None
            try:
                rec = _decode_record(fr.body)
            except ValueError as exc:
                return chain, Problem("frame", chain.count, f"record {chain.count}: {exc}"), None
            problem = chain.check(rec, where)
            if problem:
                return chain, problem, None
    return chain, None, None


def _read_checkpoints(path: Path) -> tuple[list[Checkpoint], Problem | None, _Torn | None]:
    out: list[Checkpoint] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out, None, None
    if len(data) < _FILE_HEADER.size:
        return out, None, _Torn(0, len(data))
    magic, version = _FILE_HEADER.unpack_from(data, 0)
    if magic != CHECKPOINT_MAGIC or version != VERSION:
        msg = f"{path.name}: not an audit checkpoint file of version {VERSION}"
        return out, Problem("checkpoint", 0, msg), None
    for fr in _frames(data, _FILE_HEADER.size):
        if isinstance(fr, _Torn):
            return out, None, fr
        if fr.body is None or len(fr.body) != _CKP.size:
            msg = f"checkpoint {len(out)} ({path.name} byte {fr.offset}): its bytes were changed"
            return out, Problem("checkpoint", len(out), msg), None
        out.append(Checkpoint.decode(fr.body))
    return out, None, None


def _check_checkpoints(
    checkpoints: Sequence[Checkpoint],
    leaves: bytearray,
    count: int,
    keys: dict[bytes, Ed25519PublicKey] | None,
    skip_unknown_keys: bool = False,
) -> Problem | None:
    """Each checkpoint: signed by one of ``keys`` (by key id; unchecked when None, and those of
    other keys skipped with ``skip_unknown_keys``), sizes and times in order, and its size,
    root and head those of the records read (``count`` of them)."""
    # Roots at each checkpoint size, in one pass over the leaves.
    wanted = sorted({c.tree_size for c in checkpoints if c.tree_size <= count})
    roots: dict[int, bytes] = {}
    cr = _CompactRange()
    if 0 in wanted:
        roots[0] = EMPTY_ROOT
    for size in wanted:
        while cr.size < size:
            i = cr.size
            cr.append(bytes(leaves[i * 32 : i * 32 + 32]))
        roots[size] = cr.root()
    prev_size, prev_time, prev_good = 0, -(1 << 63), 0
    for k, c in enumerate(checkpoints):
        key = None if keys is None else keys.get(c.key_id)
        if keys is not None and key is None and not skip_unknown_keys:
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} (size {c.tree_size}) is signed by key {c.key_id.hex()[:16]}, "
                "not one of the given public keys (forged, or a key that was not given)",
                record=prev_good,
            )
        if key is not None and not c.verify_signature(key):
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} (size {c.tree_size}): its signature does not verify with the "
                "given public key (forged or edited)",
                record=prev_good,
            )
        if c.tree_size < prev_size or c.time_ns < prev_time:
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} (size {c.tree_size}) goes back before checkpoint {k - 1} "
                f"(size {prev_size}): checkpoints were reordered",
                record=prev_good,
            )
        if c.tree_size > count:
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} covers {c.tree_size} records but only {count} verify: "
                f"records from index {count} on were deleted or truncated",
                record=count,
            )
        if roots[c.tree_size] != c.root:
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} (size {c.tree_size}): its root does not match the log's; a "
                f"record between index {prev_good} and {c.tree_size - 1} was changed and the "
                "chain rewritten after it, or the checkpoint was edited",
                record=prev_good,
            )
        head_ok = (
            c.head == ZERO_HASH
            if c.tree_size == 0
            else leaf_hash(c.head) == _leaf_at(leaves, c.tree_size - 1)
        )
        if not head_ok:
            return Problem(
                "checkpoint",
                k,
                f"checkpoint {k} (size {c.tree_size}): its head is not the hash of record "
                f"{c.tree_size - 1}",
                record=max(c.tree_size - 1, 0),
            )
        prev_size, prev_time, prev_good = c.tree_size, c.time_ns, c.tree_size
    return None


def _leaf_at(leaves: bytearray, i: int) -> bytes:
    return bytes(leaves[i * HASH_SIZE : (i + 1) * HASH_SIZE])


# --- the log -------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_text(name: str, value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: must be a non-empty string")
    raw = value.encode("utf-8")
    if len(raw) > MAX_NAME:
        raise ValueError(f"{name}: longer than {MAX_NAME} bytes")
    return raw


class AuditLog:
    """The append-only audit log of one directory (one writer at a time: a second ``open`` of
    the same directory raises AuditError). Thread-safe."""

    def __init__(
        self,
        directory: Path,
        signer: Signer | None,
        fsync: bool,
        segment_bytes: int,
        lock_fd: int,
    ) -> None:
        self.directory = directory
        self.signer = signer
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        self._leaves = bytearray()
        self._range = _CompactRange()
        self._head = ZERO_HASH
        self._checkpoints: list[Checkpoint] = []
        self._seg_fd = -1
        self._seg_size = 0
        self._ckp_fd = -1
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        signer: Signer | None = None,
        *,
        fsync: bool = True,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        recover: bool = False,
    ) -> AuditLog:
        """Open (or create) the log in ``directory``, verify every record and checkpoint on
        disk (signatures too when ``signer`` is given) and resume the chain after the last
        record. Raises CorruptLogError naming the first bad record, TornTailError for a torn
        last frame (unless ``recover``), AuditError when another writer holds the log."""
        if segment_bytes < 4096:
            raise ValueError("segment_bytes: must be at least 4096")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise AuditError(f"{path}: the audit log is open in another process") from None
        log = cls(path, signer, fsync, segment_bytes, lock_fd)
        try:
            log._load(recover)
        except BaseException:
            log._release()
            raise
        return log

    def _load(self, recover: bool) -> None:
        chain, problem, torn = _scan_records(self.directory)
        if problem:
            raise CorruptLogError(problem)
        ckp_path = self.directory / CHECKPOINTS_FILE
        checkpoints, ckp_problem, ckp_torn = _read_checkpoints(ckp_path)
        if ckp_problem:
            raise CorruptLogError(ckp_problem)
        # The signatures this process can check: those of its own key (after a key rotation
        # the older checkpoints are checked by ``verify`` with every public key).
        keys = {self.signer.key_id: self.signer.public_key} if self.signer else None
        ckp_problem = _check_checkpoints(checkpoints, chain.leaves, chain.count, keys, True)
        if ckp_problem:
            raise CorruptLogError(ckp_problem)
        if ckp_torn is not None and not recover:
            raise TornTailError(ckp_path, ckp_torn.offset, ckp_torn.size, len(checkpoints))
        if torn is not None and not recover:
            raise TornTailError(torn[0], torn[1].offset, torn[1].size, chain.count)
        self._leaves = chain.leaves
        for i in range(chain.count):
            self._range.append(_leaf_at(chain.leaves, i))
        self._head = chain.head
        self._checkpoints = checkpoints
        recovered: list[dict[str, object]] = []
        if ckp_torn is not None:
            recovered.append(self._cut(ckp_path, ckp_torn))
        if torn is not None:
            recovered.append(self._cut(*torn))
        self._open_files()
        for info in recovered:
            payload = json.dumps(info, sort_keys=True).encode()
            self.append(RECOVERED_KIND, payload, time.time_ns(), "tradecore.audit")

    def _cut(self, path: Path, torn: _Torn) -> dict[str, object]:
        """Keep the torn bytes aside, then truncate them from ``path``."""
        data = path.read_bytes()[torn.offset :]
        aside = self.directory / f"torn-{path.stem}-{torn.offset}.bin"
        aside.write_bytes(data)
        with open(aside, "rb+") as f:
            os.fsync(f.fileno())
        if torn.offset == 0:
            path.unlink()  # not even a whole header: the file was being created
        else:
            os.truncate(path, torn.offset)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(self.directory)
        return {
            "file": path.name,
            "offset": torn.offset,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "kept_in": aside.name,
        }

    def _open_files(self) -> None:
        segments = _segments(self.directory)
        if segments:
            path = segments[-1][1]
            self._seg_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._seg_size = os.fstat(self._seg_fd).st_size
        else:
            self._new_segment()
        ckp_path = self.directory / CHECKPOINTS_FILE
        exists = ckp_path.exists()
        self._ckp_fd = os.open(ckp_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not exists:
            os.write(self._ckp_fd, _FILE_HEADER.pack(CHECKPOINT_MAGIC, VERSION))
            os.fsync(self._ckp_fd)
            _fsync_dir(self.directory)

    def _new_segment(self) -> None:
        if self._seg_fd >= 0:
            os.fsync(self._seg_fd)
            os.close(self._seg_fd)
        first = self.size
        path = self.directory / f"segment-{first:020d}.audit"
        self._seg_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        header = _SEG_HEADER.pack(SEGMENT_MAGIC, VERSION, first)
        os.write(self._seg_fd, header)
        os.fsync(self._seg_fd)
        _fsync_dir(self.directory)
        self._seg_size = len(header)

    @property
    def size(self) -> int:
        """The number of records."""
        return len(self._leaves) // HASH_SIZE

    @property
    def head(self) -> bytes:
        """The hash of the last record (32 zero bytes when there is none)."""
        return self._head

    def root(self) -> bytes:
        """The Merkle root of the whole log."""
        with self._mutex:
            return self._range.root()

    def append(self, kind: str, payload: bytes, time_ns: int, source: str) -> int:
        """Append one record; returns its index. With ``fsync=True`` it is on disk when this
        returns. ValueError (naming the argument) for bad input."""
        kind_b = _check_text("kind", kind)
        source_b = _check_text("source", source)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ValueError("payload: must be bytes")
        payload = bytes(payload)
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload: larger than {MAX_PAYLOAD} bytes")
        if not isinstance(time_ns, int) or isinstance(time_ns, bool) or not 0 <= time_ns < 2**63:
            raise ValueError("time_ns: must be an integer in [0, 2**63)")
        with self._mutex:
            self._check_open()
            index = self.size
            prefix = _record_prefix(index, time_ns, kind_b, source_b, payload, self._head)
            digest = hashlib.sha256(RECORD_DOMAIN + prefix).digest()
            frame = _frame(prefix + digest)
            # A full segment (with at least one record) is closed before the next record.
            full = self._seg_size + len(frame) > self.segment_bytes
            if full and self._seg_size > _SEG_HEADER.size:
                self._new_segment()
            try:
                _write_all(self._seg_fd, frame)
                if self.fsync:
                    os.fdatasync(self._seg_fd)
            except OSError:
                # Not appended (disk full, I/O error): cut what part of the frame was written,
                # so the next append does not follow a broken frame.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._seg_fd, self._seg_size)
                raise
            self._seg_size += len(frame)
            self._head = digest
            leaf = leaf_hash(digest)
            self._leaves += leaf
            self._range.append(leaf)
            return index

    def sync(self) -> None:
        """Flush every record appended so far to the disk."""
        with self._mutex:
            self._check_open()
            os.fdatasync(self._seg_fd)

    def checkpoint(self, time_ns: int | None = None) -> Checkpoint:
        """Sign (tree size, root, head, time) and store it; the records it covers are synced
        first. ValueError when the log has no signer."""
        if self.signer is None:
            raise ValueError(f"no audit signing key: set {KEY_FILE_ENV} to a PEM Ed25519 key")
        with self._mutex:
            self._check_open()
            os.fdatasync(self._seg_fd)
            t = time.time_ns() if time_ns is None else time_ns
            if self._checkpoints:
                t = max(t, self._checkpoints[-1].time_ns)
            size, root, head = self.size, self._range.root(), self._head
            sig = self.signer.sign(checkpoint_message(size, root, head, t))
            ckp = Checkpoint(size, root, head, t, self.signer.key_id, sig)
            _write_all(self._ckp_fd, _frame(ckp.encode()))
            os.fdatasync(self._ckp_fd)
            self._checkpoints.append(ckp)
            return ckp

    def checkpoints(self) -> list[Checkpoint]:
        with self._mutex:
            return list(self._checkpoints)

    def _leaf_list(self, size: int) -> list[bytes]:
        return [_leaf_at(self._leaves, i) for i in range(size)]

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of record ``index`` in the tree of ``tree_size``
        records (default: all). O(tree_size) hashing."""
        with self._mutex:
            n = self.size if tree_size is None else tree_size
            if not 0 < n <= self.size:
                raise ValueError(f"tree_size: must be in 1..{self.size}")
            if not 0 <= index < n:
                raise ValueError(f"index: must be in 0..{n - 1}")
            return inclusion_path(self._leaf_list(n), index)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``old_size`` records to the tree of
        ``new_size`` (default: all)."""
        with self._mutex:
            n = self.size if new_size is None else new_size
            if not 0 <= n <= self.size:
                raise ValueError(f"new_size: must be in 0..{self.size}")
            if not 0 <= old_size <= n:
                raise ValueError(f"old_size: must be in 0..{n}")
            return consistency_path(self._leaf_list(n), old_size)

    def root_at(self, tree_size: int) -> bytes:
        with self._mutex:
            if not 0 <= tree_size <= self.size:
                raise ValueError(f"tree_size: must be in 0..{self.size}")
            return merkle_root(self._leaf_list(tree_size))

    def records(self, start: int = 0) -> Iterator[Record]:
        """The records from index ``start``, read back from disk."""
        self.sync()
        for rec in _records_of(self.directory):
            if rec.index >= start:
                yield rec

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("the audit log is closed")

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            for fd in (self._seg_fd, self._ckp_fd):
                if fd >= 0:
                    os.fsync(fd)
                    os.close(fd)
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _records_of(directory: Path) -> Iterator[Record]:
    """The records of a log directory in order, up to the first frame that does not read."""
    for _, path in _segments(directory):
        data = path.read_bytes()
        for fr in _frames(data, _SEG_HEADER.size):
            if isinstance(fr, _Torn) or fr.body is None:
                return
            yield _decode_record(fr.body)


# --- verification and export ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``verify``: ``ok`` only when every record and checkpoint checks out and
    nothing is torn. ``signatures_checked`` is False when no public key was given."""

    records: int
    checkpoints: int
    root: bytes
    problem: Problem | None
    signatures_checked: bool

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, object]:
        p = self.problem
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "root": self.root.hex(),
            "signatures_checked": self.signatures_checked,
            "problem": None
            if p is None
            else {"kind": p.kind, "index": p.index, "record": p.record, "message": p.message},
        }


def verify(
    path: str | os.PathLike[str],
    public_key: Ed25519PublicKey | bytes | Sequence[Ed25519PublicKey | bytes] | None = None,
    trusted: Sequence[Checkpoint] = (),
) -> VerifyReport:
    """Verify a log directory or a binary export: every frame's checksum, index sequence,
    record hash and chain link, then every checkpoint (its signature by one of the public keys
    when any is given: several after a key rotation; order, size, root, head). ``trusted``:
    checkpoints kept outside the log (the log must still contain their records, with their
    roots: this catches a deleted checkpoint file, a cut tail or a recomputed chain). The report
    names the first bad record."""
    keys: dict[bytes, Ed25519PublicKey] | None = None
    if public_key is not None:
        given = [public_key] if isinstance(public_key, bytes | Ed25519PublicKey) else public_key
        loaded = [load_public_key(k) if isinstance(k, bytes) else k for k in given]
        keys = {key_id(k): k for k in loaded}
    p = Path(path)
    if p.is_dir():
        chain, problem, torn = _scan_records(p)
        checkpoints, ckp_problem, ckp_torn = _read_checkpoints(p / CHECKPOINTS_FILE)
        if problem is None and torn is not None:
            where = f"{torn[0].name} byte {torn[1].offset}"
            problem = Problem(
                "torn",
                chain.count,
                f"record {chain.count} ({where}) is torn: {torn[1].size} bytes of an "
                "unfinished write (a crash during an append, or the tail was cut)",
            )
        if ckp_problem is None and ckp_torn is not None:
            ckp_problem = Problem(
                "checkpoint",
                len(checkpoints),
                f"checkpoint {len(checkpoints)} is torn (an unfinished write)",
            )
    elif p.is_file():
        chain, problem, checkpoints, ckp_problem = _scan_export(p)
    else:
        raise ValueError(f"path: {p} is neither an audit log directory nor an export file")
    if ckp_problem is None:
        ckp_problem = _check_checkpoints(checkpoints, chain.leaves, chain.count, keys)
    if ckp_problem is None and trusted:
        ordered = sorted(trusted, key=lambda c: (c.tree_size, c.time_ns))
        ckp_problem = _check_checkpoints(ordered, chain.leaves, chain.count, keys)
        if ckp_problem is not None:
            ckp_problem = Problem(
                ckp_problem.kind,
                ckp_problem.index,
                "trusted " + ckp_problem.message,
                ckp_problem.record,
            )
    first = problem
    if ckp_problem is not None and (
        first is None or (ckp_problem.record is not None and ckp_problem.record < first.index)
    ):
        first = ckp_problem
    root = merkle_root([_leaf_at(chain.leaves, i) for i in range(chain.count)])
    return VerifyReport(chain.count, len(checkpoints), root, first, keys is not None)


_TAG_RECORD, _TAG_CHECKPOINT = 1, 2


def export_jsonl(path: str | os.PathLike[str], out: IO[str]) -> int:
    """Write every record, then every checkpoint, as one JSON object a line with hex hashes
    (the human-readable export). Returns the number of lines."""
    directory = Path(path)
    n = 0
    for rec in _records_of(directory):
        out.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")
        n += 1
    checkpoints, _, _ = _read_checkpoints(directory / CHECKPOINTS_FILE)
    for c in checkpoints:
        out.write(json.dumps(c.to_json(), sort_keys=True) + "\n")
        n += 1
    return n


def export_binary(path: str | os.PathLike[str], out: BinaryIO) -> int:
    """The machine-readable export: ``EXPORT_MAGIC | u32 version``, then for each record and
    then each checkpoint ``u8 tag (1 record, 2 checkpoint) | frame`` with the frame exactly as
    stored in the log. ``verify`` reads it like a log directory. Returns the number of
    entries."""
    directory = Path(path)
    out.write(_FILE_HEADER.pack(EXPORT_MAGIC, VERSION))
    n = 0
    for _, seg in _segments(directory):
        data = seg.read_bytes()
        for fr in _frames(data, _SEG_HEADER.size):
            if isinstance(fr, _Torn) or fr.body is None:
                break
            out.write(bytes([_TAG_RECORD]) + _frame(fr.body))
            n += 1
    checkpoints, _, _ = _read_checkpoints(directory / CHECKPOINTS_FILE)
    for c in checkpoints:
        out.write(bytes([_TAG_CHECKPOINT]) + _frame(c.encode()))
        n += 1
    return n


def _scan_export(path: Path) -> tuple[_Chain, Problem | None, list[Checkpoint], Problem | None]:
    data = path.read_bytes()
    chain = _Chain()
    checkpoints: list[Checkpoint] = []
    if len(data) < _FILE_HEADER.size or _FILE_HEADER.unpack_from(data, 0) != (
        EXPORT_MAGIC,
        VERSION,
    ):
        msg = f"{path.name}: not an audit export of version {VERSION}"
        return chain, Problem("segment", 0, msg), checkpoints, None
    pos = _FILE_HEADER.size
    while pos < len(data):
        tag = data[pos]
        fr = next(_frames(data, pos + 1), _Torn(pos + 1, 0))
        where = f"{path.name} byte {pos}"
        if isinstance(fr, _Torn) or fr.body is None:
            what = "is cut short" if isinstance(fr, _Torn) else "has a bad checksum"
            if tag == _TAG_CHECKPOINT:
                msg = f"checkpoint {len(checkpoints)} ({where}) {what}"
                return chain, None, checkpoints, Problem("checkpoint", len(checkpoints), msg)
            kind = "torn" if isinstance(fr, _Torn) else "frame"
            msg = f"record {chain.count} ({where}) {what}"
            return chain, Problem(kind, chain.count, msg), checkpoints, None
        if tag == _TAG_RECORD:
            if checkpoints:
                msg = f"record {chain.count} ({where}) comes after the checkpoints"
                return chain, Problem("index", chain.count, msg), checkpoints, None
            try:
                rec = _decode_record(fr.body)
            except ValueError as exc:
                return chain, Problem("frame", chain.count, str(exc)), checkpoints, None
            problem = chain.check(rec, where)
            if problem:
                return chain, problem, checkpoints, None
        elif tag == _TAG_CHECKPOINT and len(fr.body) == _CKP.size:
            checkpoints.append(Checkpoint.decode(fr.body))
        else:
            msg = f"entry at {where} has an unknown tag {tag}"
            return chain, Problem("frame", chain.count, msg), checkpoints, None
        pos = fr.end
    return chain, None, checkpoints, None


def proof_json(
    log_dir: str | os.PathLike[str], index: int, tree_size: int | None = None
) -> dict[str, object]:
    """The inclusion proof of record ``index`` as JSON (hex hashes), against the tree of
    ``tree_size`` records; by default the latest checkpoint covering the record (so the root is
    signed), else the whole log. Reads the log without taking the writer's lock."""
    directory = Path(log_dir)
    chain, problem, _ = _scan_records(directory)
    if problem is not None:
        raise CorruptLogError(problem)
    checkpoints, _, _ = _read_checkpoints(directory / CHECKPOINTS_FILE)
    if not 0 <= index < chain.count:
        raise ValueError(f"index: must be in 0..{chain.count - 1} (the log has {chain.count})")
    signed = None
    if tree_size is None:
        covering = [c for c in checkpoints if c.tree_size > index]
        signed = covering[-1] if covering else None
        tree_size = signed.tree_size if signed else chain.count
    else:
        if not index < tree_size <= chain.count:
            raise ValueError(f"tree_size: must be in {index + 1}..{chain.count}")
        signed = next((c for c in reversed(checkpoints) if c.tree_size == tree_size), None)
    leaves = [_leaf_at(chain.leaves, i) for i in range(tree_size)]
    rec = next(r for r in _records_of(directory) if r.index == index)
    return {
        "index": index,
        "tree_size": tree_size,
        "record": rec.to_json(),
        "leaf_hash": leaves[index].hex(),
        "root": merkle_root(leaves).hex(),
        "proof": [h.hex() for h in inclusion_path(leaves, index)],
        "checkpoint": signed.to_json() if signed else None,
    }


def records_of(path: str | os.PathLike[str]) -> Iterable[Record]:
    """The records of a log directory, in order (read-only, no lock)."""
    return _records_of(Path(path))


def consistency_json(
    log_dir: str | os.PathLike[str], old_size: int, new_size: int | None = None
) -> dict[str, object]:
    """The consistency proof from the tree of ``old_size`` records to the tree of ``new_size``
    (default: the whole log) as JSON, with both roots and the checkpoints of those sizes."""
    directory = Path(log_dir)
    chain, problem, _ = _scan_records(directory)
    if problem is not None:
        raise CorruptLogError(problem)
    n = chain.count if new_size is None else new_size
    if not 0 <= n <= chain.count:
        raise ValueError(f"to_size: must be in 0..{chain.count}")
    if not 0 <= old_size <= n:
        raise ValueError(f"from_size: must be in 0..{n}")
    checkpoints, _, _ = _read_checkpoints(directory / CHECKPOINTS_FILE)
    leaves = [_leaf_at(chain.leaves, i) for i in range(n)]

    def signed(size: int) -> dict[str, object] | None:
        c = next((c for c in reversed(checkpoints) if c.tree_size == size), None)
        return c.to_json() if c else None

    return {
        "old_size": old_size,
        "new_size": n,
        "old_root": merkle_root(leaves[:old_size]).hex(),
        "new_root": merkle_root(leaves).hex(),
        "proof": [h.hex() for h in consistency_path(leaves, old_size)],
        "old_checkpoint": signed(old_size),
        "new_checkpoint": signed(n),
    }


AUDIT_SUBDIR = "audit"


def default_log_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Where the execution service keeps its audit log: ``<data dir>/audit``."""
    return Path(data_dir) / AUDIT_SUBDIR
