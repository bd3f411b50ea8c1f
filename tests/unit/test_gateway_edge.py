"""The gateway's edge configuration (gateway/edge.py), certificates (services/mesh/tls.py) and
the access log's reader and queries (services/mesh/access.py). Envoy's behaviour with them is
tested through real Envoy in tests/integration/test_gateway_edge.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from tradecore.store import connect
from tradecore_gateway.edge import (
    DEFAULT_LIMITS,
    Edge,
    TlsFiles,
    parse_limits,
    route_class,
)
from tradecore_gateway.generate import Upstream, descriptor_path, envoy_config
from tradecore_services.mesh import access
from tradecore_services.mesh import tls as tls_mod

PRICING = {"tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 5555)}
ALL = {
    "tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 5551),
    "tradecore.execution.v1.ExecutionService": Upstream("127.0.0.1", 5552),
    "tradecore.risk.v1.RiskService": Upstream("127.0.0.1", 5553),
}


def _hcm(cfg: dict[str, Any]) -> dict[str, Any]:
    chain = cfg["static_resources"]["listeners"][0]["filter_chains"][0]
    return dict(chain["filters"][0]["typed_config"])


def test_limits_parse_over_the_defaults_and_name_a_bad_item() -> None:
    assert parse_limits("").classes == DEFAULT_LIMITS
    lim = parse_limits("orders.rate=20, orders.burst=40,*.timeout_s=9,role.admin=2")
    assert (lim.classes["orders"].rate, lim.classes["orders"].burst) == (20, 40)
    assert {c.timeout_s for c in lim.classes.values()} == {9}
    assert lim.classes["reads"].rate == DEFAULT_LIMITS["reads"].rate
    assert lim.role_factors["admin"] == 2 and lim.role_factors["viewer"] == 1
    for spec, message in (
        ("writes.rate=1", "unknown route class 'writes'"),
        ("orders.speed=1", "unknown field 'speed'"),
        ("orders.rate=fast", "value must be an integer"),
        ("orders.rate=-1", "rate must be a non-negative integer"),
        ("orders.max_request_bytes=100", "max_request_bytes must be at least 16384"),
        ("role.boss=2", "unknown role 'boss'"),
        ("role.admin=0", "factor must be > 0"),
        ("role.admin=nan", "factor must be > 0"),
        ("orders", "is not <class>.<field>=<value>"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_limits(spec)


def test_methods_fall_in_route_classes() -> None:
    assert route_class("/tradecore.pricing.v1.PricingService/Price") == "reads"
    assert route_class("/tradecore.execution.v1.ExecutionService/SubmitOrder") == "orders"
    assert route_class("/tradecore.execution.v1.ExecutionService/ListOrders") == "reads"
    assert route_class("/tradecore.risk.v1.RiskService/ComputeVaR") == "heavy"
    assert route_class("/tradecore.risk.v1.RiskService/GetAccountRisk") == "reads"
    assert route_class("/tradecore.risk.v1.RiskService/SetLimits") == "orders"
    assert route_class("/inference.GRPCInferenceService/ModelInfer") == "heavy"
    assert route_class("/inference.GRPCInferenceService/ModelMetadata") == "reads"


def test_filters_run_in_the_edge_order() -> None:
    filters = _hcm(envoy_config(descriptor=descriptor_path(), upstreams=PRICING))["http_filters"]
    names = [f["name"] for f in filters]
    assert names == [
        "envoy.filters.http.cors",  # preflights (no token) answered before anything else
        "envoy.filters.http.grpc_web",  # gRPC-Web becomes gRPC
        "envoy.filters.http.header_mutation",  # a client's forged claims header removed (auth)
        "envoy.filters.http.lua",  # strict JSON
        "envoy.filters.http.grpc_json_transcoder",  # JSON becomes gRPC: the route is the method's
        "envoy.filters.http.local_ratelimit",  # by the method's route
        "envoy.filters.http.buffer",  # size limit by the method's route
        "envoy.filters.http.router",
    ]


def test_every_method_route_is_limited_by_its_class_and_role() -> None:
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams=ALL,
        edge=Edge(limits=parse_limits("orders.rate=7,orders.burst=9,role.admin=2")),
    )
    routes = _hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"]
    by_name = {r["name"]: r for r in routes}
    submit = by_name["tradecore.execution.v1.ExecutionService/SubmitOrder"]
    assert submit["match"] == {"path": "/tradecore.execution.v1.ExecutionService/SubmitOrder"}
    rl = submit["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    # The traps: without these the filter limits nothing, or answers UNAVAILABLE.
    assert rl["filter_enabled"]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
    assert rl["filter_enforced"]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
    assert rl["rate_limited_as_resource_exhausted"] is True
    assert rl["token_bucket"] == {"max_tokens": 9, "tokens_per_fill": 7, "fill_interval": "1s"}
    buckets = {d["entries"][0]["value"]: d["token_bucket"] for d in rl["descriptors"]}
    assert set(buckets) == {"viewer", "trader", "risk", "admin"}
    assert buckets["admin"]["tokens_per_fill"] == 14 and buckets["trader"]["max_tokens"] == 9
    assert rl["response_headers_to_add"][0]["header"] == {"key": "retry-after", "value": "1"}
    # The role is the verified token's claim, where jwt_authn keeps it (gateway/auth.py).
    action = submit["route"]["rate_limits"][0]["actions"][0]["metadata"]
    assert action["metadata_key"] == {
        "key": "envoy.filters.http.jwt_authn",
        "path": [{"key": "jwt_payload"}, {"key": "role"}],
    }
    assert action["source"] == "DYNAMIC" and action["skip_if_absent"] is True
    assert submit["route"]["timeout"] == "15s"
    size = submit["typed_per_filter_config"]["envoy.filters.http.buffer"]
    assert size["buffer"]["max_request_bytes"] == DEFAULT_LIMITS["orders"].max_request_bytes
    var = by_name["tradecore.risk.v1.RiskService/ComputeVaR"]
    assert var["route"]["timeout"] == "120s"
    stream = by_name["tradecore.pricing.v1.PricingService/StreamGreeks"]
    assert stream["route"]["timeout"] == "0s"  # streams: no overall timeout, still rate limited
    assert "envoy.filters.http.local_ratelimit" in stream["typed_per_filter_config"]
    health = by_name["grpc.health.v1.Health"]
    assert "typed_per_filter_config" not in health  # never limited
    # A class at rate 0 has no limiter on its routes.
    off = envoy_config(
        descriptor=descriptor_path(), upstreams=ALL, edge=Edge(limits=parse_limits("*.rate=0"))
    )
    for route in _hcm(off)["route_config"]["virtual_hosts"][0]["routes"]:
        assert "envoy.filters.http.local_ratelimit" not in route.get("typed_per_filter_config", {})


def test_local_replies_are_resource_exhausted_for_grpc_and_json() -> None:
    mappers = _hcm(envoy_config(descriptor=descriptor_path(), upstreams=PRICING))[
        "local_reply_config"
    ]["mappers"]
    grpc_413 = mappers[0]
    assert grpc_413["headers_to_add"][0]["header"] == {"key": "grpc-status", "value": "8"}
    json_413 = mappers[1]
    assert json_413["body_format_override"]["json_format"]["code"] == 8


def test_tls_cors_and_access_log_are_configured_when_asked() -> None:
    plain = envoy_config(descriptor=descriptor_path(), upstreams=PRICING)
    chain = plain["static_resources"]["listeners"][0]["filter_chains"][0]
    assert "transport_socket" not in chain
    assert "access_log" not in _hcm(plain)
    assert "typed_per_filter_config" not in _hcm(plain)["route_config"]["virtual_hosts"][0]
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams=PRICING,
        edge=Edge(
            tls=TlsFiles("/c.crt", "/c.key", "/ca.crt"),
            cors_origins=("https://a.example",),
            access_log_path="/logs/access.jsonl",
        ),
    )
    chain = cfg["static_resources"]["listeners"][0]["filter_chains"][0]
    ctx = chain["transport_socket"]["typed_config"]
    assert ctx["require_client_certificate"] is True
    assert ctx["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    assert ctx["common_tls_context"]["validation_context"]["trusted_ca"]["filename"] == "/ca.crt"
    hcm = _hcm(cfg)
    policy = hcm["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]
    assert policy["envoy.filters.http.cors"]["allow_origin_string_match"] == [
        {"exact": "https://a.example"}
    ]
    (log,) = hcm["access_log"]
    assert log["typed_config"]["path"] == "/logs/access.jsonl"
    fields = log["typed_config"]["log_format"]["json_format"]
    for key in ("subject", "role", "account", "route", "code", "grpc_status", "duration_ms",
                "bytes_in", "bytes_out", "request_id", "client"):  # fmt: skip
        assert key in fields


# ---------------------------------------------------------------------------- certificates


def test_the_local_ca_and_certificates(tmp_path: Path) -> None:
    files = tls_mod.ensure(tmp_path, mutual=True)
    d = tmp_path / "tls"
    for key in ("ca.key", "server.key", "clients/mesh.key"):
        assert (d / key).stat().st_mode & 0o777 == 0o600
    server = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    # A second `up` keeps them.
    before = files.cert.read_bytes()
    tls_mod.ensure(tmp_path, mutual=True)
    assert files.cert.read_bytes() == before
    cert, key = tls_mod.issue_client(tmp_path, "desk-1")
    client = x509.load_pem_x509_certificate(cert.read_bytes())
    client.verify_directly_issued_by(ca)
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="name must match"):
        tls_mod.issue_client(tmp_path, "../x")
    with pytest.raises(ValueError, match="no local CA"):
        tls_mod.issue_client(tmp_path / "empty", "x")


def test_supplied_certificates_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        tls_mod.ensure(tmp_path, mutual=False, cert_file="/x.crt")
    with pytest.raises(ValueError, match="does not exist"):
        tls_mod.ensure(tmp_path, mutual=False, cert_file="/nope.crt", key_file="/nope.key")
    made = tls_mod.ensure(tmp_path / "made", mutual=False)
    with pytest.raises(ValueError, match="mutual TLS needs TRADECORE_TLS_CA_FILE"):
        tls_mod.ensure(tmp_path, mutual=True, cert_file=str(made.cert), key_file=str(made.key))
    used = tls_mod.ensure(tmp_path, mutual=False, cert_file=str(made.cert), key_file=str(made.key))
    assert used.cert == made.cert and used.ca_key is None
    assert not (tmp_path / "tls").exists()  # no local CA made beside supplied files


# ---------------------------------------------------------------------------- access log


def _line(rid: str, code: int = 200, **extra: Any) -> bytes:
    doc = {
        "start": "1796454941.569616",
        "request_id": rid,
        "client": "127.0.0.1:5000",
        "peer": None,
        "subject": "alice",
        "role": "trader",
        "account": "ACC1",
        "method": "POST",
        "path": "/tradecore.pricing.v1.PricingService/Price",
        "route": "tradecore.pricing.v1.PricingService/Price",
        "protocol": "HTTP/2",
        "code": code,
        "grpc_status": 0 if code == 200 else 8,
        "flags": "-",
        "details": "via_upstream",
        "duration_ms": 3,
        "bytes_in": 45,
        "bytes_out": 70,
        **extra,
    }
    return json.dumps(doc).encode() + b"\n"


def test_the_reader_takes_complete_lines_from_its_offset_and_follows_rotation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "gateway-access.jsonl"
    log.write_bytes(_line("a") + _line("b") + b'{"start": "1796')  # the last one half-written
    t = access.Tailer(log)
    lines, end = t.read()
    assert [json.loads(x)["request_id"] for x in lines] == ["a", "b"]
    t.commit(end)
    t.close()
    with open(log, "ab") as f:
        f.write(b'454941.5", "request_id": "c"}\n')
    # A restart goes on from the recorded offset.
    t2 = access.Tailer(log)
    lines, end = t2.read()
    assert [json.loads(x)["request_id"] for x in lines] == ["c"]
    t2.commit(end)
    # Rotation: the file renamed .1 (and written to until Envoy reopens), then a new file.
    log.rename(log.with_name(log.name + ".1"))
    with open(log.with_name(log.name + ".1"), "ab") as f:
        f.write(_line("d"))
    log.write_bytes(_line("e"))
    seen = []
    for _ in range(4):
        lines, end = t2.read()
        seen += [json.loads(x)["request_id"] for x in lines]
        t2.commit(end)
    assert seen == ["d", "e"]
    t2.close()
    # A reader started again goes on in the new file from its recorded offset: nothing new.
    t3 = access.Tailer(log)
    assert t3.read()[0] == []
    t3.close()


def test_a_new_file_longer_than_the_old_one_is_read_from_its_start(tmp_path: Path) -> None:
    # The offset of the old file's end must not carry over to the new file (it skipped the
    # first lines of a new file that had grown past it before the switch).
    log = tmp_path / "gateway-access.jsonl"
    log.write_bytes(_line("a"))
    t = access.Tailer(log)
    lines, end = t.read()
    t.commit(end)
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(b"".join(_line(f"n{i}") for i in range(20)))  # longer than "a" alone
    seen = []
    for _ in range(4):  # as the copy loop does: read, commit what was read
        lines, end = t.read()
        seen += [json.loads(x)["request_id"] for x in lines]
        if end != t.offset:
            t.commit(end)
    assert seen == [f"n{i}" for i in range(20)]
    t.close()


def test_lines_become_rows_and_queries_filter_them(tmp_path: Path) -> None:
    assert access.parse_line(b"not json") is None
    assert access.parse_line(b"[1, 2]") is None
    row = access.parse_line(_line("x", code=429, grpc_status="-", duration_ms="-"))
    assert row is not None
    doc = dict(zip(access.COLUMNS, row, strict=True))
    assert (doc["code"], doc["grpc_status"], doc["duration_ms"]) == (429, -1, 0)
    with connect(f"chdb://{tmp_path / 'ch'}", access.MIGRATIONS) as store:
        rows = [
            access.parse_line(_line("ok1")),
            access.parse_line(_line("limited", code=429, subject="bob", account="ACC2")),
            access.parse_line(_line("denied", code=403, role="viewer", subject="carol")),
            access.parse_line(_line("ok1")),  # inserted twice (a crash before the offset)
        ]
        store.insert(access.TABLE, [r for r in rows if r], access.COLUMNS)

        def ids(**filters: Any) -> list[str]:
            return sorted(r["request_id"] for r in access.query(store, filters))

        assert ids() == ["denied", "limited", "ok1"]
        assert ids(who="bob") == ["limited"]
        assert ids(who="ACC1") == ["denied", "ok1"]
        assert ids(who="viewer") == ["denied"]
        assert ids(status="429") == ["limited"]
        assert ids(status="4xx") == ["denied", "limited"]
        assert ids(status="RESOURCE_EXHAUSTED") == ["denied", "limited"]
        assert ids(status="denied") == ["denied"]
        assert ids(route="pricingservice/price") == ["denied", "limited", "ok1"]
        assert ids(route="Risk") == []
        assert ids(since="2026-01-01T00:00:00") == ["denied", "limited", "ok1"]
        assert ids(since="2030-01-01T00:00:00") == []
        first = access.query(store, {"status": "429"})[0]
        assert first["grpc_status"] == "RESOURCE_EXHAUSTED" and first["time"].endswith("+00:00")
        for filters, message in (
            ({"since": "yesterday"}, "since"),
            ({"status": "bogus"}, "status"),
            ({"limit": 0}, "limit"),
            ({"colour": "red"}, "unknown filter"),
        ):
            with pytest.raises(ValueError, match=message):
                access.query(store, filters)


def test_the_query_socket_path_fits_a_unix_address(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    address, fd = access._unix_address(access.socket_path(deep))
    assert fd is not None and len(address) < 100 and address.endswith("/access.sock")
    os.close(fd)


def test_a_reader_restarted_after_a_rotation_finishes_the_rotated_file_first(
    tmp_path: Path,
) -> None:
    log = tmp_path / "gateway-access.jsonl"
    log.write_bytes(_line("a") + _line("b"))
    t = access.Tailer(log)
    lines, _ = t.read()
    t.commit(len(lines[0]))  # only "a" recorded when the component stopped
    t.close()
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(_line("c"))
    t = access.Tailer(log)
    seen = []
    for _ in range(4):
        lines, end = t.read()
        seen += [json.loads(x)["request_id"] for x in lines]
        t.commit(end)
    t.close()
    assert seen == ["b", "c"]
