"""Execution algorithms and TCA: TWAP, VWAP, POV, implementation shortfall and iceberg parents
working children through the OMS, its pre-trade controls and the paper venue, driven by the
real LOBSTER GOOG day; TCA against a hand computation from the same files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from tradecore import lobster
from tradecore.oms.algos import (
    Algo,
    AlgoEngine,
    AlgoKind,
    AlgoNotFound,
    AlgoSpec,
    AlgoState,
    almgren_chriss_kappa,
    almgren_chriss_trajectory,
    cumulative_slices,
    replay_lobster,
    volume_curve,
)
from tradecore.oms.oms import OMS, OmsEvent, OrderDenied, OrderFilled, OrderSubmitted
from tradecore.oms.paper import PaperConfig, PaperVenue
from tradecore.oms.pretrade import Limits, MarketReference, PreTradeControls
from tradecore.oms.types import OrderStatus, OrderType, Side

from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

S = 1_000_000_000
OPEN = 34_200 * S  # 9:30 in the LOBSTER day's clock (ns after midnight)
SYM = "GOOG"


@pytest.fixture(scope="module")
def goog() -> tuple[lobster.Messages, np.ndarray]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return (
        lobster.parse_messages(d / GOOG.format("message")),
        lobster.parse_book(Path(d / GOOG.format("orderbook")), 1),
    )


class Rig:
    """A paper venue, quote-mid references, pre-trade controls, an OMS whose sink records
    every event, and an algo engine over them."""

    def __init__(
        self,
        limits: Limits | None = None,
        engine_cls: type[AlgoEngine] = AlgoEngine,
        config: PaperConfig | None = None,
    ):
        self.venue = PaperVenue(config or PaperConfig())
        self.refs = MarketReference(lambda: self.venue.now)
        self.controls = PreTradeControls(self.refs, limits or Limits())
        self.events: list[OmsEvent] = []
        self.oms = OMS(
            {"PAPER": self.venue},
            self.controls,
            clock_ns=lambda: self.venue.now,
            sink=self.events.append,
        )
        self.engine = engine_cls(self.oms)

    def replay(self, m: lobster.Messages, rows: np.ndarray, start: int, stop: int) -> None:
        replay_lobster(self.engine, self.venue, SYM, m, rows, start, stop, on_quote=self.refs.quote)


def upto(m: lobster.Messages, t_ns: int) -> int:
    """Index of the first message at or after t_ns."""
    return int(np.searchsorted(m.time_ns, t_ns, side="left"))


def spec(kind: AlgoKind, qty: int, start: int | None, end: int | None, **kw: object) -> AlgoSpec:
    return AlgoSpec(kind, "acc", SYM, Side.BUY, qty, start, end, **kw)  # type: ignore[arg-type]


def child_sizes(rig: Rig, algo: Algo) -> list[int]:
    return [o.quantity for o in rig.engine.children(algo.algo_id)]


def child_times(rig: Rig, algo: Algo) -> list[int]:
    return [o.created_ns for o in rig.engine.children(algo.algo_id)]


# ------------------------------------------------------------------ TWAP


def test_twap_slices_sum_to_the_parent_and_are_evenly_spaced(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig()
    start, end = OPEN + 60 * S, OPEN + 660 * S
    algo = rig.engine.start(spec(AlgoKind.TWAP, 1000, start, end, slices=10))
    rig.replay(m, rows, 0, upto(m, end + S))
    assert algo.state is AlgoState.COMPLETED, algo.reason
    assert child_sizes(rig, algo) == [100] * 10
    assert child_times(rig, algo) == [start + k * 60 * S for k in range(10)]
    assert algo.filled_quantity == 1000
    assert all(o.status is OrderStatus.FILLED for o in rig.engine.children(algo.algo_id))


def test_twap_randomisation_is_seeded_and_stays_in_each_interval() -> None:
    rig = Rig()
    start, end = OPEN, OPEN + 700 * S
    a = rig.engine.start(spec(AlgoKind.TWAP, 1003, start, end, slices=7, randomize=0.8, seed=5))
    b = rig.engine.start(spec(AlgoKind.TWAP, 1003, start, end, slices=7, randomize=0.8, seed=5))
    c = rig.engine.start(spec(AlgoKind.TWAP, 1003, start, end, slices=7, randomize=0.8, seed=6))
    assert a.schedule == b.schedule and a.schedule != c.schedule
    for k, (t, _) in enumerate(a.schedule):
        assert start + k * 100 * S <= t < start + k * 100 * S + 80 * S
    sizes = np.diff([0] + [q for _, q in a.schedule])
    assert sizes.sum() == 1003 and set(sizes) <= {143, 144}


# ------------------------------------------------------------------ VWAP


def test_vwap_schedule_follows_the_days_volume_curve(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    start, end = OPEN + 60 * S, OPEN + 1260 * S
    trades = np.isin(m.type, (4, 5))
    curve = volume_curve(m.time_ns[trades], m.size[trades], start, end, 8)
    assert math.isclose(sum(curve), 1.0) and len(set(curve)) > 1  # not flat
    rig = Rig()
    qty = 2000
    algo = rig.engine.start(spec(AlgoKind.VWAP, qty, start, end, curve=tuple(curve)))
    rig.replay(m, rows, 0, upto(m, end + S))
    assert algo.state is AlgoState.COMPLETED, algo.reason
    assert child_times(rig, algo) == [start + k * 150 * S for k in range(8)]
    done = np.cumsum(child_sizes(rig, algo))
    # the executed share by the end of each bucket is the curve's cumulative share (to a unit)
    assert np.all(np.abs(done - qty * np.cumsum(curve)) <= 0.5 + 1e-9)
    assert done[-1] == qty


# ------------------------------------------------------------------ POV


class CheckedEngine(AlgoEngine):
    """Records (market volume, filled + working) of every POV algo after each market trade."""

    seen: list[tuple[int, int]]

    def on_trade(self, symbol: str, price: float, size: int, time_ns: int) -> None:
        super().on_trade(symbol, price, size, time_ns)
        if not hasattr(self, "seen"):
            self.seen = []
        for a in self.algos():
            if a.spec.kind is AlgoKind.POV and a.state is AlgoState.WORKING:
                self.seen.append((a.market_volume, a.filled_quantity + a.working_quantity))


def test_pov_stays_within_its_bands_of_the_replayed_volume(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    # children of a POV are often equal in size within a second: not duplicates of each other
    rig = Rig(Limits(duplicate_window_ns=None), CheckedEngine)
    start, end = OPEN + 60 * S, OPEN + 960 * S
    algo = rig.engine.start(
        spec(AlgoKind.POV, 100_000, start, end, rate=0.1, min_rate=0.05, max_rate=0.15)
    )
    rig.replay(m, rows, 0, upto(m, end + S))
    assert algo.state is AlgoState.STOPPED and "end_ns" in algo.reason
    seen = rig.engine.seen  # type: ignore[attr-defined]
    assert len(seen) > 100
    for volume, have in seen:
        assert math.floor(0.05 * volume) <= have <= 0.15 * volume
    # the market volume the algo saw is the day's executions in its window
    window = (m.time_ns >= start) & (m.time_ns < end) & np.isin(m.type, (4, 5))
    assert algo.market_volume == int(m.size[window].sum())
    tca = algo.tca()
    assert tca.participation is not None and 0.05 <= tca.participation <= 0.15
    # banded: fewer children than trades
    assert 1 < len(algo.children) < len(seen) / 2


# ------------------------------------------------------------------ implementation shortfall


def test_is_trajectory_is_the_almgren_chriss_closed_form() -> None:
    X, T, N = 10_000.0, 600.0, 12
    for lam in (1e-7, 1e-5, 1e-3):
        kappa = almgren_chriss_kappa(lam, 0.05, 0.01)
        assert kappa == pytest.approx(math.sqrt(lam * 0.05**2 / 0.01))
        x = almgren_chriss_trajectory(X, T, N, kappa)
        for k in range(N + 1):
            t = k * T / N
            want = X * math.sinh(kappa * (T - t)) / math.sinh(kappa * T)
            assert x[k] == pytest.approx(want, rel=1e-12, abs=1e-9)
    # no overflow for a very large kappa T: everything at once
    x = almgren_chriss_trajectory(X, T, N, 10.0)
    assert x[0] == X and x[1] < 1e-9 and x[-1] == 0.0


def is_first_slices(lam: float) -> list[int]:
    rig = Rig()
    a = rig.engine.start(
        spec(
            AlgoKind.IS,
            6000,
            OPEN,
            OPEN + 600 * S,
            slices=6,
            risk_aversion=lam,
            volatility=0.05,
            impact=0.01,
        )
    )
    return [int(q) for q in np.diff([0] + [q for _, q in a.schedule])]


def test_is_tends_to_twap_as_risk_aversion_vanishes_and_front_loads_as_it_grows() -> None:
    assert is_first_slices(0.0) == [1000] * 6
    assert is_first_slices(1e-12) == [1000] * 6
    firsts = [is_first_slices(lam)[0] for lam in (1e-7, 1e-5, 1e-4, 1e-3)]
    assert firsts == sorted(firsts) and firsts[0] < firsts[-1]
    assert firsts[0] > 1000
    # each slice front-loaded: non-increasing sizes
    sizes = is_first_slices(1e-4)
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 6000


def test_is_children_follow_the_trajectory_on_the_replay(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig()
    start, end = OPEN + 60 * S, OPEN + 660 * S
    params = {"slices": 5, "risk_aversion": 1e-4, "volatility": 0.05, "impact": 0.01}
    algo = rig.engine.start(spec(AlgoKind.IS, 1500, start, end, **params))
    rig.replay(m, rows, 0, upto(m, end + S))
    assert algo.state is AlgoState.COMPLETED, algo.reason
    kappa = almgren_chriss_kappa(1e-4, 0.05, 0.01)
    x = almgren_chriss_trajectory(1500.0, 600.0, 5, kappa)
    assert child_sizes(rig, algo) == cumulative_slices(1500, [(1500 - v) / 1500 for v in x[1:]])
    assert child_times(rig, algo) == [start + k * 120 * S for k in range(5)]


# ------------------------------------------------------------------ iceberg


class IcebergEngine(AlgoEngine):
    """Records the largest quantity any ICEBERG has working at the venue at one time."""

    most_working = 0
    most_open_children = 0

    def on_quote(self, symbol: str, bid: float, ask: float, time_ns: int) -> None:
        super().on_quote(symbol, bid, ask, time_ns)
        for a in self.algos():
            if a.spec.kind is AlgoKind.ICEBERG:
                open_children = [o for o in self.children(a.algo_id) if o.is_open]
                self.most_open_children = max(self.most_open_children, len(open_children))
                self.most_working = max(self.most_working, sum(o.leaves for o in open_children))


def test_iceberg_shows_only_its_display_size_and_refills_on_fill(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig(engine_cls=IcebergEngine)
    start = OPEN + 60 * S
    i0 = upto(m, start)
    rig.replay(m, rows, 0, i0)
    bid = int(rows[i0 - 1][2]) / 10_000  # rest at the best bid: filled as the queue trades
    algo = rig.engine.start(
        spec(AlgoKind.ICEBERG, 1000, None, None, display_quantity=100, limit_price=bid)
    )
    rig.replay(m, rows, i0, upto(m, OPEN + 3600 * S))
    eng = rig.engine
    assert isinstance(eng, IcebergEngine)
    assert algo.state is AlgoState.COMPLETED and algo.denials == [], algo.reason
    assert eng.most_open_children == 1 and eng.most_working == 100
    children = eng.children(algo.algo_id)
    assert [o.quantity for o in children] == [100] * 10
    assert all(o.type is OrderType.LIMIT and o.limit_price == bid for o in children)
    assert all(o.status is OrderStatus.FILLED for o in children)
    # each refill is an order equal to the last: sent once the duplicate window has passed
    gaps = np.diff([o.created_ns for o in children])
    assert gaps.min() >= S


def test_equal_children_wait_out_the_duplicate_window_instead_of_being_denied(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig()
    start = OPEN + 60 * S
    # 10 slices of 100 every 0.5 s: equal neighbours closer than the 1 s duplicate window
    algo = rig.engine.start(spec(AlgoKind.TWAP, 1000, start, start + 5 * S, slices=10))
    rig.replay(m, rows, 0, upto(m, start + 10 * S))
    assert algo.state is AlgoState.COMPLETED and algo.denials == [], algo.reason
    children = rig.engine.children(algo.algo_id)
    assert sum(o.quantity for o in children) == 1000
    for a, b in itertools.pairwise(children):
        if (a.quantity, a.limit_price) == (b.quantity, b.limit_price):
            assert b.created_ns - a.created_ns >= S
    # an equal order sent by hand inside the window is still a duplicate
    rig2 = Rig()
    rig2.replay(m, rows, 0, upto(m, start))
    rig2.oms.submit(
        account="acc",
        client_order_id="manual",
        symbol=SYM,
        side=Side.BUY,
        quantity=100,
        type=OrderType.MARKET,
    )
    a2 = rig2.engine.start(spec(AlgoKind.TWAP, 200, None, start + 60 * S, slices=2))
    assert a2.state is AlgoState.STOPPED and a2.denials[0].reason == "DUPLICATE_ORDER"


# ------------------------------------------------------------------ stop, controls


def test_stop_cancels_the_working_children(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig()
    start, end = OPEN + 60 * S, OPEN + 660 * S
    i0 = upto(m, start)
    rig.replay(m, rows, 0, i0)
    low = int(rows[i0 - 1][2]) / 10_000 - 1.0  # a buy cap a dollar under the bid: rests
    algo = rig.engine.start(spec(AlgoKind.TWAP, 1000, start, end, slices=10, limit_price=low))
    i1 = upto(m, start + 150 * S)
    rig.replay(m, rows, i0, i1)
    children = rig.engine.children(algo.algo_id)
    assert len(children) == 3 and all(o.is_open for o in children)
    assert [o.quantity for o in children] == [100] * 3  # the schedule less what is working
    assert algo.working_quantity == 300 and algo.remaining == 700
    rig.engine.stop(algo.algo_id, "operator")
    assert algo.state is AlgoState.STOPPED and algo.reason == "operator"
    assert all(o.status is OrderStatus.CANCELED for o in children)
    rig.replay(m, rows, i1, upto(m, end + S))
    assert len(algo.children) == 3  # nothing after the stop
    with pytest.raises(AlgoNotFound, match="A99"):
        rig.engine.stop("A99")


def test_a_fill_that_races_the_stop_still_counts_on_the_parent(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    ms = 1_000_000
    rig = Rig(config=PaperConfig(entry_latency_ns=ms, response_latency_ns=ms))
    start = OPEN + 60 * S
    i0 = upto(m, start)
    rig.replay(m, rows, 0, i0)
    algo = rig.engine.start(spec(AlgoKind.TWAP, 300, start, start + 60 * S, slices=3))
    rig.venue.advance(start)
    rig.engine.on_time(start)
    assert len(algo.children) == 1 and algo.working_quantity == 100  # on its way to the venue
    rig.engine.stop(algo.algo_id)
    assert algo.state is AlgoState.STOPPED and algo.filled_quantity == 0
    # the market child reaches the venue (and fills) before the cancel does
    rig.replay(m, rows, upto(m, start), upto(m, start + 5 * S))
    child = rig.engine.children(algo.algo_id)[0]
    assert child.status is OrderStatus.FILLED
    assert rig.engine.get(algo.algo_id).filled_quantity == 100
    assert algo.working_quantity == 0 and algo.average_price == child.average_fill_price


def test_every_child_passes_the_pre_trade_controls_and_a_denial_stops_the_parent(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig(Limits(max_order_quantity=250))
    start, end = OPEN + 60 * S, OPEN + 660 * S
    ok = rig.engine.start(spec(AlgoKind.TWAP, 1000, start, end, slices=5))  # 200 a slice
    big = rig.engine.start(spec(AlgoKind.TWAP, 900, start, end, slices=3))  # 300 a slice
    rig.replay(m, rows, 0, upto(m, end + S))
    assert ok.state is AlgoState.COMPLETED
    assert big.state is AlgoState.STOPPED
    assert big.reason.startswith(f"child {big.children[0]} denied: MAX_ORDER_QUANTITY")
    assert [(d.order_id, d.status, d.reason) for d in big.denials] == [
        (big.children[0], OrderStatus.DENIED, "MAX_ORDER_QUANTITY")
    ]
    assert len(big.children) == 1 and big.filled_quantity == 0
    checked = {e.order_id for e in rig.events if isinstance(e, OrderSubmitted | OrderDenied)}
    assert set(ok.children) | set(big.children) <= checked


# ------------------------------------------------------------------ TCA


def test_tca_equals_a_hand_computation_on_a_small_replay(goog) -> None:  # type: ignore[no-untyped-def]
    m, rows = goog
    rig = Rig()
    start, end = OPEN + 30 * S, OPEN + 150 * S
    algo = rig.engine.start(spec(AlgoKind.TWAP, 400, start, end, slices=4))
    rig.replay(m, rows, 0, upto(m, end + S))
    assert algo.state is AlgoState.COMPLETED and algo.ended_ns == start + 90 * S
    # arrival: the mid of the book after the last message before the start
    j = upto(m, start) - 1
    ask, _, bid, _ = (int(v) for v in rows[j][:4])
    arrival = (ask + bid) / 2 / 10_000
    # our fills, from the OMS's journaled events
    fills = [e for e in rig.events if isinstance(e, OrderFilled)]
    qty = sum(f.quantity for f in fills)
    avg = sum(f.quantity * f.price for f in fills) / qty
    # the market over the algo's life: executions from the start until it completed (the wake-up
    # at a message's time runs before that message)
    w = (m.time_ns >= start) & (m.time_ns < algo.ended_ns) & np.isin(m.type, (4, 5))
    vol = int(m.size[w].sum())
    vwap = float((m.size[w] * m.price[w]).sum()) / vol / 10_000
    tca = algo.tca()
    assert qty == 400 and tca.market_volume == vol
    assert tca.arrival_price == pytest.approx(arrival, rel=1e-12)
    assert tca.average_price == pytest.approx(avg, rel=1e-12)
    assert tca.slippage_arrival_bps == pytest.approx((avg - arrival) / arrival * 1e4, abs=1e-9)
    assert tca.interval_vwap == pytest.approx(vwap, rel=1e-12)
    assert tca.slippage_vwap_bps == pytest.approx((avg - vwap) / vwap * 1e4, abs=1e-9)
    assert tca.participation == pytest.approx(400 / vol, rel=1e-12)
    # a sell is signed the other way: paying less than the mid is a cost
    sell = Algo("x", AlgoSpec(AlgoKind.TWAP, "a", SYM, Side.SELL, 10, 0, 1), 0, 1)
    sell.filled_quantity, sell.filled_value, sell.arrival_price = 10, 990.0, 100.0
    assert sell.tca().slippage_arrival_bps == pytest.approx(100.0)


def test_tca_of_an_algo_with_nothing_to_measure_is_none_not_nan() -> None:
    rig = Rig()
    a = rig.engine.start(spec(AlgoKind.TWAP, 10, OPEN, OPEN + S))
    tca = a.tca()
    assert tca.arrival_price is None and tca.average_price is None
    assert tca.slippage_arrival_bps is None and tca.interval_vwap is None
    assert tca.participation is None and tca.market_volume == 0


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"kind": "FOO"}, "kind"),
        ({"side": "HOLD"}, "side"),
        ({"account": ""}, "account"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"end_ns": OPEN - 1}, "end_ns"),
        ({"end_ns": None}, "end_ns"),
        ({"limit_price": -1.0}, "limit_price"),
        ({"limit_price": math.nan}, "limit_price"),
        ({"slices": 0}, "slices"),
        ({"randomize": 1.0}, "randomize"),
        ({"kind": AlgoKind.VWAP}, "curve"),
        ({"kind": AlgoKind.VWAP, "curve": (1.0, -1.0)}, r"curve\[1\]"),
        ({"kind": AlgoKind.VWAP, "curve": (0.0, 0.0)}, "curve"),
        ({"kind": AlgoKind.POV, "rate": 0.0}, "rate"),
        ({"kind": AlgoKind.POV, "rate": 0.1, "min_rate": 0.2}, "min_rate"),
        ({"kind": AlgoKind.POV, "rate": 0.1, "max_rate": 0.05}, "max_rate"),
        ({"kind": AlgoKind.POV, "rate": 1.5}, "rate"),
        ({"kind": AlgoKind.IS, "impact": 0.0}, "impact"),
        ({"kind": AlgoKind.IS, "impact": 1.0, "risk_aversion": -1.0}, "risk_aversion"),
        ({"kind": AlgoKind.IS, "impact": 1.0, "volatility": math.inf}, "volatility"),
        ({"kind": AlgoKind.ICEBERG, "limit_price": 10.0}, "display_quantity"),
        ({"kind": AlgoKind.ICEBERG, "display_quantity": 10}, "limit_price"),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(kw: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "kind": AlgoKind.TWAP,
        "account": "acc",
        "symbol": SYM,
        "side": Side.BUY,
        "quantity": 100,
        "start_ns": OPEN,
        "end_ns": OPEN + 60 * S,
    }
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        AlgoSpec(**args)  # type: ignore[arg-type]


def test_engine_refuses_a_start_in_the_past_and_an_unknown_venue() -> None:
    rig = Rig()
    rig.venue.advance(OPEN)
    with pytest.raises(ValueError, match="start_ns"):
        rig.engine.start(spec(AlgoKind.TWAP, 10, OPEN - 1, OPEN + S))
    with pytest.raises(ValueError, match="venue"):
        rig.engine.start(spec(AlgoKind.TWAP, 10, OPEN, OPEN + S, venue="NYSE"))
    with pytest.raises(ValueError, match="spec"):
        rig.engine.start("TWAP")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curve"):
        volume_curve([1, 2], [5, 5], 10, 20, 2)
    with pytest.raises(ValueError, match="price"):
        rig.engine.on_trade(SYM, math.nan, 10, OPEN)
    with pytest.raises(ValueError, match="size"):
        rig.engine.on_trade(SYM, 10.0, 0, OPEN)
    with pytest.raises(ValueError, match="buckets"):
        volume_curve([1, 2], [5, 5], 0, 20, 0)


def test_a_restored_snapshot_adopts_later_children_and_sends_none_twice(goog) -> None:  # type: ignore[no-untyped-def]
    """An engine rebuilt from an OMS replayed from the journaled events and an algo snapshot
    taken two children earlier (JSON round trip) has every child back by its client order id,
    and from there on sends exactly the children the original engine sends."""
    import json

    m, rows = goog
    rig = Rig()
    start, end = OPEN + 60 * S, OPEN + 660 * S
    i0 = upto(m, start)
    rig.replay(m, rows, 0, i0)
    low = int(rows[i0 - 1][2]) / 10_000 - 1.0  # children rest: they stay working
    algo = rig.engine.start(
        spec(AlgoKind.TWAP, 1000, start, end, slices=10, limit_price=low), algo_id="X-1"
    )
    rig.replay(m, rows, i0, upto(m, start + 30 * S))
    old = json.loads(json.dumps(rig.engine.snapshot("X-1")))
    assert old["children"] == [algo.children[0]]
    rig.replay(m, rows, upto(m, start + 30 * S), upto(m, start + 150 * S))
    assert len(algo.children) == 3

    oms = OMS({"PAPER": rig.venue}, rig.controls, clock_ns=lambda: rig.venue.now)
    oms.replay(list(rig.events))
    engine = AlgoEngine(oms)
    back = engine.restore(old)
    assert back.children == algo.children  # the two sent after the snapshot adopted
    assert (back.working_quantity, back.remaining) == (300, 700)
    engine.on_time(rig.venue.now)
    assert back.children == algo.children  # nothing due: nothing sent
    assert engine.snapshot("X-1")["children"] == algo.children
    with pytest.raises(ValueError, match="algo_id"):
        engine.start(spec(AlgoKind.TWAP, 10, None, end), algo_id="X-1")
