"""MarketDataService with the real mesh: a symbol's trading days are kept apart, feed data and
specs are checked before anything is stored, requests at the edges of their domains get an
answer or a 400 naming the field, and QueryTicks messages stay under gRPC's default limit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tradecore import lobster
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_services.marketdata.logic import MAX_TICKS_MESSAGE_BYTES

from tests.integration.test_marketdata_mesh import (
    assert_bars_equal,
    http_get,
    numpy_bars,
    rfc3339,
    wait_feed,
)
from tests.mesh import Mesh
from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stub(mesh: Mesh) -> Any:
    from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

    with mesh.channel() as ch:  # default options: 4 MiB receive limit
        yield pb_grpc.MarketDataServiceStub(ch)


@pytest.fixture(scope="module")
def goog() -> tuple[Path, Path]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return d / GOOG.format("message"), d / GOOG.format("orderbook")


def start(stub: Any, **spec: Any) -> Any:
    return stub.StartFeed(pb.StartFeedRequest(**spec), timeout=60)


def test_two_trading_days_of_a_symbol_are_both_stored(
    mesh: Mesh, stub: Any, goog: tuple[Path, Path], tmp_path: Path
) -> None:
    # Day 2 is the GOOG day's files renamed to 2012-06-22: the same rows, so the same
    # sequences 1..n, on another day.
    day2 = []
    for p in goog:
        q = tmp_path / p.name.replace("2012-06-21", "2012-06-22")
        shutil.copyfile(p, q)
        day2.append(q)
    msgs = lobster.parse_messages(goog[0])
    n = len(msgs)
    trade = np.isin(msgs.type, [4, 5])
    days = []
    for messages, book in (goog, day2):
        spec = pb.LobsterFeedSpec(symbol="GOOGD", messages_path=str(messages), book_path=str(book))
        st = wait_feed(stub, start(stub, lobster=spec).id)
        assert st.state == pb.DONE, st
        assert st.total == st.published == st.stored == n
        days.append(msgs.time_ns + lobster.midnight_utc_ns(lobster.date_from_name(messages)))
    assert days[1][0] - days[0][0] == 86_400 * 10**9
    for ts in days:
        start_ns, end_ns = int(ts[0]) - 10**9, int(ts[-1]) + 10**9
        span = f"start={rfc3339(start_ns)}&end={rfc3339(end_ns)}"
        code, body = http_get(mesh, f"/v1/marketdata/GOOGD/bars?interval=300s&{span}")
        assert code == 200, body
        want = numpy_bars(ts[trade], msgs.price[trade], msgs.size[trade], 300 * 10**9)
        assert_bars_equal(body["bars"], want)
        code, body = http_get(mesh, f"/v1/marketdata/GOOGD/vwap?{span}")
        p, s = msgs.price[trade] / 1e4, msgs.size[trade]
        assert code == 200 and int(body["trades"]) == int(trade.sum()), body
        assert body["vwap"] == pytest.approx((p * s).sum() / s.sum(), rel=1e-12)
    listed = {(s.venue, s.symbol): s for s in stub.ListSymbols(pb.ListSymbolsRequest()).symbols}
    assert listed[("lobster", "GOOGD")].ticks == 2 * n
    # The book is day 2's: its last message, at day 2's time.
    rows = lobster.parse_book(goog[1], lobster.book_depth(goog[1]))
    book = stub.GetBook(pb.GetBookRequest(symbol="GOOGD", depth=1), timeout=10)
    assert book.exchange_time_ns == int(days[1][-1]) and book.sequence == n
    assert round(book.asks[0].price * 1e4) == rows[-1, 0]
    # Day 2 replayed again stores nothing twice.
    spec = pb.LobsterFeedSpec(symbol="GOOGD", messages_path=str(day2[0]), book_path=str(day2[1]))
    assert wait_feed(stub, start(stub, lobster=spec).id).state == pb.DONE
    listed = {(s.venue, s.symbol): s for s in stub.ListSymbols(pb.ListSymbolsRequest()).symbols}
    assert listed[("lobster", "GOOGD")].ticks == 2 * n


MESSAGES = [f"{34200 + i * 0.5:.1f},1,{i + 1},100,{5000000 - 100 * (i % 5)},1" for i in range(20)]
BOOK_ROW = [5000100, 100, 5000000, 100]


@pytest.mark.parametrize(
    ("line", "message", "book_row", "match"),
    [
        (8, "34203.5,1,8,100,-5794000,1", None, "message file line 8: field 'price' -5794000"),
        (12, "34204.0,1,12,100,5000000,1", None, "message file line 12: field 'time' goes back"),
        (15, None, [4999900, 100, 5000000, 100], "orderbook file line 15: crossed book"),
    ],
)
def test_lobster_files_with_invalid_rows_are_refused_and_nothing_stored(
    mesh: Mesh,
    stub: Any,
    tmp_path: Path,
    line: int,
    message: str | None,
    book_row: list[int] | None,
    match: str,
) -> None:
    msgs = list(MESSAGES)
    rows = [list(BOOK_ROW) for _ in MESSAGES]
    if message is not None:
        msgs[line - 1] = message
    if book_row is not None:
        rows[line - 1] = book_row
    m = tmp_path / "BAD_2012-06-21_34200000_57600000_message_1.csv"
    b = tmp_path / "BAD_2012-06-21_34200000_57600000_orderbook_1.csv"
    m.write_text("\n".join(msgs) + "\n")
    b.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    spec = pb.LobsterFeedSpec(symbol="BADDATA", messages_path=str(m), book_path=str(b))
    with pytest.raises(grpc.RpcError) as e:
        start(stub, lobster=spec)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    details = e.value.details() or ""
    assert match in details and str(m if message else b) in details, details
    listed = {(s.venue, s.symbol) for s in stub.ListSymbols(pb.ListSymbolsRequest()).symbols}
    assert ("lobster", "BADDATA") not in listed


def test_synthetic_spec_bounds(stub: Any) -> None:
    cases = [
        (pb.SyntheticFeedSpec(symbols=["SB"], rate=1e-300, count=10), "synthetic.rate must be"),
        (pb.SyntheticFeedSpec(symbols=["SB"], rate=1e12, count=10), "synthetic.rate must be"),
        (
            pb.SyntheticFeedSpec(symbols=["SB"], rate=1e-2, count=10**7),
            "synthetic.count / synthetic.rate",
        ),
    ]
    for spec, match in cases:
        with pytest.raises(grpc.RpcError) as e:
            start(stub, synthetic=spec)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert match in (e.value.details() or ""), e.value.details()
    # The slowest flow allowed stores finite, increasing times.
    spec = pb.SyntheticFeedSpec(symbols=["SB"], rate=1e-3, count=1000)
    assert wait_feed(stub, start(stub, synthetic=spec).id).state == pb.DONE
    req = pb.QueryTicksRequest(symbol="SB")
    req.start.FromNanoseconds(0)
    req.end.FromSeconds(253402300799)  # 9999-12-31T23:59:59Z
    ts = [t for b in stub.QueryTicks(req, timeout=60) for t in b.exchange_time_ns]
    assert len(ts) == 1000 and ts[0] > 0 and np.all(np.diff(ts) >= 0)


def test_requests_at_the_edges_of_their_domains(mesh: Mesh, stub: Any) -> None:
    spec = pb.SyntheticFeedSpec(symbols=["EDGE"], rate=1000, count=5000)
    assert wait_feed(stub, start(stub, synthetic=spec).id).state == pb.DONE
    # An interval beyond int64 nanoseconds (the largest Duration): 400 naming interval.
    span = "start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z"
    code, body = http_get(mesh, f"/v1/marketdata/EDGE/bars?interval=315576000000s&{span}")
    assert code == 400 and "interval must be at most" in body["message"], body
    # Times beyond int64 nanoseconds (year 1 to 9999): the range is clamped, bars found.
    span = "start=0001-01-01T00:00:00Z&end=9999-12-31T00:00:00Z"
    code, body = http_get(mesh, f"/v1/marketdata/EDGE/bars?interval=86400s&{span}")
    assert code == 200 and sum(int(b["trades"]) for b in body["bars"]) > 0, body
    code, body = http_get(mesh, f"/v1/marketdata/EDGE/vwap?{span}")
    assert code == 200 and body["vwap"] > 0, body
    code, body = http_get(mesh, f"/v1/marketdata/EDGE/bars?interval=9223372036s&{span}")
    assert code == 200 and len(body["bars"]) == 1, body


def test_start_feed_with_a_path_too_long_is_refused(mesh: Mesh, stub: Any) -> None:
    long = "/" + "x" * 100_000
    spec = pb.LobsterFeedSpec(symbol="LONG", messages_path=long, book_path="/tmp/b.csv")
    with pytest.raises(grpc.RpcError) as e:
        start(stub, lobster=spec)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lobster.messages_path is 100001 bytes long" in (e.value.details() or "")
    # A component too long for the file system (but a path under PATH_MAX) is refused too.
    name = "/tmp/" + "y" * 1000 + "_2012-06-21_message_1.csv"
    spec = pb.LobsterFeedSpec(symbol="LONG", messages_path=name, book_path="/tmp/b.csv")
    with pytest.raises(grpc.RpcError) as e:
        start(stub, lobster=spec)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message file cannot be read (File name too long)" in (e.value.details() or "")


def test_start_feed_when_the_registry_cannot_be_written(mesh: Mesh, stub: Any) -> None:
    # The registry is written through feeds.tmp: a directory in its place makes it unwritable.
    blocker = mesh.data_dir / "marketdata" / "feeds.tmp"
    blocker.mkdir(parents=True)
    try:
        spec = pb.SyntheticFeedSpec(symbols=["UNW"], rate=100, count=10)
        with pytest.raises(grpc.RpcError) as e:
            start(stub, synthetic=spec)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
        assert "feed registry" in (e.value.details() or "")
        listed = [f.symbols for f in stub.ListFeeds(pb.ListFeedsRequest()).feeds]
        assert ["UNW"] not in [list(s) for s in listed]
    finally:
        blocker.rmdir()
    st = start(stub, synthetic=pb.SyntheticFeedSpec(symbols=["UNW"], rate=100, count=10))
    assert wait_feed(stub, st.id).state == pb.DONE


def test_query_ticks_at_the_largest_batch_fits_a_default_client(stub: Any) -> None:
    count = 150_000
    spec = pb.SyntheticFeedSpec(symbols=["QTB"], rate=10_000, count=count)
    assert wait_feed(stub, start(stub, synthetic=spec).id).state == pb.DONE
    req = pb.QueryTicksRequest(symbol="QTB", batch_size=100_000)
    req.start.FromNanoseconds(0)
    req.end.FromSeconds(253402300799)
    got = list(stub.QueryTicks(req, timeout=120))
    assert sum(len(b.sequence) for b in got) == count
    assert max(b.ByteSize() for b in got) <= MAX_TICKS_MESSAGE_BYTES
    assert sorted(q for b in got for q in b.sequence) == list(range(1, count + 1))
