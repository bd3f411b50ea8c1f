"""The market-data service's ``marketdata.v1.daily_closes`` reply (services/marketdata/closes.py)
against a real embedded chDB tick store filled by the service's own TickStore: the aligned daily
closes the library computes, in the events.v1 DailyCloses layout, and bad requests named by
their field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tradecore.risk.history import bar_returns, closes_returns, from_yyyymmdd
from tradecore.store import default_dsn
from tradecore_api.events.v1 import market_pb2 as events
from tradecore_services.common.errors import status_for
from tradecore_services.marketdata.closes import MAX_REPLY_CLOSES, daily_closes_reply
from tradecore_services.marketdata.store import TickStore

from tests.unit.test_risk_history import TRADING, _batch, _closes, _ns


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TickStore]:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        yield s
    finally:
        s.close()


def test_the_reply_is_the_aligned_closes_row_major(store: TickStore) -> None:
    a, b = _closes("AAA"), _closes("BBB")
    missing = TRADING[7]
    del b[missing]
    store.insert([_batch("AAA", a), _batch("BBB", b)])
    reply = daily_closes_reply(
        store.store, events.DailyClosesRequest(symbols=["BBB", "AAA"], lookback_days=10)
    )
    common = [d for d in TRADING if d != missing][-11:]
    assert list(reply.symbols) == ["BBB", "AAA"]
    assert list(reply.dates) == [int(d.strftime("%Y%m%d")) for d in common]
    assert reply.timezone == "America/New_York"
    expected = [[b[d], a[d]] for d in common]
    np.testing.assert_allclose(np.reshape(reply.closes, (11, 2)), expected, rtol=1e-12)
    # The receiver's returns are bar_returns over the same store.
    returns, dates = closes_returns(
        from_yyyymmdd(reply.dates), np.reshape(reply.closes, (len(reply.dates), 2))
    )
    want, want_dates = bar_returns(store.store, ["BBB", "AAA"], lookback_days=10)
    np.testing.assert_array_equal(returns, want)
    assert dates.tolist() == want_dates.tolist()


def test_defaults_and_filters(store: TickStore) -> None:
    a = _closes("AAA")
    store.insert([_batch("AAA", a), _batch("AAA", {d: 2 * p for d, p in a.items()}, venue="y")])
    # lookback 0: 250 (every stored day here); min_days 0: min(20, lookback).
    reply = daily_closes_reply(store.store, events.DailyClosesRequest(symbols=["AAA"], venue="y"))
    assert len(reply.dates) == len(TRADING)
    np.testing.assert_allclose(reply.closes, [2 * a[d] for d in TRADING], rtol=1e-12)
    cut = daily_closes_reply(
        store.store,
        events.DailyClosesRequest(
            symbols=["AAA"],
            lookback_days=3,
            end_time_ns=_ns(TRADING[20], 9),
            venue="test",
            timezone="UTC",
        ),
    )
    assert list(cut.dates) == [int(d.strftime("%Y%m%d")) for d in TRADING[16:20]]
    assert cut.timezone == "UTC"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"symbols": []}, r"^symbols: must not be empty"),
        ({"symbols": ["AAA", "ZZZ"]}, r"^symbols\[1\]: 'ZZZ' has 0 daily closes in the store"),
        ({"symbols": ["AAA", "AAA"]}, r"^symbols\[1\]: 'AAA' is listed twice"),
        ({"symbols": ["AAA"], "min_days": 40}, r"^symbols\[0\]: 'AAA' has \d+ daily closes .* 41"),
        ({"symbols": ["AAA"], "lookback_days": 5, "min_days": 6}, r"^min_days: must be in"),
        ({"symbols": ["AAA"], "lookback_days": 10_001}, r"^lookback_days: must be in"),
        (
            {"symbols": [f"S{i}" for i in range(400)]},
            rf"^lookback_days: 251 closes x 400 symbols exceed the {MAX_REPLY_CLOSES} closes",
        ),
        ({"symbols": ["AAA"], "end_time_ns": -1}, r"^end_time_ns: must be >= 0"),
        ({"symbols": ["AAA"], "timezone": "Mars/Olympus"}, r"^timezone: unknown time zone"),
    ],
)
def test_bad_requests_name_the_field(
    store: TickStore, fields: dict[str, object], message: str
) -> None:
    store.insert([_batch("AAA", _closes("AAA"))])
    with pytest.raises(ValueError, match=message) as info:
        daily_closes_reply(store.store, events.DailyClosesRequest(**fields))  # type: ignore[arg-type]
    assert status_for(info.value).name == "INVALID_ARGUMENT"
