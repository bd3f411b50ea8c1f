"""The PricingService's work, placed by cost: each call runs on the event loop when it is small
(at most ``INLINE_ROWS`` row-equivalents: under about 0.6 ms, measured) and on the app's
:class:`~..common.cpu.CpuPool` otherwise, protobuf <-> numpy conversion included. Shared by the
gRPC servicer and the NATS ``pricing.v1.price`` handler; usable without a server."""

from __future__ import annotations

import threading
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from ..common import tracing
from ..common.cpu import CpuPool
from . import implied, logic, surfaces
from .stream import ChainRepricer

# Rows run on the loop up to this cost (measured on a loaded 2-core VM, conversion included:
# 256 European rows 0.36 ms with first-order Greeks, 0.64 ms with all 14; ImpliedVol 0.37 ms).
INLINE_ROWS = 256
# An American row (ALO engine, phi by two more solves) costs about as much as this many
# European rows (0.12 ms for one contract, 1.6 ms for 64).
AMERICAN_COST = 64


def contracts_cost(contracts: Collection[pb.OptionContract] | Collection[pb.StreamContract]) -> int:
    """Row-equivalents of a list of contracts (American rows counted as ``AMERICAN_COST``);
    the styles are only looked at when the list is small enough to be inline."""
    n = len(contracts)
    if n > INLINE_ROWS:
        return n
    american = sum(1 for c in contracts if c.style == pb.AMERICAN)
    return n + (AMERICAN_COST - 1) * american


def expiries_counter(registry: CollectorRegistry | None) -> Counter:
    return Counter(
        "tradecore_surface_expiries_fitted",
        "Expiries fitted by FitSurface (stops growing when a fit's caller goes away)",
        registry=registry,
    )


class Pricer:
    def __init__(
        self,
        cpu: CpuPool,
        surfaces: surfaces.SurfaceStore,
        max_contracts: int,
        expiries_fitted: Counter,
    ) -> None:
        self.cpu = cpu
        self.surfaces = surfaces
        self.max_contracts = max_contracts
        self.expiries_fitted = expiries_fitted

    async def price(self, request: pb.PriceRequest) -> pb.PriceResponse:
        cost = contracts_cost(request.contracts)
        with tracing.child_span(
            "kernel pricing.price", contracts=len(request.contracts), inline=self.cpu.inline(cost)
        ):
            return await self.cpu.run(cost, logic.price, request, self.max_contracts)

    async def implied_vol(self, request: pb.ImpliedVolRequest) -> pb.ImpliedVolResponse:
        cost = len(request.options)
        with tracing.child_span(
            "kernel pricing.implied_vol", options=cost, inline=self.cpu.inline(cost)
        ):
            return await self.cpu.run(cost, implied.implied_vol, request, self.max_contracts)

    async def fit_surface(self, request: pb.FitSurfaceRequest) -> pb.FitSurfaceResponse:
        # scipy least squares, tens of milliseconds even for a small chain: always off the loop.
        # The fit checks `gone` before each expiry: when the caller cancels or its deadline
        # passes, this task is cancelled, `gone` is set, and the thread stops at the next expiry.
        gone = threading.Event()
        counter = self.expiries_fitted

        def checkpoint(fitted: int, total: int) -> None:
            if fitted:
                counter.inc()
            if gone.is_set():
                raise surfaces.FitAbandoned(f"abandoned after {fitted} of {total} expiries")

        try:
            return await self.cpu.off_loop(
                surfaces.fit, request, self.surfaces, self.max_contracts, checkpoint
            )
        finally:
            gone.set()

    async def query_surface(self, request: pb.QuerySurfaceRequest) -> pb.QuerySurfaceResponse:
        cost = len(request.points)
        return await self.cpu.run(cost, surfaces.query, request, self.surfaces, self.max_contracts)

    async def chain(self, request: pb.StreamGreeksRequest) -> ChainRepricer:
        """A StreamGreeks chain, validated and priced once."""
        cost = contracts_cost(request.contracts)
        return await self.cpu.run(cost, ChainRepricer, request, self.surfaces, self.max_contracts)

    async def on_quote(
        self, repricer: ChainRepricer, quote: market_pb2.Quote
    ) -> pb.GreeksUpdate | None:
        """A chain repriced at a quote (its cost is the chain's)."""
        batch = repricer.batch
        cost = len(batch.strike) + (AMERICAN_COST - 1) * int(batch.american.size)
        return await self.cpu.run(cost, repricer.on_quote, quote)
