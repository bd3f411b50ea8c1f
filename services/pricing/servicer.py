"""gRPC servicer for tradecore.pricing.v1.PricingService (thin: logic lives in logic.py)."""

from __future__ import annotations

from typing import Any

import grpc
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from . import logic


class PricingServicer(pb_grpc.PricingServiceServicer):  # type: ignore[misc]
    def __init__(self, max_contracts: int) -> None:
        self.max_contracts = max_contracts

    async def Price(
        self, request: pb.PriceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PriceResponse:
        return logic.price(request, self.max_contracts)
