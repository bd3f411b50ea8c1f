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

from prometheus_client import CollectorRegistry
from tradecore.subjects import PRICING_PRICE
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.nats_rpc import unary_handler
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from . import logic
from .servicer import PricingServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PricingService"].full_name
SPEC = by_name("pricing")
log = logging.getLogger("tradecore.pricing")


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    max_contracts = env_int("TRADECORE_PRICING_MAX_CONTRACTS", 100_000, minimum=1)
    max_surfaces = env_int("TRADECORE_PRICING_MAX_SURFACES", 256, minimum=1)
    bus = Bus(settings.nats_url, "pricing")
    registry = CollectorRegistry()
    servicer = PricingServicer(max_contracts, max_surfaces=max_surfaces, bus=bus, registry=registry)

    app = ServiceApp(
        settings=settings,
        register=lambda server: pb_grpc.add_PricingServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[bus.start],
        on_stop=[bus.stop],
        on_draining=[servicer.close_streams],
        dependencies=[bus.watch],  # StreamGreeks and pricing.v1.price need NATS
        registry=registry,
    )
    on_price = unary_handler(
        PRICING_PRICE,
        pb.PriceRequest,
        lambda request: logic.price(request, max_contracts),
        app.metrics,
    )
    bus.subscribe(PRICING_PRICE, on_price, queue="pricing")
    return app


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
