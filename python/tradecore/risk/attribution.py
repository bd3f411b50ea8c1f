"""P&L attribution between two market snapshots: a Taylor expansion in the before-Greeks.

``total`` is exact: the book repriced in the after market with every option's time to expiry
shortened by ``elapsed_days / 252`` years, minus its value in the before market. The terms use
the Greeks of :mod:`tradecore.risk.greeks` in the before market, per position, with the moves of
that position's underlying (dS = S1 - S0, dσ = σ1 - σ0) and of the rate (dr = r1 - r0):

    delta·dS + ½gamma·dS² + vega·dσ + theta·dt + vanna·dS·dσ + ½volga·dσ² + rho·dr

and ``unexplained = total - (delta + gamma + vega + theta + vanna + volga + rho)`` (summed in that
order): third and higher order terms, cross terms with time and rate, and any move the terms do
not cover (a dividend yield change, an option expiring in between). Equities are all delta and
never leave a residual.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from tradecore.errors import quote
from tradecore.risk.book import Book, Market, book_arrays
from tradecore.risk.greeks import check_book, unit_greeks
from tradecore.risk.stress import DAYS_PER_YEAR, MAX_HORIZON_DAYS
from tradecore.risk.valuation import revalue

#: The Taylor terms, in the order they are summed.
TERMS = ("delta", "gamma", "vega", "theta", "vanna", "volga", "rho")


@dataclass(frozen=True)
class Attribution:
    total: float
    delta: float
    gamma: float
    vega: float
    theta: float
    vanna: float
    volga: float
    rho: float
    unexplained: float
    #: The same per underlying symbol the book holds (their by_underlying is empty); their
    #: sums are the totals.
    by_underlying: dict[str, Attribution] = field(default_factory=dict)


def _attribution(total: float, terms: dict[str, float]) -> Attribution:
    explained = 0.0
    for t in TERMS:
        explained += terms[t]
    return Attribution(
        total=total,
        delta=terms["delta"],
        gamma=terms["gamma"],
        vega=terms["vega"],
        theta=terms["theta"],
        vanna=terms["vanna"],
        volga=terms["volga"],
        rho=terms["rho"],
        unexplained=total - explained,
    )


def attribute_pnl(book_before: Book, market_after: Market, elapsed_days: float) -> Attribution:
    """Attribute the P&L of ``book_before`` (built by ``book_arrays`` in the before market)
    over ``elapsed_days`` (>= 0, / 252 years) to ``market_after`` (see the module docstring).

    ``market_after`` must list the same underlyings as the before market (any order) and pass
    every market check; a ValueError names its field (``market_after.underlyings[1].spot``).
    """
    check_book(book_before, "book_before")
    if not book_before.positions:
        raise ValueError("book_before: has no positions (build it with book_arrays)")
    if not isinstance(market_after, Market):
        raise ValueError(f"market_after: expected a Market, got {type(market_after).__name__}")
    if isinstance(elapsed_days, bool) or not isinstance(elapsed_days, int | float):
        raise ValueError(f"elapsed_days: expected a number, got {quote(elapsed_days)}")
    if not (math.isfinite(elapsed_days) and 0.0 <= elapsed_days <= MAX_HORIZON_DAYS):
        raise ValueError(
            f"elapsed_days: must be in [0, {MAX_HORIZON_DAYS:g}], got {elapsed_days!r}"
        )
    dt = float(elapsed_days) / DAYS_PER_YEAR
    before_symbols = set(book_before.symbols)
    for i, u in enumerate(market_after.underlyings):
        sym = getattr(u, "symbol", None)
        if sym not in before_symbols:
            raise ValueError(
                f"market_after.underlyings[{i}].symbol: {quote(sym)} is not an underlying of "
                "the before market (both must list the same underlyings)"
            )
    after_symbols = {getattr(u, "symbol", None) for u in market_after.underlyings}
    missing = [s for s in book_before.symbols if s not in after_symbols]
    if missing:
        raise ValueError(
            f"market_after.underlyings: {quote(missing[0])} is missing (both markets must list "
            "the same underlyings)"
        )
    try:
        after = book_arrays(book_before.positions, market_after)
    except ValueError as e:
        raise ValueError(re.sub(r"^market\.", "market_after.", str(e))) from None
    # Per underlying of the before book: its index in the after market.
    where = [after.symbols.index(s) for s in book_before.symbols]
    S0 = book_before.spot
    S1 = after.spot[where]
    dS = (S1 - S0)[book_before.underlying]
    dv = (after.volatility[where] - book_before.volatility)[book_before.underlying]
    dr = after.rate - book_before.rate
    total_pos = revalue(after, horizon=dt) - revalue(book_before)
    g = unit_greeks(book_before)
    units = book_before.units
    per_term = {
        "delta": units * g["delta"] * dS,
        "gamma": 0.5 * units * g["gamma"] * dS * dS,
        "vega": units * g["vega"] * dv,
        "theta": units * g["theta"] * dt,
        "vanna": units * g["vanna"] * dS * dv,
        "volga": 0.5 * units * g["volga"] * dv * dv,
        "rho": units * g["rho"] * dr,
    }
    by_underlying: dict[str, Attribution] = {}
    for j, sym in enumerate(book_before.symbols):
        rows = book_before.underlying == j
        if rows.any():
            by_underlying[sym] = _attribution(
                float(total_pos[rows].sum()),
                {t: float(v[rows].sum()) for t, v in per_term.items()},
            )
    sums = {t: float(v.sum()) for t, v in per_term.items()}
    return replace(_attribution(float(total_pos.sum()), sums), by_underlying=by_underlying)


__all__ = ["TERMS", "Attribution", "attribute_pnl"]
