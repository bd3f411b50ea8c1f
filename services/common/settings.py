"""Typed settings read once at start from ``TRADECORE_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRADECORE_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"TRADECORE_{name} must be an integer (got {raw!r})") from None


def env_int(name: str, default: int, *, minimum: int) -> int:
    """A service-specific integer setting (``name`` is the whole variable name), checked:
    ValueError naming the variable when it is not an integer or is below ``minimum``."""
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer (got {raw!r})") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (got {value})")
    return value


def jetstream_replicas() -> int:
    """Replicas of the JetStream streams a service creates (TRADECORE_JETSTREAM_REPLICAS, 1 by
    default; 3 on a three-node NATS cluster, so that a stream survives the loss of a node). A
    stream that exists already keeps its own setting."""
    value = env_int("TRADECORE_JETSTREAM_REPLICAS", 1, minimum=1)
    if value > 5:
        raise ValueError(f"TRADECORE_JETSTREAM_REPLICAS must be 1..5 (got {value})")
    return value


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"TRADECORE_{name} must be a number (got {raw!r})") from None


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Settings shared by every service process.

    ============================  =========================  ==============================
    variable                      default                    meaning
    ============================  =========================  ==============================
    TRADECORE_HOST                127.0.0.1                  gRPC bind address
    TRADECORE_PORT                (per service)              gRPC port
    TRADECORE_METRICS_PORT        (per service)              Prometheus port
    TRADECORE_METRICS_HOST        127.0.0.1                  Prometheus bind address
    TRADECORE_NATS_URL            nats://127.0.0.1:4222      NATS server(s), comma separated
    TRADECORE_DATA_DIR            ./.tradecore               state and embedded databases
    TRADECORE_CLICKHOUSE_DSN      chdb:///<data>/<service>   ClickHouse (chDB path or http://)
    TRADECORE_GRACE_SECONDS       10                         drain time on SIGTERM
    TRADECORE_MAX_MESSAGE_BYTES   67108864                   largest gRPC message accepted
    TRADECORE_LOG_LEVEL           INFO                       logging level
    TRADECORE_LOG_FILE            <data>/logs/<service>-     the service's log, rotated by
                                  service.log                size ("-": stderr, unrotated)
    TRADECORE_LOG_MAX_BYTES       10485760                   rotate past this size (keeps 3)
    TRADECORE_LOG_FORMAT          text                       text, or json (one object a
                                                             line with request/trace ids)
    ============================  =========================  ==============================
    """

    service: str
    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    nats_url: str = "nats://127.0.0.1:4222"
    data_dir: Path = field(default_factory=lambda: Path(".tradecore"))
    clickhouse_dsn: str = ""
    grace_seconds: float = 10.0
    max_message_bytes: int = 64 * 1024 * 1024
    log_level: str = "INFO"
    log_file: str = "-"
    log_max_bytes: int = 10 * 1024 * 1024
    log_format: str = "text"

    @classmethod
    def from_env(cls, service: str, *, port: int, metrics_port: int) -> ServiceSettings:
        data_dir = Path(_env("DATA_DIR", ".tradecore")).resolve()
        dsn = _env("CLICKHOUSE_DSN", "") or f"chdb://{data_dir / 'clickhouse' / service}"
        settings = cls(
            service=service,
            host=_env("HOST", "127.0.0.1"),
            port=_env_int("PORT", port),
            metrics_port=_env_int("METRICS_PORT", metrics_port),
            metrics_host=_env("METRICS_HOST", "127.0.0.1"),
            nats_url=_env("NATS_URL", "nats://127.0.0.1:4222"),
            data_dir=data_dir,
            clickhouse_dsn=dsn,
            grace_seconds=_env_float("GRACE_SECONDS", 10.0),
            max_message_bytes=_env_int("MAX_MESSAGE_BYTES", 64 * 1024 * 1024),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            log_file=_env("LOG_FILE", "") or str(data_dir / "logs" / f"{service}-service.log"),
            log_max_bytes=_env_int("LOG_MAX_BYTES", 10 * 1024 * 1024),
            log_format=_env("LOG_FORMAT", "text").lower(),
        )
        if settings.log_format not in ("text", "json"):
            raise ValueError(
                f"TRADECORE_LOG_FORMAT must be text or json (got {settings.log_format!r})"
            )
        if settings.log_max_bytes < 4096:
            raise ValueError(f"log_max_bytes must be >= 4096 (got {settings.log_max_bytes})")
        for f in ("port", "metrics_port"):
            value = getattr(settings, f)
            if not 0 <= value <= 65535:
                raise ValueError(f"{f} must be in 0..65535 (got {value})")
        return settings

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
