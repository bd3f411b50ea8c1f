"""Alpaca adapter throughput, each against alpaca-py's own parsing measured in the same run.

- history: AlpacaFeed walking 60k quotes+trades (10k-row pages, as Alpaca serves them) from the
  local fake server into sequenced protobuf events, against alpaca-py's ``get_stock_quotes`` /
  ``get_stock_trades`` returning its pydantic models (``raw_data=False``) over the same pages.
- mapping: raw record → protobuf ``Quote`` (``AlpacaFeed.to_event``) against raw record →
  alpaca-py ``Quote`` model, no I/O.

Run: ``python -m pytest bench/test_bench_alpaca.py -q -s`` (figures also go to
bench/results/alpaca.json)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models.quotes import Quote as AlpacaQuote
from alpaca.data.requests import StockQuotesRequest, StockTradesRequest
from tradecore_services.marketdata.feeds.alpaca import AlpacaFeed

from tests.fakes.alpaca_server import FakeAlpaca, fake_alpaca, rfc3339

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
T0_NS = 1_704_205_800_000_000_000
N_PER_KIND_SYMBOL = 15_000  # 2 symbols x (quotes + trades) = 60k events
RESULTS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAlpaca]:
    with fake_alpaca(page_size=10_000) as f:
        for s, off in (("AAPL", 0), ("MSFT", 7)):
            ts = [T0_NS + i * 100_003 + off for i in range(N_PER_KIND_SYMBOL)]
            f.quotes[s] = [
                {"bp": 100.0, "bs": 2, "ap": 100.01, "as": 3, "ax": "V", "bx": "V", "c": ["R"],
                 "z": "C", "t": t}
                for t in ts
            ]  # fmt: skip
            f.trades[s] = [
                {"p": 100.005, "s": 10, "i": i, "x": "V", "c": ["@"], "z": "C", "t": t + 50}
                for i, t in enumerate(ts)
            ]
        yield f


def _record(name: str, events: int, seconds: float) -> float:
    rate = events / seconds
    RESULTS[name] = {"events": events, "median_s": seconds, "events_per_s": rate}
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/alpaca.json").write_text(json.dumps(RESULTS, indent=2))
    return rate


@pytest.mark.benchmark(group="alpaca-history")
def test_history_alpaca_feed(benchmark: Any, fake: FakeAlpaca) -> None:
    def run() -> int:
        feed = AlpacaFeed(
            ["AAPL", "MSFT"],
            "history",
            api_key=fake.key,
            secret_key=fake.secret,
            rest_url=fake.rest_url,
            start=T0,
            end=T0 + timedelta(hours=1),
            env={},
        )

        async def go() -> int:
            return sum([len(b) async for b in feed.events()])

        return asyncio.run(go())

    n = benchmark.pedantic(run, rounds=3, iterations=1)
    assert n == 4 * N_PER_KIND_SYMBOL
    rate = _record("history_alpaca_feed", n, benchmark.stats.stats.median)
    benchmark.extra_info["events_per_s"] = rate


@pytest.mark.peer
@pytest.mark.benchmark(group="alpaca-history")
def test_history_alpaca_py_models(benchmark: Any, fake: FakeAlpaca) -> None:
    client = StockHistoricalDataClient(fake.key, fake.secret, url_override=fake.rest_url)

    def run() -> int:
        args = dict(symbol_or_symbols=["AAPL", "MSFT"], start=T0, end=T0 + timedelta(hours=1))
        quotes = client.get_stock_quotes(StockQuotesRequest(**args, feed="iex"))
        trades = client.get_stock_trades(StockTradesRequest(**args, feed="iex"))
        return sum(len(v) for v in quotes.data.values()) + sum(  # type: ignore[union-attr]
            len(v)
            for v in trades.data.values()  # type: ignore[union-attr]
        )

    n = benchmark.pedantic(run, rounds=3, iterations=1)
    assert n == 4 * N_PER_KIND_SYMBOL
    peer = _record("history_alpaca_py_models", n, benchmark.stats.stats.median)
    ours = RESULTS.get("history_alpaca_feed", {}).get("events_per_s")
    if ours:
        RESULTS["history_ratio_feed_over_alpaca_py"] = ours / peer
        benchmark.extra_info["ratio_feed_over_peer"] = ours / peer
        print(f"\nhistory: AlpacaFeed {ours:,.0f} ev/s, alpaca-py models {peer:,.0f} ev/s, "
              f"ratio {ours / peer:.2f}")  # fmt: skip


RAW = [
    {"S": "AAPL", "bp": 100.0, "bs": 2, "ap": 100.01, "as": 3, "ax": "V", "bx": "V", "c": ["R"],
     "z": "C", "t": rfc3339(T0_NS + i * 1_003)}
    for i in range(20_000)
]  # fmt: skip


@pytest.mark.benchmark(group="alpaca-mapping")
def test_mapping_to_protobuf(benchmark: Any) -> None:
    feed = AlpacaFeed(["AAPL"], api_key="k", secret_key="s", env={})

    def run() -> int:
        return len([feed.to_event("q", "AAPL", r, 0) for r in RAW])

    assert benchmark.pedantic(run, rounds=5, iterations=1) == len(RAW)
    rate = _record("mapping_to_protobuf", len(RAW), benchmark.stats.stats.median)
    benchmark.extra_info["events_per_s"] = rate


@pytest.mark.peer
@pytest.mark.benchmark(group="alpaca-mapping")
def test_mapping_alpaca_py_model(benchmark: Any) -> None:
    def run() -> int:
        return len([AlpacaQuote("AAPL", dict(r)) for r in RAW])

    assert benchmark.pedantic(run, rounds=5, iterations=1) == len(RAW)
    peer = _record("mapping_alpaca_py_model", len(RAW), benchmark.stats.stats.median)
    ours = RESULTS.get("mapping_to_protobuf", {}).get("events_per_s")
    if ours:
        RESULTS["mapping_ratio_protobuf_over_alpaca_py"] = ours / peer
        benchmark.extra_info["ratio_protobuf_over_peer"] = ours / peer
        print(f"\nmapping: to protobuf {ours:,.0f} ev/s, alpaca-py model {peer:,.0f} ev/s, "
              f"ratio {ours / peer:.2f}")  # fmt: skip
