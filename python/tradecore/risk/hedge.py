"""Hedge proposals: trades that neutralise a book's delta, and optionally its gamma and/or vega.

Per underlying the book holds: gamma and vega (when asked for) are neutralised with the listed
option candidates on that underlying, by the minimum-norm solution (in contracts) of
``A q = -b`` (``A`` the candidates' per-contract Greeks, ``b`` the book's), so more candidates
than targets spread the trade; then, when delta is asked for, the delta left (book plus option
trades) is traded away in the underlying itself. Quantities are not rounded to lots: round
them for execution and expect a residual of that size. ``after`` is the Greeks of book plus
trades, recomputed by pricing them, not assumed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tradecore.errors import quote
from tradecore.risk.book import Book, Instrument, Position, book_arrays
from tradecore.risk.greeks import (
    DollarGreeks,
    check_book,
    market_of,
    portfolio_greeks,
    position_matrix,
    unit_greeks,
)

#: What propose_hedge can neutralise.
HEDGE_TARGETS = ("delta", "gamma", "vega")


@dataclass(frozen=True)
class HedgeProposal:
    #: Trades to add (quantity signed; options in contracts of the default multiplier 100,
    #: underlyings in shares), options first, per underlying in the market's order.
    trades: list[Position]
    before: DollarGreeks
    after: DollarGreeks


def _targets(targets: Sequence[str]) -> tuple[str, ...]:
    if isinstance(targets, str | bytes) or not isinstance(targets, Sequence):
        raise ValueError(f"targets: expected a list of Greek names, got {quote(targets)}")
    if len(targets) == 0:
        raise ValueError("targets: must not be empty")
    out: list[str] = []
    for i, t in enumerate(targets):
        if not isinstance(t, str) or t.lower() not in HEDGE_TARGETS:
            raise ValueError(
                f"targets[{i}]: must be one of {', '.join(HEDGE_TARGETS)}, got {quote(t)}"
            )
        if t.lower() not in out:
            out.append(t.lower())
    return tuple(out)


def _candidate_book(book: Book, candidates: Sequence[Instrument]) -> Book | None:
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise ValueError(f"candidates: expected a list of instruments, got {quote(candidates)}")
    if len(candidates) == 0:
        return None
    for i, c in enumerate(candidates):
        if not isinstance(c, Instrument):
            raise ValueError(f"candidates[{i}]: expected an Instrument, got {type(c).__name__}")
        if c.kind != "option":
            raise ValueError(
                f"candidates[{i}].kind: must be 'option' (the underlyings themselves are always "
                f"the delta hedge), got {quote(c.kind)}"
            )
    try:
        return book_arrays([Position(c, 1.0) for c in candidates], market_of(book))
    except ValueError as e:
        # book_arrays names positions[i].instrument.<field>; here they are candidates[i].<field>.
        raise ValueError(
            re.sub(r"^positions\[(\d+)\]\.instrument", r"candidates[\1]", str(e))
        ) from None


def _concat(a: Book, b: Book) -> Book:
    """``a`` and ``b`` (same market) as one book."""
    return replace(
        a,
        underlying=np.concatenate([a.underlying, b.underlying]),
        kind=np.concatenate([a.kind, b.kind]),
        option_type=np.concatenate([a.option_type, b.option_type]),
        strike=np.concatenate([a.strike, b.strike]),
        expiry=np.concatenate([a.expiry, b.expiry]),
        units=np.concatenate([a.units, b.units]),
        positions=a.positions + b.positions,
    )


def propose_hedge(
    book: Book, candidates: Sequence[Instrument] = (), targets: Sequence[str] = ("delta",)
) -> HedgeProposal:
    """Trades that bring the Greeks ``targets`` ("delta", "gamma", "vega") of ``book`` to zero
    per underlying (see the module docstring). Raises ValueError naming the field for an
    unknown target, an invalid candidate (not an option, unknown underlying, bad strike or
    expiry), and when gamma or vega is asked for on an underlying the book is exposed to but
    no candidate on it can move them (or the candidates cannot move both independently)."""
    check_book(book)
    wanted = _targets(targets)
    option_targets = [t for t in wanted if t != "delta"]
    cand = _candidate_book(book, candidates)
    g_book = unit_greeks(book)
    P = position_matrix(book, g_book)
    before = DollarGreeks(*(float(x) for x in P.sum(axis=0)))
    col = {"delta": 0, "gamma": 1, "vega": 2}
    option_trades: list[Position] = []
    delta_left = np.zeros(book.n_underlyings)
    np.add.at(delta_left, book.underlying, P[:, 0])
    g_cand = unit_greeks(cand) if cand is not None else None
    for j, sym in enumerate(book.symbols):
        held = book.underlying == j
        if not held.any() or not option_targets:
            continue
        b = np.array([P[held, col[t]].sum() for t in option_targets])
        scale = np.abs(P[held][:, [col[t] for t in option_targets]]).sum(axis=0)
        if np.all(np.abs(b) <= 1e-12 * np.maximum(scale, 1e-300)):
            continue  # already neutral in these Greeks
        rows = (
            np.flatnonzero(cand.underlying == j) if cand is not None else np.zeros(0, dtype=np.intp)
        )
        what = " and ".join(option_targets)
        if rows.size == 0:
            raise ValueError(
                f"candidates: no option on {quote(sym)} to neutralise its {what} "
                f"(the book's {what}: {', '.join(f'{x:g}' for x in b)})"
            )
        assert cand is not None and g_cand is not None
        A = np.array([cand.units[rows] * g_cand[t][rows] for t in option_targets])
        qty, *_ = np.linalg.lstsq(A, -b, rcond=None)
        residual = A @ qty + b
        if np.any(np.abs(residual) > 1e-9 * np.maximum(np.abs(b), 1e-300)):
            raise ValueError(
                f"candidates: the options on {quote(sym)} cannot neutralise its {what} "
                f"(they move {what} together; list options of different strikes or expiries)"
            )
        for r, c in zip(rows.tolist(), qty.tolist(), strict=True):
            if c != 0.0:
                option_trades.append(Position(cand.positions[r].instrument, c))
        delta_left[j] += float(np.sum(qty * cand.units[rows] * g_cand["delta"][rows]))
    trades = list(option_trades)
    if "delta" in wanted:
        for j, sym in enumerate(book.symbols):
            if (book.underlying == j).any() and delta_left[j] != 0.0:
                trades.append(Position(Instrument(sym), -float(delta_left[j])))
    if trades:
        after_book = _concat(book, book_arrays(trades, market_of(book)))
        after = portfolio_greeks(after_book).total
    else:
        after = before
    return HedgeProposal(trades, before, after)


__all__ = ["HEDGE_TARGETS", "HedgeProposal", "propose_hedge"]
