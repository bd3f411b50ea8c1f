"""The gateway's signing keys and tokens: ``tradecore token``.

At the first ``tradecore up`` (auth on, no JWKS file of the user's) an EC P-256 key is made
under ``<data>/auth/`` (directory 0700): ``keys/<kid>.pem`` (PKCS#8, 0600), ``current`` (the kid
that signs) and ``jwks.json`` (the public keys the gateway checks tokens against; the kid is
the key's RFC 7638 thumbprint in hex). ``tradecore token rotate`` makes a new current key and keeps
the old public keys in the JWKS until ``tradecore token rotate --retire <kid>``; both tell a
running mesh's supervisor (SIGHUP) to restart the gateway, which reads the JWKS at start.

Tokens are ES256 JWTs: ``iss``, ``aud``, ``sub``, ``role``, ``account`` (optional), ``iat``,
``exp``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from tradecore_gateway.auth import ROLES, AuthConfig

from .config import MeshConfig

ALGORITHM = "ES256"
DEFAULT_TTL_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def auth_dir(data: Path) -> Path:
    return Path(data) / "auth"


def _private_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (never readable by others,
    not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWK of a P-256 public key, its kid the RFC 7638 thumbprint in hex (a base64url kid
    may begin with "-", which a command line then reads as an option)."""
    nums = key.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(nums.x.to_bytes(32, "big")),
        "y": b64url(nums.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    kid = hashlib.sha256(canonical).hexdigest()
    return {**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM}


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _keys(data: Path) -> dict[str, ec.EllipticCurvePrivateKey]:
    folder = auth_dir(data) / "keys"
    if not folder.is_dir():
        return {}
    return {p.stem: _load_key(p) for p in sorted(folder.glob("*.pem"))}


def _write_jwks(data: Path) -> None:
    keys = [{**public_jwk(k.public_key()), "kid": kid} for kid, k in _keys(data).items()]
    _private_write(
        auth_dir(data) / "jwks.json", json.dumps({"keys": keys}, indent=2).encode(), 0o644
    )


def _new_key(data: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = public_jwk(key.public_key())["kid"]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder = _private_dir(auth_dir(data) / "keys")
    _private_write(folder / f"{kid}.pem", pem)
    _private_write(auth_dir(data) / "current", kid.encode())
    _write_jwks(data)
    return kid


def current_kid(data: Path) -> str | None:
    path = auth_dir(data) / "current"
    try:
        kid = path.read_text().strip()
    except FileNotFoundError:
        return None
    return kid if (auth_dir(data) / "keys" / f"{kid}.pem").is_file() else None


def ensure_keys(data: Path) -> str:
    """The current signing key's kid, making the key (and the JWKS) when there is none."""
    _private_dir(auth_dir(data))
    kid = current_kid(data)
    if kid is None:
        return _new_key(data)
    if not (auth_dir(data) / "jwks.json").is_file():
        _write_jwks(data)
    return kid


def rotate(data: Path) -> str:
    """A new current key; the old ones stay in the JWKS (tokens they signed stay valid until
    they expire or the key is retired)."""
    ensure_keys(data)
    return _new_key(data)


def retire(data: Path, kid: str) -> None:
    """Remove key ``kid`` (not the current one) from the JWKS and delete it."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", kid):
        raise ValueError(f"kid: not a key id: {kid[:64]!r}")
    if kid == current_kid(data):
        raise ValueError(f"kid: {kid} is the current signing key; rotate first")
    path = auth_dir(data) / "keys" / f"{kid}.pem"
    if not path.is_file():
        raise ValueError(f"kid: no key {kid} under {auth_dir(data) / 'keys'}")
    path.unlink()
    _write_jwks(data)


def auth_config(cfg: MeshConfig) -> AuthConfig | None:
    """What the gateway checks tokens against (None with auth off)."""
    if cfg.auth == "off":
        return None
    jwks = Path(cfg.auth_jwks_file) if cfg.auth_jwks_file else auth_dir(cfg.data_path) / "jwks.json"
    return AuthConfig(issuer=cfg.auth_issuer, audience=cfg.auth_audience, jwks_file=jwks)


def prepare(cfg: MeshConfig) -> None:
    """Before ``up``: the local signing key (made once), or the user's JWKS file checked."""
    if cfg.auth == "off":
        return
    if cfg.auth_jwks_file:
        path = Path(cfg.auth_jwks_file)
        try:
            keys = json.loads(path.read_text())["keys"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"--auth-jwks-file (TRADECORE_AUTH_JWKS_FILE) {path}: not a JWKS file "
                f"({type(exc).__name__})"
            ) from None
        if not isinstance(keys, list) or not keys:
            raise ValueError(f"--auth-jwks-file {path}: the JWKS has no keys")
        return
    ensure_keys(cfg.data_path)


def signing_key(data: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The current signing key and its kid; a ValueError when there is none."""
    kid = current_kid(data)
    if kid is None:
        raise ValueError(
            f"no signing key under {auth_dir(data)}: run `tradecore up` (or `tradecore token "
            "rotate`) with this data directory first"
        )
    return _load_key(auth_dir(data) / "keys" / f"{kid}.pem"), kid


def sign(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """An ES256 JWT of ``claims`` signed with ``key``."""
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": kid}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` → seconds (> 0)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(
            f"ttl: expected a positive duration like 90s, 15m, 1h or 7d (got {text!r})"
        )
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def mint(
    data: Path,
    role: str,
    account: str = "",
    ttl_s: int = DEFAULT_TTL_S,
    *,
    issuer: str = "tradecore",
    audience: str = "tradecore",
    subject: str = "",
    now: float | None = None,
) -> str:
    """A token signed with the data directory's current key."""
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)} (got {role[:64]!r})")
    if role == "trader" and not account:
        raise ValueError("account: a trader token needs the account it may trade")
    key, kid = signing_key(data)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject or account or role,
        "role": role,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if account:
        claims["account"] = account
    return sign(claims, key, kid)


def _signal_supervisor(cfg: MeshConfig) -> str:
    """SIGHUP to a running mesh's supervisor (it restarts the gateway to read the new JWKS)."""
    from .cli import _read_state, _supervisor_running

    state = _read_state(cfg)
    if state and _supervisor_running(state):
        os.kill(int(state["supervisor_pid"]), signal.SIGHUP)
        return "; the running gateway restarts to load it"
    return ""


def token_parser() -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env()
    ap = argparse.ArgumentParser(
        prog="tradecore token",
        description="Mint a token signed with the mesh's local key (printed on stdout), or "
        "`tradecore token rotate [--retire KID]` to rotate the signing key.",
    )
    ap.add_argument("--data-dir", default=defaults.data_dir, help="(TRADECORE_DATA_DIR)")
    ap.add_argument("--role", choices=ROLES, required=True)
    ap.add_argument("--account", default="", help="the account a trader token may trade")
    ap.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    ap.add_argument("--subject", default="", help="the sub claim (default: account or role)")
    return ap


def rotate_parser() -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env()
    ap = argparse.ArgumentParser(
        prog="tradecore token rotate",
        description="Make a new signing key (the old public keys stay in the JWKS), or with "
        "--retire drop an old key from the JWKS.",
    )
    ap.add_argument("--data-dir", default=defaults.data_dir, help="(TRADECORE_DATA_DIR)")
    ap.add_argument("--retire", metavar="KID", default="", help="remove this old key instead")
    return ap


def token_main(argv: list[str]) -> int:
    defaults = MeshConfig.from_env()
    try:
        if argv[:1] == ["rotate"]:
            ns = rotate_parser().parse_args(argv[1:])
            cfg = MeshConfig(data_dir=str(Path(ns.data_dir).resolve()))
            if ns.retire:
                retire(cfg.data_path, ns.retire)
                print(f"retired key {ns.retire}{_signal_supervisor(cfg)}")
            else:
                kid = rotate(cfg.data_path)
                print(f"new signing key {kid}{_signal_supervisor(cfg)}")
            return 0
        ns = token_parser().parse_args(argv)
        if defaults.auth_jwks_file:
            raise ValueError(
                "TRADECORE_AUTH_JWKS_FILE is set: tokens come from your issuer, not the local key"
            )
        print(
            mint(
                Path(ns.data_dir).resolve(),
                ns.role,
                ns.account,
                parse_ttl(ns.ttl),
                issuer=defaults.auth_issuer,
                audience=defaults.auth_audience,
                subject=ns.subject,
            )
        )
        return 0
    except ValueError as exc:
        print(f"tradecore token: {exc}", file=sys.stderr)
        return 2
