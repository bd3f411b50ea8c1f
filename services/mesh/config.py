"""Mesh configuration: ports, data directory and external servers (flags override variables)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer (got {raw!r})") from None


@dataclass(frozen=True)
class MeshConfig:
    data_dir: str = ".tradecore"
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    admin_port: int = 9901
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    pricing_port: int = 50051
    pricing_metrics_port: int = 9464
    marketdata_port: int = 50052
    marketdata_metrics_port: int = 9465
    nats_url: str = ""  # external NATS: when set, no embedded nats-server is started
    clickhouse_dsn: str = ""  # external ClickHouse: when empty, embedded chDB under data_dir

    @classmethod
    def from_env(cls) -> MeshConfig:
        e = os.environ
        return cls(
            data_dir=e.get("TRADECORE_DATA_DIR", ".tradecore"),
            host=e.get("TRADECORE_GATEWAY_HOST", "127.0.0.1"),
            gateway_port=_env_int("TRADECORE_GATEWAY_PORT", 8080),
            admin_port=_env_int("TRADECORE_ADMIN_PORT", 9901),
            nats_port=_env_int("TRADECORE_NATS_PORT", 4222),
            nats_monitor_port=_env_int("TRADECORE_NATS_MONITOR_PORT", 8222),
            pricing_port=_env_int("TRADECORE_PRICING_PORT", 50051),
            pricing_metrics_port=_env_int("TRADECORE_PRICING_METRICS_PORT", 9464),
            marketdata_port=_env_int("TRADECORE_MARKETDATA_PORT", 50052),
            marketdata_metrics_port=_env_int("TRADECORE_MARKETDATA_METRICS_PORT", 9465),
            nats_url=e.get("TRADECORE_NATS_URL", ""),
            clickhouse_dsn=e.get("TRADECORE_CLICKHOUSE_DSN", ""),
        )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def state_file(self) -> Path:
        return self.data_path / "mesh.json"

    @property
    def effective_nats_url(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

    def ports(self) -> dict[str, int]:
        """Every port the mesh will listen on, by what it is for."""
        ports = {
            "gateway": self.gateway_port,
            "envoy admin": self.admin_port,
            "pricing gRPC": self.pricing_port,
            "pricing metrics": self.pricing_metrics_port,
            "marketdata gRPC": self.marketdata_port,
            "marketdata metrics": self.marketdata_metrics_port,
        }
        if not self.nats_url:
            ports["nats"] = self.nats_port
            ports["nats monitor"] = self.nats_monitor_port
        return ports

    def validate(self) -> None:
        for what, port in self.ports().items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{what} port must be in 1..65535 (got {port})")
        seen: dict[int, str] = {}
        for what, port in self.ports().items():
            if port in seen:
                raise ValueError(f"{what} and {seen[port]} both use port {port}")
            seen[port] = what

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> MeshConfig:
        return cls(**json.loads(text))
