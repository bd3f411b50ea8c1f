"""Mesh configuration: ports, data directory and external servers (flags override variables)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..registry import SERVICES, ServiceSpec, check


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer (got {raw!r})") from None


@dataclass(frozen=True)
class Setting:
    """One setting of ``tradecore up|status|down``: its MeshConfig key, flag, variable, default
    (as the README shows it) and meaning (the flag's help and the README's last column)."""

    key: str
    flag: str
    variable: str
    default: str
    meaning: str
    is_port: bool = False


def _port(key: str, default: int, meaning: str) -> Setting:
    return Setting(
        key,
        "--" + key.replace("_", "-"),
        f"TRADECORE_{key.upper()}",
        str(default),
        meaning,
        is_port=True,
    )


def settings(services: Iterable[ServiceSpec] = SERVICES) -> list[Setting]:
    """Every setting in the order of ``--help`` and the README table: the fixed ones, then two
    ports per registered service (three for one with an HTTP port)."""
    out = [
        Setting(
            "data_dir",
            "--data-dir",
            "TRADECORE_DATA_DIR",
            "./.tradecore",
            "state file, logs, NATS store, chDB data",
        ),
        Setting(
            "host",
            "--gateway-host",
            "TRADECORE_GATEWAY_HOST",
            "127.0.0.1",
            "gateway bind address",
        ),
        _port("gateway_port", 8080, "gateway port (gRPC and JSON)"),
        _port("admin_port", 9901, "Envoy admin (always loopback)"),
        _port("nats_port", 4222, "embedded NATS client port"),
        _port("nats_monitor_port", 8222, "embedded NATS monitoring (`/healthz`)"),
    ]
    for s in services:
        out.append(_port(f"{s.name}_port", s.port, f"{s.title} gRPC"))
        out.append(_port(f"{s.name}_metrics_port", s.metrics_port, f"{s.title} Prometheus metrics"))
        if s.http_port is not None:
            out.append(_port(f"{s.name}_http_port", s.http_port, f"{s.title} HTTP/REST"))
    out += [
        Setting(
            "nats_url",
            "--nats-url",
            "TRADECORE_NATS_URL",
            "embedded",
            "use an existing NATS (cluster) instead",
        ),
        Setting(
            "clickhouse_dsn",
            "--clickhouse-dsn",
            "TRADECORE_CLICKHOUSE_DSN",
            "chdb://<data>/clickhouse/<service>",
            "use a ClickHouse server (`http://…`) instead",
        ),
        Setting(
            "tls",
            "--tls",
            "TRADECORE_TLS",
            "on",
            "gateway TLS: `on`, `mtls` (clients need a certificate of the CA) or `off` (plain)",
        ),
        Setting(
            "tls_cert_file",
            "--tls-cert-file",
            "TRADECORE_TLS_CERT_FILE",
            "<data>/tls/server.crt",
            "gateway certificate chain (PEM; made by a local CA when not set)",
        ),
        Setting(
            "tls_key_file",
            "--tls-key-file",
            "TRADECORE_TLS_KEY_FILE",
            "<data>/tls/server.key",
            "gateway private key (PEM)",
        ),
        Setting(
            "tls_ca_file",
            "--tls-ca-file",
            "TRADECORE_TLS_CA_FILE",
            "<data>/tls/ca.crt",
            "CA of the gateway's certificate and of client certificates (mTLS)",
        ),
        Setting(
            "cors_origins",
            "--cors-origins",
            "TRADECORE_CORS_ORIGINS",
            "",
            "browser origins allowed by CORS, comma-separated (`*`: any)",
        ),
        Setting(
            "gateway_limits",
            "--gateway-limits",
            "TRADECORE_GATEWAY_LIMITS",
            "",
            "rate/size/timeout limits per route class and role, e.g. `orders.rate=20,role.admin=2`"
            " (docs/operations.md)",
        ),
        Setting(
            "auth",
            "--auth",
            "TRADECORE_AUTH",
            "on",
            "`off`: the gateway asks for no token (docs/api.md, Authentication)",
        ),
        Setting(
            "auth_issuer",
            "--auth-issuer",
            "TRADECORE_AUTH_ISSUER",
            "tradecore",
            "the tokens' issuer (set with the JWKS file to use your own)",
        ),
        Setting(
            "auth_audience",
            "--auth-audience",
            "TRADECORE_AUTH_AUDIENCE",
            "tradecore",
            "the audience tokens must name",
        ),
        Setting(
            "auth_jwks_file",
            "--auth-jwks-file",
            "TRADECORE_AUTH_JWKS_FILE",
            "<data>/auth/jwks.json",
            "your issuer's JWKS instead of the local signing key's",
        ),
    ]
    return out


def readme_table(services: Iterable[ServiceSpec] = SERVICES) -> str:
    """The README's configuration table (tests/unit/test_registry.py keeps the two equal)."""
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{s.flag}` | `{s.variable}` | `{s.default}` | {s.meaning} |"
        if s.default not in ("embedded", "")
        else f"| `{s.flag}` | `{s.variable}` | {s.default or '(none)'} | {s.meaning} |"
        for s in settings(services)
    ]
    return "\n".join(rows)


@dataclass(frozen=True)
class MeshConfig:
    """What ``tradecore up`` runs. The service ports are keyed ``<name>_port`` and
    ``<name>_metrics_port`` for each service of ``services`` (missing ones take the registry's
    defaults); ``as_dict``/``from_dict`` keep them as flat keys beside the fixed ones."""

    data_dir: str = ".tradecore"
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    admin_port: int = 9901
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    nats_url: str = ""  # external NATS: when set, no embedded nats-server is started
    clickhouse_dsn: str = ""  # external ClickHouse: when empty, embedded chDB under data_dir
    tls: str = "on"  # on | mtls | off (gateway/edge.py, services/mesh/tls.py)
    tls_cert_file: str = ""  # supplied certificate; empty: the local CA's under <data>/tls
    tls_key_file: str = ""
    tls_ca_file: str = ""
    cors_origins: str = ""
    gateway_limits: str = ""  # gateway.edge.parse_limits
    auth: str = "on"  # "off": the gateway checks no token
    auth_issuer: str = "tradecore"
    auth_audience: str = "tradecore"
    auth_jwks_file: str = ""  # a user-supplied JWKS; empty: the local key's <data>/auth/jwks.json
    service_ports: dict[str, int] = field(default_factory=dict)
    services: tuple[ServiceSpec, ...] = field(default=SERVICES, repr=False, compare=False)

    def __post_init__(self) -> None:
        services = check(self.services)
        defaults = {s.key: int(s.default) for s in settings(services) if s.key.endswith("_port")}
        ports = {k: v for k, v in defaults.items() if k not in _FIXED}
        unknown = sorted(set(self.service_ports) - set(ports))
        if unknown:
            raise ValueError(f"no registered service has the port setting(s) {unknown}")
        ports.update(self.service_ports)
        object.__setattr__(self, "service_ports", ports)
        object.__setattr__(self, "services", services)

    @classmethod
    def from_env(cls, services: Iterable[ServiceSpec] = SERVICES) -> MeshConfig:
        e = os.environ
        services = check(services)
        values: dict[str, int] = {
            s.key: _env_int(s.variable, int(s.default)) for s in settings(services) if s.is_port
        }
        return cls.from_dict(
            {
                **values,
                "data_dir": e.get("TRADECORE_DATA_DIR", ".tradecore"),
                "host": e.get("TRADECORE_GATEWAY_HOST", "127.0.0.1"),
                "nats_url": e.get("TRADECORE_NATS_URL", ""),
                "clickhouse_dsn": e.get("TRADECORE_CLICKHOUSE_DSN", ""),
                **{
                    s.key: e.get(s.variable, "")
                    for s in settings(services)
                    if s.key in _EDGE and e.get(s.variable)
                },
                "auth": e.get("TRADECORE_AUTH", "on"),
                "auth_issuer": e.get("TRADECORE_AUTH_ISSUER", "tradecore"),
                "auth_audience": e.get("TRADECORE_AUTH_AUDIENCE", "tradecore"),
                "auth_jwks_file": e.get("TRADECORE_AUTH_JWKS_FILE", ""),
            },
            services,
        )

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], services: Iterable[ServiceSpec] = SERVICES
    ) -> MeshConfig:
        """From flat keys (``as_dict``, the CLI's parsed flags); a ValueError names a port key
        that no registered service has."""
        services = check(services)
        fixed = {k: v for k, v in values.items() if k in _FIXED or k in _OTHER}
        ports = {k: int(v) for k, v in values.items() if k not in fixed}
        return cls(**fixed, service_ports=ports, services=services)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        del out["service_ports"], out["services"]
        out.update(self.service_ports)
        return out

    def port(self, service: str) -> int:
        """The gRPC port of the registered ``service``."""
        return self.service_ports[f"{service}_port"]

    def metrics_port(self, service: str) -> int:
        """The Prometheus port of the registered ``service``."""
        return self.service_ports[f"{service}_metrics_port"]

    def http_port(self, service: str) -> int | None:
        """The HTTP port of the registered ``service`` (None when it has none)."""
        return self.service_ports.get(f"{service}_http_port")

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
        ports = {"gateway": self.gateway_port, "envoy admin": self.admin_port}
        for s in self.services:
            ports[f"{s.name} gRPC"] = self.port(s.name)
            ports[f"{s.name} metrics"] = self.metrics_port(s.name)
            http = self.http_port(s.name)
            if http is not None:
                ports[f"{s.name} http"] = http
        if not self.nats_url:
            ports["nats"] = self.nats_port
            ports["nats monitor"] = self.nats_monitor_port
        return ports

    def component_ports(self) -> dict[str, list[int]]:
        """The ports each component of the mesh listens on."""
        out: dict[str, list[int]] = {
            "nats": [] if self.nats_url else [self.nats_port, self.nats_monitor_port]
        }
        for s in self.services:
            out[s.name] = [self.port(s.name), self.metrics_port(s.name)]
            http = self.http_port(s.name)
            if http is not None:
                out[s.name].append(http)
        out["gateway"] = [self.gateway_port, self.admin_port]
        return out

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
        if self.tls not in ("on", "off", "mtls"):
            raise ValueError(f"tls must be on, mtls or off (got {self.tls!r})")
        from tradecore_gateway.edge import parse_limits

        parse_limits(self.gateway_limits)
        if self.auth not in ("on", "off"):
            raise ValueError(f"--auth (TRADECORE_AUTH) must be on or off (got {self.auth!r})")
        if not self.auth_issuer or not self.auth_audience:
            raise ValueError("--auth-issuer and --auth-audience must not be empty")
        for what, port in self.ports().items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{what} port must be in 1..65535 (got {port})")
        seen: dict[int, str] = {}
        for what, port in self.ports().items():
            if port in seen:
                raise ValueError(f"{what} and {seen[port]} both use port {port}")
            seen[port] = what

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_json(cls, text: str, services: Iterable[ServiceSpec] = SERVICES) -> MeshConfig:
        return cls.from_dict(json.loads(text), services)


# MeshConfig fields that are not per-service ports.
_FIXED = ("gateway_port", "admin_port", "nats_port", "nats_monitor_port")
_EDGE = ("tls", "tls_cert_file", "tls_key_file", "tls_ca_file", "cors_origins", "gateway_limits")
_AUTH = ("auth", "auth_issuer", "auth_audience", "auth_jwks_file")
_OTHER = ("data_dir", "host", "nats_url", "clickhouse_dsn", *_EDGE, *_AUTH)


def _reason(exc: OSError, path: Path) -> str:
    """``exc``'s message, naming the file it is about when that is not ``path`` itself."""
    what = exc.strerror or str(exc)
    if exc.filename and Path(exc.filename) != path:
        return f"{what}: {exc.filename}"
    return what


if __name__ == "__main__":
    print(readme_table())  # the README's configuration table
