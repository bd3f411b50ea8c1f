"""Reconciliation in the execution service (live.py) against a real nats-server and the real
paper venue: the Reconcile call, and the reconciliation at start after the journal is replayed,
where a new paper venue (a restart) no longer has the orders the journal has working: ADOPT_VENUE
cancels them, journaled; HALT halts the account until SetTradingState."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tradecore.oms.paper import PaperConfig, PaperVenue
from tradecore.oms.reconcile import Policy
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import PreconditionError
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import Journal
from tradecore_services.execution.live import Execution

from tests.integration.test_nats_resilience import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    s = NatsServer(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def instance(url: str, policy: Policy | None) -> tuple[Bus, Execution]:
    """A service instance with a new (empty) paper venue, as after a restart."""
    bus = Bus(url, "execution-test")
    journal = Journal()
    venue = PaperVenue(PaperConfig(price_scale=10_000))
    ex = Execution(bus, journal, Engine(journal, {"PAPER": venue}), start_policy=policy)
    await bus.start()
    await asyncio.wait_for(ex.restored.wait(), 20)
    return bus, ex


async def stop(bus: Bus, ex: Execution) -> None:
    await ex.stop()
    await bus.stop()
    await ex.engine.close()


async def resting(ex: Execution, coid: str) -> pb.Order:
    await ex.set_limits(pb.SetLimitsRequest(account="A1", limits=pb.Limits(collar=False)))
    got = await ex.submit_order(
        pb.SubmitOrderRequest(
            account="A1", client_order_id=coid, symbol="AAPL", side="BUY", quantity=10,  # type: ignore[arg-type]
            type="LIMIT", limit_price=99.0,  # type: ignore[arg-type]
        )
    )  # fmt: skip
    assert got.status == events.ACCEPTED, got
    return got


def reconcile_request(policy: int = pb.REPORT, **kw: object) -> pb.ReconcileRequest:
    return pb.ReconcileRequest(account="A1", policy=policy, **kw)  # type: ignore[arg-type]


def test_adopt_venue_at_start_cancels_the_orders_the_new_paper_venue_lost(
    server: NatsServer,
) -> None:
    async def go() -> None:
        bus, ex = await instance(server.url, Policy.ADOPT_VENUE)
        working = await resting(ex, "r1")
        clean = await ex.reconcile(reconcile_request())
        assert clean.supported and clean.clean and list(clean.breaks) == []
        await stop(bus, ex)

        bus, ex = await instance(server.url, Policy.ADOPT_VENUE)  # the venue starts empty
        at_start = ex.start_results["PAPER"]
        assert [(b.kind, b.order_id) for b in at_start.breaks] == [
            ("ORDER_MISSING_ON_VENUE", working.order_id)
        ]
        assert list(at_start.halted) == [] and list(at_start.unresolved) == []
        got = await ex.get_order(pb.GetOrderRequest(order_id=working.order_id))
        assert (got.status, got.reason) == (events.CANCELED, "reconciliation")
        again = await ex.reconcile(reconcile_request(pb.ADOPT_VENUE))
        assert again.clean and again.policy == pb.ADOPT_VENUE
        assert ex.states.mode("A1") == risk_events.ENABLED
        await stop(bus, ex)

        bus, ex = await instance(server.url, None)  # the adoption was journaled
        got = await ex.get_order(pb.GetOrderRequest(order_id=working.order_id))
        assert (got.status, got.reason) == (events.CANCELED, "reconciliation")
        await stop(bus, ex)

    asyncio.run(go())


def test_halt_at_start_blocks_the_account_until_set_trading_state(server: NatsServer) -> None:
    async def go() -> None:
        bus, ex = await instance(server.url, None)
        await resting(ex, "h1")
        await stop(bus, ex)

        bus, ex = await instance(server.url, Policy.HALT)
        at_start = ex.start_results["PAPER"]
        assert [b.kind for b in at_start.breaks] == ["ORDER_MISSING_ON_VENUE"]
        assert list(at_start.halted) == ["A1"]
        state = await ex.get_trading_state(pb.GetTradingStateRequest(account="A1"))
        assert state.effective == risk_events.HALTED
        assert state.operator.changed_by == "reconciliation"
        assert state.operator.reason.startswith("reconciliation with PAPER: 1 breaks")
        denied = await ex.submit_order(
            pb.SubmitOrderRequest(
                account="A1", client_order_id="h2", symbol="AAPL", side="BUY", quantity=1,  # type: ignore[arg-type]
                type="LIMIT", limit_price=99.0,  # type: ignore[arg-type]
            )
        )  # fmt: skip
        assert (denied.status, denied.reason_code) == (events.DENIED, "TRADING_HALTED")
        await stop(bus, ex)

        bus, ex = await instance(server.url, None)  # still halted after a restart
        assert ex.states.mode("A1") == risk_events.HALTED
        await ex.set_trading_state(
            pb.SetTradingStateRequest(account="A1", mode="ENABLED", reason="checked")  # type: ignore[arg-type]
        )
        await resting(ex, "h3")
        await stop(bus, ex)

    asyncio.run(go())


def test_reconcile_bad_input_names_the_field(server: NatsServer) -> None:
    async def go() -> None:
        bus, ex = await instance(server.url, None)
        with pytest.raises(ValueError, match=r"^policy: "):
            await ex.reconcile(reconcile_request(policy=99))
        with pytest.raises(ValueError, match=r"^account"):
            await ex.reconcile(pb.ReconcileRequest(account="a.b"))
        with pytest.raises(PreconditionError, match=r"^venue: "):
            await ex.reconcile(reconcile_request(venue=pb.ALPACA))
        await stop(bus, ex)

    asyncio.run(go())
