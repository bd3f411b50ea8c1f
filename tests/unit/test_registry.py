"""The service registry: everything a service needs in the mesh follows from its one entry."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from tradecore_gateway.auth import METHOD_ROLES
from tradecore_gateway.generate import api_services, descriptor_path
from tradecore_services.mesh.cli import _config, build_parser
from tradecore_services.mesh.components import components, gateway_config
from tradecore_services.mesh.config import MeshConfig, readme_table, settings
from tradecore_services.registry import SERVICES, EnvVar, ServiceSpec, by_name, check

from tests.conftest import REPO
from tests.mesh import Mesh

# A service that is not registered (its proto is made up by descriptor_with_audit).
AUDIT = ServiceSpec(
    name="audit",
    title="AuditService",
    module="tradecore_services.audit",
    grpc_services=("tradecore.audit.v1.AuditService",),
    port=50099,
    metrics_port=9499,
    description="audit trail",
    needs_clickhouse=True,
    env=(EnvVar("TRADECORE_AUDIT_LIMIT", "10", "entries per call"),),
)
WITH_AUDIT = (*SERVICES, AUDIT)


def readme_config_table() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("| flag | variable | default | meaning |")
    end = text.index("\n\n", start)
    return text[start:end]


def test_readme_configuration_table_is_the_registry_s() -> None:
    # The table is generated: `python -m tradecore_services.mesh.config` prints it.
    assert readme_config_table() == readme_table()


def test_readme_names_every_service_variable() -> None:
    readme = (REPO / "README.md").read_text()
    for spec in SERVICES:
        for var in spec.env:
            assert f"`{var.name}`" in readme, var.name


def test_every_proto_service_is_registered_once() -> None:
    registered = [g for spec in SERVICES for g in spec.grpc_services]
    assert sorted(registered) == api_services(descriptor_path())


def test_every_registered_module_runs_as_a_program() -> None:
    for spec in SERVICES:
        assert importlib.util.find_spec(f"{spec.module}.__main__") is not None, spec.module


def test_flags_variables_and_defaults_keep_their_names() -> None:
    ports = {s.flag: (s.variable, s.default) for s in settings() if s.is_port}
    assert ports == {
        "--gateway-port": ("TRADECORE_GATEWAY_PORT", "8080"),
        "--admin-port": ("TRADECORE_ADMIN_PORT", "9901"),
        "--nats-port": ("TRADECORE_NATS_PORT", "4222"),
        "--nats-monitor-port": ("TRADECORE_NATS_MONITOR_PORT", "8222"),
        "--pricing-port": ("TRADECORE_PRICING_PORT", "50051"),
        "--pricing-metrics-port": ("TRADECORE_PRICING_METRICS_PORT", "9464"),
        "--marketdata-port": ("TRADECORE_MARKETDATA_PORT", "50052"),
        "--marketdata-metrics-port": ("TRADECORE_MARKETDATA_METRICS_PORT", "9465"),
        "--risk-port": ("TRADECORE_RISK_PORT", "50053"),
        "--risk-metrics-port": ("TRADECORE_RISK_METRICS_PORT", "9466"),
        "--execution-port": ("TRADECORE_EXECUTION_PORT", "50054"),
        "--execution-metrics-port": ("TRADECORE_EXECUTION_METRICS_PORT", "9467"),
        "--inference-port": ("TRADECORE_INFERENCE_PORT", "50055"),
        "--inference-metrics-port": ("TRADECORE_INFERENCE_METRICS_PORT", "9468"),
        "--inference-http-port": ("TRADECORE_INFERENCE_HTTP_PORT", "8085"),
    }
    # mesh.json written by an earlier version (the same flat keys) still reads.
    old = {
        "data_dir": "/d",
        "host": "127.0.0.1",
        "gateway_port": 1,
        "admin_port": 2,
        "nats_port": 3,
        "nats_monitor_port": 4,
        "pricing_port": 5,
        "pricing_metrics_port": 6,
        "marketdata_port": 7,
        "marketdata_metrics_port": 8,
        "nats_url": "",
        "clickhouse_dsn": "",
    }
    cfg = MeshConfig.from_dict(old)
    assert (cfg.port("pricing"), cfg.metrics_port("marketdata")) == (5, 8)
    # (an entry added since gets its default ports)
    assert json.loads(cfg.to_json()) == {
        **old,
        "risk_port": 50053,
        "risk_metrics_port": 9466,
        "execution_port": 50054,
        "execution_metrics_port": 9467,
        "inference_port": 50055,
        "inference_metrics_port": 9468,
        "inference_http_port": 8085,
        # (and the gateway's edge settings at their defaults: an older state file has none)
        "tls": "on",
        "tls_cert_file": "",
        "tls_key_file": "",
        "tls_ca_file": "",
        "cors_origins": "",
        "gateway_limits": "",
        "auth": "on",
        "auth_issuer": "tradecore",
        "auth_audience": "tradecore",
        "auth_jwks_file": "",
    }


def test_registry_rejects_a_name_port_or_service_used_twice() -> None:
    with pytest.raises(ValueError, match="name 'pricing' is registered twice"):
        check((*SERVICES, ServiceSpec("pricing", "X", "m", ("a.B",), 1, 2, "")))
    with pytest.raises(ValueError, match="both default to 50051"):
        check((*SERVICES, ServiceSpec("x", "X", "m", ("a.B",), 50051, 2, "")))
    with pytest.raises(ValueError, match="served by both pricing and x"):
        check(
            (
                *SERVICES,
                ServiceSpec("x", "X", "m", ("tradecore.pricing.v1.PricingService",), 1, 2, ""),
            )
        )
    with pytest.raises(ValueError, match="service name"):
        ServiceSpec("Risk-1", "X", "m", ("a.B",), 1, 2, "")
    with pytest.raises(KeyError, match="no service 'nope'"):
        by_name("nope")


def test_a_port_of_no_registered_service_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\['audit_port'\]"):
        MeshConfig.from_dict({"audit_port": 1})


def descriptor_with_audit(tmp_path: Path) -> Path:
    """The real descriptor set plus an AuditService (its messages borrowed from pricing)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    audit = fds.file.add(
        name="tradecore/audit/v1/audit.proto",
        package="tradecore.audit.v1",
        dependency=["tradecore/pricing/v1/pricing.proto"],
        syntax="proto3",
    )
    audit.service.add(name="AuditService").method.add(
        name="Assess",
        input_type=".tradecore.pricing.v1.PriceRequest",
        output_type=".tradecore.pricing.v1.PriceResponse",
    )
    path = tmp_path / "descriptors.binpb"
    path.write_bytes(fds.SerializeToString())
    return path


def test_a_new_service_is_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [s.variable for s in settings(WITH_AUDIT)]:
        monkeypatch.delenv(var, raising=False)
    # Flags and variables.
    monkeypatch.setenv("TRADECORE_AUDIT_METRICS_PORT", "7001")
    parser = build_parser(WITH_AUDIT)
    ns = parser.parse_args(["up", "--data-dir", str(tmp_path), "--audit-port", "7000"])
    cfg = _config(ns, WITH_AUDIT)
    assert (cfg.port("audit"), cfg.metrics_port("audit")) == (7000, 7001)
    assert cfg.port("pricing") == 50051
    assert MeshConfig.from_env(WITH_AUDIT).metrics_port("audit") == 7001
    up_help = parser._subparsers._group_actions[0].choices["up"].format_help()  # type: ignore[union-attr]
    assert "--audit-metrics-port" in up_help and "TRADECORE_AUDIT_PORT" in up_help
    assert MeshConfig.from_json(cfg.to_json(), WITH_AUDIT) == cfg
    assert cfg.ports()["audit gRPC"] == 7000
    assert cfg.component_ports()["audit"] == [7000, 7001]
    # A supervisor component, before the gateway, with its ports, dependencies and health check.
    comps = components(cfg, tmp_path / "envoy.json")
    names = [
        "nats", "pricing", "marketdata", "risk", "execution", "inference", "audit", "access",
        "gateway",
    ]  # fmt: skip
    assert [c.name for c in comps] == names
    audit = comps[6]
    assert audit.argv[1:] == ["-m", "tradecore_services.audit"]
    assert audit.env["TRADECORE_PORT"] == "7000"
    assert audit.env["TRADECORE_METRICS_PORT"] == "7001"
    assert audit.env["TRADECORE_NATS_URL"] == cfg.effective_nats_url
    ok, detail = audit.health()  # nothing listens: not healthy, and says why
    assert not ok and "UNAVAILABLE" in detail
    # Envoy: a cluster on its port, a route by its prefix, transcoded; its RPCs' minimum roles
    # come from gateway/auth.py (the gateway refuses to start with an RPC that has none).
    monkeypatch.setitem(METHOD_ROLES, "tradecore.audit.v1.AuditService", {"Assess": "viewer"})
    envoy = gateway_config(cfg, descriptor_with_audit(tmp_path))
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    endpoint = clusters["tradecore_audit_v1_AuditService"]["load_assignment"]["endpoints"][0]
    assert endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 7000,
    }
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert {"prefix": "/tradecore.audit.v1.AuditService/"} in [r["match"] for r in routes]
    (transcoder,) = [
        f["typed_config"]
        for f in hcm["typed_config"]["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    ]
    assert "tradecore.audit.v1.AuditService" in transcoder["services"]
    # The test mesh gives it free ports and passes them as flags.
    mesh = Mesh.with_free_ports(tmp_path / "mesh", WITH_AUDIT)
    assert mesh.audit == f"127.0.0.1:{mesh.audit_port}"
    args = mesh.args()
    assert args[args.index("--audit-metrics-port") + 1] == str(mesh.audit_metrics_port)
    assert len(set(mesh.port_values().values())) == len(mesh.port_values()) == 17
    # The README table has its rows.
    assert "| `--audit-port` | `TRADECORE_AUDIT_PORT` | `50099` | AuditService gRPC |" in (
        readme_table(WITH_AUDIT)
    )


def test_the_test_mesh_keeps_its_attribute_names(tmp_path: Path) -> None:
    mesh = Mesh.with_free_ports(tmp_path)
    assert mesh.pricing == f"127.0.0.1:{mesh.pricing_port}"
    assert mesh.marketdata == f"127.0.0.1:{mesh.marketdata_port}"
    assert mesh.risk == f"127.0.0.1:{mesh.risk_port}"
    assert isinstance(mesh.pricing_metrics_port, int)
    with pytest.raises(AttributeError, match="audit_port"):
        _ = mesh.audit_port


def test_the_gateway_generator_defaults_to_the_registry(tmp_path: Path) -> None:
    from tradecore_gateway.generate import main

    assert main(["--out", str(tmp_path / "envoy.json")]) == 0
    config = json.loads((tmp_path / "envoy.json").read_text())
    ports = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"
        ]["port_value"]
        for c in config["static_resources"]["clusters"]
    }
    assert ports == {
        g.replace(".", "_"): spec.port for spec in SERVICES for g in spec.grpc_services
    } | {f"{spec.name}_http": spec.http_port for spec in SERVICES if spec.http_port}
