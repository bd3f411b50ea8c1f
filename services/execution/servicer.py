"""gRPC servicer for tradecore.execution.v1.ExecutionService (thin: the logic is live.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from ..common.interceptors import request_id
from .live import Execution

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    def __init__(self, execution: Execution) -> None:
        self.execution = execution

    async def SetTradingState(
        self, request: pb.SetTradingStateRequest, context: Context
    ) -> pb.TradingState:
        return await self.execution.set_trading_state(request, request_id(context))

    async def GetTradingState(
        self, request: pb.GetTradingStateRequest, context: Context
    ) -> pb.TradingState:
        return await self.execution.get_trading_state(request)

    async def SubmitOrder(self, request: pb.SubmitOrderRequest, context: Context) -> pb.Order:
        return await self.execution.submit_order(request, request_id(context))

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Context) -> pb.Order:
        return await self.execution.cancel_order(request, request_id(context))

    async def ReplaceOrder(self, request: pb.ReplaceOrderRequest, context: Context) -> pb.Order:
        return await self.execution.replace_order(request, request_id(context))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.Order:
        return await self.execution.get_order(request)

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Context
    ) -> pb.ListOrdersResponse:
        return await self.execution.list_orders(request)

    async def GetPositions(
        self, request: pb.GetPositionsRequest, context: Context
    ) -> pb.GetPositionsResponse:
        return await self.execution.get_positions(request)

    async def SetLimits(self, request: pb.SetLimitsRequest, context: Context) -> pb.Limits:
        return await self.execution.set_limits(request, request_id(context))

    async def GetLimits(self, request: pb.GetLimitsRequest, context: Context) -> pb.Limits:
        return await self.execution.get_limits(request)

    async def StreamOrderUpdates(
        self, request: pb.StreamOrderUpdatesRequest, context: Context
    ) -> AsyncIterator[events.OrderUpdate]:
        async for update in self.execution.stream_order_updates(request):
            yield update

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: Context
    ) -> pb.ReconcileResponse:
        return await self.execution.reconcile(request, request_id(context))

    async def StartAlgo(self, request: pb.StartAlgoRequest, context: Context) -> pb.Algo:
        return await self.execution.algo_calls.start_algo(request, request_id(context))

    async def GetAlgo(self, request: pb.GetAlgoRequest, context: Context) -> pb.Algo:
        return await self.execution.algo_calls.get_algo(request)

    async def StopAlgo(self, request: pb.StopAlgoRequest, context: Context) -> pb.Algo:
        return await self.execution.algo_calls.stop_algo(request, request_id(context))

    async def ListAlgos(
        self, request: pb.ListAlgosRequest, context: Context
    ) -> pb.ListAlgosResponse:
        return await self.execution.algo_calls.list_algos(request)
