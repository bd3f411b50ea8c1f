"""Daily log-returns from the trade ticks the market-data service stores in ClickHouse.

The market-data service writes every tick to the table ``ticks`` (columns ``venue``, ``symbol``,
``session``, ``seq``, ``ts`` DateTime64(9, 'UTC'), ``type``, ``price`` Int64 in 1/10000 dollars,
...; its bars are aggregates of the trade ticks, types 4, 5 and 11). This module reads that
table through :class:`tradecore.store.Store` with the same SQL knowledge (it does not import the
service): a symbol's daily close is the price of its last trade of the day, the day being the
calendar date in ``timezone`` (New York by default, the exchanges' day; a LOBSTER session is the
same date). The symbols are aligned on the dates on which all of them have a close (a date one
of them lacks is dropped, so a return then spans the gap), and the returns are the log-ratios of
consecutive common closes. The latest day's close is its last trade so far.

:func:`daily_closes` returns those aligned closes (the market-data service sends them as
``events.v1.DailyCloses`` to processes that cannot open its store), :func:`closes_returns` turns
them into returns, and :func:`bar_returns` is the two in one; :func:`symbol_closes` is the one
query behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from tradecore.store import Store
from tradecore.ticks import PRICE_SCALE, TRADE_TYPES

FloatArray = npt.NDArray[np.float64]

TICKS_TABLE = "ticks"
MAX_LOOKBACK_DAYS = 10_000
MAX_SYMBOLS = 4096
DEFAULT_LOOKBACK_DAYS = 250
DEFAULT_MIN_DAYS = 20  # at most lookback_days
DEFAULT_TIMEZONE = "America/New_York"
_TRADES = ", ".join(str(t) for t in TRADE_TYPES)


def _whole(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: must be in [{lo}, {hi}], got {v}")
    return v


def _check_symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str | bytes) or not isinstance(symbols, Sequence):
        raise ValueError(f"symbols: expected a list of symbols, got {type(symbols).__name__}")
    if not symbols:
        raise ValueError("symbols: must not be empty")
    if len(symbols) > MAX_SYMBOLS:
        raise ValueError(f"symbols: at most {MAX_SYMBOLS}, got {len(symbols)}")
    seen: set[str] = set()
    for i, s in enumerate(symbols):
        if not isinstance(s, str) or not s:
            raise ValueError(f"symbols[{i}]: expected a non-empty string, got {s!r}")
        if s in seen:
            raise ValueError(f"symbols[{i}]: {s!r} is listed twice")
        seen.add(s)
    return list(symbols)


def symbol_closes(
    store: Store,
    symbols: Sequence[str],
    *,
    days: int,
    end_ns: int | None = None,
    venue: str = "",
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, tuple[npt.NDArray[np.datetime64], FloatArray]]:
    """Per symbol, its last ``days`` daily closes (dates ascending, prices in dollars) from the
    trade ticks before ``end_ns`` (ns since the epoch; None: all), of ``venue`` (empty: every
    venue). A symbol with no trades gets empty arrays."""
    syms = _check_symbols(symbols)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"timezone: unknown time zone {timezone!r}") from None
    where = [
        "symbol IN {syms:Array(String)}",
        f"type IN ({_TRADES})",
        "price > 0",
    ]
    params: dict[str, object] = {"syms": syms, "tz": timezone, "lim": int(days)}
    if venue:
        where.append("venue = {venue:String}")
        params["venue"] = venue
    if end_ns is not None:
        where.append("ts < fromUnixTimestamp64Nano({end:Int64}, 'UTC')")
        params["end"] = int(end_ns)
    sql = (
        "SELECT symbol, toString(toDate(ts, {tz:String})) AS d, argMax(price, (ts, seq)) "
        f"FROM {TICKS_TABLE} WHERE {' AND '.join(where)} "
        "GROUP BY symbol, d ORDER BY symbol, d DESC LIMIT {lim:UInt32} BY symbol"
    )
    rows = store.query_rows(sql, params)
    out: dict[str, tuple[list[str], list[float]]] = {s: ([], []) for s in syms}
    for sym, day, price in rows:
        dates, prices = out[str(sym)]
        dates.append(str(day))
        prices.append(float(price) / PRICE_SCALE)
    return {
        s: (np.array(d[::-1], dtype="datetime64[D]"), np.array(p[::-1], dtype=np.float64))
        for s, (d, p) in out.items()
    }


def daily_closes(
    store: Store,
    symbols: Sequence[str],
    *,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    min_days: int | None = None,
    end_ns: int | None = None,
    venue: str = "",
    timezone: str = DEFAULT_TIMEZONE,
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    """The daily closes of ``symbols`` aligned on their common days: ``(dates, closes)`` with
    ``dates`` the latest ``lookback_days + 1`` days (at most) on which every symbol has a
    close, ascending, and ``closes`` of shape ``(len(dates), len(symbols))`` in dollars
    (columns in ``symbols`` order): the levels whose log-ratios :func:`bar_returns` returns.

    Raises ValueError naming the symbol (``symbols[2]: 'XYZ' has 5 daily closes ...``) when
    one has fewer than ``min_days + 1`` closes (None: ``min(20, lookback_days)``), and
    ``symbols`` when they share too few."""
    syms = _check_symbols(symbols)
    lookback = _whole("lookback_days", lookback_days, 1, MAX_LOOKBACK_DAYS)
    if min_days is None:
        min_days = min(DEFAULT_MIN_DAYS, lookback)
    need = _whole("min_days", min_days, 1, lookback) + 1
    if end_ns is not None:
        _whole("end_ns", end_ns, 0, 2**63 - 1)
    # Twice the window per symbol leaves room for dates some symbols lack.
    closes = symbol_closes(
        store, syms, days=2 * (lookback + 1), end_ns=end_ns, venue=venue, timezone=timezone
    )
    where = f" at venue {venue!r}" if venue else ""
    for i, s in enumerate(syms):
        have = closes[s][0].size
        if have < need:
            raise ValueError(
                f"symbols[{i}]: {s!r} has {have} daily closes in the store{where}, need at "
                f"least {need} for {need - 1} returns"
            )
    common = closes[syms[0]][0]
    for s in syms[1:]:
        common = np.intersect1d(common, closes[s][0])
    common = common[-(lookback + 1) :]
    if common.size < need:
        fewest = min(range(len(syms)), key=lambda i: closes[syms[i]][0].size)
        raise ValueError(
            f"symbols: only {common.size} daily closes are common to all the symbols "
            f"(fewest: symbols[{fewest}] {syms[fewest]!r}), need at least {need}"
        )
    levels = np.column_stack([closes[s][1][np.searchsorted(closes[s][0], common)] for s in syms])
    return common, levels


def closes_returns(
    dates: npt.NDArray[np.datetime64], closes: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
    """``(returns, dates[1:])``: the daily log-returns of aligned ``closes`` (days x symbols,
    as :func:`daily_closes` returns them), each dated by the day it ends on."""
    levels = np.asarray(closes, dtype=np.float64)
    days = np.asarray(dates, dtype="datetime64[D]")
    if levels.ndim != 2 or levels.shape[0] != days.size:
        raise ValueError(
            f"closes: expected {days.size} rows (one per date) x symbols, got shape {levels.shape}"
        )
    if days.size < 2:
        raise ValueError(f"closes: need at least 2 days for a return, got {days.size}")
    if not np.all(np.isfinite(levels) & (levels > 0)):
        raise ValueError("closes: every close must be a finite positive price")
    if np.any(np.diff(days.astype(np.int64)) <= 0):
        raise ValueError("dates: must be strictly ascending")
    return np.diff(np.log(levels), axis=0), days[1:]


def bar_returns(
    store: Store,
    symbols: Sequence[str],
    *,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    min_days: int | None = None,
    end_ns: int | None = None,
    venue: str = "",
    timezone: str = DEFAULT_TIMEZONE,
) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
    """Daily log-returns of ``symbols`` from the stored trade ticks: ``(returns, dates)`` with
    ``returns`` of shape ``(days, len(symbols))`` (columns in ``symbols`` order) and ``dates``
    the day each return ends on, at most ``lookback_days`` of the latest common days: the
    log-ratios of :func:`daily_closes`.

    Raises ValueError naming the symbol (``symbols[2]: 'XYZ' has 5 daily closes ...``) when
    one has fewer than ``min_days + 1`` closes (None: ``min(20, lookback_days)``), and
    ``symbols`` when they share too few."""
    dates, closes = daily_closes(
        store,
        symbols,
        lookback_days=lookback_days,
        min_days=min_days,
        end_ns=end_ns,
        venue=venue,
        timezone=timezone,
    )
    return closes_returns(dates, closes)


def to_yyyymmdd(dates: npt.NDArray[np.datetime64]) -> list[int]:
    """Calendar days as yyyymmdd integers (the events.v1 DailyCloses form)."""
    return [int(s.replace("-", "")) for s in np.datetime_as_string(dates, unit="D")]


def from_yyyymmdd(values: Sequence[int]) -> npt.NDArray[np.datetime64]:
    """yyyymmdd integers as calendar days (ValueError for one that is no date)."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(np.datetime64(f"{v // 10000:04d}-{v // 100 % 100:02d}-{v % 100:02d}", "D"))
        except ValueError:
            raise ValueError(f"dates[{i}]: {v} is not a yyyymmdd date") from None
    return np.array(out, dtype="datetime64[D]")


__all__ = [
    "DEFAULT_LOOKBACK_DAYS",
    "DEFAULT_MIN_DAYS",
    "DEFAULT_TIMEZONE",
    "bar_returns",
    "closes_returns",
    "daily_closes",
    "from_yyyymmdd",
    "symbol_closes",
    "to_yyyymmdd",
]
