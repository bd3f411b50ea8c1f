"""Orders through the execution service's OMS wiring (live.py, engine.py) against a real
nats-server: events journaled before they apply, idempotent resubmission, the state rebuilt by a
new instance from the journal alone, the kill switch, and the event contracts published. The
venue is an in-process one of this test (it accepts at once, and fills at the limit price when
asked to), so what is checked is the service's wiring, not a venue's matching."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from tradecore.oms.paper import PaperVenue
from tradecore.oms.reconcile import Policy
from tradecore.oms.types import OrderType, VenueEvent, VenueEventKind, VenueOrder
from tradecore.oms.venue import Listener
from tradecore.subjects import MdKind, exec_filter, md_subject
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import market_pb2
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import NotFoundError, PreconditionError, UnavailableError
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import FILLS_STREAM, Journal
from tradecore_services.execution.journal import STREAM as JOURNAL_STREAM
from tradecore_services.execution.live import Execution
from tradecore_services.execution.main import venues
from tradecore_services.execution.paper_feed import PaperFeed

from tests.integration.test_execution_journal import _connect
from tests.integration.test_nats_resilience import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

K = VenueEventKind


class LocalVenue:
    """Accepts every order at once; fills a LIMIT order at its price when ``fill`` is set;
    cancels at once."""

    def __init__(self, fill: bool) -> None:
        self.name = "PAPER"
        self.fill = fill
        self.listener: Listener | None = None
        self.known: dict[str, VenueEvent] = {}
        self._ids = itertools.count(1)

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def _report(self, event: VenueEvent) -> None:
        assert self.listener is not None
        self.known[event.order_id] = event
        self.listener(event)

    def submit(self, order: VenueOrder) -> None:
        n = next(self._ids)
        self._report(
            VenueEvent(K.ACCEPTED, order.order_id, n, f"V{n}", leaves_quantity=order.quantity)
        )
        if self.fill and order.type is OrderType.LIMIT and order.limit_price is not None:
            self._report(
                VenueEvent(
                    K.FILL, order.order_id, n, f"V{n}", fill_id=f"F{n}",
                    fill_quantity=order.quantity, fill_price=order.limit_price,
                )
            )  # fmt: skip

    def cancel(self, order_id: str) -> None:
        self._report(VenueEvent(K.CANCELED, order_id, 1))

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        self._report(
            VenueEvent(K.REPLACED, order_id, 1, new_quantity=quantity, new_limit_price=limit_price)
        )

    def lookup(self, order_id: str) -> VenueEvent | None:
        return self.known.get(order_id)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    s = NatsServer(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def instance(url: str, venue: LocalVenue) -> tuple[Bus, Execution]:
    bus = Bus(url, "execution-test")
    journal = Journal()
    ex = Execution(bus, journal, Engine(journal, {"PAPER": venue}))
    await bus.start()
    await asyncio.wait_for(ex.restored.wait(), 20)
    return bus, ex


async def quote(nc: nats.NATS, ex: Execution, symbol: str, bid: float, ask: float) -> None:
    """A quote on md.XNAS.<symbol>.quote, and wait until the service took it as the reference
    price of the collar."""
    q = market_pb2.Quote(venue="XNAS", symbol=symbol, bid_price=bid, ask_price=ask)
    await nc.publish(md_subject("XNAS", symbol, MdKind.QUOTE), q.SerializeToString())
    for _ in range(500):
        if ex.engine.reference.reference(symbol) == pytest.approx(0.5 * (bid + ask)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the quote did not reach the service")


async def stop(bus: Bus, ex: Execution) -> None:
    await ex.stop()
    await bus.stop()
    await ex.engine.close()


def order(coid: str, qty: int = 100, price: float = 190.5, **kw: object) -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        account="A1", client_order_id=coid, symbol="AAPL", side="BUY", quantity=qty,  # type: ignore[arg-type]
        type="LIMIT", limit_price=price, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_orders_fill_into_positions_and_survive_a_restart(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        seen: list[tuple[str, bytes]] = []

        async def on(msg: object) -> None:
            seen.append((msg.subject, msg.data))  # type: ignore[attr-defined]

        await nc.subscribe(exec_filter(account="A1"), cb=on)
        bus, ex = await instance(server.url, LocalVenue(fill=True))
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        first = await ex.submit_order(order("c1"), "r1")
        assert first.status == events.FILLED and first.filled_quantity == 100
        assert first.average_price == 190.5 and first.client_order_id == "c1"
        again = await ex.submit_order(order("c1"), "r2")  # the same client_order_id
        assert again == first
        await ex.submit_order(pb.SubmitOrderRequest(
            account="A1", client_order_id="c2", symbol="AAPL", side="SELL", quantity=40,  # type: ignore[arg-type]
            type="LIMIT", limit_price=200.0,  # type: ignore[arg-type]
        ), "r3")  # fmt: skip
        positions = await ex.get_positions(pb.GetPositionsRequest(account="A1"))
        ((p),) = positions.positions
        assert (p.symbol, p.quantity, p.average_cost) == ("AAPL", 60, 190.5)
        assert p.realized_pnl == pytest.approx(40 * (200.0 - 190.5))
        listed = await ex.list_orders(pb.ListOrdersRequest(account="A1"))
        before = [o.SerializeToString() for o in listed.orders]
        assert [o.client_order_id for o in listed.orders] == ["c2", "c1"]
        # the contracts: an OrderUpdate per changed order, a Fill per fill, a Position per fill
        for _ in range(100):
            if sum(1 for s, _ in seen if s == "exec.position.A1") >= 2:
                break
            await asyncio.sleep(0.02)
        kinds = [s for s, _ in seen]
        assert kinds.count("exec.fill.A1") == 2 and kinds.count("exec.order.A1") == 2
        fills = [events.Fill.FromString(d) for s, d in seen if s == "exec.fill.A1"]
        assert [f.quantity for f in fills] == [100, 40] and fills[0].fill_id == "PAPER-F1"
        assert (await nc.jetstream().stream_info(FILLS_STREAM)).state.messages == 2
        await stop(bus, ex)

        # A new instance rebuilds from the journal alone (its venue knows nothing).
        bus, ex = await instance(server.url, LocalVenue(fill=True))
        listed = await ex.list_orders(pb.ListOrdersRequest(account="A1"))
        assert [o.SerializeToString() for o in listed.orders] == before
        # (marks are market data, not journaled: they come back with the next quote)
        ((q),) = (await ex.get_positions(pb.GetPositionsRequest(account="A1"))).positions
        assert (q.symbol, q.quantity, q.average_cost, q.realized_pnl) == (
            p.symbol, p.quantity, p.average_cost, p.realized_pnl,
        )  # fmt: skip
        assert await ex.submit_order(order("c1"), "r4") == first  # still idempotent
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_the_kill_switch_cancels_open_orders_and_denies_new_ones(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        bus, ex = await instance(server.url, LocalVenue(fill=False))
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        updates: list[events.OrderUpdate] = []

        async def watch() -> None:
            async for u in ex.stream_order_updates(pb.StreamOrderUpdatesRequest(account="A1")):
                updates.append(u)

        watcher = asyncio.create_task(watch())
        while "A1" not in ex._watchers:
            await asyncio.sleep(0.01)
        working = await ex.submit_order(order("k1"))
        assert working.status == events.ACCEPTED and working.leaves_quantity == 100
        await ex.set_trading_state(
            pb.SetTradingStateRequest(account="A1", mode="HALTED", reason="kill switch")  # type: ignore[arg-type]
        )
        got = await ex.get_order(pb.GetOrderRequest(order_id=working.order_id))
        assert got.status == events.CANCELED
        denied = await ex.submit_order(order("k2"))
        assert (denied.status, denied.reason_code) == (events.DENIED, "TRADING_HALTED")
        open_ = await ex.list_orders(pb.ListOrdersRequest(account="A1", open_only=True))
        assert list(open_.orders) == []
        await ex.close_streams()
        await asyncio.wait_for(watcher, 10)  # ends cleanly at shutdown
        assert [(u.client_order_id, u.status) for u in updates] == [
            ("k1", events.ACCEPTED),  # one update per call: the order after it
            ("k1", events.CANCELED),
            ("k2", events.DENIED),
        ]
        await stop(bus, ex)
        # after a restart the OMS is still halted (its TradingStateSet was journaled)
        bus, ex = await instance(server.url, LocalVenue(fill=False))
        assert ex.states.mode("A1") == risk_events.HALTED
        denied2 = await ex.submit_order(order("k3"))
        assert denied2.reason_code == "TRADING_HALTED"
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_limits_are_journaled_and_enforced(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        bus, ex = await instance(server.url, LocalVenue(fill=False))
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        got = await ex.set_limits(
            pb.SetLimitsRequest(account="A1", limits=pb.Limits(max_order_quantity=50))
        )
        assert got.max_order_quantity == 50 and got.equity_collar == 0.05
        denied = await ex.submit_order(order("l1", qty=100))
        assert (denied.status, denied.reason_code) == (events.DENIED, "MAX_ORDER_QUANTITY")
        ok = await ex.submit_order(order("l2", qty=50))
        assert ok.status == events.ACCEPTED
        await stop(bus, ex)
        bus, ex = await instance(server.url, LocalVenue(fill=False))
        assert await ex.get_limits(pb.GetLimitsRequest(account="A1")) == got
        again = await ex.submit_order(order("l3", qty=100))
        assert again.reason_code == "MAX_ORDER_QUANTITY"
        with pytest.raises(ValueError, match=r"^limits.max_position "):
            await ex.set_limits(
                pb.SetLimitsRequest(account="A1", limits=pb.Limits(max_position=-1))
            )
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_bad_requests(server: NatsServer) -> None:
    async def go() -> None:
        bus, ex = await instance(server.url, LocalVenue(fill=False))
        with pytest.raises(PreconditionError, match=r"^venue: ALPACA"):
            await ex.submit_order(order("b1", venue="ALPACA"))
        with pytest.raises(ValueError, match=r"^limit_price: "):
            await ex.submit_order(order("b2", price=-1.0))
        with pytest.raises(NotFoundError):
            await ex.get_order(pb.GetOrderRequest(order_id="NOPE"))
        with pytest.raises(NotFoundError):
            await ex.cancel_order(pb.CancelOrderRequest(order_id="NOPE"))
        with pytest.raises(ValueError, match=r"^order_id: "):
            await ex.cancel_order(pb.CancelOrderRequest())
        with pytest.raises(ValueError, match=r"^quantity: "):
            await ex.replace_order(pb.ReplaceOrderRequest(order_id="X", quantity=0))
        await stop(bus, ex)

    asyncio.run(go())


class LostFill(Journal):
    """Loses the next fill contract: EXEC_FILLS does not acknowledge it (nats-server died after
    the order's events were journaled, before the fill was stored)."""

    lose = False

    async def publish_fill(self, fill: events.Fill) -> None:
        if self.lose:
            self.lose = False
            raise UnavailableError("EXEC_FILLS did not acknowledge the fill (test)")
        await super().publish_fill(fill)


def test_a_fill_not_stored_in_exec_fills_is_published_again_from_the_journal(
    server: NatsServer,
) -> None:
    """A fill is published into EXEC_FILLS once the journal holds it, without the call waiting
    for that acknowledgement: when EXEC_FILLS does not store it the service rebuilds from the
    journal, which publishes every journaled fill that EXEC_FILLS lacks (once: the ones it has
    are not published again)."""

    async def go() -> None:
        nc = await _connect(server.url)
        bus = Bus(server.url, "execution-test")
        journal = LostFill()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": LocalVenue(fill=True)}))
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        js = nc.jetstream()
        assert (await ex.submit_order(order("c0", qty=10), "r0")).status == events.FILLED
        journal.lose = True
        got = await ex.submit_order(order("c1"), "r1")  # journaled: answered
        assert got.status == events.FILLED and got.filled_quantity == 100
        again = await ex.submit_order(order("c1"), "r2")  # a client's retry: the order, once
        assert (again.order_id, again.status) == (got.order_id, events.FILLED)
        second = await ex.submit_order(order("c2", qty=7), "r3")
        assert second.status == events.FILLED
        await asyncio.wait_for(ex.restored.wait(), 20)
        for _ in range(100):
            if (await js.stream_info(FILLS_STREAM)).state.messages == 3:
                break
            await asyncio.sleep(0.05)
        stored = await ex.journal.fill_ids()
        assert stored == {"PAPER-F1", "PAPER-F2", "PAPER-F3"}
        assert (await js.stream_info(FILLS_STREAM)).state.messages == 3
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_the_paper_venue_fills_new_orders_after_a_restart(server: NatsServer) -> None:
    """A restarted service runs a new paper venue: its fills are not taken for the journaled
    fills of the venue before the restart (the OMS deduplicates fills by venue fill id)."""

    async def paper_instance() -> tuple[Bus, Execution]:
        paper = venues()["PAPER"]
        assert isinstance(paper, PaperVenue)
        feed = PaperFeed(paper)
        bus = Bus(server.url, "execution-test")
        journal = Journal()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": paper}, feed.clock), feed)
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        return bus, ex

    async def ioc(ex: Execution, coid: str) -> pb.Order:
        return await ex.submit_order(order(coid, qty=10, price=191.0, time_in_force="IOC"))  # type: ignore[arg-type]

    async def go() -> None:
        nc = await _connect(server.url)
        bus, ex = await paper_instance()
        q = market_pb2.Quote(
            venue="XNAS", symbol="AAPL", bid_price=190.0, ask_price=191.0, bid_size=1000,
            ask_size=1000,
        )  # fmt: skip
        await nc.publish(md_subject("XNAS", "AAPL", MdKind.QUOTE), q.SerializeToString())
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        first = await ioc(ex, "c1")
        assert first.status == events.FILLED
        await stop(bus, ex)

        bus, ex = await paper_instance()  # the restart: a new paper venue
        await nc.publish(md_subject("XNAS", "AAPL", MdKind.QUOTE), q.SerializeToString())
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        second = await ioc(ex, "c2")
        assert second.venue_order_id != first.venue_order_id
        assert (second.status, second.filled_quantity) == (events.FILLED, 10), second
        positions = await ex.get_positions(pb.GetPositionsRequest(account="A1"))
        assert [(p.symbol, p.quantity) for p in positions.positions] == [("AAPL", 20)]
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_a_multi_leg_option_order_fills_every_leg_at_the_paper_venue(server: NatsServer) -> None:
    c1, c2 = "SPY250620C00500000", "SPY250620C00510000"

    async def go() -> None:
        nc = await _connect(server.url)
        paper = venues()["PAPER"]
        assert isinstance(paper, PaperVenue)
        feed = PaperFeed(paper)
        bus = Bus(server.url, "execution-test")
        journal = Journal()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": paper}, feed.clock), feed)
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        await quote(nc, ex, "SPY", 499.9, 500.1)
        for symbol, bid, ask in ((c1, 4.9, 5.0), (c2, 3.0, 3.1)):
            q = market_pb2.Quote(
                venue="XNAS", symbol=symbol, bid_price=bid, ask_price=ask, bid_size=50,
                ask_size=50,
            )  # fmt: skip
            await nc.publish(md_subject("XNAS", symbol, MdKind.QUOTE), q.SerializeToString())
            await quote(nc, ex, symbol, bid, ask)
        spread = await ex.submit_order(
            pb.SubmitOrderRequest(
                account="A1",
                client_order_id="vertical",
                side="BUY",
                quantity=5,  # type: ignore[arg-type]
                type="LIMIT",
                limit_price=2.0,
                time_in_force="IOC",  # type: ignore[arg-type]
                legs=[
                    pb.Leg(symbol=c1, side="BUY", ratio=1),  # type: ignore[arg-type]
                    pb.Leg(symbol=c2, side="SELL", ratio=1),  # type: ignore[arg-type]
                ],
            )
        )
        assert (spread.status, spread.filled_quantity) == (events.FILLED, 5), spread
        assert spread.average_price == pytest.approx(2.0)  # 5.00 paid, 3.00 received
        positions = await ex.get_positions(pb.GetPositionsRequest(account="A1"))
        assert sorted((p.symbol, p.quantity) for p in positions.positions) == [(c1, 5), (c2, -5)]
        rec = await ex.reconcile(
            pb.ReconcileRequest(account="A1", venue=pb.PAPER, policy=pb.REPORT)
        )
        assert rec.clean, rec
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


class LostAnswer(Journal):
    """Fails the next journal write holding a fill (a submit's second write, with the venue's
    answers): ``"lost"`` never stores it, ``"unacked"`` stores it and loses the
    acknowledgement (nats-server died before answering)."""

    mode = ""

    async def write_batch(self, entries: list[pb.JournalEntry], request_id: str = "") -> int:
        if self.mode and any(e.oms.type == "OrderFilled" for e in entries):
            mode, self.mode = self.mode, ""
            if mode == "unacked":
                await super().write_batch(entries, request_id)
            raise UnavailableError("the execution journal did not acknowledge (test)")
        return await super().write_batch(entries, request_id)

    async def write(self, entry: pb.JournalEntry, msg_id: str = "") -> bool:
        if self.mode and entry.oms.type == "OrderFilled":
            mode, self.mode = self.mode, ""
            if mode == "unacked":
                await super().write(entry, msg_id)
            raise UnavailableError("the execution journal did not acknowledge (test)")
        return await super().write(entry, msg_id)


async def lossy_paper(url: str) -> tuple[PaperVenue, LostAnswer, Bus, Execution]:
    """The service's parts with the paper venue (fed by the quotes), a journal that can lose a
    write, and the reconciliation at start adopting the venue's state; replayed."""
    paper = venues({})["PAPER"]
    assert isinstance(paper, PaperVenue)
    feed = PaperFeed(paper)
    bus = Bus(url, "execution-test")
    journal = LostAnswer()
    ex = Execution(
        bus,
        journal,
        Engine(journal, {"PAPER": paper}, feed.clock),
        feed,
        start_policy=Policy.ADOPT_VENUE,
    )
    await bus.start()
    await asyncio.wait_for(ex.restored.wait(), 20)
    return paper, journal, bus, ex


@pytest.mark.parametrize("mode", ["lost", "unacked"])
def test_a_lost_write_of_the_venues_answers_rebuilds_without_breaks(
    server: NatsServer, mode: str
) -> None:
    """The paper venue filled an order inside its submit and the journal write of its answers
    failed: the rebuild (replay, resume, the reconciliation at start with ADOPT_VENUE) takes the
    venue's state without a break it cannot adopt, so the account keeps trading; the client's
    retry gets the order FILLED once, with its fill booked once."""

    async def go() -> None:
        nc = await _connect(server.url)
        paper, journal, bus, ex = await lossy_paper(server.url)
        q = market_pb2.Quote(
            venue="XNAS", symbol="AAPL", bid_price=190.0, ask_price=191.0, bid_size=1000,
            ask_size=1000,
        )  # fmt: skip
        await nc.publish(md_subject("XNAS", "AAPL", MdKind.QUOTE), q.SerializeToString())
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        ioc = {"price": 191.0, "time_in_force": "IOC"}
        first = await ex.submit_order(order("c0", qty=10, **ioc))
        assert first.status == events.FILLED
        journal.mode = mode
        with pytest.raises(UnavailableError):
            await ex.submit_order(order("c1", qty=7, **ioc))
        await asyncio.wait_for(ex.restored.wait(), 20)
        result = ex.start_results["PAPER"]
        assert not result.unresolved and not result.halted, result
        state = await ex.get_trading_state(pb.GetTradingStateRequest(account="A1"))
        assert state.effective == risk_events.ENABLED
        again = await ex.submit_order(order("c1", qty=7, **ioc))
        assert (again.status, again.filled_quantity) == (events.FILLED, 7), again
        third = await ex.submit_order(order("c2", qty=5, **ioc))
        assert (third.status, third.filled_quantity) == (events.FILLED, 5), third
        positions = await ex.get_positions(pb.GetPositionsRequest(account="A1"))
        assert [(p.symbol, p.quantity) for p in positions.positions] == [("AAPL", 22)]
        # The venue holds what the journal holds: a call whose single write was lost (inline
        # engine, no barrier) was forgotten by the paper venue at the rebuild.
        snap = paper.snapshot()
        assert {o.order_id for o in snap.orders} == {o.order_id for o in ex.engine.oms.orders()}
        assert sum(f.quantity for f in snap.fills) == 22
        for _ in range(100):
            if len(await ex.journal.fill_ids()) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(await ex.journal.fill_ids()) == 3
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


@pytest.mark.parametrize("in_process", [True, False])
def test_a_filled_order_is_journaled_as_one_message_with_an_in_process_venue(
    server: NatsServer, in_process: bool
) -> None:
    """With only in-process venues the engine runs inline: a marketable order's command, its
    events and the venue's fill are one JetStream message; a venue outside the process gets the
    barrier (the order journaled before the venue sees it), so two."""

    async def go() -> None:
        nc = await _connect(server.url)
        venue = LocalVenue(fill=True)
        venue.in_process = in_process  # type: ignore[attr-defined]
        bus = Bus(server.url, "execution-test")
        journal = Journal()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": venue}))
        assert ex.engine.inline is in_process
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        js = nc.jetstream()
        before = (await js.stream_info(JOURNAL_STREAM)).state.messages
        got = await ex.submit_order(order("c1", qty=10))
        assert (got.status, got.filled_quantity) == (events.FILLED, 10)
        written = (await js.stream_info(JOURNAL_STREAM)).state.messages - before
        assert written == (1 if in_process else 2)
        types = [e.oms.type async for _, e in journal.replay() if e.WhichOneof("entry") == "oms"]
        assert types.count("OrderFilled") == 1 and types.index("OrderSubmitted") < types.index(
            "OrderFilled"
        ), types
        await stop(bus, ex)
        bus, ex = await instance(server.url, LocalVenue(fill=True))  # a restart rebuilds it
        again = await ex.get_order(pb.GetOrderRequest(order_id=got.order_id))
        assert (again.status, again.filled_quantity) == (events.FILLED, 10)
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


def test_a_lost_write_of_a_resting_orders_fill_rebuilds_without_breaks(
    server: NatsServer,
) -> None:
    """A resting order filled by a market update whose journal write is not stored: the
    rebuild's reconciliation (ADOPT_VENUE) books the venue's fill and ends the order; the
    position difference the fill explains is not a break of its own, so the account is not
    halted."""

    async def go() -> None:
        nc = await _connect(server.url)
        _, journal, bus, ex = await lossy_paper(server.url)

        async def market(bid: float, ask: float) -> None:
            q = market_pb2.Quote(
                venue="XNAS", symbol="AAPL", bid_price=bid, ask_price=ask, bid_size=1000,
                ask_size=1000,
            )  # fmt: skip
            await nc.publish(md_subject("XNAS", "AAPL", MdKind.QUOTE), q.SerializeToString())
            await quote(nc, ex, "AAPL", bid, ask)

        await market(190.0, 191.0)
        resting = await ex.submit_order(order("r0", qty=10, price=190.5))
        assert resting.status == events.ACCEPTED
        journal.mode = "lost"
        await market(190.1, 190.4)  # the ask crosses the resting buy: the venue fills it
        for _ in range(200):
            if journal.mode == "" and ex.restored.is_set() and ex.start_results:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(ex.restored.wait(), 20)
        result = ex.start_results["PAPER"]
        assert [b.kind for b in result.breaks] == ["STATUS_MISMATCH", "MISSING_FILL"], result
        assert not result.unresolved and not result.halted, result
        state = await ex.get_trading_state(pb.GetTradingStateRequest(account="A1"))
        assert state.effective == risk_events.ENABLED
        got = await ex.get_order(pb.GetOrderRequest(order_id=resting.order_id))
        assert (got.status, got.filled_quantity) == (events.FILLED, 10), got
        positions = await ex.get_positions(pb.GetPositionsRequest(account="A1"))
        assert [(p.symbol, p.quantity) for p in positions.positions] == [("AAPL", 10)]
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())


class SlowJournal(Journal):
    """Each batch write waits a while before it is sent (a slow JetStream); ``second`` is set
    when the second write begins."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.second = asyncio.Event()

    async def write_batch(self, entries: list[pb.JournalEntry], request_id: str = "") -> int:
        self.writes += 1
        if self.writes == 2:
            self.second.set()
        await asyncio.sleep(0.2)
        return await super().write_batch(entries, request_id)


def test_a_cancelled_call_still_journals_what_the_oms_applied(server: NatsServer) -> None:
    """A caller that goes away mid-call (a cancelled RPC) does not stop the call's journal
    writes: the OMS applied the venue's answers, so the journal gets them too, and the state a
    restart rebuilds is the one the service kept serving."""

    async def go() -> None:
        nc = await _connect(server.url)
        bus = Bus(server.url, "execution-test")
        journal = SlowJournal()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": LocalVenue(fill=True)}))
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        call = asyncio.ensure_future(ex.submit_order(order("c1", qty=10), "r1"))
        await asyncio.wait_for(journal.second.wait(), 30)  # past the first write, in the second
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        got = await ex.submit_order(order("c1", qty=10), "r2")  # the client's retry
        assert (got.status, got.filled_quantity) == (events.FILLED, 10)
        assert ex.restored.is_set()
        types = [e.oms.type async for _, e in journal.replay() if e.WhichOneof("entry") == "oms"]
        assert types.count("OrderFilled") == 1, types
        await stop(bus, ex)
        bus, ex = await instance(server.url, LocalVenue(fill=True))  # a restart
        again = await ex.get_order(pb.GetOrderRequest(order_id=got.order_id))
        assert (again.status, again.filled_quantity) == (events.FILLED, 10)
        await stop(bus, ex)
        await nc.close()

    asyncio.run(go())
