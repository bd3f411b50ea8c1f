"""gRPC servicer for tradecore.risk.v1.RiskService (thin: the stateless methods are the
Analytics', which checks the request, converts it and places the run on the loop or the app's
CPU pool; see analytics.py)."""

from __future__ import annotations

from tradecore_api.risk.v1 import risk_pb2_grpc as pb_grpc

from .analytics import Analytics
from .live import AccountMethods, Accounts


class RiskServicer(AccountMethods, pb_grpc.RiskServiceServicer):
    def __init__(self, analytics: Analytics, accounts: Accounts) -> None:
        self.analytics = analytics
        self.accounts = accounts
