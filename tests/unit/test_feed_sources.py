"""Feed sources' checks of their specs and of the events an adapter hands over."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator

import pytest
from tradecore_api.events.v1 import market_pb2
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_services.marketdata.feeds.sources import (
    EventFeedSource,
    FlowThread,
    LobsterSource,
    SyntheticSource,
)

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def generator() -> Iterator[FlowThread]:
    gen = FlowThread()
    yield gen
    gen.close()


class ListFeed:
    """An EventFeed that hands over one batch of given events."""

    venue = "test"

    def __init__(self, events: list[market_pb2.Quote | market_pb2.Trade]) -> None:
        self._events = events

    async def events(self) -> AsyncIterator[list[market_pb2.Quote | market_pb2.Trade]]:
        yield self._events

    async def close(self) -> None:
        return None


def _chunks(events: list[market_pb2.Quote | market_pb2.Trade]) -> list[int]:
    async def run() -> list[int]:
        src = EventFeedSource(ListFeed(events), ["AAA"])
        return [len(c.batch) async for c in src.chunks({})]

    return asyncio.run(run())


def _trade(**kw: float) -> market_pb2.Trade:
    args = {"price": 10.5, "size": 100, "exchange_time_ns": T0, **kw}
    return market_pb2.Trade(venue="test", symbol="AAA", sequence=7, **args)  # type: ignore[arg-type]


def _quote(**kw: float) -> market_pb2.Quote:
    args = {"bid_price": 10.0, "ask_price": 10.1, "bid_size": 1, "ask_size": 2,
            "exchange_time_ns": T0, **kw}  # fmt: skip
    return market_pb2.Quote(venue="test", symbol="AAA", sequence=8, **args)  # type: ignore[arg-type]


def test_event_feed_data_is_checked() -> None:
    assert _chunks([_trade(), _quote(), _quote(bid_price=0, bid_size=0)]) == [3]
    bad = [
        (_trade(price=math.nan), "test/AAA sequence 7: trade field 'price' nan"),
        (_trade(price=-579.4), "trade field 'price' -579.4 is not finite and > 0"),
        (_trade(price=math.inf), "trade field 'price' inf"),
        (_trade(size=0), "trade field 'size' 0 is not > 0"),
        (_trade(exchange_time_ns=-(2**63)), "field 'exchange_time_ns'"),
        (_quote(ask_price=math.nan), "sequence 8: quote field 'ask_price' nan"),
        (_quote(bid_size=-1), "quote field 'bid_size' -1 is negative"),
    ]
    for event, match in bad:
        with pytest.raises(ValueError, match=match.replace("(", r"\(")):
            _chunks([_trade(), event])


@pytest.mark.parametrize(
    ("rate", "count", "match"),
    [
        (1e-300, 10, "synthetic.rate must be between 0.001 and 1e\\+09"),
        (math.nan, 10, "synthetic.rate must be finite and > 0"),
        (2e9, 10, "synthetic.rate must be between"),
        (0.01, 10**7, "synthetic.count / synthetic.rate is 1e\\+09 s"),
    ],
)
def test_synthetic_spec_bounds(rate: float, count: int, match: str, generator: FlowThread) -> None:
    spec = pb.SyntheticFeedSpec(symbols=["A"], rate=rate, count=count)
    with pytest.raises(ValueError, match=match):
        SyntheticSource(spec, T0, generator)


def test_synthetic_session_is_seed_and_start(generator: FlowThread) -> None:
    spec = pb.SyntheticFeedSpec(symbols=["A"], rate=100, count=10, seed=42)
    assert SyntheticSource(spec, T0, generator).session == f"42@{T0}"


def test_lobster_path_length() -> None:
    spec = pb.LobsterFeedSpec(symbol="X", messages_path="/" + "x" * 5000, book_path="/b.csv")
    with pytest.raises(ValueError, match=r"lobster\.messages_path is 5001 bytes long"):
        LobsterSource(spec)
