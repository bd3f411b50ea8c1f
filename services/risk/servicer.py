"""gRPC servicer for tradecore.risk.v1.RiskService (thin: the stateless methods are the
Analytics', which checks the request, converts it and places the run on the loop or the app's
CPU pool within the call's deadline; see analytics.py)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_api.risk.v1 import risk_pb2_grpc as pb_grpc

from .analytics import Analytics
from .live import AccountMethods, Accounts

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# What the gateway waits for the service before it answers 504 (its route timeout), sent with
# every call it forwards; a JSON call has no gRPC deadline of its own.
GATEWAY_TIMEOUT_KEY = "x-envoy-expected-rq-timeout-ms"


def time_left(context: Context) -> float | None:
    """Seconds the caller still waits: the call's gRPC deadline, else the gateway's timeout,
    else None (no limit)."""
    left: float | None = context.time_remaining()
    if left is not None:
        return left
    for key, value in context.invocation_metadata() or ():
        if key == GATEWAY_TIMEOUT_KEY:
            try:
                return int(value) / 1000.0
            except ValueError:
                return None
    return None


class RiskServicer(AccountMethods, pb_grpc.RiskServiceServicer):
    def __init__(self, analytics: Analytics, accounts: Accounts) -> None:
        self.analytics = analytics
        self.accounts = accounts

    async def ComputeVaR(
        self, request: pb.ComputeVaRRequest, context: Context
    ) -> pb.ComputeVaRResponse:
        return await self.analytics.compute_var(request, time_left(context))

    async def ComputeVaRBatch(
        self, request: pb.ComputeVaRBatchRequest, context: Context
    ) -> pb.ComputeVaRBatchResponse:
        return await self.analytics.compute_var_batch(request, time_left(context))

    async def BacktestVaR(
        self, request: pb.BacktestVaRRequest, context: Context
    ) -> pb.BacktestVaRResponse:
        return await self.analytics.backtest_var(request)

    async def EstimateCovariance(
        self, request: pb.EstimateCovarianceRequest, context: Context
    ) -> pb.EstimateCovarianceResponse:
        return await self.analytics.estimate_covariance(request)

    async def StressTest(
        self, request: pb.StressTestRequest, context: Context
    ) -> pb.StressTestResponse:
        return await self.analytics.stress_test(request, time_left(context))

    async def PortfolioGreeks(
        self, request: pb.PortfolioGreeksRequest, context: Context
    ) -> pb.PortfolioGreeksResponse:
        return await self.analytics.portfolio_greeks(request)

    async def ProposeHedge(
        self, request: pb.ProposeHedgeRequest, context: Context
    ) -> pb.ProposeHedgeResponse:
        return await self.analytics.propose_hedge(request)

    async def AttributePnL(
        self, request: pb.AttributePnLRequest, context: Context
    ) -> pb.AttributePnLResponse:
        return await self.analytics.attribute_pnl(request)
