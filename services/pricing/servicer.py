"""gRPC servicer for tradecore.pricing.v1.PricingService (thin: logic lives in the modules
logic, implied, surfaces and stream)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.errors import UnavailableError
from . import implied, logic, surfaces
from .stream import ChainRepricer, stream_greeks


class PricingServicer(pb_grpc.PricingServiceServicer):
    def __init__(
        self,
        max_contracts: int,
        *,
        max_surfaces: int = 256,
        bus: Bus | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.max_contracts = max_contracts
        self.expiries_fitted = Counter(
            "tradecore_surface_expiries_fitted",
            "Expiries fitted by FitSurface (stops growing when a fit's caller goes away)",
            registry=registry,
        )
        self.surfaces = surfaces.SurfaceStore(max_surfaces)
        self.bus = bus
        self.closing = asyncio.Event()

    async def close_streams(self) -> None:
        """End every open StreamGreeks call (at shutdown, before the server drains)."""
        self.closing.set()

    async def Price(
        self, request: pb.PriceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PriceResponse:
        return logic.price(request, self.max_contracts)

    async def ImpliedVol(
        self, request: pb.ImpliedVolRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ImpliedVolResponse:
        return implied.implied_vol(request, self.max_contracts)

    async def FitSurface(
        self, request: pb.FitSurfaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FitSurfaceResponse:
        # scipy least squares: off the event loop so other calls keep being served. The fit
        # checks `gone` before each expiry: when the caller cancels or its deadline passes, the
        # call's task is cancelled, `gone` is set, and the thread stops at the next expiry.
        gone = threading.Event()
        counter = self.expiries_fitted

        def checkpoint(fitted: int, total: int) -> None:
            if fitted:
                counter.inc()
            if gone.is_set():
                raise surfaces.FitAbandoned(f"abandoned after {fitted} of {total} expiries")

        try:
            return await asyncio.to_thread(
                surfaces.fit, request, self.surfaces, self.max_contracts, checkpoint
            )
        finally:
            gone.set()

    async def QuerySurface(
        self, request: pb.QuerySurfaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QuerySurfaceResponse:
        return surfaces.query(request, self.surfaces, self.max_contracts)

    async def StreamGreeks(
        self, request: pb.StreamGreeksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GreeksUpdate]:
        repricer = ChainRepricer(request, self.surfaces, self.max_contracts)
        nc = None if self.bus is None else self.bus.nc
        if self.bus is None or nc is None or not nc.is_connected:
            raise UnavailableError("NATS is not connected: no quotes to stream from")
        bus = self.bus
        async for update in stream_greeks(repricer, nc, self.closing, lambda: bus.wait_closed(nc)):
            yield update
