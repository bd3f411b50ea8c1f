"""RiskService with the default mesh (embedded chDB, which only the market-data process can
open): historical VaR without returns is computed from the daily closes the market-data service
answers on ``marketdata.v1.daily_closes``, through Envoy, equal to the library's VaR over the
closes this test computes from the stored ticks; too little stored history is named; and a
ComputeVaR over NATS is refused for the requester's timeout like a gRPC call for its deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import nats
import numpy as np
import pytest
from google.protobuf import json_format
from tradecore.risk.book import Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.historical import historical_var
from tradecore.subjects import RISK_COMPUTE_VAR
from tradecore_api.marketdata.v1 import marketdata_pb2 as md
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as md_grpc
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.common import nats_rpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NY = ZoneInfo("America/New_York")
SYMBOLS = ["HVA", "HVB"]  # names no other mesh test stores
TRADES = (4, 5, 11)
COUNT = 6_000  # execution, hidden execution, trade print
# Returns asked for: min_days defaults to min(20, lookback), so 11 common closes are needed,
# and a 0.9 historical VaR needs at least 10 days.
LOOKBACK = 10


def post(mesh: Mesh, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **mesh.auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def stored(mesh: Mesh) -> Iterator[md_grpc.MarketDataServiceStub]:
    """Synthetic trades of SYMBOLS over about 14 days of exchange time (6,000 ticks per symbol
    at 0.005 a second; the flow's clock starts at the feed's start), stored by the market-data
    service."""
    with mesh.channel() as ch:
        stub = md_grpc.MarketDataServiceStub(ch)
        spec = md.SyntheticFeedSpec(symbols=SYMBOLS, rate=0.005, count=COUNT, speed=0, seed=3)
        st = stub.StartFeed(md.StartFeedRequest(synthetic=spec), timeout=30)
        for _ in range(60):
            wait = md.GetFeedRequest(id=st.id)
            wait.wait.FromSeconds(5)
            st = stub.GetFeed(wait, timeout=30)
            if st.state != md.RUNNING:
                break
        assert st.state == md.DONE and st.stored == 2 * COUNT, st
        yield stub


def closes_of(stub: md_grpc.MarketDataServiceStub, symbol: str) -> dict[dt.date, float]:
    """The symbol's daily closes computed here from its stored ticks: the price of the last
    trade (by exchange time, then sequence) of each New York calendar day."""
    req = md.QueryTicksRequest(symbol=symbol, batch_size=100_000)
    req.start.FromNanoseconds(0)
    req.end.FromNanoseconds(4_000_000_000 * 10**9)
    last: dict[dt.date, tuple[int, int, float]] = {}
    for b in stub.QueryTicks(req, timeout=60):
        for ts, seq, typ, price in zip(
            b.exchange_time_ns, b.sequence, b.type, b.price, strict=True
        ):
            if typ not in TRADES or price <= 0:
                continue
            day = dt.datetime.fromtimestamp(ts / 1e9, NY).date()
            if day not in last or (ts, seq) > last[day][:2]:
                last[day] = (ts, seq, price)
    return {d: p for d, (_, _, p) in last.items()}


def body(lookback_days: int, *extra: str) -> dict[str, Any]:
    symbols = SYMBOLS + list(extra)
    return {
        "positions": [
            {
                "instrument": {
                    "symbol": "HVA", "kind": "OPTION", "option_type": "CALL",
                    "style": "EUROPEAN", "strike": 100, "expiry_years": 0.5,
                },
                "quantity": 20,
            },
            {"instrument": {"symbol": "HVB", "kind": "EQUITY"}, "quantity": -300},
        ] + [{"instrument": {"symbol": s, "kind": "EQUITY"}, "quantity": 1} for s in extra],
        "market": {
            "rate": 0.03,
            "underlyings": [
                {"symbol": s, "spot": 100 + 5 * i, "volatility": 0.3} for i, s in enumerate(symbols)
            ],
        },
        "method": "HISTORICAL",
        "confidence": 0.9,
        "horizon_days": 1,
        "lookback_days": lookback_days,
    }  # fmt: skip


def test_historical_var_from_the_stored_closes_through_envoy(
    mesh: Mesh, stored: md_grpc.MarketDataServiceStub
) -> None:
    a, b = (closes_of(stored, s) for s in SYMBOLS)
    common = sorted(set(a) & set(b))
    assert len(common) >= LOOKBACK + 1, common  # the synthetic flow spans several days
    days = common[-(LOOKBACK + 1) :]
    levels = np.array([[a[d], b[d]] for d in days])
    returns = np.diff(np.log(levels), axis=0)
    book = book_arrays(
        [
            Position(Instrument("HVA", "option", "call", "european", 100.0, 0.5), 20.0),
            Position(Instrument("HVB"), -300.0),
        ],
        Market(0.03, (Underlying("HVA", 100.0, 0.3), Underlying("HVB", 105.0, 0.3))),
    )
    want = historical_var(book, returns, confidence=0.9, horizon_days=1.0)

    status, reply = post(mesh, "/v1/risk/var", body(LOOKBACK))
    assert status == 200, reply
    assert int(reply["paths"]) == LOOKBACK  # int64: a JSON string
    assert reply["var"] == pytest.approx(want.var, rel=1e-12) and want.var > 0
    assert reply["expected_shortfall"] == pytest.approx(want.expected_shortfall, rel=1e-12)

    # The same over NATS request/reply (risk.v1.compute_var asks marketdata.v1.daily_closes
    # on the same connection while it handles the request).
    request = json_format.ParseDict(body(LOOKBACK), pb.ComputeVaRRequest())

    async def over_nats() -> pb.ComputeVaRResponse:
        nc = await nats.connect(mesh.nats_url)
        try:
            data, _ = await nats_rpc.request(
                nc, RISK_COMPUTE_VAR, request.SerializeToString(), timeout=30
            )
            return pb.ComputeVaRResponse.FromString(data)
        finally:
            await nc.close()

    assert asyncio.run(over_nats()).var == pytest.approx(want.var, rel=1e-12)

    # More returns than the store holds: the symbol and what it has are named.
    have = len(a)
    status, reply = post(mesh, "/v1/risk/var", body(50))
    assert status == 400 and reply["code"] == 3, reply  # INVALID_ARGUMENT
    assert reply["message"] == (
        f"market.underlyings[0].symbol: 'HVA' has {have} daily closes in the store, need at "
        "least 21 for 20 returns (returns empty: read from the stored bars)"
    )
    # A symbol never stored.
    status, reply = post(mesh, "/v1/risk/var", body(LOOKBACK, "HVZ"))
    assert status == 400 and reply["message"].startswith(
        "market.underlyings[2].symbol: 'HVZ' has 0 daily closes in the store"
    ), reply
    # The market-data service counted its answers as it counts gRPC calls.
    calls = served(int(mesh.marketdata_metrics_port))
    assert calls["OK"] >= 2 and calls["INVALID_ARGUMENT"] >= 2, calls


def served(metrics_port: int) -> dict[str, float]:
    """marketdata.v1.daily_closes calls by status code, from the service's metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    out = {"OK": 0.0, "INVALID_ARGUMENT": 0.0}
    for line in text.decode().splitlines():
        m = re.match(
            r'tradecore_rpc_requests_total\{(?=.*method="marketdata\.v1\.daily_closes")'
            r'(?=.*code="(\w+)").*\} (\S+)$',
            line,
        )
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def test_compute_var_over_nats_is_refused_for_the_requester_s_timeout(mesh: Mesh) -> None:
    """10M paths x 100 options (2-3 s) asked over NATS with a 1 s timeout: the handler knows
    the timeout (x-timeout-ms) and refuses at once, as over gRPC."""
    request = pb.ComputeVaRRequest(method=pb.MONTE_CARLO, paths=10_000_000)
    for i in range(100):
        request.positions.add(quantity=1.0).instrument.CopyFrom(
            pb.RiskInstrument(
                symbol="AAA",
                kind="OPTION",
                option_type="CALL",
                strike=80.0 + i / 2,
                expiry_years=1.0,
            )
        )
    request.market.underlyings.add(symbol="AAA", spot=100.0, volatility=0.2)

    async def go() -> nats_rpc.NatsRpcError:
        nc = await nats.connect(mesh.nats_url)
        try:
            with pytest.raises(nats_rpc.NatsRpcError) as info:
                await nats_rpc.request(
                    nc, RISK_COMPUTE_VAR, request.SerializeToString(), timeout=1.0
                )
            return info.value
        finally:
            await nc.close()

    error = asyncio.run(go())
    assert error.code == "DEADLINE_EXCEEDED", error
    assert error.message.startswith("paths: the run would take about 3 s"), error
