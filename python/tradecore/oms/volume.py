"""The intraday volume curve of a symbol from the stored trade ticks, for VWAP algorithms.

:func:`stored_volume_curve` reads the tick table of a :class:`tradecore.store.Store` (the one the
market-data service writes): the trades (tick types 4 and 5) of the symbol on its latest
``lookback_days`` stored days, by the time of day in ``timezone``, summed into ``buckets`` equal
buckets of the algo's window's time of day. The weights are the fraction of that volume in
each bucket (``tradecore.oms.algos.volume_curve``'s convention), so a VWAP started at 10:00 New
York time for an hour follows the stored days' 10:00-11:00 volume profile.

ValueError, naming the argument, for a window longer than a day or across midnight in
``timezone`` (``end_ns``), and when the stored days have no trade of the symbol in the window
(``symbol``): callers that can do without a profile fall back to a flat curve.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tradecore.errors import quote
from tradecore.risk.history import DEFAULT_TIMEZONE, TICKS_TABLE
from tradecore.store import Store
from tradecore.ticks import TRADE_TYPES

__all__ = ["DEFAULT_LOOKBACK_DAYS", "stored_volume_curve"]

DEFAULT_LOOKBACK_DAYS = 20
_DAY_NS = 86_400 * 1_000_000_000
_TRADES = ", ".join(str(t) for t in TRADE_TYPES)


def _time_of_day_ns(t_ns: int, tz: ZoneInfo) -> int:
    local = dt.datetime.fromtimestamp(t_ns // 1_000_000_000, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int((local - midnight).total_seconds()) * 1_000_000_000 + t_ns % 1_000_000_000


def stored_volume_curve(
    store: Store,
    symbol: str,
    start_ns: int,
    end_ns: int,
    buckets: int,
    *,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    venue: str = "",
    timezone: str = DEFAULT_TIMEZONE,
) -> tuple[list[float], int]:
    """``(weights, days)``: the weights of ``buckets`` equal buckets of the time of day of
    [``start_ns``, ``end_ns``) from the symbol's stored trade volume (of ``venue``; empty:
    every venue), and how many stored days had trades in the window. See the module
    docstring for the errors."""
    if not isinstance(symbol, str) or not symbol:
        raise ValueError("symbol must be a non-empty string")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 10_000:
        raise ValueError(f"buckets must be a whole number in 1..10000, got {quote(buckets)}")
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 1:
        raise ValueError(f"lookback_days must be a whole number >= 1, got {quote(lookback_days)}")
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"timezone: unknown time zone {timezone!r}") from None
    span = end_ns - start_ns
    if span <= 0:
        raise ValueError(f"end_ns must be after start_ns, got {start_ns}..{end_ns}")
    lo = _time_of_day_ns(start_ns, tz)
    if lo + span > _DAY_NS:
        raise ValueError("end_ns: a stored volume profile covers a window within one day")
    where = ["symbol = {sym:String}", f"type IN ({_TRADES})", "size > 0"]
    params: dict[str, object] = {
        "sym": symbol,
        "tz": timezone,
        "days": lookback_days,
        "lo": lo,
        "hi": lo + span,
        "span": span,
        "n": buckets,
    }
    if venue:
        where.append("venue = {venue:String}")
        params["venue"] = venue
    cond = " AND ".join(where)
    tod = (
        "toUnixTimestamp64Nano(ts) - "
        "toUnixTimestamp64Nano(toDateTime64(toStartOfDay(ts, {tz:String}), 9, {tz:String}))"
    )
    sql = (
        "SELECT least(intDiv((tod - {lo:Int64}) * {n:Int64}, {span:Int64}), {n:Int64} - 1) AS b, "
        "sum(size), uniqExact(d) "
        f"FROM (SELECT {tod} AS tod, size, toDate(ts, {{tz:String}}) AS d FROM {TICKS_TABLE} "
        f"WHERE {cond} AND toDate(ts, {{tz:String}}) IN (SELECT DISTINCT toDate(ts, "
        f"{{tz:String}}) AS day FROM {TICKS_TABLE} WHERE {cond} ORDER BY day DESC "
        "LIMIT {days:UInt32})) WHERE tod >= {lo:Int64} AND tod < {hi:Int64} GROUP BY b"
    )
    volume = [0.0] * buckets
    days = 0
    for b, v, d in store.query_rows(sql, params):
        volume[int(b)] += float(v)
        days = max(days, int(d))
    total = sum(volume)
    if total <= 0:
        where_ = f" at venue {venue!r}" if venue else ""
        raise ValueError(
            f"symbol: {symbol!r} has no stored trades{where_} in the window's time of day on "
            f"its latest {lookback_days} stored days"
        )
    return [v / total for v in volume], days
