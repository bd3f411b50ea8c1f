"""The books of ``tradecore chaos``: what the load generator recorded as answered (the
independent record) against what the mesh holds afterwards. Pure functions over plain records,
so the accounting is tested on its own (tests/unit/test_chaos_accounting.py); each returns the
problems it found as sentences, empty when nothing acknowledged was lost or doubled."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OrderRecord:
    """An order as the client was answered (the record) or as ListOrders lists it."""

    client_order_id: str
    order_id: str
    side: str  # BUY | SELL
    status: str  # the OrderStatus name
    filled: int
    price: float  # average fill price
    account: str = ""


@dataclass(frozen=True)
class FillRecord:
    fill_id: str
    order_id: str
    quantity: int


@dataclass(frozen=True)
class PositionRecord:
    symbol: str
    quantity: int
    average_cost: float
    realized_pnl: float


@dataclass
class FeedRecord:
    """A synthetic feed the tool started: its last status seen (``state`` INTERRUPTED when the
    service lost it in a restart) and, after the run, the sequences stored for its symbol."""

    id: str
    symbol: str
    venue: str
    total: int
    published: int = 0  # ticks the stream acknowledged, as last seen
    reported_stored: int = 0
    state: str = "RUNNING"
    sequences: list[int] = field(default_factory=list)


def check_orders(answered: list[OrderRecord], listed: list[OrderRecord]) -> list[str]:
    """Every answered order listed once with the state it was answered with; nothing listed
    that was never answered."""
    problems: list[str] = []
    counts = Counter(o.client_order_id for o in listed)
    for coid, n in sorted(counts.items()):
        if n > 1:
            problems.append(f"order {coid}: listed {n} times (doubled)")
    have = {o.client_order_id: o for o in listed}
    record = {o.client_order_id: o for o in answered}
    for coid, a in record.items():
        got = have.get(coid)
        if got is None:
            problems.append(f"order {coid} ({a.order_id}): answered {a.status}, not listed (lost)")
            continue
        mine = (a.order_id, a.status, a.filled, a.price)
        theirs = (got.order_id, got.status, got.filled, got.price)
        if mine != theirs:
            problems.append(f"order {coid}: answered {mine}, listed {theirs}")
    for coid in sorted(set(have) - set(record)):
        problems.append(f"order {coid}: listed but never answered (unknown order)")
    return problems


def check_fills(answered: list[OrderRecord], fills: list[FillRecord]) -> list[str]:
    """EXEC_FILLS holds each fill once, and each order's fills add up to what it was answered
    as filled."""
    problems: list[str] = []
    for fid, n in sorted(Counter(f.fill_id for f in fills).items()):
        if n > 1:
            problems.append(f"fill {fid}: in EXEC_FILLS {n} times (doubled)")
    unique = {f.fill_id: f for f in fills}
    by_order: Counter[str] = Counter()
    for f in unique.values():
        by_order[f.order_id] += f.quantity
    expected = {a.order_id: a.filled for a in answered if a.filled}
    for oid in sorted(set(by_order) | set(expected)):
        want, got = expected.get(oid, 0), by_order.get(oid, 0)
        if want != got:
            what = "lost" if got < want else "doubled or unknown"
            problems.append(f"fills of order {oid}: {got} in EXEC_FILLS, answered {want} ({what})")
    return problems


def net_position(fills: list[tuple[str, int, float]]) -> tuple[int, float, float]:
    """(quantity, average cost, realised P&L) of netting ``(side, quantity, price)`` fills in
    order: adding to a position averages its cost, reducing realises against it, crossing zero
    opens a new one at the fill price."""
    qty, avg, realized = 0, 0.0, 0.0
    for side, q, p in fills:
        signed = q if side == "BUY" else -q
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (avg * abs(qty) + p * q) / (abs(qty) + q)
            qty += signed
            continue
        realized += min(q, abs(qty)) * (p - avg) * (1 if qty > 0 else -1)
        qty += signed
        if qty == 0:
            avg = 0.0
        elif (qty > 0) == (signed > 0):
            avg = p
    return qty, avg, realized


def check_position(
    answered: list[OrderRecord], symbol: str, positions: list[PositionRecord]
) -> list[str]:
    """The account's position in ``symbol`` equals netting the answered fills in answer order
    (the orders go one at a time, so that order is the venue's)."""
    qty, avg, realized = net_position([(a.side, a.filled, a.price) for a in answered if a.filled])
    mine = [p for p in positions if p.symbol == symbol]
    if not mine:
        return [] if qty == 0 else [f"position {symbol}: none, record says {qty}"]
    if len(mine) > 1:
        return [f"position {symbol}: listed {len(mine)} times"]
    p = mine[0]
    problems = []
    if p.quantity != qty:
        problems.append(f"position {symbol}: quantity {p.quantity}, record says {qty}")
    elif qty and not math.isclose(p.average_cost, avg, rel_tol=1e-9):
        problems.append(f"position {symbol}: average cost {p.average_cost}, record says {avg}")
    if not math.isclose(p.realized_pnl, realized, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"position {symbol}: realized P&L {p.realized_pnl}, record says {realized}")
    return problems


def check_ticks(feeds: list[FeedRecord]) -> list[str]:
    """Each feed's stored sequences are unique; a finished feed stored every tick it had; an
    interrupted one at least every tick the stream had acknowledged when it was last seen."""
    problems: list[str] = []
    for f in feeds:
        seqs = f.sequences
        unique = set(seqs)
        if len(unique) != len(seqs):
            doubled = len(seqs) - len(unique)
            problems.append(f"feed {f.id} ({f.symbol}): {doubled} ticks stored twice")
        if f.state == "DONE" and (f.published != f.total or len(unique) != f.total):
            problems.append(
                f"feed {f.id} ({f.symbol}): DONE with {f.total} ticks, published "
                f"{f.published}, stored {len(unique)} (lost)"
            )
        elif len(unique) < f.published:
            problems.append(
                f"feed {f.id} ({f.symbol}): {f.published} ticks acknowledged, "
                f"{len(unique)} stored (lost)"
            )
        if unique and (min(unique) < 1 or max(unique) > f.total):
            problems.append(f"feed {f.id} ({f.symbol}): sequences outside 1..{f.total}")
    return problems
