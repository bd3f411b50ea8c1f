"""Exact repricing of a :class:`~tradecore.risk.book.Book` under given market states.

:func:`revalue` prices every position in every scenario with the pricing kernels (European
options analytically, American options by ALO with the LR-tree fallback, equities at spot): the
reference that stress tests, historical simulation and the Monte-Carlo checks compare against.
It is exact repricing, not an approximation, and costs one kernel call per option style.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tradecore.pricing import DOMAIN, american, european
from tradecore.risk.book import KIND_AMERICAN, KIND_EQUITY, KIND_EUROPEAN, Book

FloatArray = npt.NDArray[np.float64]


def _scenario_array(name: str, value: npt.ArrayLike, n: int) -> FloatArray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != n:
        raise ValueError(
            f"{name}: last axis must have one entry per underlying ({n}), got {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: must be finite")
    return a


def revalue(
    book: Book,
    spot: npt.ArrayLike | None = None,
    volatility: npt.ArrayLike | None = None,
    rate: npt.ArrayLike | None = None,
    horizon: float = 0.0,
) -> FloatArray:
    """Value of each position (``units`` x price, in the currency) in each scenario.

    ``spot`` and ``volatility`` have shape ``(..., n)`` (one entry per underlying of the book;
    None: the book's own), ``rate`` shape ``(...)`` or a scalar (None: the book's). ``horizon``
    (years, >= 0) is the time elapsed: options are priced with time to expiry ``T - horizon``,
    at their intrinsic value once that is not above zero. Returns shape ``(..., m)``.
    """
    n = book.n_underlyings
    s = book.spot if spot is None else _scenario_array("spot", spot, n)
    v = book.volatility if volatility is None else _scenario_array("volatility", volatility, n)
    if (s <= 0.0).any():
        raise ValueError("spot: every scenario spot must be > 0")
    if (v <= 0.0).any():
        raise ValueError("volatility: every scenario volatility must be > 0")
    r = np.asarray(book.rate if rate is None else rate, dtype=np.float64)
    if not np.isfinite(r).all():
        raise ValueError("rate: must be finite")
    h = float(horizon)
    if not (np.isfinite(h) and h >= 0.0):
        raise ValueError(f"horizon: must be finite and >= 0, got {horizon!r}")
    shape = np.broadcast_shapes(s.shape[:-1], v.shape[:-1], r.shape)
    s = np.broadcast_to(s, (*shape, n))
    v = np.broadcast_to(v, (*shape, n))
    r = np.broadcast_to(r, shape)[..., None]
    u = book.underlying
    S = s[..., u]  # (..., m)
    sigma = v[..., u]
    q = book.dividend_yield[u]
    out = np.empty((*shape, book.n_positions))
    eq = book.kind == KIND_EQUITY
    out[..., eq] = S[..., eq]
    tau = book.expiry - h
    for kind in (KIND_EUROPEAN, KIND_AMERICAN):
        cols = np.flatnonzero(book.kind == kind)
        if cols.size == 0:
            continue
        live = cols[tau[cols] >= DOMAIN.expiry_min]
        dead = cols[tau[cols] < DOMAIN.expiry_min]
        if dead.size:
            w = book.option_type[dead].astype(np.float64)
            out[..., dead] = np.maximum(w * (S[..., dead] - book.strike[dead]), 0.0)
        if live.size == 0:
            continue
        args = (
            S[..., live],
            book.strike[live],
            tau[live],
            np.broadcast_to(r, (*shape, 1)),
            q[live],
            sigma[..., live],
            book.option_type[live],
        )
        if kind == KIND_EUROPEAN:
            price = european(*args, "none")["price"]
        else:
            price = american(*args, greeks=False)["price"]
        out[..., live] = price
    return out * book.units
