"""The audit trail: append/reopen, RFC 9162 proofs against the Certificate Transparency known
answers, every tampering case named by ``verify``, torn tails, signatures, exports, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from tradecore import audit
from tradecore.audit import (
    AuditError,
    AuditLog,
    Checkpoint,
    CorruptLogError,
    Signer,
    TornTailError,
    consistency_path,
    inclusion_path,
    leaf_hash,
    merkle_root,
    verify,
    verify_consistency,
    verify_inclusion,
)

# --- the Certificate Transparency reference vectors (RFC 6962 trees) -----------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path), 0-based indexes.
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]


def test_roots_match_the_ct_known_answers() -> None:
    for n in range(len(CT_LEAVES) + 1):
        assert merkle_root(CT_LEAF_HASHES[:n]).hex() == CT_ROOTS[n], n


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_proofs_match_the_ct_known_answers(
    index: int, size: int, path: list[str]
) -> None:
    leaves = CT_LEAF_HASHES[:size]
    assert [h.hex() for h in inclusion_path(leaves, index)] == path
    root = bytes.fromhex(CT_ROOTS[size])
    proof = [bytes.fromhex(h) for h in path]
    assert verify_inclusion(leaves[index], index, size, proof, root)
    # Wrong index, size, leaf or root; a proof element changed, dropped or added.
    assert not verify_inclusion(leaves[index], index + 1, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size * 2, proof, root)
    assert not verify_inclusion(leaf_hash(b"other"), index, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size, proof, audit.EMPTY_ROOT)
    assert not verify_inclusion(leaves[index], index, size, [*proof, root], root)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        assert not verify_inclusion(leaves[index], index, size, bad, root)
        assert not verify_inclusion(leaves[index], index, size, proof[:i] + proof[i + 1 :], root)


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_ct_known_answers(old: int, new: int, path: list[str]) -> None:
    assert [h.hex() for h in consistency_path(CT_LEAF_HASHES[:new], old)] == path
    r1, r2 = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    proof = [bytes.fromhex(h) for h in path]
    assert verify_consistency(old, new, r1, r2, proof)
    if not proof:
        return
    assert not verify_consistency(old, new, r2, r1, proof)  # swapped roots
    assert not verify_consistency(old - 1, new, r1, r2, proof)
    assert not verify_consistency(old + 1, new, r1, r2, proof)
    assert not verify_consistency(old, new * 2, r1, r2, proof)
    assert not verify_consistency(old, new, r1, r2, [])
    assert not verify_consistency(old, new, r1, r2, [*proof, r1])
    assert not verify_consistency(old, new, r1, r2, [r2, *proof])
    assert not verify_consistency(old, new, r1, r2, proof[:-1])
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        assert not verify_consistency(old, new, r1, r2, bad)


def test_every_proof_of_every_tree_shape_verifies_and_only_against_its_own_root() -> None:
    leaves = [leaf_hash(bytes([i, i * 7 % 256])) for i in range(40)]
    roots = [merkle_root(leaves[:n]) for n in range(len(leaves) + 1)]
    for n in range(1, len(leaves) + 1):
        for i in range(n):
            proof = inclusion_path(leaves[:n], i)
            assert verify_inclusion(leaves[i], i, n, proof, roots[n])
            assert not verify_inclusion(leaves[i], i, n, proof, roots[n - 1])
        for m in range(n + 1):
            proof = consistency_path(leaves[:n], m)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, roots[m - 1], roots[n], proof)
                assert not verify_consistency(m, n, roots[m], roots[n - 1], proof)


def test_degenerate_consistency_cases() -> None:
    r = merkle_root(CT_LEAF_HASHES[:4])
    assert verify_consistency(4, 4, r, r, [])
    assert not verify_consistency(4, 4, r, merkle_root(CT_LEAF_HASHES[:5]), [])
    assert not verify_consistency(4, 4, r, r, [r])
    assert verify_consistency(0, 8, audit.EMPTY_ROOT, bytes.fromhex(CT_ROOTS[8]), [])
    assert not verify_consistency(0, 8, r, bytes.fromhex(CT_ROOTS[8]), [])
    assert not verify_consistency(5, 4, r, r, [])
    assert not verify_consistency(2, 4, r[:31], r, [r])


# --- the log -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate()


def fill(path: Path, signer: Signer | None, n: int, start: int = 0) -> AuditLog:
    log = AuditLog.open(path, signer, fsync=False)
    for i in range(start, start + n):
        log.append("order.submitted", f'{{"seq":{i}}}'.encode(), 1_000 + i, "execution")
    return log


def make_log(path: Path, signer: Signer, n: int = 10, checkpoints: tuple[int, ...] = ()) -> None:
    """A log of ``n`` records with a checkpoint after each size in ``checkpoints`` and one at
    the end."""
    log = AuditLog.open(path, signer, fsync=False)
    for i in range(n):
        log.append("order.submitted", f'{{"seq":{i}}}'.encode(), 1_000 + i, "execution")
        if i + 1 in checkpoints:
            log.checkpoint(time_ns=2_000 + i)
    log.checkpoint(time_ns=10_000)
    log.close()


def test_append_close_reopen_resumes_the_chain(tmp_path: Path, signer: Signer) -> None:
    log = fill(tmp_path, signer, 5)
    root, head = log.root(), log.head
    log.close()
    log = AuditLog.open(tmp_path, signer)
    assert (log.size, log.root(), log.head) == (5, root, head)
    assert log.append("risk.limit", b"\x00\xff", 7, "risk") == 5
    records = list(log.records())
    log.close()
    assert [r.index for r in records] == list(range(6))
    assert records[5].prev_hash == head
    assert records[5].payload == b"\x00\xff" and records[5].kind == "risk.limit"
    assert all(r.hash == r.computed_hash() for r in records)
    report = verify(tmp_path, signer.public_key)
    assert (
        report.ok
        and report.records == 6
        and report.root == merkle_root([r.leaf_hash for r in records])
    )


def test_segments_roll_over_and_verify(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path, signer, fsync=False, segment_bytes=4096)
    for i in range(100):
        log.append("fill", b"x" * 200, i, "paper")
    log.checkpoint()
    log.close()
    assert len(list(tmp_path.glob("segment-*.audit"))) > 3
    assert verify(tmp_path, signer.public_key).ok
    assert AuditLog.open(tmp_path, signer).size == 100


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path)
    with pytest.raises(AuditError, match="open in another process"):
        AuditLog.open(tmp_path)
    log.close()
    AuditLog.open(tmp_path).close()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", b"x", 1, "s"), "kind"),
        (("k", b"x", 1, ""), "source"),
        (("k", "text", 1, "s"), "payload"),
        (("k", b"x", -1, "s"), "time_ns"),
        (("k", b"x", 1.5, "s"), "time_ns"),
        (("k" * 2000, b"x", 1, "s"), "kind"),
    ],
)
def test_bad_appends_name_the_argument(
    tmp_path: Path, args: tuple[object, ...], field: str
) -> None:
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(ValueError, match=field):
            log.append(*args)  # type: ignore[arg-type]
        assert log.size == 0


def test_checkpoint_needs_a_key(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log, pytest.raises(ValueError, match="TRADECORE_AUDIT_KEY"):
        log.checkpoint()


def test_log_proofs_verify_against_signed_checkpoints(tmp_path: Path, signer: Signer) -> None:
    log = fill(tmp_path, signer, 13)
    c1 = log.checkpoint()
    for i in range(13, 30):
        log.append("order.filled", b"%d" % i, i, "paper")
    c2 = log.checkpoint()
    assert c1.verify_signature(signer.public_key) and c2.verify_signature(signer.public_key)
    records = list(log.records())
    for i in (0, 6, 12):
        proof = log.inclusion_proof(i, c1.tree_size)
        assert verify_inclusion(records[i].leaf_hash, i, c1.tree_size, proof, c1.root)
        assert not verify_inclusion(records[i].leaf_hash, i, c2.tree_size, proof, c2.root)
        assert not verify_inclusion(records[i + 1].leaf_hash, i, c1.tree_size, proof, c1.root)
    proof = log.consistency_proof(c1.tree_size, c2.tree_size)
    assert verify_consistency(c1.tree_size, c2.tree_size, c1.root, c2.root, proof)
    assert not verify_consistency(c1.tree_size - 1, c2.tree_size, c1.root, c2.root, proof)
    assert not verify_consistency(c1.tree_size, c2.tree_size, c2.root, c1.root, proof)
    assert log.root_at(c1.tree_size) == c1.root
    with pytest.raises(ValueError, match="index"):
        log.inclusion_proof(13, 13)
    with pytest.raises(ValueError, match="tree_size"):
        log.inclusion_proof(0, 31)
    log.close()


# --- tampering -----------------------------------------------------------------------------

SEG_HEADER = 20  # magic 8, version 4, first index 8
CKP_HEADER = 12  # magic 8, version 4


def read_frames(path: Path, header: int) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], header
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 8 : pos + 8 + n])
        pos += 8 + n
    return out


def write_frames(path: Path, header: int, bodies: list[bytes]) -> None:
    """Rewrite ``path`` with ``bodies`` framed with correct lengths and checksums (an attacker
    who knows the format)."""
    head = path.read_bytes()[:header]
    frames = [struct.pack(">II", len(b), zlib.crc32(b)) + b for b in bodies]
    path.write_bytes(head + b"".join(frames))


def segment(path: Path) -> Path:
    return path / "segment-00000000000000000000.audit"


def frame_offset(path: Path, k: int) -> int:
    """Byte offset of record ``k``'s body in the first segment."""
    bodies = read_frames(segment(path), SEG_HEADER)
    return SEG_HEADER + sum(8 + len(b) for b in bodies[:k]) + 8


def problem(path: Path, signer: Signer) -> audit.Problem:
    report = verify(path, signer.public_key)
    assert not report.ok
    assert report.problem is not None
    return report.problem


def payload_at(body: bytes) -> int:
    """Offset of the payload in a record body."""
    pos = 16
    (n,) = struct.unpack_from(">H", body, pos)
    pos += 2 + n
    (n,) = struct.unpack_from(">H", body, pos)
    return pos + 2 + n + 4


def test_an_edited_payload_byte_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    seg = segment(tmp_path)
    data = bytearray(seg.read_bytes())
    body = read_frames(seg, SEG_HEADER)[4]
    data[frame_offset(tmp_path, 4) + payload_at(body)] ^= 0x01
    seg.write_bytes(bytes(data))
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("frame", 4)
    assert "record 4" in p.message and "checksum" in p.message


def test_an_edited_payload_with_a_fixed_checksum_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    b = bytearray(bodies[6])
    b[payload_at(bodies[6])] ^= 0x01
    bodies[6] = bytes(b)
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("hash", 6)
    assert "record 6" in p.message


def test_an_edited_hash_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    bodies[3] = bodies[3][:-32] + bytes(32)
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("hash", 3)


def test_a_deleted_record_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    del bodies[5]
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("index", 5)
    assert "carries index 6" in p.message


def test_an_inserted_record_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    bodies.insert(2, bodies[7])
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("index", 2)


def test_a_well_formed_inserted_record_is_named_where_the_chain_breaks(
    tmp_path: Path, signer: Signer
) -> None:
    # The attacker forges record 3 with the right index, prev_hash and hash: the original
    # record 3, now at position 4, still carries index 3.
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    prev = bodies[2][-32:]
    h = audit.record_hash(3, 5, "order.submitted", "execution", b"forged", prev)
    prefix = audit._record_prefix(3, 5, b"order.submitted", b"execution", b"forged", prev)
    bodies.insert(3, prefix + h)
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("index", 4)
    assert "inserted" in p.message


def test_two_reordered_records_are_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    bodies[7], bodies[8] = bodies[8], bodies[7]
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("index", 7)


def rewrite_chain_from(path: Path, k: int, payload: bytes) -> None:
    """Replace record k's payload and recompute every hash after it: a chain that checks out
    by itself, which only the signed checkpoints can catch."""
    recs = list(audit.records_of(path))
    bodies, prev = [], audit.ZERO_HASH
    for r in recs:
        data = payload if r.index == k else r.payload
        kind, src = r.kind.encode(), r.source.encode()
        prefix = audit._record_prefix(r.index, r.time_ns, kind, src, data, prev)
        prev = hashlib.sha256(audit.RECORD_DOMAIN + prefix).digest()
        bodies.append(prefix + prev)
    write_frames(segment(path), SEG_HEADER, bodies)


def test_a_rewritten_chain_is_caught_by_the_checkpoints(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 10, checkpoints=(4, 8))
    rewrite_chain_from(tmp_path, 6, b'{"seq":999}')
    p = problem(tmp_path, signer)
    assert p.kind == "checkpoint" and p.index == 1  # the checkpoint of size 8
    assert p.record == 4  # the first record that checkpoint 1 covers and 0 does not
    assert "root does not match" in p.message


def test_a_truncated_tail_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 10)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    write_frames(segment(tmp_path), SEG_HEADER, bodies[:7])
    p = problem(tmp_path, signer)
    assert p.kind == "checkpoint" and p.record == 7
    assert "only 7 verify" in p.message


def test_a_deleted_segment_is_named(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path, signer, fsync=False, segment_bytes=4096)
    for i in range(60):
        log.append("fill", b"y" * 200, i, "paper")
    log.close()
    segs = sorted(tmp_path.glob("segment-*.audit"))
    segs[1].unlink()
    p = problem(tmp_path, signer)
    assert p.kind == "segment" and p.index == int(segs[1].name[8:28])


def test_a_forged_checkpoint_signature_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 10, checkpoints=(5,))
    ckp = tmp_path / audit.CHECKPOINTS_FILE
    bodies = read_frames(ckp, CKP_HEADER)
    b = bytearray(bodies[0])
    b[-1] ^= 0x01  # the signature's last byte
    bodies[0] = bytes(b)
    write_frames(ckp, CKP_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("checkpoint", 0)
    assert "signature" in p.message


def test_a_checkpoint_signed_by_another_key_is_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 4)
    other = Signer.generate()
    ckp = tmp_path / audit.CHECKPOINTS_FILE
    c = Checkpoint.decode(read_frames(ckp, CKP_HEADER)[0])
    msg = audit.checkpoint_message(c.tree_size, c.root, c.head, c.time_ns + 1)
    forged = Checkpoint(c.tree_size, c.root, c.head, c.time_ns + 1, other.key_id, other.sign(msg))
    write_frames(ckp, CKP_HEADER, [*read_frames(ckp, CKP_HEADER), forged.encode()])
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("checkpoint", 1)
    assert "not one of the given public keys" in p.message
    # A checkpoint claiming the trail's key id but signed by another key.
    claimed = Checkpoint(c.tree_size, c.root, c.head, c.time_ns + 1, signer.key_id, other.sign(msg))
    write_frames(ckp, CKP_HEADER, [read_frames(ckp, CKP_HEADER)[0], claimed.encode()])
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("checkpoint", 1) and "signature does not verify" in p.message


def test_a_rotated_key_verifies_with_both_public_keys(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 4)
    new = Signer.generate()
    log = fill(tmp_path, new, 3, start=4)  # opening with the new key skips the old signatures
    log.checkpoint()
    log.close()
    assert verify(tmp_path, [signer.public_key, new.public_key]).ok
    p = problem(tmp_path, new)
    assert (p.kind, p.index) == ("checkpoint", 0)


def test_a_signed_checkpoint_whose_root_does_not_match_is_named(
    tmp_path: Path, signer: Signer
) -> None:
    make_log(tmp_path, signer, 6)
    ckp = tmp_path / audit.CHECKPOINTS_FILE
    c = Checkpoint.decode(read_frames(ckp, CKP_HEADER)[0])
    root = hashlib.sha256(b"not the root").digest()
    msg = audit.checkpoint_message(c.tree_size, root, c.head, c.time_ns + 1)
    bad = Checkpoint(c.tree_size, root, c.head, c.time_ns + 1, signer.key_id, signer.sign(msg))
    write_frames(ckp, CKP_HEADER, [*read_frames(ckp, CKP_HEADER), bad.encode()])
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("checkpoint", 1)
    assert "root does not match" in p.message


def test_reordered_checkpoints_are_named(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 10, checkpoints=(3, 6))
    ckp = tmp_path / audit.CHECKPOINTS_FILE
    bodies = read_frames(ckp, CKP_HEADER)
    bodies[0], bodies[1] = bodies[1], bodies[0]
    write_frames(ckp, CKP_HEADER, bodies)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("checkpoint", 1)
    assert "reordered" in p.message


def test_an_edited_length_field_is_not_taken_for_a_torn_tail(
    tmp_path: Path, signer: Signer
) -> None:
    # Record 4's length made to run past the end of the file: the complete records after it
    # show it is not a write cut short, so neither verify nor open(recover=True) may cut them.
    make_log(tmp_path, signer, 10)
    seg = segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[frame_offset(tmp_path, 4) - 8] = 0x01  # the high byte of the u32 length: +16 MiB
    seg.write_bytes(bytes(data))
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("frame", 4)
    with pytest.raises(CorruptLogError, match="record 4"):
        AuditLog.open(tmp_path, signer, recover=True)
    assert seg.read_bytes() == bytes(data) and not list(tmp_path.glob("torn-*"))


def test_a_trusted_checkpoint_catches_a_deleted_checkpoint_file(
    tmp_path: Path, signer: Signer
) -> None:
    make_log(tmp_path, signer, 8, checkpoints=(5,))
    kept = [Checkpoint.from_json(c.to_json()) for c in AuditLog.open(tmp_path).checkpoints()]
    assert verify(tmp_path, signer.public_key, kept).ok
    (tmp_path / audit.CHECKPOINTS_FILE).unlink()
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    write_frames(segment(tmp_path), SEG_HEADER, bodies[:6])
    assert verify(tmp_path, signer.public_key).ok  # the log alone cannot tell
    p = problem_with(tmp_path, signer, kept)
    assert p.kind == "checkpoint" and p.record == 6 and p.message.startswith("trusted")
    with pytest.raises(ValueError, match=r"checkpoint\.root"):
        Checkpoint.from_json({**kept[0].to_json(), "root": "00"})


def problem_with(path: Path, signer: Signer, trusted: list[Checkpoint]) -> audit.Problem:
    report = verify(path, signer.public_key, trusted)
    assert report.problem is not None
    return report.problem


def test_opening_a_tampered_log_refuses_and_names_the_record(
    tmp_path: Path, signer: Signer
) -> None:
    make_log(tmp_path, signer)
    bodies = read_frames(segment(tmp_path), SEG_HEADER)
    del bodies[2]
    write_frames(segment(tmp_path), SEG_HEADER, bodies)
    with pytest.raises(CorruptLogError, match="record 2") as err:
        AuditLog.open(tmp_path, signer)
    assert err.value.problem.index == 2


# --- crash mid-append ----------------------------------------------------------------------


def tear_last_record(path: Path, keep: int) -> int:
    """Append the first ``keep`` bytes of a valid frame (a write cut short); returns the
    offset it starts at."""
    seg = segment(path)
    offset = seg.stat().st_size
    body = read_frames(seg, SEG_HEADER)[-1]
    frame = struct.pack(">II", len(body), zlib.crc32(body)) + body
    with open(seg, "ab") as f:
        f.write(frame[:keep])
    return offset


@pytest.mark.parametrize("keep", [3, 30])
def test_a_torn_last_record_is_reported_and_open_refuses(
    tmp_path: Path, signer: Signer, keep: int
) -> None:
    make_log(tmp_path, signer, 5)
    offset = tear_last_record(tmp_path, keep)
    p = problem(tmp_path, signer)
    assert (p.kind, p.index) == ("torn", 5)
    assert f"byte {offset}" in p.message
    with pytest.raises(TornTailError, match=f"torn last record at byte {offset}") as err:
        AuditLog.open(tmp_path, signer)
    assert (err.value.offset, err.value.size, err.value.index) == (offset, keep, 5)
    assert segment(tmp_path).stat().st_size == offset + keep  # nothing changed


def test_recover_keeps_the_torn_bytes_and_records_the_recovery(
    tmp_path: Path, signer: Signer
) -> None:
    make_log(tmp_path, signer, 5)
    offset = tear_last_record(tmp_path, 30)
    torn = segment(tmp_path).read_bytes()[offset:]
    with AuditLog.open(tmp_path, signer, recover=True) as log:
        assert log.size == 6
        rec = list(log.records())[5]
        assert log.append("order.submitted", b"{}", 1, "execution") == 6
    assert rec.kind == audit.RECOVERED_KIND
    info = json.loads(rec.payload)
    assert info["offset"] == offset and info["bytes"] == 30
    assert info["sha256"] == hashlib.sha256(torn).hexdigest()
    assert (tmp_path / info["kept_in"]).read_bytes() == torn
    assert verify(tmp_path, signer.public_key).ok


def test_recover_refuses_when_a_checkpoint_covers_the_lost_record(
    tmp_path: Path, signer: Signer
) -> None:
    make_log(tmp_path, signer, 5)
    seg = segment(tmp_path)
    os.truncate(seg, seg.stat().st_size - 10)  # cut into record 4, which is checkpointed
    with pytest.raises(CorruptLogError, match="covers 5 records but only 4"):
        AuditLog.open(tmp_path, signer, recover=True)
    assert seg.stat().st_size > 0 and not list(tmp_path.glob("torn-*"))


def test_a_failed_write_leaves_no_partial_frame(tmp_path: Path) -> None:
    # A file-size limit makes the third append fail half-way (EFBIG, as on a full disk): the
    # append raises, nothing of it stays in the segment, and the log goes on after it.
    code = f"""
import os, resource, signal
from tradecore.audit import AuditLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = AuditLog.open({str(tmp_path)!r}, fsync=False)
log.append("k", b"a" * 100, 1, "s")
log.append("k", b"b" * 100, 2, "s")
size = os.path.getsize({str(segment(tmp_path))!r})
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, hard))
try:
    log.append("k", b"c" * 100, 3, "s")
except OSError as exc:
    print("failed", exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
print("index", log.append("k", b"d" * 10, 4, "s"))
log.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "failed 27" in out.stdout and "index 2" in out.stdout  # EFBIG
    assert verify(tmp_path).ok
    assert [r.payload for r in audit.records_of(tmp_path)] == [b"a" * 100, b"b" * 100, b"d" * 10]


# --- keys ----------------------------------------------------------------------------------


def test_signer_never_shows_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Signer.generate()
    key_file = tmp_path / "audit.pem"
    s.write(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        s.write(key_file)
    pem = key_file.read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert body not in repr(s) and body not in str(s) and s.key_id.hex()[:16] in repr(s)
    monkeypatch.setenv(audit.KEY_FILE_ENV, str(key_file))
    loaded = Signer.from_env()
    assert loaded is not None and loaded.key_id == s.key_id
    assert audit.load_public_key(s.public_key_pem()).public_bytes_raw() == (
        s.public_key.public_bytes_raw()
    )
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="not an unencrypted PEM Ed25519") as err:
        Signer.from_file(bad)
    assert "c2VjcmV0" not in str(err.value)
    with pytest.raises(ValueError, match="public_key"):
        audit.load_public_key(b"nonsense")


# --- exports -------------------------------------------------------------------------------


def test_jsonl_export_is_readable_and_complete(tmp_path: Path, signer: Signer) -> None:
    make_log(tmp_path, signer, 4, checkpoints=(2,))
    out = io.StringIO()
    assert audit.export_jsonl(tmp_path, out) == 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["type"] for x in lines] == ["record"] * 4 + ["checkpoint"] * 2
    assert lines[1]["payload_text"] == '{"seq":1}' and lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[5]["tree_size"] == 4 and lines[5]["root"] == verify(tmp_path).root.hex()


def test_binary_export_verifies_and_its_tampering_is_named(tmp_path: Path, signer: Signer) -> None:
    log_dir = tmp_path / "log"
    make_log(log_dir, signer, 8, checkpoints=(4,))
    exported = tmp_path / "trail.bin"
    with open(exported, "wb") as f:
        assert audit.export_binary(log_dir, f) == 10
    report = verify(exported, signer.public_key)
    assert report.ok and report.records == 8 and report.checkpoints == 2
    assert report.root == verify(log_dir).root
    data = bytearray(exported.read_bytes())
    data[len(data) // 3] ^= 0x40
    exported.write_bytes(bytes(data))
    assert not verify(exported, signer.public_key).ok


# --- the CLI -------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradecore_services.mesh.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Path, Path, Signer]:
    key = tmp_path / "audit.pem"
    pub = tmp_path / "audit.pub"
    out = cli("keygen", "--key-file", str(key), "--public-out", str(pub))
    assert out.returncode == 0, out.stderr
    signer = Signer.from_file(key)
    make_log(tmp_path / "data" / "audit", signer, 9, checkpoints=(5,))
    return tmp_path / "data", pub, signer


@pytest.mark.e2e
def test_cli_verify_exit_status(trail: tuple[Path, Path, Signer]) -> None:
    data, pub, _ = trail
    ok = cli("verify", "--data-dir", str(data), "--public-key", str(pub))
    assert ok.returncode == 0, ok.stderr
    assert "intact: 9 records, 2 checkpoints" in ok.stdout
    unchecked = cli("verify", "--data-dir", str(data))
    assert unchecked.returncode == 3 and "NOT checked" in unchecked.stdout
    log_dir = data / "audit"
    bodies = read_frames(segment(log_dir), SEG_HEADER)
    bodies[3], bodies[4] = bodies[4], bodies[3]
    write_frames(segment(log_dir), SEG_HEADER, bodies)
    bad = cli("verify", "--path", str(log_dir), "--public-key", str(pub))
    assert bad.returncode == 1
    assert "NOT INTACT" in bad.stderr and "record 3" in bad.stderr
    as_json = cli("verify", "--path", str(log_dir), "--public-key", str(pub), "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["problem"]["index"] == 3


@pytest.mark.e2e
def test_cli_prove_export_and_bad_input(trail: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    data, pub, _ = trail
    out = cli("prove", "--data-dir", str(data), "--index", "2")
    assert out.returncode == 0, out.stderr
    proof = json.loads(out.stdout)
    assert proof["tree_size"] == 9 and proof["checkpoint"]["tree_size"] == 9
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        2,
        9,
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["checkpoint"]["root"]),
    )
    cons = json.loads(cli("prove", "--data-dir", str(data), "--from-size", "5").stdout)
    assert cons["old_checkpoint"]["tree_size"] == 5
    assert verify_consistency(
        5,
        9,
        bytes.fromhex(cons["old_checkpoint"]["root"]),
        bytes.fromhex(cons["new_checkpoint"]["root"]),
        [bytes.fromhex(h) for h in cons["proof"]],
    )
    lines = cli("export", "--data-dir", str(data), "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 11 and json.loads(lines[0])["index"] == 0
    binary = tmp_path / "x.bin"
    exp = cli("export", "--data-dir", str(data), "--format", "binary", "--out", str(binary))
    assert exp.returncode == 0
    assert cli("verify", "--path", str(binary), "--public-key", str(pub)).returncode == 0
    bad = cli("prove", "--data-dir", str(data), "--index", "9")
    assert bad.returncode == 2 and "index" in bad.stderr
    missing = cli("verify", "--path", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "path" in missing.stderr
    key_env = {audit.KEY_FILE_ENV: str(pub.with_suffix(".pem"))}
    assert cli("public-key", env=key_env).stdout.encode() == pub.read_bytes()


@pytest.mark.e2e
def test_cli_verify_against_a_checkpoint_kept_elsewhere(trail: tuple[Path, Path, Signer]) -> None:
    data, pub, _ = trail
    log_dir = data / "audit"
    kept = data.parent / "kept.json"
    kept.write_text(cli("prove", "--path", str(log_dir), "--index", "0").stdout)
    args = ("verify", "--path", str(log_dir), "--public-key", str(pub))
    assert cli(*args, "--checkpoint", str(kept)).returncode == 0
    (log_dir / audit.CHECKPOINTS_FILE).unlink()
    write_frames(segment(log_dir), SEG_HEADER, read_frames(segment(log_dir), SEG_HEADER)[:7])
    assert cli(*args).returncode == 0  # nothing in the log itself says what is missing
    bad = cli(*args, "--checkpoint", str(kept))
    assert bad.returncode == 1 and "covers 9 records but only 7" in bad.stderr
    bodies = read_frames(segment(log_dir), SEG_HEADER)
    write_frames(segment(log_dir), SEG_HEADER, [bodies[0], bodies[2]])
    exp = cli("export", "--path", str(log_dir), "--format", "jsonl")
    assert exp.returncode == 1 and "not intact" in exp.stderr and "record 1" in exp.stderr
    assert [json.loads(x)["index"] for x in exp.stdout.splitlines()] == [0, 2]  # as stored
