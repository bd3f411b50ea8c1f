"""The book and market every risk method reads, and their validated columnar form.

A :class:`Position` holds an :class:`Instrument` (an equity, or a European or American option on
one of the market's underlyings). A :class:`Market` holds the underlyings' spots, volatilities
and dividend yields, one continuously compounded rate and the correlation of the underlyings'
log-returns. :func:`book_arrays` checks both and turns them into the flat arrays the kernels
take (:class:`Book`); every invalid value raises ValueError naming its field the way a JSON
caller wrote it (``positions[3].instrument.strike``, ``market.correlation[1][0]``).

Units: ``quantity`` is shares or contracts (negative = short); ``multiplier`` is units of the
underlying per contract (default 1 for an equity, 100 for an option); ``expiry_years`` is the
time to expiry in years (ACT/365 or trading-day based, the caller's choice; the horizon is
``horizon_days / 252`` years); volatilities and rates are per year, 0.20 = 20 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore.errors import quote

FloatArray = npt.NDArray[np.float64]

#: Book.kind codes.
KIND_EQUITY = 0
KIND_EUROPEAN = 1
KIND_AMERICAN = 2

#: Book.option_type codes (0 for an equity).
CALL = 1
PUT = -1

#: At most this many underlyings in one market (the correlation matrix is n x n).
MAX_UNDERLYINGS = 4096
#: At most this many positions in one book.
MAX_POSITIONS = 1_000_000


@dataclass(frozen=True)
class Instrument:
    """What a position holds. ``symbol`` is the underlying's symbol (for an equity, the equity
    itself); for an option ``underlying`` may name it instead, ``symbol`` then being the
    option's own (e.g. OCC) symbol."""

    symbol: str
    kind: Literal["equity", "option"] = "equity"
    option_type: Literal["call", "put"] | None = None
    style: Literal["european", "american"] = "european"
    strike: float = math.nan
    expiry_years: float = math.nan
    underlying: str = ""

    @property
    def underlying_symbol(self) -> str:
        return self.underlying or self.symbol


@dataclass(frozen=True)
class Position:
    instrument: Instrument
    quantity: float
    #: Units of the underlying per unit held; None: 1 for an equity, 100 for an option.
    multiplier: float | None = None


@dataclass(frozen=True)
class Underlying:
    symbol: str
    spot: float
    volatility: float
    dividend_yield: float = 0.0


@dataclass(frozen=True)
class Market:
    rate: float
    underlyings: tuple[Underlying, ...]
    #: Row-major n x n correlation of the underlyings' log-returns (n = len(underlyings)), as
    #: a nested sequence, a flat sequence of n*n values or an array; None: independent.
    correlation: npt.ArrayLike | None = None

    def index(self) -> dict[str, int]:
        """Symbol -> position in :attr:`underlyings`."""
        return {u.symbol: i for i, u in enumerate(self.underlyings)}


@dataclass(frozen=True)
class Book:
    """Validated positions and market as flat arrays (one row per position, one entry per
    underlying); what the kernels read."""

    symbols: tuple[str, ...]
    spot: FloatArray
    volatility: FloatArray
    dividend_yield: FloatArray
    rate: float
    #: n x n, symmetric, unit diagonal, entries in [-1, 1]; not necessarily positive definite
    #: (see :func:`cholesky_factor`).
    correlation: FloatArray
    #: Per position: index into ``symbols``.
    underlying: npt.NDArray[np.int32]
    #: KIND_EQUITY / KIND_EUROPEAN / KIND_AMERICAN.
    kind: npt.NDArray[np.int8]
    #: CALL (+1) / PUT (-1) for options, 0 for equities.
    option_type: npt.NDArray[np.int8]
    #: NaN for equities.
    strike: FloatArray
    #: Years; NaN for equities.
    expiry: FloatArray
    #: quantity x multiplier: units of the underlying's price per unit of the instrument's price.
    units: FloatArray
    positions: tuple[Position, ...] = field(default=(), repr=False)

    @property
    def n_positions(self) -> int:
        return int(self.units.shape[0])

    @property
    def n_underlyings(self) -> int:
        return len(self.symbols)


def finite_number(name: str, value: object) -> float:
    """``value`` as a finite float, else ValueError naming ``name`` (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected a number, got {quote(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x!r}")
    return x


def _symbol(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {quote(value)}")
    if len(value) > 128 or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{name}: at most 128 characters, no whitespace, got {quote(value)}")
    return value


def _market_arrays(market: Market) -> tuple[tuple[str, ...], FloatArray, FloatArray, FloatArray]:
    if not isinstance(market, Market):
        raise ValueError(f"market: expected a Market, got {type(market).__name__}")
    n = len(market.underlyings)
    if n == 0:
        raise ValueError("market.underlyings: must not be empty")
    if n > MAX_UNDERLYINGS:
        raise ValueError(f"market.underlyings: at most {MAX_UNDERLYINGS}, got {n}")
    symbols: list[str] = []
    seen: set[str] = set()
    spot = np.empty(n)
    vol = np.empty(n)
    div = np.empty(n)
    for i, u in enumerate(market.underlyings):
        at = f"market.underlyings[{i}]"
        s = _symbol(f"{at}.symbol", u.symbol)
        if s in seen:
            raise ValueError(f"{at}.symbol: {quote(s)} is listed twice")
        seen.add(s)
        symbols.append(s)
        spot[i] = finite_number(f"{at}.spot", u.spot)
        if spot[i] <= 0.0:
            raise ValueError(f"{at}.spot: must be > 0, got {float(spot[i])!r}")
        vol[i] = finite_number(f"{at}.volatility", u.volatility)
        if not 0.0 < vol[i] <= 10.0:
            raise ValueError(f"{at}.volatility: must be in (0, 10], got {float(vol[i])!r}")
        div[i] = finite_number(f"{at}.dividend_yield", u.dividend_yield)
        if abs(div[i]) > 1.0:
            raise ValueError(f"{at}.dividend_yield: must be in [-1, 1], got {float(div[i])!r}")
    return tuple(symbols), spot, vol, div


def correlation_matrix(value: npt.ArrayLike | None, n: int) -> FloatArray:
    """``value`` as a checked n x n correlation matrix (identity for None). Accepts a nested
    n x n sequence or array, or n*n values in row-major order. Symmetric to 1e-12, unit
    diagonal to 1e-12, entries in [-1, 1]; positive definiteness is not required here."""
    name = "market.correlation"
    if value is None:
        return np.eye(n)
    try:
        c = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {n} x {n} numbers") from None
    if c.ndim == 1 and c.size == n * n:
        c = c.reshape(n, n)
    if c.shape != (n, n):
        raise ValueError(
            f"{name}: expected {n} x {n} values ({n * n} row-major) for {n} underlyings, "
            f"got shape {c.shape}"
        )
    bad = np.argwhere(~np.isfinite(c))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise ValueError(f"{name}[{i}][{j}]: must be finite, got {float(c[i, j])!r}")
    bad = np.argwhere(np.abs(c) > 1.0 + 1e-12)
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise ValueError(f"{name}[{i}][{j}]: must be in [-1, 1], got {float(c[i, j])!r}")
    diag = np.flatnonzero(np.abs(np.diag(c) - 1.0) > 1e-12)
    if diag.size:
        i = int(diag[0])
        raise ValueError(f"{name}[{i}][{i}]: the diagonal must be 1, got {float(c[i, i])!r}")
    asym = np.argwhere(np.abs(c - c.T) > 1e-12)
    if asym.size:
        i, j = (int(x) for x in asym[0])
        raise ValueError(
            f"{name}[{i}][{j}]: must equal [{j}][{i}] (symmetric), got {float(c[i, j])!r}"
        )
    c = 0.5 * (c + c.T)
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def book_arrays(positions: Sequence[Position], market: Market) -> Book:
    """Check ``positions`` against ``market`` and return the columnar :class:`Book`.

    Raises ValueError naming the field: an unknown underlying, a bad kind/type/style, a strike
    or expiry that is missing, not finite or not > 0 (an option at or past expiry is an error:
    it has no risk left to measure), a non-finite quantity or multiplier, and every market
    check (:func:`correlation_matrix`, spots and volatilities > 0).
    """
    symbols, spot, vol, div = _market_arrays(market)
    rate = finite_number("market.rate", market.rate)
    if abs(rate) > 1.0:
        raise ValueError(f"market.rate: must be in [-1, 1], got {rate!r}")
    corr = correlation_matrix(market.correlation, len(symbols))
    if isinstance(positions, str | bytes) or not isinstance(positions, Sequence):
        raise ValueError(f"positions: expected a list of positions, got {type(positions).__name__}")
    m = len(positions)
    if m == 0:
        raise ValueError("positions: must not be empty")
    if m > MAX_POSITIONS:
        raise ValueError(f"positions: at most {MAX_POSITIONS}, got {m}")
    where = {s: i for i, s in enumerate(symbols)}
    underlying = np.empty(m, dtype=np.int32)
    kind = np.empty(m, dtype=np.int8)
    otype = np.zeros(m, dtype=np.int8)
    strike = np.full(m, np.nan)
    expiry = np.full(m, np.nan)
    units = np.empty(m)
    for i, p in enumerate(positions):
        at = f"positions[{i}]"
        if not isinstance(p, Position):
            raise ValueError(f"{at}: expected a Position, got {type(p).__name__}")
        ins = p.instrument
        if not isinstance(ins, Instrument):
            raise ValueError(f"{at}.instrument: expected an Instrument, got {type(ins).__name__}")
        _symbol(f"{at}.instrument.symbol", ins.symbol)
        name = ins.underlying_symbol
        field_name = "underlying" if ins.underlying else "symbol"
        j = where.get(name)
        if j is None:
            raise ValueError(
                f"{at}.instrument.{field_name}: unknown underlying {quote(name)} "
                "(not in market.underlyings)"
            )
        underlying[i] = j
        qty = finite_number(f"{at}.quantity", p.quantity)
        if ins.kind == "equity":
            kind[i] = KIND_EQUITY
            mult = 1.0 if p.multiplier is None else finite_number(f"{at}.multiplier", p.multiplier)
        elif ins.kind == "option":
            if ins.style == "european":
                kind[i] = KIND_EUROPEAN
            elif ins.style == "american":
                kind[i] = KIND_AMERICAN
            else:
                raise ValueError(
                    f"{at}.instrument.style: must be 'european' or 'american', "
                    f"got {quote(ins.style)}"
                )
            if ins.option_type == "call":
                otype[i] = CALL
            elif ins.option_type == "put":
                otype[i] = PUT
            else:
                raise ValueError(
                    f"{at}.instrument.option_type: must be 'call' or 'put', "
                    f"got {quote(ins.option_type)}"
                )
            strike[i] = finite_number(f"{at}.instrument.strike", ins.strike)
            if strike[i] <= 0.0:
                raise ValueError(f"{at}.instrument.strike: must be > 0, got {float(strike[i])!r}")
            expiry[i] = finite_number(f"{at}.instrument.expiry_years", ins.expiry_years)
            if expiry[i] <= 0.0:
                raise ValueError(
                    f"{at}.instrument.expiry_years: must be > 0 (the option has expired), "
                    f"got {float(expiry[i])!r}"
                )
            if expiry[i] > 100.0:
                raise ValueError(
                    f"{at}.instrument.expiry_years: must be <= 100, got {float(expiry[i])!r}"
                )
            mult = (
                100.0 if p.multiplier is None else finite_number(f"{at}.multiplier", p.multiplier)
            )
        else:
            raise ValueError(
                f"{at}.instrument.kind: must be 'equity' or 'option', got {quote(ins.kind)}"
            )
        if mult <= 0.0:
            raise ValueError(f"{at}.multiplier: must be > 0, got {mult!r}")
        units[i] = qty * mult
    return Book(
        symbols=symbols,
        spot=spot,
        volatility=vol,
        dividend_yield=div,
        rate=rate,
        correlation=corr,
        underlying=underlying,
        kind=kind,
        option_type=otype,
        strike=strike,
        expiry=expiry,
        units=units,
        positions=tuple(positions),
    )


@dataclass(frozen=True)
class CholeskyFactor:
    """A lower-triangular factor ``L`` with ``L @ L.T`` the (repaired) correlation."""

    factor: FloatArray
    #: The correlation actually used (the input when it was positive definite).
    correlation: FloatArray
    #: True when the input was not positive definite and was repaired.
    repaired: bool
    #: The input's smallest eigenvalue (< 0 or ~0 when repaired).
    min_eigenvalue: float
    #: Frobenius distance between the input and the repaired matrix (0 when not repaired).
    repair_distance: float


def cholesky_factor(correlation: FloatArray, floor: float = 1e-10) -> CholeskyFactor:
    """The Cholesky factor of a correlation matrix, repairing one that is not positive
    definite by eigenvalue clipping: eigenvalues below ``floor`` are raised to it and the
    result is rescaled to a unit diagonal (a correlation matrix again)."""
    c = np.asarray(correlation, dtype=np.float64)
    w, v = np.linalg.eigh(c)
    lo = float(w[0])
    if lo > floor:
        try:
            return CholeskyFactor(np.linalg.cholesky(c).astype(np.float64), c, False, lo, 0.0)
        except np.linalg.LinAlgError:
            pass
    fixed = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(d, d)
    fixed = 0.5 * (fixed + fixed.T)
    np.fill_diagonal(fixed, 1.0)
    factor = np.linalg.cholesky(fixed + np.eye(len(c)) * floor * 1e-3).astype(np.float64)
    return CholeskyFactor(factor, fixed, True, lo, float(np.linalg.norm(fixed - c)))


__all__ = [
    "CALL",
    "KIND_AMERICAN",
    "KIND_EQUITY",
    "KIND_EUROPEAN",
    "MAX_POSITIONS",
    "MAX_UNDERLYINGS",
    "PUT",
    "Book",
    "CholeskyFactor",
    "Instrument",
    "Market",
    "Position",
    "Underlying",
    "book_arrays",
    "cholesky_factor",
    "correlation_matrix",
    "finite_number",
]
