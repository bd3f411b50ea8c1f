"""Mesh configuration: ports, data directory and external servers (flags override variables)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
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

    def component_ports(self) -> dict[str, list[int]]:
        """The ports each component of the mesh listens on."""
        return {
            "nats": [] if self.nats_url else [self.nats_port, self.nats_monitor_port],
            "pricing": [self.pricing_port, self.pricing_metrics_port],
            "marketdata": [self.marketdata_port, self.marketdata_metrics_port],
            "gateway": [self.gateway_port, self.admin_port],
        }

    def prepare_data_dir(self) -> None:
        """Create the data directory (and its ``logs``) and check that it is writable; a
        ValueError naming the directory and the cause otherwise."""
        path = self.data_path
        try:
            if path.exists() and not path.is_dir():
                raise ValueError(f"data directory {path} is not a directory")
            path.mkdir(parents=True, exist_ok=True)
            (path / "logs").mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise ValueError(f"data directory {path} is not usable: {_reason(exc, path)}") from None

    def data_dir_exists(self) -> bool:
        """Whether the data directory exists (False if nothing is there); a ValueError naming it
        when it cannot be a data directory (a file in the way, no permission)."""
        path = self.data_path
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ValueError(f"data directory {path} is not usable: {_reason(exc, path)}") from None
        if not stat.S_ISDIR(mode):
            raise ValueError(f"data directory {path} is not a directory")
        return True

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


def _reason(exc: OSError, path: Path) -> str:
    """``exc``'s message, naming the file it is about when that is not ``path`` itself."""
    what = exc.strerror or str(exc)
    if exc.filename and Path(exc.filename) != path:
        return f"{what}: {exc.filename}"
    return what
