"""The gateway's edge through real Envoy: rate limits per route and role, size limits, TLS and
mutual TLS with the local CA, gRPC-Web with CORS, and the access audit into ClickHouse.

Each edge test starts its own Envoy from the mesh's generator (``gateway_config``) with the
settings under test, routed to the services of the shared test mesh (which itself runs plain and
without rate limits); the access audit is checked on the shared mesh's own gateway and CLI.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc
from tradecore_gateway.generate import descriptor_path, write_config
from tradecore_services.mesh import access
from tradecore_services.mesh import tls as tls_mod
from tradecore_services.mesh.components import (
    envoy_path,
    gateway_config,
    gateway_credentials,
    grpc_health,
)
from tradecore_services.mesh.config import MeshConfig
from tradecore_services.mesh.procs import start_time

from tests.conftest import free_port
from tests.mesh import Mesh, tradecore_cmd

CONTRACT = {"spot": 100, "strike": 100, "expiry_years": 1, "volatility": 0.2, "option_type": "CALL"}
HEALTH = "tradecore.pricing.v1.PricingService"


@dataclass
class Gateway:
    port: int
    data: Path
    tls: str
    cfg: MeshConfig
    pid: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ca(self) -> bytes:
        return (self.data / "tls" / "ca.crt").read_bytes()

    def channel(self, client: tuple[bytes, bytes] | None = None) -> grpc.Channel:
        if self.tls == "off":
            return grpc.insecure_channel(self.target)
        key, chain = client if client else (None, None)
        creds = grpc.ssl_channel_credentials(self.ca(), key, chain)
        return grpc.secure_channel(
            self.target, creds, options=[("grpc.ssl_target_name_override", "localhost")]
        )


def _contract() -> pb.OptionContract:
    req = pb.PriceRequest()
    c = req.contracts.add()
    c.spot, c.strike, c.expiry_years, c.volatility = 100, 100, 1, 0.2
    c.option_type = pb.CALL
    return c


def _price_request(n: int = 1) -> pb.PriceRequest:
    req = pb.PriceRequest()
    for _ in range(n):
        req.contracts.add().CopyFrom(_contract())
    return req


@contextlib.contextmanager
def gateway(
    mesh: Mesh,
    tmp_path: Path,
    *,
    tls: str = "off",
    limits: str = "",
    cors: str = "",
    claims_from: str = "",
    settings: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    """Envoy with the mesh's generated configuration for these settings, in front of the shared
    mesh's services. ``claims_from``: a request header whose value becomes the ``role`` claim
    (with ``sub`` ``user-<role>`` and ``account`` ``ACC-<role>``) in the dynamic metadata where
    jwt_authn keeps a verified token's payload, as the authentication filter (gateway/auth.py)
    does from a token."""
    data = tmp_path / f"gw-{uuid.uuid4().hex[:8]}"
    port, admin = free_port(), free_port()
    cfg = MeshConfig.from_dict(
        {
            **mesh.port_values(),
            "data_dir": str(data),
            "gateway_port": port,
            "admin_port": admin,
            "tls": tls,
            "gateway_limits": limits,
            "cors_origins": cors,
            # The edge on its own: claims come from ``claims_from`` (authentication with real
            # tokens in front of the same filters: test_gateway_auth_mesh.py).
            "auth": "off",
            **(settings or {}),
        }
    )
    cfg.validate()
    cfg.prepare_data_dir()
    if tls != "off":
        tls_mod.ensure(
            data,
            mutual=tls == "mtls",
            cert_file=cfg.tls_cert_file,
            key_file=cfg.tls_key_file,
            ca_file=cfg.tls_ca_file,
        )
    config: dict[str, Any] = gateway_config(cfg, descriptor_path())
    if claims_from:
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        filters = hcm["typed_config"]["http_filters"]
        at = [f["name"] for f in filters].index("envoy.filters.http.grpc_web") + 1
        lua = f"""
function envoy_on_request(handle)
  local role = handle:headers():get("{claims_from}")
  if role then
    handle:streamInfo():dynamicMetadata():set("envoy.filters.http.jwt_authn", "jwt_payload",
      {{role = role, sub = "user-" .. role, account = "ACC-" .. role}})
  end
end
"""
        filters.insert(
            at,
            {
                "name": "test.jwt_payload",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"inline_string": lua},
                },
            },
        )
    file = write_config(data / "envoy.json", config)
    with open(data / "logs" / "envoy.log", "ab") as out:
        proc = subprocess.Popen(
            [
                envoy_path(),
                "-c",
                str(file),
                "--disable-hot-restart",
                "--log-level",
                "warn",
                "--file-flush-interval-msec",
                "250",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (data / "logs" / "envoy.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Envoy not ready"
            time.sleep(0.1)
        yield Gateway(port, data, tls, cfg, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def _json_post(url: str, body: bytes, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, (dict(r.headers), json.loads(r.read()))
    except urllib.error.HTTPError as e:
        with e:
            return e.code, (dict(e.headers), json.loads(e.read()))


# ---------------------------------------------------------------------------- rate limits


def test_a_rate_limited_route_answers_resource_exhausted_and_429_with_retry_after(
    mesh: Mesh, tmp_path: Path
) -> None:
    with gateway(mesh, tmp_path, limits="reads.rate=1,reads.burst=2") as gw:
        with gw.channel() as ch:
            stub = pb_grpc.PricingServiceStub(ch)
            codes, refused = [], None
            for _ in range(8):
                try:
                    stub.Price(_price_request(), timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
                    refused = e
            assert codes[0] == grpc.StatusCode.OK
            # Not UNAVAILABLE (which clients retry): RESOURCE_EXHAUSTED, with retry-after.
            assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
            assert refused is not None
            assert dict(refused.trailing_metadata() or ())["retry-after"] == "1"
            assert "rate limit" in (refused.details() or "")
            # The health route is never limited (the supervisor checks the gateway through it).
            for _ in range(6):
                health = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=HEALTH), timeout=10
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
        # JSON: the same route after the transcoder (the same bucket), 429 with retry-after and
        # the services' error shape.
        url = f"http://{gw.target}/v1/pricing/price"
        statuses = [
            _json_post(url, json.dumps({"contracts": [CONTRACT]}).encode()) for _ in range(8)
        ]
        codes_json = [s for s, _ in statuses]
        assert set(codes_json) <= {200, 429} and 429 in codes_json, codes_json
        headers, body = next(b for s, b in statuses if s == 429)
        assert headers["retry-after"] == "1"
        assert body["code"] == 8 and "rate limit" in body["message"]


def test_each_role_has_its_own_bucket_and_refused_calls_are_audited_with_who(
    mesh: Mesh, tmp_path: Path
) -> None:
    with (
        gateway(
            mesh, tmp_path, limits="reads.rate=1,reads.burst=2", claims_from="x-test-role"
        ) as gw,
        gw.channel() as ch,
    ):
        stub = pb_grpc.PricingServiceStub(ch)

        def call(metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
            try:
                stub.Price(_price_request(), timeout=10, metadata=metadata)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

        viewer = [call((("x-test-role", "viewer"),)) for _ in range(6)]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in viewer, viewer
        # The viewers' bucket is spent; the traders' and the one of calls without a token
        # are not.
        assert call((("x-test-role", "trader"),)) == grpc.StatusCode.OK
        assert call(()) == grpc.StatusCode.OK
        # The access component reads this gateway's log into ClickHouse: the refused calls
        # are there, with who made them.
        with access_reader(gw):
            deadline = time.monotonic() + 30
            rows: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                rows = _access(gw.data, "--who", "user-viewer", "--status", "RESOURCE_EXHAUSTED")
                if len(rows) == viewer.count(grpc.StatusCode.RESOURCE_EXHAUSTED):
                    break
                time.sleep(0.3)
            assert len(rows) == viewer.count(grpc.StatusCode.RESOURCE_EXHAUSTED), rows
            row = rows[0]
            assert (row["subject"], row["role"], row["account"]) == (
                "user-viewer", "viewer", "ACC-viewer"
            )  # fmt: skip
            assert row["route"] == "tradecore.pricing.v1.PricingService/Price"
            assert row["flags"] == "RL"
            assert {r["role"] for r in _access(gw.data, "--who", "ACC-trader")} == {"trader"}


@contextlib.contextmanager
def access_reader(gw: Gateway, **env_extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """The access component (as the supervisor runs it) on ``gw``'s access log, answering
    queries; it must stop cleanly on SIGTERM."""
    env = {**os.environ, "TRADECORE_DATA_DIR": str(gw.data), **env_extra}
    env.pop("TRADECORE_CLICKHOUSE_DSN", None)
    with open(gw.data / "logs" / "access.log", "ab") as out:
        reader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradecore_services.mesh.access",
                "--log",
                str(gw.data / "logs" / "gateway-access.jsonl"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not access.ping(gw.data)[0]:
            assert reader.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        yield reader
    finally:
        reader.terminate()
        assert reader.wait(30) == 0


def test_the_access_log_is_rotated_without_losing_a_call(mesh: Mesh, tmp_path: Path) -> None:
    with gateway(mesh, tmp_path, limits="*.rate=0") as gw:
        # The component finds Envoy's pid in mesh.json, as in a mesh.
        (gw.data / "mesh.json").write_text(
            json.dumps({"components": {"gateway": {"pid": gw.pid, "start": start_time(gw.pid)}}})
        )
        tag = uuid.uuid4().hex[:8]
        with access_reader(gw, TRADECORE_ACCESS_ROTATE_BYTES="8192"), gw.channel() as ch:
            stub = pb_grpc.PricingServiceStub(ch)
            for i in range(80):
                stub.Price(_price_request(), timeout=10, metadata=(("x-request-id", f"{tag}-{i}"),))
                time.sleep(0.02)
            deadline = time.monotonic() + 30
            found: set[str] = set()
            while time.monotonic() < deadline and len(found) < 80:
                rows = _access(gw.data, "--route", "Price", "--limit", "1000")
                found = {r["request_id"] for r in rows if r["request_id"].startswith(tag)}
                time.sleep(0.3)
            assert found == {f"{tag}-{i}" for i in range(80)}
            rows = _access(gw.data, "--route", "Price", "--limit", "1000")
            assert len([r for r in rows if r["request_id"].startswith(tag)]) == 80  # no doubles
        logs = gw.data / "logs"
        assert (logs / "gateway-access.jsonl.1").exists()  # rotated (at least once)
        assert (logs / "gateway-access.jsonl").stat().st_size < 80 * 400


def test_an_oversized_request_is_refused_413_and_resource_exhausted(
    mesh: Mesh, tmp_path: Path
) -> None:
    limit = 16 << 10
    with gateway(mesh, tmp_path, limits=f"*.rate=0,reads.max_request_bytes={limit}") as gw:
        big = _price_request(1000)
        assert big.ByteSize() > limit
        with gw.channel() as ch:
            stub = pb_grpc.PricingServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Price(big, timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "size limit" in (err.value.details() or "")
            assert len(stub.Price(_price_request(100), timeout=10).results) == 100
        url = f"http://{gw.target}/v1/pricing/price"
        status, (_, body) = _json_post(url, json.dumps({"contracts": [CONTRACT] * 1000}).encode())
        assert status == 413 and body["code"] == 8 and "size limit" in body["message"]
        status, _ = _json_post(url, json.dumps({"contracts": [CONTRACT] * 10}).encode())
        assert status == 200


# ---------------------------------------------------------------------------- TLS


def _health(ch: grpc.Channel) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return (
        health_pb2_grpc.HealthStub(ch)
        .Check(health_pb2.HealthCheckRequest(service=HEALTH), timeout=10)
        .status
    )


def test_tls_with_the_generated_ca_and_no_plain_connection(mesh: Mesh, tmp_path: Path) -> None:
    with gateway(mesh, tmp_path, tls="on") as gw:
        for key in ("ca.key", "server.key", "clients/mesh.key"):
            assert (gw.data / "tls" / key).stat().st_mode & 0o777 == 0o600, key
        with gw.channel() as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
        assert _supervisor_health(gw) == (True, "SERVING")
        # JSON over HTTPS (HTTP/1.1), verified against the CA for the name 127.0.0.1.
        ctx = ssl.create_default_context(cadata=gw.ca().decode())
        status, (_, body) = _json_post(
            f"https://{gw.target}/v1/pricing/price",
            json.dumps({"contracts": [CONTRACT]}).encode(),
            ctx,
        )
        assert status == 200 and body["results"][0]["price"] == pytest.approx(7.965567455405804)
        # Plain gRPC and plain HTTP get no answer.
        with grpc.insecure_channel(gw.target) as plain, pytest.raises(grpc.RpcError) as err:
            _health(plain)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"GET /v1/pricing/price HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert not s.recv(1024).startswith(b"HTTP/")
        # A CA that did not sign the gateway's certificate is not trusted.
        other = tmp_path / "other"
        tls_mod.ensure(other, mutual=False)
        creds = grpc.ssl_channel_credentials((other / "tls" / "ca.crt").read_bytes())
        opts = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(gw.target, creds, options=opts) as ch:
            with pytest.raises(grpc.RpcError) as err:
                _health(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def _supervisor_health(gw: Gateway) -> tuple[bool, str]:
    """The supervisor's own health check of the gateway (components.py)."""
    credentials, options = gateway_credentials(gw.cfg)
    return grpc_health(gw.target, HEALTH, timeout=10, credentials=credentials, options=options)


def _user_certificate(d: Path, name: str) -> dict[str, str]:
    """A CA and a server certificate for the DNS name ``name`` only (no IP address), as a user
    would supply for a gateway reached by name."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    (d / "ca.crt").write_bytes(cert("User CA", ca_key, "User CA", ca_key, True).public_bytes(pem))
    (d / "gw.crt").write_bytes(cert(name, key, "User CA", ca_key, False).public_bytes(pem))
    (d / "gw.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {
        "tls_cert_file": str(d / "gw.crt"),
        "tls_key_file": str(d / "gw.key"),
        "tls_ca_file": str(d / "ca.crt"),
    }


def test_a_supplied_certificate_is_served_and_checked(mesh: Mesh, tmp_path: Path) -> None:
    supplied = _user_certificate(tmp_path / "user", "gateway.internal")
    with gateway(mesh, tmp_path, tls="on", settings=supplied) as gw:
        assert not (gw.data / "tls").exists()  # nothing generated beside supplied files
        # The supervisor checks the certificate for its own name, not 127.0.0.1.
        assert _supervisor_health(gw) == (True, "SERVING")
        creds = grpc.ssl_channel_credentials(Path(supplied["tls_ca_file"]).read_bytes())
        opts = [("grpc.ssl_target_name_override", "gateway.internal")]
        with grpc.secure_channel(gw.target, creds, options=opts) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING


def test_mutual_tls_needs_a_client_certificate_of_the_ca(mesh: Mesh, tmp_path: Path) -> None:
    with gateway(mesh, tmp_path, tls="mtls") as gw:
        with gw.channel() as ch, pytest.raises(grpc.RpcError) as err:
            _health(ch)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # `tradecore cert client --name desk1` issues one.
        out = subprocess.run(
            [*tradecore_cmd(), "cert", "client", "--name", "desk1", "--data-dir", str(gw.data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        cert = gw.data / "tls" / "clients" / "desk1.crt"
        key = gw.data / "tls" / "clients" / "desk1.key"
        assert key.stat().st_mode & 0o777 == 0o600
        with gw.channel((key.read_bytes(), cert.read_bytes())) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
        # The supervisor checks the gateway with its own client certificate.
        assert _supervisor_health(gw) == (True, "SERVING")
        # A client certificate of another CA is refused.
        other = tmp_path / "other"
        tls_mod.ensure(other, mutual=True)
        stranger = tls_mod.issue_client(other, "stranger")
        with gw.channel((stranger[1].read_bytes(), stranger[0].read_bytes())) as ch:
            with pytest.raises(grpc.RpcError) as err:
                _health(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------------------- gRPC-Web + CORS


def _grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at < len(body):
        flag, size = body[at], struct.unpack(">I", body[at + 1 : at + 5])[0]
        frames.append((flag, body[at + 5 : at + 5 + size]))
        at += 5 + size
    return frames


def test_a_grpc_web_call_and_cors_preflights(mesh: Mesh, tmp_path: Path) -> None:
    origin = "https://desk.example"
    with gateway(mesh, tmp_path, cors=origin) as gw:
        msg = _price_request().SerializeToString()
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request(
            "POST",
            "/tradecore.pricing.v1.PricingService/Price",
            body=b"\x00" + struct.pack(">I", len(msg)) + msg,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "origin": origin,
            },
        )
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status == 200 and r.getheader("content-type") == "application/grpc-web+proto"
        assert r.getheader("access-control-allow-origin") == origin
        assert "grpc-status" in (r.getheader("access-control-expose-headers") or "")
        (data_flag, data), (trailer_flag, trailer) = _grpc_web_frames(body)
        assert (data_flag, trailer_flag) == (0x00, 0x80)
        price = pb.PriceResponse.FromString(data).results[0].price
        assert price == pytest.approx(7.965567455405804)
        assert b"grpc-status:0" in trailer
        for who, allowed in ((origin, True), ("https://elsewhere.example", False)):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            conn.request(
                "OPTIONS",
                "/tradecore.pricing.v1.PricingService/Price",
                headers={
                    "origin": who,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type,x-grpc-web",
                },
            )
            r = conn.getresponse()
            r.read()
            conn.close()
            if allowed:
                assert r.status == 200
                assert r.getheader("access-control-allow-origin") == origin
                assert "x-grpc-web" in (r.getheader("access-control-allow-headers") or "")
            else:
                assert r.getheader("access-control-allow-origin") is None


# ---------------------------------------------------------------------------- access audit


def _access(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*tradecore_cmd(), "access", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_gateway_call_is_in_the_access_audit(mesh: Mesh) -> None:
    tag = uuid.uuid4().hex[:12]
    ok_id, bad_id, missing_id = f"ok-{tag}", f"bad-{tag}", f"missing-{tag}"
    with grpc.insecure_channel(mesh.gateway) as ch:
        pb_grpc.PricingServiceStub(ch).Price(
            _price_request(), timeout=10, metadata=(("x-request-id", ok_id), *mesh.metadata())
        )
    for rid, path, body in (
        (bad_id, "/v1/pricing/price", b'{"contracts": [{"spot": "abc"}]}'),
        (missing_id, "/v1/no/such/route", b"{}"),
    ):
        req = urllib.request.Request(
            f"http://{mesh.gateway}{path}",
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "x-request-id": rid,
                **mesh.auth_headers(),
            },
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        err.value.close()
    deadline = time.monotonic() + 30
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(rows) < 3:
        rows = {
            r["request_id"]: r
            for r in _access(mesh.data_dir, "--since", "10m", "--limit", "1000")
            if r["request_id"] in (ok_id, bad_id, missing_id)
        }
        time.sleep(0.3)
    assert set(rows) == {ok_id, bad_id, missing_id}, rows
    ok = rows[ok_id]
    assert ok["route"] == "tradecore.pricing.v1.PricingService/Price"
    assert ok["path"] == "/tradecore.pricing.v1.PricingService/Price"
    assert (ok["code"], ok["grpc_status"], ok["protocol"]) == (200, "OK", "HTTP/2")
    assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0 and ok["duration_ms"] >= 0
    assert ok["client"].startswith("127.0.0.1:")
    bad = rows[bad_id]
    assert (bad["code"], bad["path"], bad["method"]) == (400, "/v1/pricing/price", "POST")
    assert rows[missing_id]["code"] == 404
    # The CLI's filters.
    found = _access(mesh.data_dir, "--route", "Price", "--status", "400", "--since", "10m")
    assert bad_id in {r["request_id"] for r in found}
    assert all(r["code"] == 400 for r in found)
    found = _access(mesh.data_dir, "--status", "4xx", "--since", "10m", "--limit", "1000")
    assert {bad_id, missing_id} <= {r["request_id"] for r in found}
    assert ok_id not in {r["request_id"] for r in found}
    found = _access(
        mesh.data_dir, "--status", "OK", "--route", "PricingService/Price", "--limit", "1000"
    )
    assert ok_id in {r["request_id"] for r in found}
    bad_filter = subprocess.run(
        [*tradecore_cmd(), "access", "--data-dir", str(mesh.data_dir), "--since", "yesterday"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_filter.returncode == 2 and "since" in bad_filter.stderr
