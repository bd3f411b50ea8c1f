"""The ``marketdata.v1.daily_closes`` request/reply method: the aligned daily closes of some
symbols from this service's tick store (``events.v1.DailyClosesRequest`` ->
``events.v1.DailyCloses``), computed by ``tradecore.risk.history.daily_closes``, the same
function ``bar_returns`` uses, so a process that cannot open the store (the embedded chDB is
this process's alone) gets the closes it would have read.

:func:`daily_closes_reply` is the blocking part (one query on the store thread); bad requests
and too little stored history are ValueErrors naming the request's field (``symbols[i]``).
"""

from __future__ import annotations

from tradecore.oms.volume import DEFAULT_LOOKBACK_DAYS as CURVE_LOOKBACK_DAYS
from tradecore.oms.volume import stored_volume_curve
from tradecore.risk.history import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_TIMEZONE,
    daily_closes,
    to_yyyymmdd,
)
from tradecore.store import Store
from tradecore_api.events.v1 import market_pb2 as events

#: Closes one reply may carry ((lookback_days + 1) x symbols): 8 bytes each plus the dates,
#: well inside one NATS message (nats-server's default max_payload is 1 MiB).
MAX_REPLY_CLOSES = 100_000


def daily_closes_reply(store: Store, req: events.DailyClosesRequest) -> events.DailyCloses:
    """The reply to ``req`` from ``store`` (ValueError naming the request's field)."""
    symbols = list(req.symbols)
    lookback = req.lookback_days or DEFAULT_LOOKBACK_DAYS
    if (lookback + 1) * len(symbols) > MAX_REPLY_CLOSES:
        raise ValueError(
            f"lookback_days: {lookback + 1} closes x {len(symbols)} symbols exceed the "
            f"{MAX_REPLY_CLOSES} closes one reply carries (ask fewer symbols or days per call)"
        )
    if req.end_time_ns < 0:
        raise ValueError(f"end_time_ns: must be >= 0 (0: no end), got {req.end_time_ns}")
    timezone = req.timezone or DEFAULT_TIMEZONE
    dates, closes = daily_closes(
        store,
        symbols,
        lookback_days=lookback,
        min_days=req.min_days or None,
        end_ns=req.end_time_ns or None,
        venue=req.venue,
        timezone=timezone,
    )
    return events.DailyCloses(
        symbols=symbols,
        dates=to_yyyymmdd(dates),
        closes=closes.ravel().tolist(),
        timezone=timezone,
    )


def volume_curve_reply(store: Store, req: events.VolumeCurveRequest) -> events.VolumeCurve:
    """The ``marketdata.v1.volume_curve`` reply (ValueError naming the request's field)."""
    if not req.symbol:
        raise ValueError("symbol: must not be empty")
    try:
        weights, days = stored_volume_curve(
            store,
            req.symbol,
            req.start_time_ns,
            req.end_time_ns,
            int(req.buckets),
            lookback_days=int(req.lookback_days) or CURVE_LOOKBACK_DAYS,
            venue=req.venue,
            timezone=req.timezone or DEFAULT_TIMEZONE,
        )
    except ValueError as exc:
        text = str(exc)
        for name, field in (("end_ns", "end_time_ns"), ("buckets", "buckets")):
            if text.startswith(name):
                text = field + ":" + text[len(name) :].removeprefix(":")
        raise ValueError(text) from None
    return events.VolumeCurve(weights=weights, days=days)
