"""Portfolio Greeks: per position, per underlying and per expiry bucket, in share and dollar units.

Every figure is ``units`` (quantity x multiplier) times the per-unit Greek of the pricing
kernels, so the units are those of :func:`tradecore.pricing.european`: ``delta`` and ``gamma`` per
1.00 of the underlying's price (shares-equivalent), ``vega``, ``vanna`` (d delta / d sigma) and
``volga`` (d2V / d sigma2) per 1.00 of volatility (0.01 = one vol point), ``rho`` per 1.00 of
rate, ``theta`` = -dV/dT per year (the value gained as one year passes; divide by 252 or 365 for a
day). ``dollar_delta`` = delta x spot (the value change for a 100 % move, to first order) and
``dollar_gamma`` = gamma x spot^2 / 100 (the change of dollar delta for a 1 % move).

European options take every Greek from the analytic kernel (``greeks="all"``). American options
take price, delta, gamma, vega, theta and rho from :func:`tradecore.pricing.american`; their
vanna and volga are central differences of american()'s delta and vega in volatility (step
``min(1e-4, sigma / 10)``; within ~1e-7 relative of the analytic limit on smooth points).
Equities have delta = units and every other Greek 0.

Totals over several underlyings add share-unit deltas and gammas of different stocks: that sum is
only meaningful per underlying (:attr:`PortfolioGreeks.by_underlying`); across underlyings read
``dollar_delta`` and ``dollar_gamma``, which are in currency and do add up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from tradecore.pricing import DOMAIN, american, european
from tradecore.risk.book import (
    KIND_AMERICAN,
    KIND_EQUITY,
    KIND_EUROPEAN,
    Book,
    Market,
    Underlying,
)

FloatArray = npt.NDArray[np.float64]

#: The per-unit Greeks :func:`unit_greeks` returns, besides ``price``.
GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho", "vanna", "volga")

#: Expiry buckets, in order: (label, upper bound in days, exclusive); equities are "spot".
EXPIRY_BUCKETS = (("0-30d", 30.0), ("30-90d", 90.0), ("90d-1y", 365.0), (">1y", np.inf))
SPOT_BUCKET = "spot"


@dataclass(frozen=True)
class DollarGreeks:
    """Greeks of a position or a group of positions (see the module docstring for units)."""

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    rho: float = 0.0
    vanna: float = 0.0
    volga: float = 0.0
    dollar_delta: float = 0.0
    dollar_gamma: float = 0.0
    value: float = 0.0

    def __add__(self, other: DollarGreeks) -> DollarGreeks:
        return DollarGreeks(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class PortfolioGreeks:
    total: DollarGreeks
    #: One per position, in book order.
    positions: list[DollarGreeks]
    #: Per underlying symbol that the book holds, in the market's order.
    by_underlying: dict[str, DollarGreeks]
    #: Per expiry bucket that holds a position: "spot" (equities), "0-30d", "30-90d",
    #: "90d-1y", ">1y" (expiry_years x 365 days; each bucket includes its lower bound).
    by_expiry: dict[str, DollarGreeks]


def check_book(book: object, name: str = "book") -> Book:
    if not isinstance(book, Book):
        raise ValueError(
            f"{name}: expected a Book (tradecore.risk.book_arrays), got {type(book).__name__}"
        )
    return book


def market_of(book: Book) -> Market:
    """The :class:`Market` a book was built from (spots, vols, yields, rate, correlation)."""
    return Market(
        rate=book.rate,
        underlyings=tuple(
            Underlying(
                s, float(book.spot[i]), float(book.volatility[i]), float(book.dividend_yield[i])
            )
            for i, s in enumerate(book.symbols)
        ),
        correlation=book.correlation,
    )


def unit_greeks(
    book: Book,
    spot: FloatArray | None = None,
    volatility: FloatArray | None = None,
    rate: float | None = None,
    horizon: float = 0.0,
) -> dict[str, FloatArray]:
    """Per-unit price and Greeks of every position (shape ``(m,)``) in one market state:
    ``spot`` and ``volatility`` per underlying (None: the book's), ``rate`` (None: the book's),
    options priced with time to expiry ``T - horizon`` (intrinsic value and its slope once that
    is below the pricing domain). Multiply by ``book.units`` for position Greeks."""
    s = book.spot if spot is None else np.asarray(spot, dtype=np.float64)
    v = book.volatility if volatility is None else np.asarray(volatility, dtype=np.float64)
    r = book.rate if rate is None else float(rate)
    m = book.n_positions
    u = book.underlying
    S = s[u]
    sigma = v[u]
    q = book.dividend_yield[u]
    out = {k: np.zeros(m) for k in ("price", *GREEK_NAMES)}
    eq = book.kind == KIND_EQUITY
    out["price"][eq] = S[eq]
    out["delta"][eq] = 1.0
    tau = book.expiry - horizon
    opt = book.kind != KIND_EQUITY
    dead = np.flatnonzero(opt & (tau < DOMAIN.expiry_min))
    if dead.size:
        w = book.option_type[dead].astype(np.float64)
        intrinsic = w * (S[dead] - book.strike[dead])
        out["price"][dead] = np.maximum(intrinsic, 0.0)
        out["delta"][dead] = np.where(intrinsic > 0.0, w, 0.0)
    live = opt & (tau >= DOMAIN.expiry_min)
    cols = np.flatnonzero(live & (book.kind == KIND_EUROPEAN))
    if cols.size:
        res = european(
            S[cols],
            book.strike[cols],
            tau[cols],
            r,
            q[cols],
            sigma[cols],
            book.option_type[cols],
            ["delta", "gamma", "vega", "theta", "rho", "vanna", "vomma"],
        )
        for name in ("price", "delta", "gamma", "vega", "theta", "rho", "vanna"):
            out[name][cols] = res[name]
        out["volga"][cols] = res["vomma"]
    cols = np.flatnonzero(live & (book.kind == KIND_AMERICAN))
    if cols.size:
        Sa, Ka, Ta, qa = S[cols], book.strike[cols], tau[cols], q[cols]
        va, wa = sigma[cols], book.option_type[cols]
        res = american(Sa, Ka, Ta, r, qa, va, wa, greeks=True)
        for name in ("price", "delta", "gamma", "vega", "theta", "rho"):
            out[name][cols] = res[name]
        # vanna and volga: central differences of delta and vega in vol (one batch of 2k rows).
        h = np.minimum(1e-4, va / 10.0)
        two = (Sa, Ka, Ta, qa, wa)
        S2, K2, T2, q2, w2 = (np.concatenate([a, a]) for a in two)
        bumped = american(S2, K2, T2, r, q2, np.concatenate([va + h, va - h]), w2, greeks=True)
        n = cols.size
        out["vanna"][cols] = (bumped["delta"][:n] - bumped["delta"][n:]) / (2.0 * h)
        out["volga"][cols] = (bumped["vega"][:n] - bumped["vega"][n:]) / (2.0 * h)
    return out


#: DollarGreeks field order of the columns of :func:`position_matrix`.
_FIELDS = tuple(f.name for f in fields(DollarGreeks))


def position_matrix(book: Book, g: dict[str, FloatArray]) -> FloatArray:
    """Per-position dollar Greeks as an ``(m, 10)`` array, columns in DollarGreeks order."""
    units = book.units
    S = book.spot[book.underlying]
    cols = {k: units * g[k] for k in GREEK_NAMES}
    cols["dollar_delta"] = cols["delta"] * S
    cols["dollar_gamma"] = cols["gamma"] * S * S / 100.0
    cols["value"] = units * g["price"]
    return np.stack([cols[k] for k in _FIELDS], axis=1)


def _greeks(row: FloatArray) -> DollarGreeks:
    return DollarGreeks(*(float(x) for x in row))


def expiry_buckets(book: Book) -> list[str]:
    """The expiry bucket label of every position (see :attr:`PortfolioGreeks.by_expiry`)."""
    # + 1e-9 day: 30/365 years is 30 days, whichever way the product rounds.
    days = book.expiry * 365.0 + 1e-9
    bounds = np.array([b[1] for b in EXPIRY_BUCKETS[:-1]])
    idx = np.searchsorted(bounds, np.where(np.isnan(days), 0.0, days), side="right")
    names = [b[0] for b in EXPIRY_BUCKETS]
    eq = book.kind == KIND_EQUITY
    return [SPOT_BUCKET if e else names[i] for e, i in zip(eq.tolist(), idx.tolist(), strict=True)]


def portfolio_greeks(book: Book) -> PortfolioGreeks:
    """Dollar Greeks of every position of ``book``, their total, and their sums per underlying
    and per expiry bucket (see the module docstring for units and methods)."""
    check_book(book)
    P = position_matrix(book, unit_greeks(book))
    positions = [DollarGreeks(*row) for row in P.tolist()]
    total = _greeks(P.sum(axis=0))
    by_underlying: dict[str, DollarGreeks] = {}
    for j, sym in enumerate(book.symbols):
        rows = book.underlying == j
        if rows.any():
            by_underlying[sym] = _greeks(P[rows].sum(axis=0))
    labels = np.array(expiry_buckets(book))
    by_expiry: dict[str, DollarGreeks] = {}
    for label in (SPOT_BUCKET, *(b[0] for b in EXPIRY_BUCKETS)):
        rows = labels == label
        if rows.any():
            by_expiry[label] = _greeks(P[rows].sum(axis=0))
    return PortfolioGreeks(total, positions, by_underlying, by_expiry)


__all__ = [
    "EXPIRY_BUCKETS",
    "GREEK_NAMES",
    "SPOT_BUCKET",
    "DollarGreeks",
    "PortfolioGreeks",
    "expiry_buckets",
    "market_of",
    "portfolio_greeks",
    "position_matrix",
    "unit_greeks",
]
