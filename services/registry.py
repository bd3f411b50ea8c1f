"""The service registry: one entry per service of the mesh, and everything that follows from it.

The mesh configuration (``--<name>-port``/``--<name>-metrics-port``, ``TRADECORE_<NAME>_PORT``/
``TRADECORE_<NAME>_METRICS_PORT``), the supervisor's components, the gateway's upstreams and
routes, each service's default ports, the test mesh and the README's configuration table are
all derived from :data:`SERVICES`. Adding a service is its folder under ``services/`` (with a
``__main__.py``) plus one entry here (see docs/architecture.md, "Adding a service").

This module imports nothing of the services, so the CLI, the gateway generator and the tests can
read it without loading gRPC code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z][a-z0-9]*$")


@dataclass(frozen=True)
class EnvVar:
    """A service-specific environment variable (documented in the README)."""

    name: str
    default: str
    meaning: str


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the mesh.

    ``name`` is lowercase letters and digits: it names the component, the flags
    (``--<name>-port``), the variables (``TRADECORE_<NAME>_PORT``) and the log file.
    ``module`` is run as ``python -m <module>``. ``grpc_services`` are the full proto names the
    gateway routes to this service (``/<full name>/`` prefixes); the first is the one its health
    check asks for. ``http_port`` (optional) is a second, HTTP/1.1 port of the same process
    (``--<name>-http-port``, ``TRADECORE_<NAME>_HTTP_PORT``; the service reads it as
    ``TRADECORE_HTTP_PORT``); the gateway routes the paths under ``http_prefixes`` to it,
    untouched by the JSON transcoder.
    """

    name: str
    title: str
    module: str
    grpc_services: tuple[str, ...]
    port: int
    metrics_port: int
    description: str
    needs_nats: bool = True
    needs_clickhouse: bool = False
    env: tuple[EnvVar, ...] = ()
    #: Replicas are interchangeable (no feed, journal or consumer of its own): deployments
    #: scale it horizontally (services/mesh/deploy.py); otherwise it runs as one replica.
    stateless: bool = False
    #: It keeps files of its own under the data directory (the execution service's audit log):
    #: deployed with a persistent volume.
    keeps_files: bool = False
    http_port: int | None = None
    http_prefixes: tuple[str, ...] = ()
    #: Exact paths under ``http_prefixes`` that answer with a long-lived stream (Server-Sent
    #: Events): the gateway gives them no overall timeout.
    http_streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"service name must match {_NAME.pattern} (got {self.name!r})")
        if not self.grpc_services:
            raise ValueError(f"service {self.name}: grpc_services must not be empty")
        for what, port in (("port", self.port), ("metrics_port", self.metrics_port)):
            if not 1 <= port <= 65535:
                raise ValueError(f"service {self.name}: {what} must be in 1..65535 (got {port})")
        if self.http_port is not None and not 1 <= self.http_port <= 65535:
            raise ValueError(
                f"service {self.name}: http_port must be in 1..65535 (got {self.http_port})"
            )
        if self.http_prefixes and self.http_port is None:
            raise ValueError(f"service {self.name}: http_prefixes need an http_port")
        for prefix in self.http_prefixes:
            if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
                raise ValueError(
                    f"service {self.name}: http prefix {prefix!r} must be '/<segment>...' "
                    "without a trailing '/'"
                )

    @property
    def health_service(self) -> str:
        return self.grpc_services[0]


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="pricing",
        title="PricingService",
        module="tradecore_services.pricing",
        grpc_services=("tradecore.pricing.v1.PricingService",),
        port=50051,
        metrics_port=9464,
        description="Greeks, implied vol, American exercise, surfaces, StreamGreeks",
        needs_nats=True,
        stateless=True,
        env=(
            EnvVar("TRADECORE_PRICING_MAX_CONTRACTS", "100000", "contracts per call"),
            EnvVar("TRADECORE_PRICING_MAX_SURFACES", "256", "fitted surfaces kept (LRU)"),
        ),
    ),
    ServiceSpec(
        name="marketdata",
        title="MarketDataService",
        module="tradecore_services.marketdata",
        grpc_services=("tradecore.marketdata.v1.MarketDataService",),
        port=50052,
        metrics_port=9465,
        description="feeds, L3 books, bars, VWAP and ticks",
        needs_nats=True,
        needs_clickhouse=True,
        env=(
            EnvVar(
                "TRADECORE_MD_RETENTION_DAYS",
                "30",
                "tick retention in ClickHouse in days (0 keeps ticks forever)",
            ),
        ),
    ),
    ServiceSpec(
        name="risk",
        title="RiskService",
        module="tradecore_services.risk",
        grpc_services=("tradecore.risk.v1.RiskService",),
        port=50053,
        metrics_port=9466,
        description="VaR/ES, stress, portfolio Greeks, hedges, attribution, backtests",
        needs_nats=True,
        needs_clickhouse=True,
        env=(
            EnvVar("TRADECORE_RISK_MAX_PATHS", "10000000", "Monte-Carlo paths per call"),
            EnvVar("TRADECORE_RISK_MAX_POSITIONS", "100000", "positions per book"),
            EnvVar("TRADECORE_RISK_MAX_BOOKS", "10000", "books per ComputeVaRBatch call"),
            EnvVar("TRADECORE_RISK_WORKERS", "2-4 (by CPUs)", "threads for heavy runs"),
            EnvVar("TRADECORE_RISK_ACCOUNT_PATHS", "10000", "scenarios of an account's fast VaR"),
            EnvVar(
                "TRADECORE_RISK_DEFAULT_VOLATILITY",
                "0.25",
                "volatility of underlyings of accounts built from fills",
            ),
            EnvVar("TRADECORE_RISK_OPTION_STYLE", "american", "style of equity options from fills"),
        ),
    ),
    ServiceSpec(
        name="execution",
        title="ExecutionService",
        module="tradecore_services.execution",
        grpc_services=("tradecore.execution.v1.ExecutionService",),
        port=50054,
        metrics_port=9467,
        description="orders, pre-trade controls, venues, positions; journaled in JetStream",
        needs_nats=True,
        needs_clickhouse=True,
        keeps_files=True,
        env=(
            EnvVar(
                "TRADECORE_ALPACA_API_KEY_ID",
                "unset",
                "Alpaca key; with the secret, venue ALPACA runs (else ALPACA_API_KEY_ID)",
            ),
            EnvVar("TRADECORE_ALPACA_API_SECRET_KEY", "unset", "Alpaca secret (else ALPACA_...)"),
            EnvVar("TRADECORE_ALPACA_API_KEY_ID_FILE", "unset", "a file holding the key"),
            EnvVar("TRADECORE_ALPACA_API_SECRET_KEY_FILE", "unset", "a file holding the secret"),
            EnvVar("TRADECORE_ALPACA_PAPER", "true", "paper account (false: live trading)"),
            EnvVar(
                "TRADECORE_ALPACA_ACCOUNT",
                "ALPACA",
                "account of Alpaca orders placed outside the OMS (reconciliation)",
            ),
            EnvVar(
                "TRADECORE_ALPACA_TRADING_URL",
                "Alpaca's paper/live API",
                "trading REST base URL (alpaca-py url_override)",
            ),
            EnvVar(
                "TRADECORE_ALPACA_TRADING_STREAM_URL",
                "<trading URL>/stream (ws)",
                "trade_updates websocket URL",
            ),
        ),
    ),
    ServiceSpec(
        name="inference",
        title="InferenceService",
        module="tradecore_services.inference",
        grpc_services=("inference.GRPCInferenceService", "tradecore.inference.v1.ModelService"),
        port=50055,
        metrics_port=9468,
        http_port=8085,
        http_prefixes=("/v2", "/monitor"),
        http_streams=("/monitor/api/stream",),
        description="Open Inference Protocol (KServe v2 / Triton) over gRPC and REST; the model "
        "registry and traffic policies (ModelService); drift alerts on model.drift.<model>",
        needs_nats=True,
        needs_clickhouse=True,
        keeps_files=True,
        env=(
            EnvVar(
                "TRADECORE_INFERENCE_MODEL_REPOSITORY",
                "unset: the model registry",
                "serve a Triton-layout directory (<name>/<version>/model.onnx) instead",
            ),
            EnvVar("TRADECORE_INFERENCE_MAX_ELEMENTS", "16777216", "elements per input tensor"),
            EnvVar(
                "TRADECORE_INFERENCE_INLINE_US",
                "100",
                "calls estimated below this run on the event loop (0: never)",
            ),
            EnvVar(
                "TRADECORE_INFERENCE_MAX_ON_DEMAND",
                "2",
                "versions per model loaded for requests naming them (0: NOT_FOUND)",
            ),
            EnvVar(
                "TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS",
                "10000",
                "rows per drift window of a served version (0: by time only)",
            ),
            EnvVar("TRADECORE_INFERENCE_DRIFT_WINDOW_S", "0", "seconds per drift window (0: off)"),
            EnvVar(
                "TRADECORE_INFERENCE_RETRAIN",
                "off",
                "command run on a drift alert (model, version in its environment)",
            ),
            EnvVar(
                "TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S",
                "3600",
                "at most one retraining per model per this many seconds",
            ),
        ),
    ),
)


def check(services: Iterable[ServiceSpec]) -> tuple[ServiceSpec, ...]:
    """``services`` as a tuple, or a ValueError naming a name, port or gRPC service used twice."""
    out = tuple(services)
    names: set[str] = set()
    ports: dict[int, str] = {}
    full: dict[str, str] = {}
    for s in out:
        if s.name in names:
            raise ValueError(f"service name {s.name!r} is registered twice")
        names.add(s.name)
        named = [(f"{s.name} port", s.port), (f"{s.name} metrics port", s.metrics_port)]
        if s.http_port is not None:
            named.append((f"{s.name} http port", s.http_port))
        for what, port in named:
            if port in ports:
                raise ValueError(f"{what} and {ports[port]} both default to {port}")
            ports[port] = what
        for g in s.grpc_services:
            if g in full:
                raise ValueError(f"{g} is served by both {full[g]} and {s.name}")
            full[g] = s.name
    return out


def by_name(name: str, services: Iterable[ServiceSpec] = SERVICES) -> ServiceSpec:
    for s in services:
        if s.name == name:
            return s
    raise KeyError(f"no service {name!r} in the registry")


check(SERVICES)
