"""bar_returns against a real embedded chDB tick store filled by the market-data service's own
TickStore: daily closes from the last trade of each New York day, alignment on common dates,
lookback, end time, venue, and errors naming the symbol."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from tradecore import ticks
from tradecore.risk.history import (
    bar_returns,
    closes_returns,
    daily_closes,
    from_yyyymmdd,
    to_yyyymmdd,
)
from tradecore.store import default_dsn
from tradecore_services.marketdata.store import TickStore

NY = ZoneInfo("America/New_York")
DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=k) for k in range(40)]
TRADING = [d for d in DAYS if d.weekday() < 5]


def _ns(day: dt.date, hour: int, minute: int = 0) -> int:
    t = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)
    return int(t.timestamp()) * 1_000_000_000


def _closes(symbol: str) -> dict[dt.date, float]:
    rng = np.random.default_rng(sum(map(ord, symbol)))
    px = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, len(TRADING))))
    return {d: round(float(p), 4) for d, p in zip(TRADING, px, strict=True)}


def _batch(symbol: str, closes: dict[dt.date, float], venue: str = "test") -> ticks.TickBatch:
    """Per day: a trade at 10:00, a limit order (not a trade) at 15:59 at an absurd price, the
    close trade at 15:55 and, for the New York day boundary, nothing after."""
    ts, typ, price = [], [], []
    for d, close in closes.items():
        for when, kind, p in (
            ((10, 0), ticks.EXECUTE, close * 0.97),
            ((15, 55), ticks.EXECUTE_HIDDEN, close),
            ((15, 59), ticks.ADD, close * 3.0),
        ):
            ts.append(_ns(d, *when))
            typ.append(kind)
            price.append(round(p * ticks.PRICE_SCALE))
    n = len(ts)
    return ticks.make_batch(
        venue,
        symbol,
        "f",
        seq=np.arange(1, n + 1),
        ts=ts,
        recv_ts=time.time_ns(),
        type=typ,
        price=price,
        size=np.full(n, 100),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TickStore]:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        yield s
    finally:
        s.close()


def test_returns_are_log_ratios_of_the_last_trade_of_each_common_day(store: TickStore) -> None:
    a, b = _closes("AAA"), _closes("BBB")
    missing = TRADING[10]
    del b[missing]  # BBB did not trade that day: the day is dropped for both
    store.insert([_batch("AAA", a), _batch("BBB", b)])
    returns, dates = bar_returns(store.store, ["BBB", "AAA"], lookback_days=250, min_days=5)
    common = [d for d in TRADING if d != missing]
    assert dates.tolist() == common[1:]
    pa = np.array([a[d] for d in common])
    pb = np.array([b[d] for d in common])
    np.testing.assert_allclose(returns[:, 0], np.diff(np.log(pb)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(returns[:, 1], np.diff(np.log(pa)), rtol=1e-12, atol=1e-15)
    # The lookback keeps the latest days; end_ns cuts the history at a time.
    last10, d10 = bar_returns(store.store, ["AAA", "BBB"], lookback_days=10, min_days=5)
    assert d10.tolist() == common[-10:]
    np.testing.assert_allclose(last10[:, 0], np.diff(np.log(pa))[-10:], rtol=1e-12)
    _, upto = bar_returns(
        store.store, ["AAA"], lookback_days=5, min_days=5, end_ns=_ns(TRADING[20], 12)
    )
    # TRADING[20]'s close (15:55) is after the cut: its last trade before 12:00 is the
    # 10:00 one, so the day is there, priced at that trade.
    assert upto.tolist() == TRADING[16:21]
    r_cut, _ = bar_returns(
        store.store, ["AAA"], lookback_days=1, min_days=1, end_ns=_ns(TRADING[20], 12)
    )
    assert r_cut[0, 0] == pytest.approx(math.log(a[TRADING[20]] * 0.97 / a[TRADING[19]]), abs=2e-6)


def test_the_day_is_the_new_york_date(store: TickStore) -> None:
    a = _closes("AAA")
    store.insert([_batch("AAA", a)])
    # A trade at 21:00 New York (01:00 UTC the next day) is the same New York day's close.
    late = _ns(TRADING[-1], 21)
    store.insert(
        [
            ticks.make_batch(
                "test",
                "AAA",
                "g",
                seq=[10_000],
                ts=[late],
                recv_ts=time.time_ns(),
                type=[ticks.TRADE_PRINT],
                price=[round(a[TRADING[-1]] * 1.1 * ticks.PRICE_SCALE)],
                size=[1],
            )
        ]
    )
    r, dates = bar_returns(store.store, ["AAA"], lookback_days=1, min_days=1)
    assert dates.tolist() == [TRADING[-1]]
    assert r[0, 0] == pytest.approx(math.log(a[TRADING[-1]] * 1.1 / a[TRADING[-2]]), abs=2e-6)
    # In UTC that trade is a day of its own.
    _, utc = bar_returns(store.store, ["AAA"], lookback_days=1, min_days=1, timezone="UTC")
    assert utc.tolist() == [TRADING[-1] + dt.timedelta(days=1)]


def test_venue_selects_the_ticks_of_one_venue(store: TickStore) -> None:
    a = _closes("AAA")
    other = {d: p * 2.0 for d, p in list(a.items())[:8]}
    store.insert([_batch("AAA", a, venue="x"), _batch("AAA", other, venue="y")])
    r, _ = bar_returns(store.store, ["AAA"], venue="x", lookback_days=250, min_days=5)
    pa = np.array(list(a.values()))
    np.testing.assert_allclose(r[:, 0], np.diff(np.log(pa)), rtol=1e-12, atol=1e-15)
    with pytest.raises(
        ValueError,
        match=r"^symbols\[0\]: 'AAA' has 8 daily closes in the store at venue 'y', need .* 21",
    ):
        bar_returns(store.store, ["AAA"], venue="y")


def test_too_little_history_names_the_symbol(store: TickStore) -> None:
    a = _closes("AAA")
    short = dict(list(_closes("CCC").items())[-6:])
    store.insert([_batch("AAA", a), _batch("CCC", short)])
    with pytest.raises(
        ValueError,
        match=r"^symbols\[1\]: 'CCC' has 6 daily closes .* need at least 21 for 20 returns",
    ):
        bar_returns(store.store, ["AAA", "CCC"])
    with pytest.raises(ValueError, match=r"^symbols\[0\]: 'ZZZ' has 0 daily closes"):
        bar_returns(store.store, ["ZZZ"])
    # Enough each, too few in common.
    early = dict(list(_closes("DDD").items())[:17])
    late = dict(list(_closes("EEE").items())[-15:])
    store.insert([_batch("DDD", early), _batch("EEE", late)])
    with pytest.raises(ValueError, match=r"^symbols: only 2 daily closes are common"):
        bar_returns(store.store, ["DDD", "EEE"], min_days=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbols": []}, r"^symbols: must not be empty"),
        ({"symbols": "AAA"}, r"^symbols: expected a list"),
        ({"symbols": ["AAA", "AAA"]}, r"^symbols\[1\]: 'AAA' is listed twice"),
        ({"symbols": ["AAA", ""]}, r"^symbols\[1\]: expected a non-empty string"),
        ({"lookback_days": 0}, r"^lookback_days: must be in"),
        ({"lookback_days": 2.5}, r"^lookback_days: expected a whole number"),
        ({"min_days": 300}, r"^min_days: must be in \[1, 250\]"),
        ({"timezone": "Mars/Olympus"}, r"^timezone: unknown time zone"),
        ({"end_ns": -1}, r"^end_ns:"),
    ],
)
def test_bad_arguments_name_the_field(
    store: TickStore, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"symbols": ["AAA"], **kwargs}
    with pytest.raises(ValueError, match=message):
        bar_returns(store.store, **args)  # type: ignore[arg-type]


def test_a_short_lookback_lowers_the_default_minimum(store: TickStore) -> None:
    """min_days defaults to min(20, lookback_days): a 5-day lookback needs 6 closes, not 21
    (the default of 20 used to be out of range for it: ``min_days: must be in [1, 5]``)."""
    a = dict(list(_closes("AAA").items())[-6:])
    store.insert([_batch("AAA", a)])
    r, dates = bar_returns(store.store, ["AAA"], lookback_days=5)
    assert dates.tolist() == list(a)[1:]
    np.testing.assert_allclose(r[:, 0], np.diff(np.log(list(a.values()))), rtol=1e-12)
    with pytest.raises(
        ValueError, match=r"^symbols\[0\]: 'AAA' has 6 daily closes .* need at least 8"
    ):
        bar_returns(store.store, ["AAA"], lookback_days=7)


def test_daily_closes_are_what_bar_returns_differences(store: TickStore) -> None:
    a, b = _closes("AAA"), _closes("BBB")
    del a[TRADING[3]]
    store.insert([_batch("AAA", a), _batch("BBB", b)])
    dates, closes = daily_closes(store.store, ["BBB", "AAA"], lookback_days=12, min_days=5)
    common = [d for d in TRADING if d in a][-13:]
    assert dates.tolist() == common
    np.testing.assert_allclose(closes, [[b[d], a[d]] for d in common], rtol=1e-12)
    returns, rdates = bar_returns(store.store, ["BBB", "AAA"], lookback_days=12, min_days=5)
    again, adates = closes_returns(dates, closes)
    np.testing.assert_array_equal(returns, again)
    assert rdates.tolist() == adates.tolist() == common[1:]
    assert from_yyyymmdd(to_yyyymmdd(dates)).tolist() == common
    assert to_yyyymmdd(dates[:1]) == [int(common[0].strftime("%Y%m%d"))]


@pytest.mark.parametrize(
    ("dates", "closes", "message"),
    [
        (["2026-03-02"], [[1.0]], r"^closes: need at least 2 days"),
        (["2026-03-02", "2026-03-03"], [[1.0, 2.0]], r"^closes: expected 2 rows"),
        (["2026-03-02", "2026-03-03"], [[1.0], [0.0]], r"^closes: every close must be"),
        (["2026-03-02", "2026-03-03"], [[1.0], [math.nan]], r"^closes: every close must be"),
        (["2026-03-03", "2026-03-02"], [[1.0], [2.0]], r"^dates: must be strictly ascending"),
    ],
)
def test_closes_returns_checks_its_input(
    dates: list[str], closes: list[list[float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        closes_returns(np.array(dates, dtype="datetime64[D]"), np.array(closes))


def test_yyyymmdd_that_is_no_date_is_named() -> None:
    with pytest.raises(ValueError, match=r"^dates\[1\]: 20260230 is not a yyyymmdd date"):
        from_yyyymmdd([20260227, 20260230])
