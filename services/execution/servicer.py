"""gRPC servicer for tradecore.execution.v1.ExecutionService (thin: the logic is live.py's).

Methods of the proto that this servicer does not define (orders, positions, limits: they wait
for the OMS core) answer UNIMPLEMENTED, HTTP 501 through the gateway."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
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
