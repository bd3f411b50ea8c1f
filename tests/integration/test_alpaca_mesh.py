"""The Alpaca feed inside the running mesh: `tradecore feed alpaca` against a local fake of
Alpaca's REST and stream API; events stored once in ClickHouse, served by QueryTicks, GetBook
and GetBars through the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

from tests.fakes.alpaca_server import FakeAlpaca, fake_alpaca
from tests.integration.test_alpaca_feed import T0, T0_NS, H, expected, served_data
from tests.integration.test_marketdata_mesh import all_ticks, http_get, rfc3339, wait_feed
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEY, SECRET = "PKMESH", "MESHSECRET"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAlpaca]:
    with fake_alpaca(key=KEY, secret=SECRET, page_size=4) as f:
        f.quotes, f.trades = served_data()
        yield f


@pytest.fixture(scope="module")
def amesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A mesh whose services hold Alpaca credentials (from their environment, as in prod)."""
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("alpaca-mesh")))
    m.env = {"ALPACA_API_KEY_ID": KEY, "ALPACA_API_SECRET_KEY": SECRET}
    up = m.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield m
    finally:
        down = m.run("down")
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def stub(amesh: Mesh) -> Iterator[Any]:
    with amesh.channel() as ch:
        yield pb_grpc.MarketDataServiceStub(ch)


def feed(amesh: Mesh, *args: str) -> tuple[int, dict[str, Any], str]:
    r = amesh.run("feed", "alpaca", *args, timeout=120)
    body = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, body, r.stderr


def test_history_feed_stores_every_event_once(amesh: Mesh, stub: Any, fake: FakeAlpaca) -> None:
    start, end = T0, T0 + timedelta(hours=3)
    code, status, err = feed(
        amesh,
        "--symbols",
        "aapl,MSFT",
        "--history",
        "--start",
        rfc3339(T0_NS),
        "--end",
        rfc3339(T0_NS + 3 * H),
        "--rest-url",
        fake.rest_url,
        "--wait",
    )
    assert code == 0, err
    assert status["state"] == "DONE" and status["symbols"] == ["AAPL", "MSFT"]
    want = expected(fake.quotes, fake.trades, T0_NS, T0_NS + 3 * H)
    assert int(status["stored"]) == int(status["total"]) == len(want)

    for symbol in ("AAPL", "MSFT"):
        ticks = all_ticks(stub, symbol, "ALPACA")
        rows = [w for w in want if w[1] == symbol]
        assert len(ticks["sequence"]) == len(rows)
        assert len(set(ticks["sequence"].tolist())) == len(rows)  # no duplicates
        order = np.argsort(ticks["sequence"], kind="stable")
        assert ticks["exchange_time_ns"][order].tolist() == [w[0] for w in rows]

    # Fetching the same range again stores nothing twice.
    code, _, err = feed(
        amesh,
        "--symbols",
        "AAPL",
        "--history",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--rest-url",
        fake.rest_url,
        "--wait",
    )
    assert code == 0, err
    assert len(all_ticks(stub, "AAPL", "ALPACA")["sequence"]) == len(
        [w for w in want if w[1] == "AAPL"]
    )

    # Bars of the trades through the gateway equal the served trades binned independently.
    trades = sorted((r["t"], r["p"], r["s"]) for r in fake.trades["AAPL"])
    iv = 3600 * 10**9
    code, body = http_get(
        amesh,
        f"/v1/marketdata/AAPL/bars?venue=ALPACA&interval=3600s"
        f"&start={rfc3339(T0_NS)}&end={rfc3339(T0_NS + 3 * H)}",
    )
    assert code == 200, body
    bars = body["bars"]
    keys = sorted({t // iv for t, _, _ in trades})
    assert len(bars) == len(keys)
    for bar, k in zip(bars, keys, strict=True):
        sel = [(p, s) for t, p, s in trades if t // iv == k]
        assert bar["open"] == pytest.approx(sel[0][0]) and bar["close"] == pytest.approx(sel[-1][0])
        assert bar["high"] == pytest.approx(max(p for p, _ in sel))
        assert int(bar["volume"]) == sum(s for _, s in sel)


def test_live_feed_streams_into_the_store_until_stopped(
    amesh: Mesh, stub: Any, fake: FakeAlpaca
) -> None:
    code, status, err = feed(amesh, "--symbols", "TSLA", "--stream-url", fake.stream_url)
    assert code == 0, err
    assert status["state"] == "RUNNING"
    fake.wait_subscribed(1, timeout=30)
    t = time.time_ns()
    fake.push(
        [
            {"T": "q", "S": "TSLA", "bp": 250.0, "bs": 2, "ap": 250.1, "as": 3, "t": t},
            {"T": "t", "S": "TSLA", "p": 250.05, "s": 40, "i": 7, "t": t + 1000},
            {"T": "q", "S": "TSLA", "bp": 250.01, "bs": 1, "ap": 250.1, "as": 3, "t": t + 2000},
        ]
    )
    deadline = time.monotonic() + 30
    ticks: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            ticks = all_ticks(stub, "TSLA", "ALPACA")
        except grpc.RpcError as e:  # NOT_FOUND until the first tick is stored
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        if len(ticks.get("sequence", ())) >= 3:
            break
        time.sleep(0.2)
    assert len(ticks["sequence"]) == 3
    book = stub.GetBook(pb.GetBookRequest(symbol="TSLA", venue="ALPACA", depth=1), timeout=10)
    assert book.bids[0].price == pytest.approx(250.01) and book.bids[0].size == 100
    assert book.asks[0].price == pytest.approx(250.1) and book.asks[0].size == 300
    stopped = stub.StopFeed(pb.StopFeedRequest(id=status["id"]), timeout=30)
    assert stopped.state == pb.STOPPED


def test_rejected_credentials_fail_the_feed_with_a_clear_error(amesh: Mesh, stub: Any) -> None:
    with fake_alpaca(key="SOMEONE-ELSE", secret="x") as other:
        other.quotes, other.trades = served_data()
        code, status, _ = feed(
            amesh,
            "--symbols",
            "IBM",
            "--history",
            "--start",
            rfc3339(T0_NS),
            "--end",
            rfc3339(T0_NS + H),
            "--rest-url",
            other.rest_url,
            "--wait",
        )
    assert code == 1
    st = wait_feed(stub, status["id"], timeout=30)
    assert st.state == pb.FAILED and "credentials" in st.error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "AAPL", "--history"], "alpaca.start must be set"),
        (["--symbols", "", "--history"], "alpaca.symbols must not be empty"),
        (["--symbols", "AAPL", "--feed", "otc"], "alpaca.feed must be 'iex' or 'sip'"),
        (["--symbols", "AAPL", "--start", "2024-01-02T00:00:00Z"], "alpaca.start/alpaca.end"),
        (["--symbols", "AAPL", "--history", "--start", "yesterday"], "--start must be an RFC"),
    ],
)
def test_bad_alpaca_requests_name_the_field(amesh: Mesh, args: list[str], message: str) -> None:
    code, _, err = feed(amesh, *args)
    assert code == 2, err
    assert message in err
