"""Positions from fills, against an independent computation."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from tradecore.oms.positions import PositionBook, PositionMode
from tradecore.oms.types import Side

OPT = "AAPL  250117C00150000"


def test_increase_reduce_flip_and_marks() -> None:
    book = PositionBook()
    book.apply_fill("a", "AAPL", Side.BUY, 10, 100.0)
    pos = book.apply_fill("a", "AAPL", Side.BUY, 10, 110.0)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (20, 105.0, 0.0)
    book.apply_fill("a", "AAPL", Side.SELL, 5, 120.0)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (15, 105.0, 75.0)
    book.apply_fill("a", "AAPL", Side.SELL, 25, 90.0)  # flips: closes 15, opens 10 short
    assert (pos.quantity, pos.average_cost) == (-10, 90.0)
    assert pos.realized_pnl == pytest.approx(75.0 + (90.0 - 105.0) * 15)
    assert pos.unrealized_pnl == 0.0  # not marked yet
    book.mark("AAPL", 85.0, 5)
    assert pos.unrealized_pnl == pytest.approx((85.0 - 90.0) * -10)
    book.apply_fill("a", "AAPL", Side.BUY, 10, 80.0)
    assert (pos.quantity, pos.average_cost, pos.unrealized_pnl) == (0, 0.0, 0.0)
    assert pos.realized_pnl == pytest.approx(75.0 - 225.0 + 100.0)


def test_options_use_the_multiplier_and_fees_are_apart() -> None:
    book = PositionBook()
    book.apply_fill("a", OPT, Side.SELL, 2, 3.0, fee=1.3)
    pos = book.apply_fill("a", OPT, Side.BUY, 1, 2.5, fee=0.65)
    assert pos.multiplier == 100 and pos.quantity == -1
    assert pos.realized_pnl == pytest.approx(50.0)
    assert pos.fees == pytest.approx(1.95)
    book.mark(OPT, 2.0, 1)
    assert pos.unrealized_pnl == pytest.approx(100.0)


def test_netting_nets_and_hedging_keeps_positions_apart() -> None:
    net = PositionBook(PositionMode.NETTING)
    net.apply_fill("a", "AAPL", Side.BUY, 10, 100.0)
    net.apply_fill("a", "AAPL", Side.SELL, 10, 101.0)
    assert len(net.positions("a")) == 1 and net.net_quantity("a", "AAPL") == 0
    hedge = PositionBook(PositionMode.HEDGING)
    hedge.apply_fill("a", "AAPL", Side.BUY, 10, 100.0, position_id="p1")
    hedge.apply_fill("a", "AAPL", Side.SELL, 4, 101.0, position_id="p2")
    p1, p2 = hedge.get("a", "p1"), hedge.get("a", "p2")
    assert p1 is not None and p2 is not None
    assert (p1.quantity, p2.quantity, p1.realized_pnl) == (10, -4, 0.0)
    assert hedge.net_quantity("a", "AAPL") == 6
    hedge.apply_fill("a", "AAPL", Side.SELL, 10, 103.0, position_id="p1")
    assert (p1.quantity, p1.realized_pnl) == (0, 30.0)
    with pytest.raises(ValueError, match="position_id"):
        hedge.apply_fill("a", "AAPL", Side.BUY, 1, 1.0)
    with pytest.raises(ValueError, match="position_id"):
        hedge.apply_fill("a", "MSFT", Side.BUY, 1, 1.0, position_id="p1")


def _independent(
    fills: list[tuple[str, int, int]], multiplier: int
) -> tuple[int, Fraction, Fraction]:
    """Quantity, average cost and realised P&L in exact fractions, one unit at a time (so a
    flip needs no case of its own): a unit on the position's side adds to the lot at its price,
    a unit against it closes one unit at the lot's average cost."""
    qty = 0
    cost = Fraction(0)  # total cost of the open lot, signed like the quantity
    realized = Fraction(0)
    for side, n, cents in fills:
        price = Fraction(cents, 100)
        unit = 1 if side == "B" else -1
        for _ in range(n):
            if qty == 0 or (qty > 0) == (unit > 0):
                cost += unit * price
                qty += unit
            else:
                held = 1 if qty > 0 else -1
                avg = cost / qty
                realized += (price - avg) * held * multiplier
                cost -= avg * held
                qty -= held
    return qty, (cost / qty if qty else Fraction(0)), realized


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("symbol", ["AAPL", OPT])
def test_random_fills_match_an_independent_computation(seed: int, symbol: str) -> None:
    rng = random.Random(seed)
    mult = 100 if symbol == OPT else 1
    fills = [(rng.choice("BS"), rng.randint(1, 30), rng.randint(5_000, 15_000)) for _ in range(60)]
    book = PositionBook()
    for side, n, cents in fills:
        book.apply_fill("a", symbol, Side.BUY if side == "B" else Side.SELL, n, cents / 100)
    qty, avg, realized = _independent(fills, mult)
    pos = book.get("a", symbol)
    assert pos is not None
    assert pos.quantity == qty
    assert pos.average_cost == pytest.approx(float(avg), abs=1e-9)
    assert pos.realized_pnl == pytest.approx(float(realized), abs=1e-6)
    book.mark(symbol, 101.0, 1)
    assert pos.unrealized_pnl == pytest.approx(float((101 - avg) * qty * mult), abs=1e-6)
