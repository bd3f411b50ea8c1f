"""Execution algorithms in the execution service's wiring (live.py, algos.py, engine.py) against
a real nats-server and the paper venue fed by quotes over NATS: children are ordinary orders of
the OMS (journaled, published on ``exec.order.<account>``), GetAlgo's progress and TCA, StopAlgo
and the kill switch cancel open children, and a new instance rebuilt from the journal alone
carries the algo on without sending a child twice (checked against the order updates recorded
independently from NATS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tradecore import ticks
from tradecore.oms.paper import PaperVenue
from tradecore.store import default_dsn
from tradecore.subjects import MARKETDATA_VOLUME_CURVE, ExecKind, MdKind, exec_subject, md_subject
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import market_pb2
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import NotFoundError, PreconditionError
from tradecore_services.common.interceptors import RpcMetrics
from tradecore_services.common.nats_rpc import unary_handler
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import Journal
from tradecore_services.execution.live import Execution
from tradecore_services.execution.main import venues
from tradecore_services.execution.paper_feed import PaperFeed
from tradecore_services.execution.reconciliation import start_policy
from tradecore_services.marketdata.closes import volume_curve_reply
from tradecore_services.marketdata.store import TickStore

from tests.integration.test_execution_journal import _connect
from tests.integration.test_nats_resilience import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

QUOTE = market_pb2.Quote(
    venue="XNAS", symbol="AAPL", bid_price=190.0, ask_price=191.0, bid_size=1000, ask_size=1000
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    s = NatsServer(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def instance(url: str) -> tuple[Bus, Execution]:
    """The service's parts as main.py makes them: the paper venue fed over NATS, the
    reconciliation at start."""
    paper = venues()["PAPER"]
    assert isinstance(paper, PaperVenue)
    feed = PaperFeed(paper)
    bus = Bus(url, "execution-test")
    journal = Journal()
    engine = Engine(journal, {"PAPER": paper}, feed.clock)
    ex = Execution(bus, journal, engine, feed, start_policy=start_policy())
    await bus.start()
    await asyncio.wait_for(ex.restored.wait(), 20)
    return bus, ex


async def stop(bus: Bus, ex: Execution) -> None:
    await ex.stop()
    await bus.stop()
    await ex.engine.close()


async def quoted(nc: nats.NATS, ex: Execution) -> None:
    """Publish the quote until the service's paper book has it."""
    for _ in range(500):
        await nc.publish(md_subject("XNAS", "AAPL", MdKind.QUOTE), QUOTE.SerializeToString())
        await asyncio.sleep(0.01)
        if ex.engine.reference.reference("AAPL") == pytest.approx(190.5):
            return
    raise AssertionError("the quote did not reach the service")


async def until(ex: Execution, algo_id: str, ok: Callable[[pb.Algo], bool]) -> pb.Algo:
    deadline = time.monotonic() + 30
    while True:
        got = await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=algo_id))
        if ok(got):
            return got
        assert time.monotonic() < deadline, str(got)
        await asyncio.sleep(0.05)


class Recorder:
    """Every order update of the account on exec.order.<account>: order ids per client id."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = defaultdict(set)
        self.last: dict[str, events.OrderUpdate] = {}

    async def start(self, nc: nats.NATS, account: str) -> None:
        async def on(msg: object) -> None:
            u = events.OrderUpdate.FromString(msg.data)  # type: ignore[attr-defined]
            self.ids[u.client_order_id].add(u.order_id)
            self.last[u.order_id] = u

        await nc.subscribe(exec_subject(ExecKind.ORDER, account), cb=on)
        await nc.flush()


def twap(cid: str, qty: int, duration_s: float, slices: int, **kw: object) -> pb.StartAlgoRequest:
    fields: dict[str, object] = dict(
        account="A1", client_algo_id=cid, symbol="AAPL", side="BUY", quantity=qty,
        kind="TWAP", duration_s=duration_s, slices=slices,
    )  # fmt: skip
    return pb.StartAlgoRequest(**{**fields, **kw})  # type: ignore[arg-type]


def test_a_twap_fills_through_the_paper_venue_with_tca(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        rec = Recorder()
        await rec.start(nc, "A1")
        bus, ex = await instance(server.url)
        await quoted(nc, ex)
        # equal children 0.25 s apart: the duplicate window (default 1 s) made shorter
        window = pb.Limits(duplicate_window_ns=100_000_000)
        await ex.set_limits(pb.SetLimitsRequest(account="A1", limits=window))
        first = await ex.algo_calls.start_algo(twap("t1", 40, 1.0, 4))
        assert first.state == pb.ALGO_WORKING and len(first.children) == 1  # slice 1 at once
        again = await ex.algo_calls.start_algo(twap("t1", 99, 1.0, 4))  # idempotent
        assert again.algo_id == first.algo_id and again.quantity == 40
        done = await until(ex, first.algo_id, lambda a: a.state == pb.ALGO_COMPLETED)
        assert done.filled_quantity == 40 and done.average_price == pytest.approx(191.0)
        assert [c.quantity for c in done.children] == [10] * 4
        assert all(c.status == events.FILLED for c in done.children)
        assert [c.client_order_id for c in done.children] == [
            f"{first.algo_id}.{n}" for n in range(1, 5)
        ]
        # TCA: bought at the ask against the arrival mid
        assert done.tca.arrival_price == pytest.approx(190.5)
        assert done.tca.slippage_arrival_bps == pytest.approx((191.0 - 190.5) / 190.5 * 1e4)
        # the children are the service's orders, published like any other
        orders = await ex.list_orders(pb.ListOrdersRequest(account="A1"))
        assert {o.order_id for o in orders.orders} == {c.order_id for c in done.children}
        await asyncio.sleep(0.2)
        assert {cid: len(ids) for cid, ids in rec.ids.items()} == {
            c.client_order_id: 1 for c in done.children
        }
        listed = await ex.algo_calls.list_algos(pb.ListAlgosRequest(account="A1"))
        assert [a.algo_id for a in listed.algos] == [first.algo_id]
        working = pb.ListAlgosRequest(account="A1", working_only=True)
        assert not (await ex.algo_calls.list_algos(working)).algos
        with pytest.raises(NotFoundError, match="algo_id"):
            await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id="ALGO-nope"))
        with pytest.raises(ValueError, match="kind:"):
            await ex.algo_calls.start_algo(twap("t2", 1, 1.0, 1, kind="ALGO_KIND_UNSPECIFIED"))
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_a_rebuilt_service_carries_the_algo_on_and_stop_cancels_its_children(
    server: NatsServer,
) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        rec = Recorder()
        await rec.start(nc, "A1")
        bus, ex = await instance(server.url)
        await quoted(nc, ex)
        # a buy capped under the bid: the children rest at the venue
        start = twap("r1", 1000, 4.0, 4, limit_price=180.0)
        algo = await ex.algo_calls.start_algo(start)
        await until(ex, algo.algo_id, lambda a: len(a.children) == 2)
        await stop(bus, ex)  # the service goes; the journal stays

        bus, ex = await instance(server.url)  # rebuilt from the journal alone
        got = await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=algo.algo_id))
        assert got.state == pb.ALGO_WORKING and len(got.children) >= 2
        await quoted(nc, ex)
        # the new paper venue does not have the first children: the reconciliation at start
        # canceled them, and the algo sends what its schedule is short of
        got = await until(ex, algo.algo_id, lambda a: a.working_quantity == 1000)
        assert sum(c.filled_quantity for c in got.children) == 0
        stopped = await ex.algo_calls.stop_algo(pb.StopAlgoRequest(algo_id=algo.algo_id))
        assert stopped.state == pb.ALGO_STOPPED and stopped.reason == "stopped"
        assert stopped.working_quantity == 0
        assert all(c.status == events.CANCELED for c in stopped.children)
        n = len(stopped.children)
        assert [c.client_order_id for c in stopped.children] == [
            f"{algo.algo_id}.{k}" for k in range(1, n + 1)
        ]
        await asyncio.sleep(0.3)
        assert len(stopped.children) == len((await until(ex, algo.algo_id, bool)).children)
        # the independent record: every child client id is one order, and no other was sent
        assert {cid: len(ids) for cid, ids in rec.ids.items()} == {
            c.client_order_id: 1 for c in stopped.children
        }
        assert all(rec.last[c.order_id].status == events.CANCELED for c in stopped.children)
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_the_kill_switch_stops_working_algos(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        bus, ex = await instance(server.url)
        await quoted(nc, ex)
        algo = await ex.algo_calls.start_algo(twap("h1", 100, 30.0, 10, limit_price=180.0))
        assert algo.working_quantity == 10
        await ex.set_trading_state(
            pb.SetTradingStateRequest(account="A1", mode=risk_events.HALTED, reason="kill")
        )
        got = await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=algo.algo_id))
        assert (got.state, got.reason) == (pb.ALGO_STOPPED, "trading halted")
        assert all(c.status == events.CANCELED for c in got.children)
        with pytest.raises(PreconditionError, match="HALTED"):
            await ex.algo_calls.start_algo(twap("h2", 100, 30.0, 10))
        await stop(bus, ex)
        # the stop is in the journal: a rebuilt service has the algo stopped
        bus, ex = await instance(server.url)
        got = await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=algo.algo_id))
        assert got.state == pb.ALGO_STOPPED and len(got.children) == 1
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_a_vwap_follows_the_stored_volume_curve_else_a_flat_one(
    server: NatsServer, tmp_path: Path
) -> None:
    """Without a curve in the request, StartAlgo asks marketdata.v1.volume_curve (served here
    by the market-data service's own handler over a real chDB tick store) for the stored
    volume by time of day of the algo's window; with no answer the curve is flat, and says so."""
    store = TickStore(default_dsn(tmp_path, "marketdata"))

    def history() -> None:
        """Trades one day before now, at the time of day of the window about to start."""
        now = dt.datetime.now(ZoneInfo("America/New_York"))
        if now.hour == 23 and now.minute >= 58:
            pytest.skip("the window would cross midnight in New York")
        yesterday = now - dt.timedelta(days=1)
        when = [int((yesterday + dt.timedelta(seconds=s)).timestamp() * 1e9) for s in (3, 4, 35)]
        store.insert(
            [
                ticks.make_batch(
                    "XNAS", "AAPL", "f", seq=np.arange(1, 4), ts=when, recv_ts=time.time_ns(),
                    type=[ticks.EXECUTE] * 3, price=np.full(3, 190 * ticks.PRICE_SCALE),
                    size=[200, 100, 100],
                )
            ]
        )  # fmt: skip

    async def go() -> None:
        nc = await _connect(server.url)
        bus, ex = await instance(server.url)
        await quoted(nc, ex)
        vwap = twap("v0", 100, 40.0, 2, kind="VWAP", limit_price=180.0)
        flat = await ex.algo_calls.start_algo(vwap)  # nobody answers: flat
        assert list(flat.request.curve) == [1.0, 1.0]
        assert flat.curve_source.startswith("flat: "), flat.curve_source
        metrics = RpcMetrics(CollectorRegistry(), "marketdata")

        async def reply(req: market_pb2.VolumeCurveRequest) -> market_pb2.VolumeCurve:
            return volume_curve_reply(store.store, req)

        handler = unary_handler(
            MARKETDATA_VOLUME_CURVE, market_pb2.VolumeCurveRequest, reply, metrics
        )
        await nc.subscribe(MARKETDATA_VOLUME_CURVE, cb=handler)
        await nc.flush()
        history()
        stored = await ex.algo_calls.start_algo(twap("v1", 100, 40.0, 2, kind="VWAP"))
        assert stored.curve_source == "stored: 1 days"
        assert list(stored.request.curve) == pytest.approx([0.75, 0.25])
        # the first bucket's share at once: round(100 x 0.75)
        assert [c.quantity for c in stored.children] == [75]
        given = await ex.algo_calls.start_algo(
            twap("v2", 100, 40.0, 2, kind="VWAP", curve=[1.0, 3.0], limit_price=180.0)
        )
        assert given.curve_source == "request" and [c.quantity for c in given.children] == [25]
        await stop(bus, ex)
        # the journal holds the curve used: the rebuilt algo keeps it
        bus, ex = await instance(server.url)
        back = await ex.algo_calls.get_algo(pb.GetAlgoRequest(algo_id=stored.algo_id))
        assert list(back.request.curve) == list(stored.request.curve)
        assert back.curve_source == "stored: 1 days"
        await stop(bus, ex)
        await nc.close()

    try:
        asyncio.run(go())
    finally:
        store.close()
