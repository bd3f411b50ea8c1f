"""gRPC servicer for tradecore.execution.v1.ExecutionService (thin: the logic is live.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from ..common.interceptors import check_account, request_id
from .live import Execution

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    """Each call first checks that the caller's token may act on the account it concerns
    (``check_account``: a trader only on its own; for a call by id, the order's or algo's)."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution

    async def _check_order(self, order_id: str) -> None:
        order = await self.execution.get_order(pb.GetOrderRequest(order_id=order_id))
        check_account(order.account)

    async def _check_algo(self, algo_id: str) -> None:
        algo = await self.execution.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=algo_id))
        check_account(algo.account)

    async def SetTradingState(
        self, request: pb.SetTradingStateRequest, context: Context
    ) -> pb.TradingState:
        check_account(request.account)
        return await self.execution.set_trading_state(request, request_id(context))

    async def GetTradingState(
        self, request: pb.GetTradingStateRequest, context: Context
    ) -> pb.TradingState:
        check_account(request.account)
        return await self.execution.get_trading_state(request)

    async def SubmitOrder(self, request: pb.SubmitOrderRequest, context: Context) -> pb.Order:
        check_account(request.account)
        return await self.execution.submit_order(request, request_id(context))

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Context) -> pb.Order:
        await self._check_order(request.order_id)
        return await self.execution.cancel_order(request, request_id(context))

    async def ReplaceOrder(self, request: pb.ReplaceOrderRequest, context: Context) -> pb.Order:
        await self._check_order(request.order_id)
        return await self.execution.replace_order(request, request_id(context))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.Order:
        await self._check_order(request.order_id)
        return await self.execution.get_order(request)

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Context
    ) -> pb.ListOrdersResponse:
        check_account(request.account)
        return await self.execution.list_orders(request)

    async def GetPositions(
        self, request: pb.GetPositionsRequest, context: Context
    ) -> pb.GetPositionsResponse:
        check_account(request.account)
        return await self.execution.get_positions(request)

    async def SetLimits(self, request: pb.SetLimitsRequest, context: Context) -> pb.Limits:
        check_account(request.account)
        return await self.execution.set_limits(request, request_id(context))

    async def GetLimits(self, request: pb.GetLimitsRequest, context: Context) -> pb.Limits:
        check_account(request.account)
        return await self.execution.get_limits(request)

    async def StreamOrderUpdates(
        self, request: pb.StreamOrderUpdatesRequest, context: Context
    ) -> AsyncIterator[events.OrderUpdate]:
        check_account(request.account)
        async for update in self.execution.stream_order_updates(request):
            yield update

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: Context
    ) -> pb.ReconcileResponse:
        check_account(request.account)
        return await self.execution.reconcile(request, request_id(context))

    async def StartAlgo(self, request: pb.StartAlgoRequest, context: Context) -> pb.Algo:
        check_account(request.account)
        return await self.execution.algo_calls.start_algo(request, request_id(context))

    async def GetAlgo(self, request: pb.GetAlgoRequest, context: Context) -> pb.Algo:
        await self._check_algo(request.algo_id)
        return await self.execution.algo_calls.get_algo(request)

    async def StopAlgo(self, request: pb.StopAlgoRequest, context: Context) -> pb.Algo:
        await self._check_algo(request.algo_id)
        return await self.execution.algo_calls.stop_algo(request, request_id(context))

    async def ListAlgos(
        self, request: pb.ListAlgosRequest, context: Context
    ) -> pb.ListAlgosResponse:
        check_account(request.account)
        return await self.execution.algo_calls.list_algos(request)
