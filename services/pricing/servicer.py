"""gRPC servicer for tradecore.pricing.v1.PricingService (thin: the work is the Pricer's, which
places it on the loop or the app's CPU pool; see pricer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.errors import UnavailableError
from .pricer import Pricer
from .stream import stream_greeks


class PricingServicer(pb_grpc.PricingServiceServicer):
    def __init__(self, pricer: Pricer, bus: Bus) -> None:
        self.pricer = pricer
        self.bus = bus
        self.closing = asyncio.Event()

    async def close_streams(self) -> None:
        """End every open StreamGreeks call (at shutdown, before the server drains)."""
        self.closing.set()

    async def Price(
        self, request: pb.PriceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PriceResponse:
        return await self.pricer.price(request)

    async def ImpliedVol(
        self, request: pb.ImpliedVolRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ImpliedVolResponse:
        return await self.pricer.implied_vol(request)

    async def FitSurface(
        self, request: pb.FitSurfaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FitSurfaceResponse:
        return await self.pricer.fit_surface(request)

    async def QuerySurface(
        self, request: pb.QuerySurfaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QuerySurfaceResponse:
        return await self.pricer.query_surface(request)

    async def StreamGreeks(
        self, request: pb.StreamGreeksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GreeksUpdate]:
        repricer = await self.pricer.chain(request)
        bus = self.bus
        nc = bus.nc
        if nc is None or not nc.is_connected:
            raise UnavailableError("NATS is not connected: no quotes to stream from")
        updates = stream_greeks(
            repricer,
            nc,
            self.closing,
            lambda: bus.wait_closed(nc),
            on_quote=lambda quote: self.pricer.on_quote(repricer, quote),
        )
        async for update in updates:
            yield update
