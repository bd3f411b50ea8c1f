"""``tradecore audit ...``: verify, export and prove the execution audit trail (offline: it reads
the log's files, no mesh needed).

    tradecore audit verify [--data-dir D | --path P] [--public-key F ...] [--checkpoint J ...]
                           [--json]
    tradecore audit export --format jsonl|binary [--data-dir D | --path P] [--out F]
    tradecore audit prove --index N [--tree-size S] [--data-dir D | --path P]
    tradecore audit prove --from-size A [--to-size B] [--data-dir D | --path P]
    tradecore audit keygen --key-file F [--public-out P]
    tradecore audit public-key [--key-file F]

The log is ``--path`` (a log directory; for verify also a binary export), else ``<data
dir>/audit``. The public keys are the ``--public-key`` files (one per key the trail was ever
signed with), else ``$TRADECORE_AUDIT_PUBLIC_KEY_FILE`` (comma-separated), else the key of the
private key in ``$TRADECORE_AUDIT_KEY_FILE``.

verify exit status: 0 the trail is intact (and every checkpoint signature verified); 1 it is
not (the first bad record is named); 2 bad input; 3 the records and checkpoint roots are intact
but there are checkpoints and no public key to check their signatures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tradecore import audit


def _log_path(ns: argparse.Namespace) -> Path:
    if ns.path:
        return Path(ns.path)
    return audit.default_log_dir(ns.data_dir)


def _public_keys(ns: argparse.Namespace) -> list[Ed25519PublicKey] | None:
    env = os.environ.get(audit.PUBLIC_KEY_FILE_ENV, "")
    paths = ns.public_key or [p for p in env.split(",") if p]
    if paths:
        keys = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"--public-key {path}: {exc.strerror or exc}") from None
            keys.append(audit.load_public_key(data))
        return keys
    signer = audit.Signer.from_env()
    return [signer.public_key] if signer else None


def cmd_verify(ns: argparse.Namespace) -> int:
    path = _log_path(ns)
    trusted = []
    for name in ns.checkpoint:
        try:
            obj = json.loads(Path(name).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--checkpoint {name}: {exc}") from None
        # A checkpoint line of an export, or the "checkpoint" of `prove`'s output.
        obj = (obj.get("checkpoint") or obj) if isinstance(obj, dict) else obj
        if not isinstance(obj, dict):
            raise ValueError(f"--checkpoint {name}: not a checkpoint JSON object")
        trusted.append(audit.Checkpoint.from_json(obj))
    report = audit.verify(path, _public_keys(ns), trusted)
    if ns.json:
        print(json.dumps(report.to_json()))
    if not report.ok:
        assert report.problem is not None
        if not ns.json:
            print(f"audit trail {path}: NOT INTACT: {report.problem}", file=sys.stderr)
        return 1
    unchecked = report.checkpoints > 0 and not report.signatures_checked
    if not ns.json:
        print(
            f"audit trail {path}: intact: {report.records} records, {report.checkpoints} "
            f"checkpoints, root {report.root.hex()}"
            + ("; checkpoint signatures NOT checked (no public key)" if unchecked else "")
        )
    return 3 if unchecked else 0


def cmd_export(ns: argparse.Namespace) -> int:
    path = _log_path(ns)
    if not path.is_dir():
        raise ValueError(f"--path: {path} is not an audit log directory")
    if ns.format == "jsonl":
        if ns.out:
            with open(ns.out, "w", encoding="utf-8") as f:
                audit.export_jsonl(path, f)
        else:
            audit.export_jsonl(path, sys.stdout)
    elif ns.out:
        with open(ns.out, "wb") as fb:
            audit.export_binary(path, fb)
    else:
        audit.export_binary(path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    # The export holds the records up to the first one that does not read; say when that is
    # not the whole log.
    report = audit.verify(path)
    if not report.ok:
        print(f"tradecore audit export: the log is not intact: {report.problem}", file=sys.stderr)
        return 1
    return 0


def cmd_prove(ns: argparse.Namespace) -> int:
    path = _log_path(ns)
    if ns.index is not None:
        out = audit.proof_json(path, ns.index, ns.tree_size)
    else:
        out = audit.consistency_json(path, ns.from_size, ns.to_size)
    print(json.dumps(out, indent=2))
    return 0


def cmd_keygen(ns: argparse.Namespace) -> int:
    signer = audit.Signer.generate()
    try:
        signer.write(ns.key_file)
    except FileExistsError:
        raise ValueError(f"--key-file {ns.key_file} exists; not overwriting a key") from None
    pem = signer.public_key_pem()
    if ns.public_out:
        Path(ns.public_out).write_bytes(pem)
    else:
        sys.stdout.write(pem.decode())
    print(f"key id {signer.key_id.hex()}", file=sys.stderr)
    return 0


def cmd_public_key(ns: argparse.Namespace) -> int:
    signer = audit.Signer.from_file(ns.key_file) if ns.key_file else audit.Signer.from_env()
    if signer is None:
        raise ValueError(f"--key-file: not given and {audit.KEY_FILE_ENV} is not set")
    sys.stdout.write(signer.public_key_pem().decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tradecore audit", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)

    def where(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument(
            "--data-dir",
            default=os.environ.get("TRADECORE_DATA_DIR", ".tradecore"),
            help="the mesh's data directory; the log is <data dir>/audit (TRADECORE_DATA_DIR)",
        )
        g.add_argument("--path", default="", help="the log directory (or an export, for verify)")

    v = sub.add_parser("verify", help="check the whole trail; exit 0 only when intact")
    where(v)
    v.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="PEM Ed25519 public key of the checkpoints (repeat for every key after a rotation)",
    )
    v.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="a checkpoint JSON kept outside the log (repeatable): the log must match it",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    e = sub.add_parser("export", help="export the records and checkpoints")
    where(e)
    e.add_argument("--format", required=True, choices=("jsonl", "binary"))
    e.add_argument("--out", default="", help="file to write (default: standard output)")
    p = sub.add_parser("prove", help="an inclusion or consistency proof as JSON")
    where(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", type=int, help="inclusion proof of this record")
    which.add_argument("--from-size", type=int, help="consistency proof from this tree size")
    p.add_argument("--tree-size", type=int, help="with --index: the tree (default: checkpoint)")
    p.add_argument("--to-size", type=int, help="with --from-size: the tree (default: all)")
    k = sub.add_parser("keygen", help="create an Ed25519 signing key (mode 0600)")
    k.add_argument("--key-file", required=True)
    k.add_argument("--public-out", default="", help="write the public key here (default: stdout)")
    pk = sub.add_parser("public-key", help="print the public key of the signing key")
    pk.add_argument("--key-file", default="", help=f"default: ${audit.KEY_FILE_ENV}")
    return ap


def audit_main(argv: list[str]) -> int:
    ap = build_parser()
    ns = ap.parse_args(argv)
    handler = {
        "verify": cmd_verify,
        "export": cmd_export,
        "prove": cmd_prove,
        "keygen": cmd_keygen,
        "public-key": cmd_public_key,
    }[ns.action]
    try:
        return handler(ns)
    except (ValueError, audit.AuditError) as exc:
        print(f"tradecore audit {ns.action}: {exc}", file=sys.stderr)
        return 2
