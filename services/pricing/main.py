"""PricingService process: gRPC on TRADECORE_PORT (default from
services/registry.py), and NATS request/reply on
``pricing.v1.price`` (PriceRequest bytes in, PriceResponse bytes out; request ids, errors,
metrics and logs as for gRPC calls: services/common/nats_rpc.py). StreamGreeks subscribes to
``md.<venue>.<symbol>.quote`` on the same NATS connection. Its health (grpc.health.v1, the
service's name) is NOT_SERVING while NATS is unreachable.

Settings beyond ServiceSettings: TRADECORE_PRICING_MAX_CONTRACTS (rows per call, 100000) and
TRADECORE_PRICING_MAX_SURFACES (fitted surfaces kept, least recently used evicted, 256)."""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry
from tradecore.subjects import PRICING_PRICE
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.cpu import CpuPool
from ..common.nats_rpc import unary_handler
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from .pricer import INLINE_ROWS, Pricer, expiries_counter
from .servicer import PricingServicer
from .surfaces import SurfaceStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PricingService"].full_name
SPEC = by_name("pricing")
log = logging.getLogger("tradecore.pricing")
# Large batches run on this many threads (the kernels also spread a batch of more than 16k rows
# over OpenMP threads): two, so a surface fit does not hold up a large Price, up to four.
CPU_THREADS = max(2, min(4, os.cpu_count() or 2))


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    max_contracts = env_int("TRADECORE_PRICING_MAX_CONTRACTS", 100_000, minimum=1)
    max_surfaces = env_int("TRADECORE_PRICING_MAX_SURFACES", 256, minimum=1)
    # Collaborators first, each passed to what uses it; the ServiceApp starts them in order
    # and stops them in reverse order after the server has drained.
    registry = CollectorRegistry()
    cpu = CpuPool("pricing", CPU_THREADS, INLINE_ROWS)
    pricer = Pricer(cpu, SurfaceStore(max_surfaces), max_contracts, expiries_counter(registry))
    bus = Bus(settings.nats_url, "pricing")
    servicer = PricingServicer(pricer, bus)

    app = ServiceApp(
        settings=settings,
        register=lambda server: pb_grpc.add_PricingServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[bus.start],
        on_stop=[cpu.close, bus.stop],  # run in reverse: NATS first, then the CPU pool
        on_draining=[servicer.close_streams],
        dependencies=[bus.watch],  # StreamGreeks and pricing.v1.price need NATS
        registry=registry,
    )
    on_price = unary_handler(PRICING_PRICE, pb.PriceRequest, pricer.price, app.metrics)
    bus.subscribe(PRICING_PRICE, on_price, queue="pricing")
    return app


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
