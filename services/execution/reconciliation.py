"""Reconcile RPC and start-up reconciliation: requests and results between the protobuf messages
and :mod:`tradecore.oms.reconcile` (the comparison and the policies are the library's)."""

from __future__ import annotations

import os

from tradecore.errors import quote
from tradecore.oms.reconcile import Break, Policy, ReconcileResult
from tradecore_api.execution.v1 import execution_pb2 as pb

from .convert import VENUE_OF

#: The policy of the reconciliation at start (environment, see docs/operations.md).
POLICY_ENV = "TRADECORE_EXECUTION_RECONCILE_POLICY"
#: Default policy at start: the paper venue starts empty after a restart, so the orders the
#: journal has working there are gone; adopting records them CANCELED and trading goes on.
DEFAULT_START_POLICY = Policy.ADOPT_VENUE

_POLICY_OF: dict[int, Policy] = {
    pb.RECONCILE_POLICY_UNSPECIFIED: Policy.REPORT,
    pb.REPORT: Policy.REPORT,
    pb.ADOPT_VENUE: Policy.ADOPT_VENUE,
    pb.HALT: Policy.HALT,
}
_POLICY_PB: dict[Policy, pb.ReconcilePolicy] = {
    Policy.REPORT: pb.REPORT,
    Policy.ADOPT_VENUE: pb.ADOPT_VENUE,
    Policy.HALT: pb.HALT,
}


def policy_of(value: int) -> Policy:
    policy = _POLICY_OF.get(value)
    if policy is None:
        raise ValueError(f"policy: must be REPORT, ADOPT_VENUE or HALT, got {quote(value)}")
    return policy


def start_policy() -> Policy | None:
    """The policy of the reconciliation at start from the environment (None: "OFF")."""
    raw = os.environ.get(POLICY_ENV, "").strip().upper()
    if not raw:
        return DEFAULT_START_POLICY
    if raw == "OFF":
        return None
    try:
        return Policy(raw)
    except ValueError:
        raise ValueError(
            f"{POLICY_ENV}: must be REPORT, ADOPT_VENUE, HALT or OFF, got {quote(raw)}"
        ) from None


def failed_accounts(result: ReconcileResult) -> list[str]:
    """Accounts that failed the reconciliation and must stop trading: every account with breaks
    under HALT, every account with breaks ADOPT_VENUE could not adopt."""
    if result.policy is Policy.HALT:
        found = result.breaks
    elif result.policy is Policy.ADOPT_VENUE:
        found = result.unresolved
    else:
        return []
    return sorted({b.account for b in found})


def _break(b: Break) -> pb.ReconcileBreak:
    return pb.ReconcileBreak(
        kind=b.kind.value,
        account=b.account,
        order_id=b.order_id,
        fill_id=b.fill_id,
        symbol=b.symbol,
        journal=b.journal,
        venue=b.venue,
    )


def result_message(result: ReconcileResult, halted: list[str]) -> pb.ReconcileResponse:
    return pb.ReconcileResponse(
        account=result.account,
        venue=VENUE_OF.get(result.venue, pb.VENUE_UNSPECIFIED),
        policy=_POLICY_PB[result.policy],
        supported=result.supported,
        clean=result.clean,
        breaks=[_break(b) for b in result.breaks],
        unresolved=[_break(b) for b in result.unresolved],
        halted=halted,
        detail=result.detail,
        time_ns=result.time_ns,
    )


__all__ = [
    "DEFAULT_START_POLICY",
    "POLICY_ENV",
    "failed_accounts",
    "policy_of",
    "result_message",
    "start_policy",
]
