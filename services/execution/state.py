"""Each account's trading state as the pre-trade controls see it: the operator's (SetTradingState,
the kill switch) and the RiskService's (``risk.state.<account>``); the effective mode is the
stricter of the two. Pure bookkeeping: the journal and NATS are live.py's."""

from __future__ import annotations

from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

from .convert import stricter


class TradingStates:
    def __init__(self) -> None:
        self.operator: dict[str, risk_events.TradingState] = {}
        self.risk: dict[str, risk_events.TradingState] = {}

    def set_operator(self, state: risk_events.TradingState) -> None:
        self.operator[state.account] = state

    def set_risk(self, state: risk_events.TradingState) -> bool:
        """Take the RiskService's state unless it is older than the one held (by its
        sequence); True when it changed what is held."""
        held = self.risk.get(state.account)
        if held is not None and (state.sequence < held.sequence or held == state):
            return False
        self.risk[state.account] = state
        return True

    def mode(self, account: str) -> int:
        """The effective mode: the stricter of the operator's and the RiskService's."""
        op = self.operator.get(account)
        rk = self.risk.get(account)
        return stricter(
            op.mode if op is not None else risk_events.ENABLED,
            rk.mode if rk is not None else risk_events.ENABLED,
        )

    def get(self, account: str) -> pb.TradingState:
        out = pb.TradingState(account=account, effective=self.mode(account))  # type: ignore[arg-type]
        op = self.operator.get(account)
        out.operator.CopyFrom(
            op if op is not None else risk_events.TradingState(account=account, mode="ENABLED")
        )
        rk = self.risk.get(account)
        out.risk.CopyFrom(
            rk if rk is not None else risk_events.TradingState(account=account, mode="ENABLED")
        )
        return out


__all__ = ["TradingStates"]
