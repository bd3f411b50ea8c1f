"""The gateway's certificates: a local CA and a server certificate under ``<data>/tls/``, made at
the first ``tradecore up`` (the server certificate again when it is within 30 days of expiry),
client certificates for mutual TLS (``tradecore cert client --name X``), or files supplied by
setting (TRADECORE_TLS_CERT_FILE, _KEY_FILE, _CA_FILE). Private keys are written 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397
CLIENT_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class GatewayTls:
    """The files the gateway serves with (``cert``, ``key``) and the CA that signed its server
    certificate and verifies client certificates (``ca``); ``mutual``: clients must present
    one. ``ca_key`` is empty for supplied certificates (no client certificates issued here)."""

    cert: Path
    key: Path
    ca: Path
    ca_key: Path | None
    mutual: bool


def tls_dir(data_dir: Path) -> Path:
    return data_dir / "tls"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (created 0600, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _builder(subject: str, issuer: x509.Name, public: object, days: int) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _load_ca(ca: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key}: not an EC private key")
    return cert, key


def _make_ca(d: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tradecore local CA")])
    cert = (
        _builder("Tradecore local CA", name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _write_private(d / "ca.key", _key_pem(key))
    _write_public(d / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    ca: Path, ca_key: Path, name: str, usage: x509.ObjectIdentifier, days: int, san: bool
) -> tuple[bytes, bytes]:
    ca_cert, signer = _load_ca(ca, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    b = _builder(name, ca_cert.subject, key.public_key(), days)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    b = b.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    if san:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_IPS]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = b.sign(signer, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_server(data_dir: Path) -> None:
    """A new server certificate for localhost/127.0.0.1/::1 from the local CA."""
    d = tls_dir(data_dir)
    cert, key = _issue(
        d / "ca.crt", d / "ca.key", "localhost", ExtendedKeyUsageOID.SERVER_AUTH, SERVER_DAYS, True
    )
    _write_private(d / "server.key", key)
    _write_public(d / "server.crt", cert)


def issue_client(data_dir: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (CN ``name``) from the local CA under ``<data>/tls/clients/``."""
    if not _CLIENT_NAME.match(name):
        raise ValueError(f"name must match {_CLIENT_NAME.pattern} (got {name!r})")
    d = tls_dir(data_dir)
    if not (d / "ca.key").exists():
        raise ValueError(
            f"no local CA under {d} (run `tradecore up` once, or the gateway uses supplied "
            "certificates: issue client certificates with the CA that signed them)"
        )
    cert, key = _issue(
        d / "ca.crt", d / "ca.key", name, ExtendedKeyUsageOID.CLIENT_AUTH, CLIENT_DAYS, False
    )
    out = d / "clients"
    out.mkdir(mode=0o700, exist_ok=True)
    _write_private(out / f"{name}.key", key)
    _write_public(out / f"{name}.crt", cert)
    return out / f"{name}.crt", out / f"{name}.key"


def _expires_soon(cert: Path) -> bool:
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    return c.not_valid_after_utc - _now() < RENEW_BEFORE


def ensure(
    data_dir: Path, *, mutual: bool, cert_file: str = "", key_file: str = "", ca_file: str = ""
) -> GatewayTls:
    """The gateway's TLS files: the supplied ones (cert and key together; the CA is needed for
    mutual TLS), else the local CA's under ``<data>/tls``, made when missing (the server
    certificate also when within 30 days of expiry), with a client certificate ``mesh`` the
    supervisor checks the gateway's health with. A ValueError names a missing file."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("TRADECORE_TLS_CERT_FILE and TRADECORE_TLS_KEY_FILE go together")
    if cert_file:
        for what, f in (("cert", cert_file), ("key", key_file), ("CA", ca_file)):
            if f and not Path(f).is_file():
                raise ValueError(f"TLS {what} file {f} does not exist")
        if mutual and not ca_file:
            raise ValueError("mutual TLS needs TRADECORE_TLS_CA_FILE (the clients' CA)")
        return GatewayTls(
            Path(cert_file).resolve(),
            Path(key_file).resolve(),
            Path(ca_file).resolve() if ca_file else Path(),
            None,
            mutual,
        )
    d = tls_dir(data_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (d / "ca.crt").exists() or not (d / "ca.key").exists():
        _make_ca(d)
        (d / "server.crt").unlink(missing_ok=True)
    if not (d / "server.crt").exists() or _expires_soon(d / "server.crt"):
        issue_server(data_dir)
    mesh_cert = d / "clients" / "mesh.crt"
    if not mesh_cert.exists() or _expires_soon(mesh_cert):
        issue_client(data_dir, "mesh")
    return GatewayTls(d / "server.crt", d / "server.key", d / "ca.crt", d / "ca.key", mutual)


def server_name(cert: Path) -> str:
    """The first DNS name of a certificate (its common name without one; "" if unreadable)."""
    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return ""
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        if names:
            return str(names[0])
    except x509.ExtensionNotFound:
        pass
    cn = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else ""


def mesh_client_files(data_dir: Path) -> tuple[Path, Path] | None:
    """The supervisor's own client certificate and key, when the local CA made them."""
    d = tls_dir(data_dir) / "clients"
    if (d / "mesh.crt").exists() and (d / "mesh.key").exists():
        return d / "mesh.crt", d / "mesh.key"
    return None


def cert_main(argv: list[str]) -> int:
    """``tradecore cert client --name X`` / ``tradecore cert server``."""
    from .config import MeshConfig

    defaults = MeshConfig.from_env()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=defaults.data_dir, help="(TRADECORE_DATA_DIR)")
    ap = argparse.ArgumentParser(
        prog="tradecore cert", description="certificates of the gateway's local CA"
    )
    sub = ap.add_subparsers(dest="action", required=True)
    cl = sub.add_parser(
        "client", parents=[common], help="issue a client certificate for mutual TLS"
    )
    cl.add_argument("--name", required=True, help="the certificate's common name")
    sub.add_parser(
        "server",
        parents=[common],
        help="issue a new server certificate (rotation; the gateway serves it after a restart)",
    )
    ns = ap.parse_args(argv)
    data = Path(ns.data_dir).resolve()
    try:
        if ns.action == "client":
            cert, key = issue_client(data, ns.name)
            print(f"certificate {cert}\nkey         {key}\nCA          {tls_dir(data) / 'ca.crt'}")
        else:
            if not (tls_dir(data) / "ca.key").exists():
                raise ValueError(f"no local CA under {tls_dir(data)} (run `tradecore up` once)")
            issue_server(data)
            print(f"certificate {tls_dir(data) / 'server.crt'}")
    except (ValueError, OSError) as exc:
        print(f"tradecore cert: {exc}", file=sys.stderr)
        return 2
    return 0
