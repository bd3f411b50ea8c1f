"""RiskService process: gRPC on TRADECORE_PORT (default from services/registry.py), and NATS
request/reply on ``risk.v1.compute_var`` and ``risk.v1.compute_var_batch`` (queue group
``risk``: several replicas share the calls; the requester's ``x-timeout-ms`` is the call's
deadline). Stored bars come from a ClickHouse server DSN, else from the market-data service
over ``marketdata.v1.daily_closes`` (bars.py). Its health (grpc.health.v1, the service's name)
is NOT_SERVING while NATS is unreachable.

Settings beyond ServiceSettings (the registry entry lists them for the README):
TRADECORE_RISK_MAX_PATHS, TRADECORE_RISK_MAX_POSITIONS, TRADECORE_RISK_MAX_BOOKS (hard caps per
call) and TRADECORE_RISK_WORKERS (threads for heavy runs)."""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry
from tradecore.subjects import RISK_COMPUTE_VAR, RISK_COMPUTE_VAR_BATCH
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_api.risk.v1 import risk_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.cpu import CpuPool
from ..common.nats_rpc import time_remaining, unary_handler
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from .accounts import AccountConfig
from .analytics import INLINE_NS, Analytics, Caps
from .bars import StoredBars
from .journal import Journal
from .live import Accounts
from .servicer import RiskServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RiskService"].full_name
SPEC = by_name("risk")
log = logging.getLogger("tradecore.risk")
QUEUE_GROUP = "risk"


def caps_from_env() -> Caps:
    return Caps(
        max_paths=env_int("TRADECORE_RISK_MAX_PATHS", Caps.max_paths, minimum=1),
        max_positions=env_int("TRADECORE_RISK_MAX_POSITIONS", Caps.max_positions, minimum=1),
        max_books=env_int("TRADECORE_RISK_MAX_BOOKS", Caps.max_books, minimum=1),
    )


def accounts_config_from_env() -> AccountConfig:
    """How accounts are valued: TRADECORE_RISK_ACCOUNT_PATHS (fast-VaR scenarios, 10000),
    TRADECORE_RISK_DEFAULT_VOLATILITY (underlyings no SetPositions market describes, 0.25),
    TRADECORE_RISK_OPTION_STYLE (equity options from fills: american or european)."""
    style = os.environ.get("TRADECORE_RISK_OPTION_STYLE", "american")
    if style not in ("american", "european"):
        raise ValueError(f"TRADECORE_RISK_OPTION_STYLE: american or european, got {style!r}")
    vol = float(os.environ.get("TRADECORE_RISK_DEFAULT_VOLATILITY", "0.25"))
    if not 0.0 < vol <= 10.0:
        raise ValueError(f"TRADECORE_RISK_DEFAULT_VOLATILITY: in (0, 10], got {vol!r}")
    return AccountConfig(
        paths=env_int("TRADECORE_RISK_ACCOUNT_PATHS", AccountConfig.paths, minimum=100),
        volatility=vol,
        option_style="american" if style == "american" else "european",
    )


class RiskApp:
    """The service's parts, each made once with its collaborators: the metrics registry, the
    CPU pool for heavy runs, the NATS connection, the stored-bar reader, the stateless
    analytics, the accounts (``live.py``), the servicer. :meth:`start` starts them in order
    (NATS, then what needs it); :meth:`stop` stops them in reverse order after the server has
    drained."""

    def __init__(self, settings: ServiceSettings, caps: Caps, workers: int) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.cpu = CpuPool("risk", workers, INLINE_NS)
        self.bus = Bus(settings.nats_url, "risk")
        self.bars = StoredBars.for_settings(settings, self.bus)
        self.analytics = Analytics(self.cpu, caps, self.bars)
        self.accounts = Accounts(self.bus, Journal(), accounts_config_from_env())
        self.servicer = RiskServicer(self.analytics, self.accounts)

    def service_app(self) -> ServiceApp:
        app = ServiceApp(
            settings=self.settings,
            register=lambda server: pb_grpc.add_RiskServiceServicer_to_server(
                self.servicer, server
            ),
            service_names=[SERVICE_NAME],
            on_start=[self.start],
            on_stop=[self.stop],
            on_draining=[self.accounts.close_streams],
            dependencies=[self.bus.watch],  # the NATS request/reply methods and accounts
            registry=self.registry,
        )
        # ComputeVaR over NATS request/reply; replicas share the calls in the queue group.
        # The requester's timeout (x-timeout-ms) is the call's deadline, as over gRPC.
        analytics = self.analytics

        async def compute_var(req: pb.ComputeVaRRequest) -> pb.ComputeVaRResponse:
            return await analytics.compute_var(req, time_remaining())

        async def compute_var_batch(
            req: pb.ComputeVaRBatchRequest,
        ) -> pb.ComputeVaRBatchResponse:
            return await analytics.compute_var_batch(req, time_remaining())

        self.bus.subscribe(
            RISK_COMPUTE_VAR,
            unary_handler(RISK_COMPUTE_VAR, pb.ComputeVaRRequest, compute_var, app.metrics),
            queue=QUEUE_GROUP,
        )
        self.bus.subscribe(
            RISK_COMPUTE_VAR_BATCH,
            unary_handler(
                RISK_COMPUTE_VAR_BATCH, pb.ComputeVaRBatchRequest, compute_var_batch, app.metrics
            ),
            queue=QUEUE_GROUP,
        )
        return app

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.accounts.stop()
        await self.bus.stop()
        await self.cpu.close()
        await self.bars.close()


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    workers = env_int("TRADECORE_RISK_WORKERS", max(2, min(4, os.cpu_count() or 2)), minimum=1)
    return RiskApp(settings, caps_from_env(), workers).service_app()


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
