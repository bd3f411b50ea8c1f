"""AlpacaFeed (alpaca-py underneath) against a local fake of Alpaca's REST and stream API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tradecore_api.events.v1 import common_pb2, market_pb2
from tradecore_services.marketdata.feeds.alpaca import (
    SEQUENCE_EPOCH_US,
    TIE_BITS,
    AlpacaAuthError,
    AlpacaFeed,
    Sequencer,
    parse_rfc3339_ns,
)

from tests.fakes.alpaca_server import FakeAlpaca, fake_alpaca

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
T0_NS = 1_704_205_800_000_000_000
H = 3_600_000_000_000  # one hour in ns


def served_data() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Quotes and trades over three hours with the awkward cases: events on the range ends and a
    window boundary, a quote and a trade at the same ns, two quotes in one microsecond."""
    quotes: dict[str, list[dict[str, Any]]] = {"AAPL": [], "MSFT": []}
    trades: dict[str, list[dict[str, Any]]] = {"AAPL": [], "MSFT": []}
    for i in range(12):
        t = T0_NS + i * H // 4 + 123_456_789
        quotes["AAPL"].append(
            {"bp": 180.0 + i / 100, "bs": 3, "ap": 180.05 + i / 100, "as": 2, "t": t}
        )
        quotes["MSFT"].append({"bp": 370.0 + i / 100, "bs": 1, "ap": 370.1, "as": 4, "t": t + 7})
    for i in range(8):
        t = T0_NS + i * H // 3 + 555
        trades["AAPL"].append({"p": 180.01 + i / 100, "s": 10 + i, "i": 1000 + i, "t": t})
        trades["MSFT"].append({"p": 370.02, "s": 5, "i": 2000 + i, "t": t + 1})
    quotes["AAPL"].append({"bp": 181.0, "bs": 1, "ap": 181.2, "as": 1, "t": T0_NS})  # == start
    quotes["AAPL"].append({"bp": 181.0, "bs": 1, "ap": 181.3, "as": 1, "t": T0_NS + H})  # window
    quotes["AAPL"].append({"bp": 181.0, "bs": 1, "ap": 181.4, "as": 1, "t": T0_NS + 3 * H})  # end
    tie = T0_NS + H + 777_000_100  # a quote and a trade at the same ns, a second quote 1 µs-mate
    quotes["AAPL"].append({"bp": 182.0, "bs": 5, "ap": 182.1, "as": 6, "t": tie})
    quotes["AAPL"].append({"bp": 182.0, "bs": 5, "ap": 182.2, "as": 6, "t": tie + 300})
    trades["AAPL"].append({"p": 182.05, "s": 7, "i": 99, "t": tie, "tks": "S"})
    return quotes, trades


def expected(quotes: dict[str, Any], trades: dict[str, Any], lo: int, hi: int) -> list[tuple]:
    rows = [
        (r["t"], s, kind, r["bp"] if kind == 0 else r["p"])
        for kind, src in ((0, quotes), (1, trades))
        for s, records in src.items()
        for r in records
        if lo <= r["t"] < hi
    ]
    return sorted(rows)


def key(e: market_pb2.Quote | market_pb2.Trade) -> tuple:
    kind = 0 if isinstance(e, market_pb2.Quote) else 1
    price = e.bid_price if isinstance(e, market_pb2.Quote) else e.price
    return (e.exchange_time_ns, e.symbol, kind, price)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with fake_alpaca(page_size=4) as f:
        f.quotes, f.trades = served_data()
        yield f


def history(
    fake: FakeAlpaca, start: datetime = T0, end: datetime | None = None, **kw: Any
) -> AlpacaFeed:
    args: dict[str, Any] = dict(
        api_key=fake.key,
        secret_key=fake.secret,
        rest_url=fake.rest_url,
        stream_url=fake.stream_url,
        start=start,
        end=end or T0 + timedelta(hours=3),
        history_window=timedelta(hours=1),
        batch_size=5,
        env={},
    )
    args.update(kw)
    return AlpacaFeed(["AAPL", "MSFT"], "history", **args)


async def drain(feed: AlpacaFeed) -> list[list[market_pb2.Quote | market_pb2.Trade]]:
    return [batch async for batch in feed.events()]


def test_history_pages_in_order_with_deterministic_sequences(fake: FakeAlpaca) -> None:
    feed = history(fake)
    batches = asyncio.run(drain(feed))
    events = [e for b in batches for e in b]
    want = expected(fake.quotes, fake.trades, T0_NS, T0_NS + 3 * H)
    assert [key(e) for e in events] == want  # every served event in [start, end), in time order
    assert all(0 < len(b) <= 5 for b in batches)
    assert feed.stats["malformed"] == 0
    pages = [r for r in fake.requests if r["kind"] == "quotes" and "page_token" in r]
    assert len(pages) >= 6  # alpaca-py walked next_page_token across several pages per window
    assert {r["feed"] for r in fake.requests} == {"iex"}

    for symbol in ("AAPL", "MSFT"):
        seqs = [e.sequence for e in events if e.symbol == symbol]
        assert seqs == sorted(set(seqs)), symbol  # unique and increasing per symbol
    first = events[0]
    assert first.exchange_time_ns == T0_NS
    assert first.sequence == (T0_NS // 1000 - SEQUENCE_EPOCH_US) << TIE_BITS
    tie = T0_NS + H + 777_000_100
    at_tie = [e for e in events if e.symbol == "AAPL" and tie <= e.exchange_time_ns < tie + 1000]
    assert [type(e).__name__ for e in at_tie] == ["Quote", "Trade", "Quote"]
    base = (tie // 1000 - SEQUENCE_EPOCH_US) << TIE_BITS
    assert [e.sequence for e in at_tie] == [base, base + 1, base + 2]

    again = [e for b in asyncio.run(drain(history(fake))) for e in b]
    assert [(key(e), e.sequence) for e in again] == [(key(e), e.sequence) for e in events]

    # A restart from a later point in the range gives the same events the same sequences.
    later = T0 + timedelta(minutes=50, microseconds=3)
    part = [e for b in asyncio.run(drain(history(fake, start=later))) for e in b]
    full = {key(e): e.sequence for e in events}
    assert part and all(full[key(e)] == e.sequence for e in part)
    assert [key(e) for e in part] == expected(
        fake.quotes, fake.trades, T0_NS + 50 * 60 * 10**9 + 3000, T0_NS + 3 * H
    )


def test_history_maps_fields_exactly(fake: FakeAlpaca) -> None:
    events = [e for b in asyncio.run(drain(history(fake))) for e in b]
    q = next(e for e in events if isinstance(e, market_pb2.Quote) and e.symbol == "MSFT")
    assert (q.venue, q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        "ALPACA",
        370.0,
        100,  # one round lot
        370.1,
        400,
    )
    assert q.exchange_time_ns == T0_NS + 123_456_789 + 7  # nanoseconds survive
    assert q.receive_time_ns > q.exchange_time_ns
    t = next(
        e for e in events if isinstance(e, market_pb2.Trade) and e.sequence and e.price == 182.05
    )
    assert (t.size, t.aggressor, t.exchange_time_ns) == (
        7,
        common_pb2.SELL,
        T0_NS + H + 777_000_100,
    )
    plain = next(e for e in events if isinstance(e, market_pb2.Trade) and e.symbol == "MSFT")
    assert (plain.price, plain.size, plain.aggressor) == (370.02, 5, common_pb2.SIDE_UNSPECIFIED)

    shares = [e for b in asyncio.run(drain(history(fake, quote_size_multiplier=1))) for e in b]
    assert (
        next(e for e in shares if isinstance(e, market_pb2.Quote) and e.symbol == "MSFT").bid_size
        == 1
    )


def test_history_drops_and_counts_malformed_records(fake: FakeAlpaca) -> None:
    want = expected(fake.quotes, fake.trades, T0_NS, T0_NS + 3 * H)
    fake.quotes["AAPL"].append({"bs": 1, "ap": 1.0, "as": 1, "t": T0_NS + 5})  # no bid price
    fake.trades["MSFT"].append({"p": -1.0, "s": 1, "t": T0_NS + 9})  # negative price
    feed = history(fake)
    events = [e for b in asyncio.run(drain(feed)) for e in b]
    assert feed.stats["malformed"] == 2
    assert [key(e) for e in events] == want


def test_history_wrong_credentials_is_a_clear_error(fake: FakeAlpaca) -> None:
    with pytest.raises(AlpacaAuthError, match=r"rejected the credentials \(HTTP 403\)"):
        asyncio.run(drain(history(fake, secret_key="wrong")))


def test_credentials_from_environment(fake: FakeAlpaca) -> None:
    env = {
        "ALPACA_API_KEY_ID": "other",
        "ALPACA_API_SECRET_KEY": "other",
        "TRADECORE_ALPACA_API_KEY_ID": fake.key,
        "TRADECORE_ALPACA_API_SECRET_KEY": fake.secret,
        "TRADECORE_ALPACA_REST_URL": fake.rest_url,
        "TRADECORE_ALPACA_SYMBOLS": "msft",
    }
    feed = AlpacaFeed(None, "history", start=T0, end=T0 + timedelta(hours=1), env=env)
    assert feed.symbols == ["MSFT"]
    events = [e for b in asyncio.run(drain(feed)) for e in b]
    assert events and {e.symbol for e in events} == {"MSFT"}
    plain = {"ALPACA_API_KEY_ID": "k", "ALPACA_API_SECRET_KEY": "s"}
    assert AlpacaFeed(["A"], env=plain)._key == "k"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(symbols=[]), "alpaca.symbols must not be empty"),
        (dict(symbols="AAPL"), "alpaca.symbols must not be empty"),
        (dict(symbols=["AAPL", "bad sym"]), r"alpaca.symbols\[1\] must be a ticker"),
        (dict(symbols=["AAPL", "aapl"]), r"alpaca.symbols\[1\] repeats AAPL"),
        (dict(mode="replay"), "alpaca.mode must be 'live' or 'history'"),
        (dict(api_key=None), "alpaca.api_key must be set"),
        (dict(secret_key=""), "alpaca.secret_key must be set"),
        (dict(feed="otc"), "alpaca.feed must be 'iex' or 'sip'"),
        (dict(rest_url="ftp://x"), "alpaca.rest_url must be a http"),
        (dict(stream_url="http://x"), "alpaca.stream_url must be a ws"),
        (dict(batch_size=0), "alpaca.batch_size must be an integer >= 1"),
        (dict(flush_interval=0), "alpaca.flush_interval must be > 0"),
        (dict(flush_interval=float("nan")), "alpaca.flush_interval must be > 0"),
        (dict(quote_size_multiplier=0), "alpaca.quote_size_multiplier must be"),
        (dict(history_window=timedelta(0)), "alpaca.history_window must be >= 1 s"),
        (dict(request_timeout=float("inf")), "alpaca.request_timeout must be finite"),
        (dict(venue=" "), "alpaca.venue must not be empty"),
        (dict(mode="history"), "alpaca.start must be set in history mode"),
        (dict(mode="history", start="yesterday"), "alpaca.start must be an ISO 8601"),
        (dict(mode="history", start="2010-01-01"), "alpaca.start must not be before 2015"),
        (dict(mode="history", start=T0, end=T0), r"alpaca.end \(.*\) must be after alpaca.start"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = dict(symbols=["AAPL"], api_key="k", secret_key="s", env={})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        AlpacaFeed(**args)


def test_timestamps_parse_to_exact_nanoseconds() -> None:
    assert parse_rfc3339_ns("2024-01-02T14:30:00Z") == T0_NS
    assert parse_rfc3339_ns("2024-01-02T14:30:00.000000001Z") == T0_NS + 1
    assert parse_rfc3339_ns("2024-01-02T09:30:00.5-05:00") == T0_NS + 500_000_000
    assert parse_rfc3339_ns("2024-01-02T14:30:00.123456789+00:00") == T0_NS + 123_456_789
    with pytest.raises(ValueError, match="not RFC 3339"):
        parse_rfc3339_ns("2024-01-02 14:30")


def test_sequencer_stays_unique_and_increasing_when_events_arrive_out_of_order() -> None:
    seq = Sequencer()
    base = (T0_NS // 1000 - SEQUENCE_EPOCH_US) << TIE_BITS
    assert seq.next("A", T0_NS + 5) == base
    assert seq.next("A", T0_NS + 900) == base + 1  # same microsecond
    assert seq.next("B", T0_NS) == base  # symbols are independent
    assert seq.next("A", T0_NS + 2000) == base + (2 << TIE_BITS)
    assert seq.next("A", T0_NS) == base + (2 << TIE_BITS) + 1  # late: previous + 1
    assert seq.next("A", T0_NS + 3000) == base + (3 << TIE_BITS)


def test_events_can_be_iterated_once() -> None:
    feed = AlpacaFeed(["AAPL"], api_key="k", secret_key="s", env={})
    feed.events()
    with pytest.raises(RuntimeError, match="only once"):
        feed.events()


# ---------------------------------------------------------------------------- live


def live(fake: FakeAlpaca, **kw: Any) -> AlpacaFeed:
    args: dict[str, Any] = dict(
        api_key=fake.key,
        secret_key=fake.secret,
        stream_url=fake.stream_url,
        flush_interval=0.02,
        env={},
    )
    args.update(kw)
    return AlpacaFeed(["AAPL", "MSFT"], "live", **args)


class Consumer:
    """Iterates a feed in a task, keeping every batch and how the iterator ended."""

    def __init__(self, feed: AlpacaFeed) -> None:
        self.feed = feed
        self.batches: list[list[market_pb2.Quote | market_pb2.Trade]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.feed.events():
            self.batches.append(batch)

    @property
    def events(self) -> list[market_pb2.Quote | market_pb2.Trade]:
        return [e for b in self.batches for e in b]

    async def until(self, n: int, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while len(self.events) < n:
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"feed ended after {len(self.events)} events")
                await asyncio.sleep(0.01)

        await asyncio.wait_for(wait(), timeout)


def frames(start_ns: int, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        t = start_ns + i * 1_000_003
        if i % 2 == 0:
            out.append(
                {"T": "q", "S": "AAPL", "bp": 100 + i, "bs": 2, "ap": 101 + i, "as": 3, "t": t}
            )
        else:
            out.append({"T": "t", "S": "MSFT", "p": 200 + i, "s": 50, "i": i, "x": "V", "t": t})
    return out


def run_checked(coro: Any) -> None:
    """asyncio.run, then check the feed left no task or thread behind."""
    threads = threading.active_count()
    asyncio.run(coro)
    assert threading.active_count() == threads


def test_live_stream_quotes_trades_and_close(fake: FakeAlpaca) -> None:
    async def go() -> None:
        feed = live(fake)
        consumer = Consumer(feed)
        await asyncio.to_thread(fake.wait_subscribed, 1)
        await asyncio.to_thread(fake.push, frames(T0_NS + 17, 6))
        await asyncio.to_thread(
            fake.push, [{"T": "q", "S": "TSLA", "bp": 1, "bs": 1, "ap": 2, "as": 1, "t": T0_NS}]
        )
        await consumer.until(6)
        await feed.close()
        await asyncio.wait_for(consumer.task, 5)  # the iterator ends after close()
        events = consumer.events
        assert len(events) == 6
        q, t = events[0], events[1]
        assert isinstance(q, market_pb2.Quote) and isinstance(t, market_pb2.Trade)
        assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
            "AAPL",
            100,
            200,
            101,
            300,
        )
        assert q.exchange_time_ns == T0_NS + 17  # nanoseconds from the msgpack timestamp
        assert (t.symbol, t.price, t.size, t.exchange_time_ns) == (
            "MSFT",
            201,
            50,
            T0_NS + 1_000_020,
        )
        assert q.sequence == (T0_NS // 1000 - SEQUENCE_EPOCH_US) << TIE_BITS
        assert all(e.venue == "ALPACA" and e.receive_time_ns > 0 for e in events)
        await feed.close()  # idempotent
        others = [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]
        assert others == []

    run_checked(go())


def test_live_batches_by_size_then_by_time(fake: FakeAlpaca) -> None:
    async def go() -> None:
        feed = live(fake, batch_size=3, flush_interval=0.2)
        consumer = Consumer(feed)
        await asyncio.to_thread(fake.wait_subscribed, 1)
        await asyncio.to_thread(fake.push, frames(T0_NS, 7))
        await consumer.until(7)
        assert [len(b) for b in consumer.batches] == [3, 3, 1]
        await feed.close()
        await asyncio.wait_for(consumer.task, 5)

    run_checked(go())


def test_live_wrong_credentials_is_a_clear_error(fake: FakeAlpaca) -> None:
    async def go() -> None:
        feed = live(fake, secret_key="wrong")
        with pytest.raises(AlpacaAuthError, match="refused the login: auth failed"):
            await asyncio.wait_for(drain(feed), 10)

    run_checked(go())
    assert fake.rejected_logins == 1  # stopped, not retried forever


def test_live_no_sip_subscription_is_a_clear_error(fake: FakeAlpaca) -> None:
    fake.sip_allowed = False

    async def go() -> None:
        with pytest.raises(AlpacaAuthError, match="insufficient subscription"):
            await asyncio.wait_for(drain(live(fake, feed="sip")), 10)

    run_checked(go())


def test_live_reconnects_when_the_server_goes_away(fake: FakeAlpaca) -> None:
    async def go() -> None:
        feed = live(fake)
        consumer = Consumer(feed)
        await asyncio.to_thread(fake.wait_subscribed, 1)
        await asyncio.to_thread(fake.push, frames(T0_NS, 2))
        await consumer.until(2)
        await asyncio.to_thread(fake.stop_stream, True)  # TCP reset mid-stream
        await asyncio.sleep(0.3)
        await asyncio.to_thread(fake.start_stream)  # back on the same port
        await asyncio.to_thread(fake.wait_subscribed, 2, 15)  # alpaca-py reconnected
        await asyncio.to_thread(fake.push, frames(T0_NS + H, 2))
        await consumer.until(4)
        assert feed.stats["connects"] >= 2
        assert [e.exchange_time_ns for e in consumer.events[2:]] == [
            T0_NS + H,
            T0_NS + H + 1_000_003,
        ]
        await feed.close()
        await asyncio.wait_for(consumer.task, 5)

    run_checked(go())


def test_live_close_while_the_server_is_gone_does_not_hang(fake: FakeAlpaca) -> None:
    async def go() -> None:
        feed = live(fake)
        consumer = Consumer(feed)
        await asyncio.to_thread(fake.wait_subscribed, 1)
        await asyncio.to_thread(fake.stop_stream)
        await asyncio.sleep(0.5)  # alpaca-py is now retrying against a closed port
        await asyncio.wait_for(feed.close(), 5)
        await asyncio.wait_for(consumer.task, 5)
        assert consumer.events == []

    run_checked(go())
