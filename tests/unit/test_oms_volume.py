"""stored_volume_curve against a real embedded chDB tick store filled by the market-data
service's own TickStore: the window's time of day bucketed over the latest stored days (New
York time), trades only, the venue filter, and errors naming the argument."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from tradecore import ticks
from tradecore.oms.volume import stored_volume_curve
from tradecore.store import default_dsn
from tradecore_services.marketdata.store import TickStore

NY = ZoneInfo("America/New_York")
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]


def _ns(day: dt.date, hour: int, minute: int = 0) -> int:
    t = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)
    return int(t.timestamp()) * 1_000_000_000


def _batch(rows: list[tuple[int, int, int]], venue: str = "test") -> ticks.TickBatch:
    ts, typ, size = (list(x) for x in zip(*rows, strict=True))
    n = len(ts)
    return ticks.make_batch(
        venue, "VOL", "f", seq=np.arange(1, n + 1), ts=ts, recv_ts=time.time_ns(), type=typ,
        price=np.full(n, 100 * ticks.PRICE_SCALE), size=size,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TickStore]:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        yield s
    finally:
        s.close()


def test_the_curve_is_the_stored_days_volume_by_time_of_day(store: TickStore) -> None:
    rows = []
    for k, d in enumerate(DAYS):
        rows += [
            (_ns(d, 10, 5), ticks.EXECUTE, 300),  # bucket 0 of 10:00-10:30
            (_ns(d, 10, 20), ticks.EXECUTE_HIDDEN, 100),  # bucket 1
            (_ns(d, 10, 25), ticks.ADD, 10_000),  # not a trade
            (_ns(d, 11, 0), ticks.EXECUTE, 5_000),  # outside the window
        ]
        if k == 0:
            rows.append((_ns(d, 10, 29), ticks.EXECUTE, 400))  # the oldest day
    store.insert([_batch(rows)])
    today = dt.date(2026, 6, 1)  # the window's time of day, on a later date
    start, end = _ns(today, 10), _ns(today, 10, 30)
    curve, days = stored_volume_curve(store.store, "VOL", start, end, 2)
    assert days == 3
    assert curve == pytest.approx([900 / 1600, 700 / 1600])
    curve, days = stored_volume_curve(store.store, "VOL", start, end, 2, lookback_days=2)
    assert days == 2 and curve == pytest.approx([600 / 800, 200 / 800])
    with pytest.raises(ValueError, match="symbol: 'VOL' has no stored trades at venue 'x'"):
        stored_volume_curve(store.store, "VOL", start, end, 2, venue="x")
    with pytest.raises(ValueError, match="symbol: 'NONE' has no stored trades"):
        stored_volume_curve(store.store, "NONE", start, end, 2)
    with pytest.raises(ValueError, match=r"end_ns: .* within one day"):
        stored_volume_curve(store.store, "VOL", _ns(today, 23), _ns(today, 23) + 7200 * 10**9, 2)
    with pytest.raises(ValueError, match="buckets"):
        stored_volume_curve(store.store, "VOL", start, end, 0)


def test_the_nats_reply_names_the_request_s_fields(store: TickStore) -> None:
    from tradecore_api.events.v1 import market_pb2 as events
    from tradecore_services.marketdata.closes import volume_curve_reply

    day = DAYS[0]
    store.insert([_batch([(_ns(day, 10, 5), ticks.EXECUTE, 300)])])
    start = _ns(dt.date(2026, 6, 1), 10)
    req = events.VolumeCurveRequest(
        symbol="VOL", start_time_ns=start, end_time_ns=start + 1800 * 10**9, buckets=3
    )
    got = volume_curve_reply(store.store, req)
    assert list(got.weights) == pytest.approx([1.0, 0.0, 0.0]) and got.days == 1
    for bad, needle in (
        ({"buckets": 0}, "buckets: "),
        ({"end_time_ns": start + 86_400 * 10**9}, "end_time_ns: "),
        ({"symbol": ""}, "symbol: "),
        ({"symbol": "NONE"}, "symbol: 'NONE' has no stored trades"),
    ):
        wrong = events.VolumeCurveRequest()
        wrong.CopyFrom(req)
        for k, v in bad.items():
            setattr(wrong, k, v)
        with pytest.raises(ValueError) as exc:
            volume_curve_reply(store.store, wrong)
        assert str(exc.value).startswith(needle), exc.value
