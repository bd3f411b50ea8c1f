"""Reconciliation of the OMS against a venue's record: each break kind, the ADOPT_VENUE and HALT
policies, a venue that cannot be reconciled, and the paper venue's restart.

The venue is the real paper venue (fed L2 levels); the cases a venue would not produce by itself
(a fill at another price, an order the OMS never sent) are built by editing its snapshot, which
is what :func:`compare` takes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict

from tradecore.errors import UnavailableError
from tradecore.oms import OMS, PaperConfig, PaperVenue, PreTradeControls
from tradecore.oms.oms import OmsEvent, OrderCanceled, TradingStateSet
from tradecore.oms.order import Leg
from tradecore.oms.pretrade import DenyReason, Limits, TradingMode
from tradecore.oms.reconcile import (
    RECONCILIATION,
    Break,
    BreakKind,
    Policy,
    compare,
    reconcile,
)
from tradecore.oms.types import (
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueOrder,
)
from tradecore.oms.venue import (
    Listener,
    Reconcilable,
    VenueFill,
    VenueOrderState,
    VenuePosition,
    VenueSnapshot,
)

SCALE = 10_000
SYM = "AAPL"
B = BreakKind


class Refs:
    def reference(self, symbol: str) -> float | None:
        return None


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.t += 1_000
        return self.t


def limits() -> Limits:
    return Limits(duplicate_window_ns=None, collar=False)


def make(venue: PaperVenue | None = None) -> tuple[OMS, PaperVenue, list[OmsEvent]]:
    v = venue if venue is not None else PaperVenue(PaperConfig(price_scale=SCALE))
    log: list[OmsEvent] = []
    oms = OMS({"PAPER": v}, PreTradeControls(Refs(), limits()), Clock(), log.append)
    return oms, v, log


def market(v: PaperVenue, ts: int = 1) -> None:
    """A market of 100 @ 99.99 bid, 100 @ 100.01 ask."""
    v.on_level(SYM, 1, 999_900, 100, ts)
    v.on_level(SYM, -1, 1_000_100, 100, ts)


def submit(oms: OMS, coid: str, side: str, qty: int, price: float, account: str = "acct") -> str:
    order = oms.submit(
        account=account,
        client_order_id=coid,
        symbol=SYM,
        side=side,
        quantity=qty,
        type="LIMIT",
        limit_price=price,
    )
    return order.order_id


def trading(oms: OMS, v: PaperVenue) -> tuple[str, str]:
    """A filled buy (taker, 30 @ 100.01) and a resting buy (20 @ 99.00)."""
    market(v)
    filled = submit(oms, "c1", "BUY", 30, 100.01)
    resting = submit(oms, "c2", "BUY", 20, 99.00)
    assert oms.order(filled).status is OrderStatus.FILLED
    assert oms.order(resting).status is OrderStatus.ACCEPTED
    return filled, resting


def kinds(breaks: list[Break] | tuple[Break, ...]) -> list[BreakKind]:
    return sorted((b.kind for b in breaks), key=list(BreakKind).index)


def rebuilt(log: list[OmsEvent]) -> OMS:
    fresh = OMS({}, PreTradeControls(Refs(), limits()), Clock())
    fresh.replay(log)
    return fresh


def state(oms: OMS) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    orders = sorted((asdict(o) for o in oms.orders()), key=lambda d: str(d["order_id"]))
    positions = sorted((asdict(p) for p in oms.positions.positions()), key=lambda d: str(d))
    return orders, positions


def test_a_journal_that_agrees_with_the_venue_is_clean() -> None:
    oms, v, _ = make()
    trading(oms, v)
    result = reconcile(oms, "PAPER")
    assert result.supported and result.clean and result.breaks == ()
    snap = v.snapshot()
    assert [(o.order_id, o.status) for o in snap.orders] == [
        ("O1", OrderStatus.FILLED),
        ("O2", OrderStatus.ACCEPTED),
    ]
    assert [(f.fill_id, f.quantity, f.price) for f in snap.fills] == [("PAPER-1", 30, 100.01)]
    assert snap.positions == (VenuePosition("acct", SYM, 30),)


def test_a_missing_fill_is_detected() -> None:
    oms, v, _ = make()
    _, resting = trading(oms, v)
    snap = v.snapshot()
    extra = VenueFill("PAPER-9", resting, "acct", SYM, Side.BUY, 5, 99.0, 2)
    snap = dataclasses.replace(
        snap, fills=(*snap.fills, extra), positions=(VenuePosition("acct", SYM, 35),)
    )
    breaks = compare(oms, "PAPER", snap)
    # the venue's net (35) is the journal's (30) and the missing fill: no second break
    assert kinds(breaks) == [B.MISSING_FILL]
    missing = next(b for b in breaks if b.kind is B.MISSING_FILL)
    assert (missing.order_id, missing.fill_id) == (resting, "PAPER-9")


def test_a_position_difference_the_missing_fills_do_not_explain_is_a_break() -> None:
    oms, v, _ = make()
    _, resting = trading(oms, v)
    snap = v.snapshot()
    extra = VenueFill("PAPER-9", resting, "acct", SYM, Side.BUY, 5, 99.0, 2)
    snap = dataclasses.replace(
        snap, fills=(*snap.fills, extra), positions=(VenuePosition("acct", SYM, 36),)
    )
    breaks = compare(oms, "PAPER", snap)
    assert kinds(breaks) == [B.MISSING_FILL, B.POSITION_DIFFERENCE]
    diff = breaks[1]
    assert (diff.journal, diff.venue) == ("net 35", "net 36")


def test_an_unknown_fill_is_detected() -> None:
    oms, v, _ = make()
    trading(oms, v)
    snap = dataclasses.replace(v.snapshot(), fills=(), positions=())
    breaks = compare(oms, "PAPER", snap)
    assert kinds(breaks) == [B.UNKNOWN_FILL, B.POSITION_DIFFERENCE]
    assert breaks[0].fill_id == "PAPER-1"


def test_fill_quantity_and_price_mismatches_are_detected() -> None:
    oms, v, _ = make()
    trading(oms, v)
    snap = v.snapshot()
    (fill,) = snap.fills
    wrong = dataclasses.replace(fill, quantity=25, price=100.02)
    snap = dataclasses.replace(snap, fills=(wrong,), positions=(VenuePosition("acct", SYM, 25),))
    assert kinds(compare(oms, "PAPER", snap)) == [
        B.QUANTITY_MISMATCH,
        B.PRICE_MISMATCH,
        B.POSITION_DIFFERENCE,
    ]


def test_order_quantity_and_limit_price_mismatches_are_detected() -> None:
    oms, v, _ = make()
    _, resting = trading(oms, v)
    snap = v.snapshot()
    orders = tuple(
        dataclasses.replace(o, quantity=25, limit_price=98.5) if o.order_id == resting else o
        for o in snap.orders
    )
    breaks = compare(oms, "PAPER", dataclasses.replace(snap, orders=orders))
    assert kinds(breaks) == [B.QUANTITY_MISMATCH, B.PRICE_MISMATCH]
    assert all(b.order_id == resting for b in breaks)


def test_an_unknown_venue_order_is_detected() -> None:
    oms, v, _ = make()
    trading(oms, v)
    snap = v.snapshot()
    stranger = VenueOrderState(
        "X1", "P99", "acct", SYM, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, 10, 0,
        OrderStatus.ACCEPTED, 101.0,
    )  # fmt: skip
    breaks = compare(oms, "PAPER", dataclasses.replace(snap, orders=(*snap.orders, stranger)))
    assert [(b.kind, b.order_id) for b in breaks] == [(B.UNKNOWN_VENUE_ORDER, "X1")]


def test_an_order_missing_on_the_venue_and_a_status_mismatch_are_detected() -> None:
    oms, v, _ = make()
    filled, resting = trading(oms, v)
    snap = v.snapshot()
    # the venue lost the resting order and says the filled one was canceled
    orders = tuple(
        dataclasses.replace(o, status=OrderStatus.CANCELED)
        for o in snap.orders
        if o.order_id == filled
    )
    breaks = compare(oms, "PAPER", dataclasses.replace(snap, orders=orders))
    assert sorted((b.kind, b.order_id) for b in breaks) == [
        (B.ORDER_MISSING_ON_VENUE, resting),
        (B.STATUS_MISMATCH, filled),
    ]


def test_breaks_are_per_account() -> None:
    oms, v, _ = make()
    trading(oms, v)
    submit(oms, "c3", "SELL", 10, 101.0, account="other")
    snap = v.snapshot()
    orders = tuple(o for o in snap.orders if o.account != "other")
    snap = dataclasses.replace(snap, orders=orders)
    assert compare(oms, "PAPER", snap, "acct") == []
    assert [b.kind for b in compare(oms, "PAPER", snap, "other")] == [B.ORDER_MISSING_ON_VENUE]


class NoSnapshotVenue:
    """A venue that implements only the Venue protocol (no query side)."""

    name = "BLIND"

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def submit(self, order: VenueOrder) -> None:
        pass

    def cancel(self, order_id: str) -> None:
        pass

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        pass

    def lookup(self, order_id: str) -> VenueEvent | None:
        return None


def test_a_venue_without_snapshot_cannot_be_reconciled() -> None:
    blind = NoSnapshotVenue()
    assert not isinstance(blind, Reconcilable)
    assert isinstance(PaperVenue(), Reconcilable)
    oms = OMS({"BLIND": blind}, PreTradeControls(Refs(), limits()), Clock())
    result = reconcile(oms, "BLIND", policy=Policy.HALT)
    assert not result.supported and not result.clean
    assert "cannot be reconciled" in result.detail
    assert result.halted == () and oms.controls.mode("acct") is not TradingMode.HALTED


class UnreadableVenue(NoSnapshotVenue):
    """A remote venue whose record cannot be read right now."""

    name = "REMOTE"

    def snapshot(self) -> VenueSnapshot:
        raise UnavailableError("venue unreachable")


def test_a_venue_whose_snapshot_fails_is_not_reconciled_and_halts_nothing() -> None:
    remote = UnreadableVenue()
    oms = OMS({"REMOTE": remote}, PreTradeControls(Refs(), limits()), Clock())
    result = reconcile(oms, "REMOTE", policy=Policy.HALT)
    assert not result.supported and not result.clean
    assert result.detail == "venue REMOTE: venue unreachable"
    assert result.halted == () and oms.controls.mode("acct") is not TradingMode.HALTED


def test_unknown_venue_or_policy_is_a_value_error() -> None:
    oms, _, _ = make()
    for kw, field in (({"venue": "NOPE"}, "venue"), ({"venue": "PAPER", "policy": "X"}, "policy")):
        try:
            reconcile(oms, **kw)  # type: ignore[arg-type]
        except ValueError as exc:
            assert str(exc).startswith(field)
        else:
            raise AssertionError("no ValueError")


def restarted(oms: OMS, log: list[OmsEvent]) -> tuple[OMS, PaperVenue, list[OmsEvent]]:
    """The service after a restart: the OMS rebuilt from the journal, a new (empty) paper
    venue."""
    venue = PaperVenue(PaperConfig(price_scale=SCALE))
    new_log = list(log)
    fresh = OMS({"PAPER": venue}, PreTradeControls(Refs(), limits()), Clock(), new_log.append)
    fresh.replay(log)
    return fresh, venue, new_log


def test_paper_restart_adopt_venue_cancels_the_lost_orders_journaled() -> None:
    oms, v, log = make()
    filled, resting = trading(oms, v)
    oms2, _, log2 = restarted(oms, log)
    assert oms2.order(filled).status is OrderStatus.FILLED
    result = reconcile(oms2, "PAPER", policy=Policy.ADOPT_VENUE)
    # the filled order is out of the new venue's record; the working one is lost
    assert [(b.kind, b.order_id) for b in result.breaks] == [(B.ORDER_MISSING_ON_VENUE, resting)]
    assert result.unresolved == ()
    order = oms2.order(resting)
    assert order.status is OrderStatus.CANCELED and order.reason == RECONCILIATION
    assert isinstance(log2[-1], OrderCanceled) and log2[-1].reason == RECONCILIATION
    assert reconcile(oms2, "PAPER").clean
    assert state(rebuilt(log2)) == state(oms2)
    assert oms2.positions.net("acct") == {SYM: 30}


def test_adopt_venue_takes_missing_fills_and_unknown_orders_and_a_second_run_is_clean() -> None:
    oms, v, log = make()
    trading(oms, v)
    # the venue works (and partly fills) an order the OMS never journaled: another OMS instance
    # sent it with an id of the OMS's own form
    other, _, _ = make(v)  # the venue now reports to the other OMS only
    other._seq = 5  # its next order id is O6
    v.on_level(SYM, -1, 1_000_100, 100, 2)  # liquidity back at 100.01
    stray = submit(other, "z", "BUY", 150, 100.01)
    assert stray == "O6" and other.order(stray).filled_quantity == 100
    first = reconcile(oms, "PAPER", policy=Policy.ADOPT_VENUE)
    # the venue's position is the journal's and the missing fill: adopting it resolves all
    assert kinds(first.breaks) == [B.MISSING_FILL, B.UNKNOWN_VENUE_ORDER]
    assert first.unresolved == ()
    adopted = oms.order(stray)
    assert adopted.client_order_id == f"{RECONCILIATION}:{stray}"
    assert (adopted.status, adopted.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 100)
    assert oms.positions.net("acct") == {SYM: 130}
    assert reconcile(oms, "PAPER").clean
    again = reconcile(oms, "PAPER", policy=Policy.ADOPT_VENUE)  # dedup: nothing taken twice
    assert again.clean and oms.positions.net("acct") == {SYM: 130}
    assert state(rebuilt(log)) == state(oms)
    # the adopted id is taken: the OMS's own next orders do not reuse it
    ids = {submit(oms, f"n{i}", "BUY", 1, 90.0) for i in range(5)}
    assert stray not in ids and len(ids) == 5


def test_halt_blocks_new_orders_with_the_typed_denial_until_the_state_is_set() -> None:
    oms, v, log = make()
    _, resting = trading(oms, v)
    oms2, _, log2 = restarted(oms, log)
    result = reconcile(oms2, "PAPER", policy=Policy.HALT)
    assert result.halted == ("acct",)
    assert [(b.kind, b.order_id) for b in result.breaks] == [(B.ORDER_MISSING_ON_VENUE, resting)]
    halt = next(e for e in log2[len(log) :] if isinstance(e, TradingStateSet))
    assert halt.mode is TradingMode.HALTED and halt.reason.startswith(RECONCILIATION)
    denied = oms2.order(submit(oms2, "c9", "BUY", 1, 99.0))
    assert denied.status is OrderStatus.DENIED and denied.reason == DenyReason.TRADING_HALTED
    assert rebuilt(log2).controls.mode("acct") is TradingMode.HALTED  # survives a restart
    oms2.set_trading_state("acct", TradingMode.ACTIVE, "operator checked", "ops")
    ok = oms2.order(submit(oms2, "c10", "BUY", 1, 99.0))
    assert ok.status is OrderStatus.ACCEPTED


def test_a_multi_leg_order_fills_every_leg_through_the_oms_and_reconciles_clean() -> None:
    c1, c2 = "SPY250620C00500000", "SPY250620C00510000"
    oms, v, log = make()
    v.on_level(c1, -1, 50_000, 100, 1)  # C1 offered 100 @ 5.00
    v.on_level(c2, 1, 30_000, 100, 1)  # C2 bid 100 @ 3.00
    order = oms.submit(
        account="acct",
        client_order_id="spread",
        symbol="",
        side="BUY",
        quantity=10,
        type="LIMIT",
        limit_price=2.0,
        legs=(Leg(c1, Side.BUY), Leg(c2, Side.SELL)),
    )
    assert order.status is OrderStatus.FILLED and order.filled_quantity == 10
    assert order.average_fill_price == 2.0
    assert oms.positions.net_quantity("acct", c1) == 10
    assert oms.positions.net_quantity("acct", c2) == -10
    result = reconcile(oms, "PAPER")
    assert result.clean, result.breaks
    assert state(rebuilt(log)) == state(oms)
