"""Price (all Greeks), ImpliedVol, FitSurface, QuerySurface and StreamGreeks with the real mesh
up: gRPC direct and through Envoy, JSON through Envoy, quotes published on the mesh's NATS."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import urllib.request
from typing import Any

import grpc
import nats
import numpy as np
import pytest
from tradecore import pricing
from tradecore.subjects import PRICING_PRICE, MdKind, md_subject
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.integration.test_pricing_mesh import post_json
from tests.mesh import Mesh
from tests.unit.test_pricing_analytics import SVI_TRUE, VOGT, svi_chain_quotes

pytestmark = pytest.mark.integration

GREEKS_14 = (
    "delta", "gamma", "vega", "theta", "rho", "phi", "vanna", "charm", "vomma", "speed",
    "color", "zomma", "ultima", "veta",
)  # fmt: skip
EU = dict(
    spot=100.0, strike=105.0, expiry_years=0.5, rate=0.03, dividend_yield=0.01,
    volatility=0.25, option_type="CALL",
)  # fmt: skip


def stub(target: str, mesh: Mesh) -> tuple[grpc.Channel, pb_grpc.PricingServiceStub]:
    ch = mesh.channel(target)
    return ch, pb_grpc.PricingServiceStub(ch)


# ------------------------------------------------------------------------------ Price
def test_price_all_greeks_json_and_grpc(mesh: Mesh) -> None:
    status, body = post_json(mesh, "/v1/pricing/price", {"contracts": [EU], "greeks": "GREEKS_ALL"})
    assert status == 200, body
    ref = pricing.european(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, "call", greeks="all")
    (row,) = body["results"]
    assert set(row) == {"price", *GREEKS_14}
    for g in ("price", *GREEKS_14):
        assert row[g] == pytest.approx(float(ref[g]), rel=1e-15, abs=1e-300), g
    ch, s = stub(mesh.gateway, mesh)
    with ch:
        res = s.Price(
            pb.PriceRequest(
                contracts=[pb.OptionContract(**{**EU, "option_type": pb.CALL})],
                greek_names=["ultima", "veta"],
            ),
            timeout=10,
        )
    (r,) = res.results
    assert r.ultima == float(ref["ultima"]) and r.veta == float(ref["veta"])
    assert not r.HasField("delta")
    status, body = post_json(
        mesh, "/v1/pricing/price", {"contracts": [EU], "greek_names": ["vanna"]}
    )
    assert status == 200 and set(body["results"][0]) == {"price", "vanna"}


def test_price_american_higher_order_greeks_is_invalid_argument(mesh: Mesh) -> None:
    am = dict(EU, style="AMERICAN", option_type="PUT")
    status, body = post_json(
        mesh, "/v1/pricing/price", {"contracts": [EU, am], "greek_names": ["delta", "vomma"]}
    )
    assert status == 400 and body["code"] == 3
    assert "vomma not available for American contracts (contracts[1].style" in body["message"]
    status, body = post_json(
        mesh, "/v1/pricing/price", {"contracts": [EU], "model": "MODEL_BLACK76"}
    )
    assert status == 400 and "contracts[0].dividend_yield must be 0" in body["message"]


# ------------------------------------------------------------------------------ ImpliedVol
def iv_rows() -> tuple[list[dict[str, Any]], np.ndarray]:
    K = np.array([80.0, 100.0, 120.0])
    vol = np.array([0.31, 0.24, 0.2])
    typ = ["put", "call", "call"]
    prices = pricing.european(100.0, K, 0.4, 0.02, 0.01, vol, typ, greeks="none")["price"]
    rows = [
        dict(price=p, spot=100.0, strike=k, expiry_years=0.4, rate=0.02, dividend_yield=0.01,
             option_type=t.upper())
        for p, k, t in zip(prices.tolist(), K.tolist(), typ, strict=True)
    ]  # fmt: skip
    rows.append(dict(price=0.5, spot=100.0, strike=50.0, expiry_years=1.0, option_type="CALL"))
    return rows, vol


def test_implied_vol_json_round_trips_price_and_never_prints_nan(mesh: Mesh) -> None:
    rows, vol = iv_rows()
    status, body = post_json(mesh, "/v1/pricing/implied-vol", {"options": rows})
    assert status == 200, body
    got = [r["volatility"] for r in body["results"][:3]]
    np.testing.assert_allclose(got, vol, rtol=1e-12)
    assert [r["status"] for r in body["results"]] == ["IV_OK"] * 3 + ["IV_BELOW_INTRINSIC"]
    assert "volatility" not in body["results"][3]
    assert body["counts"] == {"ok": 3, "below_intrinsic": 1, "above_upper": 0, "non_positive": 0}


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_implied_vol_grpc(mesh: Mesh, via: str) -> None:
    rows, vol = iv_rows()
    req = pb.ImpliedVolRequest()
    for r in rows:
        req.options.add(**{**r, "option_type": pb.OptionType.Value(str(r["option_type"]))})
    ch, s = stub(mesh.pricing if via == "direct" else mesh.gateway, mesh)
    with ch:
        res = s.ImpliedVol(req, timeout=10)
        np.testing.assert_allclose([r.volatility for r in res.results[:3]], vol, rtol=1e-12)
        assert res.counts.below_intrinsic == 1
        req.options[2].spot = -1.0
        with pytest.raises(grpc.RpcError) as err:
            s.ImpliedVol(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "options[2].spot must be finite and in [1e-08, 1e+15] (got -1.0)" in err.value.details()


# ------------------------------------------------------------------------------ surfaces
def test_fit_and_query_surface_json(mesh: Mesh) -> None:
    chain = {
        "underlying": "XYZ", "spot": 100.0, "rate": 0.03, "dividend_yield": 0.01,
        "quotes": svi_chain_quotes(SVI_TRUE, np.linspace(-0.6, 0.5, 23)),
    }  # fmt: skip
    status, body = post_json(mesh, "/v1/pricing/surfaces", chain)
    assert status == 200, body
    assert body["arbitrage_free"] is True and body["violations"] == []
    assert body["model"] == "SURFACE_SVI" and body["underlying"] == "XYZ"
    for s in body["slices"]:
        want = SVI_TRUE[s["expiry_years"]]
        got = [s["svi"][n] for n in ("a", "b", "rho", "m", "sigma")]
        np.testing.assert_allclose(got, want.as_tuple(), atol=1e-8)
        assert s["rmse_vol"] < 1e-10
    sid = body["surface_id"]
    F = 100.0 * math.exp(0.02 * 1.0)
    pts = [{"strike": 110.0, "expiry_years": 1.0}, {"strike": 90.0, "expiry_years": 0.25}]
    status, q = post_json(mesh, f"/v1/pricing/surfaces/{sid}:query", {"points": pts})
    assert status == 200, q
    want = math.sqrt(SVI_TRUE[1.0].total_variance([math.log(110.0 / F)])[0] / 1.0)
    assert q["volatilities"][0] == pytest.approx(want, rel=1e-8)
    status, err = post_json(mesh, "/v1/pricing/surfaces/no-such-id:query", {"points": pts})
    assert status == 404 and "no-such-id" in err["message"] and err["code"] == 5


def test_fit_surface_flags_arbitrage_and_validates(mesh: Mesh) -> None:
    quotes = svi_chain_quotes({1.0: VOGT}, np.linspace(-1.0, 1.6, 40), both=False)
    body = {"spot": 100.0, "rate": 0.03, "dividend_yield": 0.01, "quotes": quotes}
    status, res = post_json(mesh, "/v1/pricing/surfaces", body)
    assert status == 200, res
    assert res["arbitrage_free"] is False
    assert [v["kind"] for v in res["violations"]] == ["BUTTERFLY"]
    bad = [*quotes]
    bad[3] = dict(bad[3], strike=-5.0)
    status, res = post_json(mesh, "/v1/pricing/surfaces", dict(body, quotes=bad))
    assert (
        status == 400
        and "quotes[3].strike must be finite and in [1e-100, 1e+100]" in res["message"]
    )


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_fit_and_query_surface_grpc(mesh: Mesh, via: str) -> None:
    req = pb.FitSurfaceRequest(spot=100.0, rate=0.03, dividend_yield=0.01, model=pb.SURFACE_SABR)
    for q in svi_chain_quotes(SVI_TRUE, np.linspace(-0.3, 0.3, 9)):
        req.quotes.add(**{**q, "option_type": pb.OptionType.Value(str(q["option_type"]))})
    ch, s = stub(mesh.pricing if via == "direct" else mesh.gateway, mesh)
    with ch:
        fitted = s.FitSurface(req, timeout=30)
        assert [sl.WhichOneof("params") for sl in fitted.slices] == ["sabr", "sabr"]
        query = pb.QuerySurfaceRequest(surface_id=fitted.surface_id)
        query.points.add(strike=100.0, expiry_years=0.5)
        (v,) = s.QuerySurface(query, timeout=10).volatilities
        assert 0.1 < v < 0.4
        with pytest.raises(grpc.RpcError) as err:
            s.QuerySurface(pb.QuerySurfaceRequest(surface_id="gone"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        query.points.add(strike=100.0, expiry_years=-1.0)
        with pytest.raises(grpc.RpcError) as err:
            s.QuerySurface(query, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "points[1].expiry_years must be finite and >= 0" in err.value.details()


# ------------------------------------------------------------------------------ StreamGreeks
CHAIN = [
    dict(strike=90.0, expiry_years=0.5, option_type="PUT", volatility=0.3, rate=0.04,
         dividend_yield=0.01),
    dict(strike=100.0, expiry_years=0.5, option_type="CALL", volatility=0.25, rate=0.04,
         dividend_yield=0.01),
    dict(strike=110.0, expiry_years=1.0, option_type="CALL", volatility=0.22, rate=0.04,
         dividend_yield=0.01),
]  # fmt: skip


def stream_request(symbol: str, **kw: Any) -> pb.StreamGreeksRequest:
    req = pb.StreamGreeksRequest(venue="XTST", symbol=symbol, **kw)
    for c in CHAIN:
        req.contracts.add(**{**c, "option_type": pb.OptionType.Value(str(c["option_type"]))})
    return req


def quote(symbol: str, bid: float, ask: float, seq: int) -> bytes:
    return market_pb2.Quote(
        venue="XTST", symbol=symbol, bid_price=bid, ask_price=ask, bid_size=100, ask_size=100,
        exchange_time_ns=1_700_000_000_000_000_000 + seq, receive_time_ns=seq, sequence=seq,
    ).SerializeToString()  # fmt: skip


def check_rows(spot: float, rows: list[tuple[int, dict[str, float]]]) -> None:
    K = [c["strike"] for c in CHAIN]
    ref = pricing.european(
        spot, K, [c["expiry_years"] for c in CHAIN], 0.04, 0.01,
        [c["volatility"] for c in CHAIN], [str(c["option_type"]).lower() for c in CHAIN], "first",
    )  # fmt: skip
    for i, values in rows:
        for g in ("price", "delta", "gamma", "vega", "theta", "rho", "phi"):
            assert float(values[g]) == pytest.approx(float(ref[g][i]), rel=1e-14, abs=1e-15), g


def subscriptions(mesh: Mesh, subject: str) -> int:
    url = f"http://127.0.0.1:{mesh.nats_monitor_port}/connz?subs=detail"
    with urllib.request.urlopen(url, timeout=5) as r:
        data = json.loads(r.read())
    return sum(
        1
        for conn in data.get("connections") or []
        for sub in conn.get("subscriptions_list_detail") or []
        if sub.get("subject") == subject
    )


async def wait_subscribers(mesh: Mesh, subject: str, want: int) -> None:
    deadline = time.monotonic() + 10
    while subscriptions(mesh, subject) != want:
        assert time.monotonic() < deadline, f"{subject}: subscribers never became {want}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_stream_greeks_grpc(mesh: Mesh, via: str) -> None:
    symbol = f"S{via.upper()}"
    subject = md_subject("XTST", symbol, MdKind.QUOTE)

    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)
        target = mesh.pricing if via == "direct" else mesh.gateway
        async with mesh.aio_channel(target) as ch:
            call = pb_grpc.PricingServiceStub(ch).StreamGreeks(
                stream_request(symbol, tolerance=1e-12), timeout=60
            )
            updates: asyncio.Queue[pb.GreeksUpdate] = asyncio.Queue()

            async def read() -> None:
                async for u in call:
                    await updates.put(u)

            reader = asyncio.create_task(read())
            await wait_subscribers(mesh, subject, 1)
            await nc.publish(subject, quote(symbol, 0.0, 100.0, 1))  # one-sided: skipped
            await nc.publish(subject, quote(symbol, 99.0, 101.0, 2))
            first = await asyncio.wait_for(updates.get(), 10)
            assert first.full and first.sequence == 2 and first.spot == 100.0
            assert first.exchange_time_ns == 1_700_000_000_000_000_002
            assert [r.index for r in first.rows] == [0, 1, 2]
            check_rows(100.0, [(r.index, _fields(r.result)) for r in first.rows])
            # same mid, wider spread: no update; the next update is the quote after it
            await nc.publish(subject, quote(symbol, 98.0, 102.0, 3))
            await nc.flush()
            await asyncio.sleep(0.2)  # let seq 3 be consumed before seq 4 (no conflation)
            await nc.publish(subject, quote(symbol, 100.5, 101.5, 4))
            nxt = await asyncio.wait_for(updates.get(), 10)
            assert nxt.sequence == 4 and not nxt.full and nxt.spot == 101.0
            check_rows(101.0, [(r.index, _fields(r.result)) for r in nxt.rows])
            assert updates.empty()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert await call.code() == grpc.StatusCode.CANCELLED
            await wait_subscribers(mesh, subject, 0)  # the service unsubscribed
        await nc.close()

    asyncio.run(go())


def _fields(result: pb.PriceResult) -> dict[str, float]:
    return {f.name: v for f, v in result.ListFields()}


def test_stream_greeks_json_through_gateway(mesh: Mesh) -> None:
    symbol = "SJSON"
    subject = md_subject("XTST", symbol, MdKind.QUOTE)
    body = {"venue": "XTST", "symbol": symbol, "contracts": CHAIN, "max_updates": 2}
    result: dict[str, Any] = {}

    def call() -> None:
        result["reply"] = post_json(mesh, "/v1/pricing/stream-greeks", body)

    t = threading.Thread(target=call)
    t.start()

    async def publish() -> None:
        nc = await nats.connect(mesh.nats_url)
        seq = 0
        while t.is_alive() and seq < 400:
            seq += 1
            mid = 100.0 + seq % 2  # every quote moves the spot
            await nc.publish(subject, quote(symbol, mid - 0.5, mid + 0.5, seq))
            await asyncio.sleep(0.05)
        await nc.close()

    asyncio.run(publish())
    t.join(10)
    status, updates = result["reply"]
    assert status == 200, updates
    assert isinstance(updates, list) and len(updates) == 2
    assert updates[0]["full"] is True and updates[1]["full"] is False
    assert int(updates[1]["sequence"]) > int(updates[0]["sequence"])  # uint64: a JSON string
    for u in updates:
        assert int(u["exchange_time_ns"]) == 1_700_000_000_000_000_000 + int(u["sequence"])
        check_rows(u["spot"], [(int(r["index"]), r["result"]) for r in u["rows"]])


@pytest.mark.parametrize(
    "change,code,message",
    [
        ({"symbol": "a.b"}, grpc.StatusCode.INVALID_ARGUMENT, "symbol must not contain '.'"),
        ({"venue": "X" * 129}, grpc.StatusCode.INVALID_ARGUMENT, "venue must be at most 128"),
        ({"contracts[1].volatility": -1.0}, grpc.StatusCode.INVALID_ARGUMENT,
         "contracts[1].volatility must be finite and in [1e-08, 100]"),
        ({"contracts[2].surface_id": "nope"}, grpc.StatusCode.NOT_FOUND,
         "contracts[2].surface_id 'nope'"),
    ],
)  # fmt: skip
def test_stream_greeks_bad_requests(
    mesh: Mesh, change: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    req = stream_request("SBAD")
    for key, value in change.items():
        if key.startswith("contracts["):
            i, field = int(key[10]), key.split(".")[1]
            setattr(req.contracts[i], field, value)
        else:
            setattr(req, key, value)
    for target in (mesh.pricing, mesh.gateway):
        ch, s = stub(target, mesh)
        with ch, pytest.raises(grpc.RpcError) as err:
            list(s.StreamGreeks(req, timeout=10))
        assert err.value.code() == code
        assert message in err.value.details()


def test_over_long_symbol_is_invalid_and_the_service_keeps_its_nats(mesh: Mesh) -> None:
    """A 4,100-character symbol would make nats-server drop the service's connection (maximum
    control line exceeded): it is INVALID_ARGUMENT naming the field, and afterwards StreamGreeks
    and the NATS ``pricing.v1.price`` request/reply still work."""
    for target in (mesh.pricing, mesh.gateway):
        ch, s = stub(target, mesh)
        with ch, pytest.raises(grpc.RpcError) as err:
            list(s.StreamGreeks(stream_request("S" * 4100), timeout=10))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "symbol must be at most 128 characters" in err.value.details()
    symbol = "SAFTERLONG"
    subject = md_subject("XTST", symbol, MdKind.QUOTE)

    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)
        try:
            async with grpc.aio.insecure_channel(mesh.pricing) as ch:
                call = pb_grpc.PricingServiceStub(ch).StreamGreeks(
                    stream_request(symbol, max_updates=1), timeout=30
                )
                reader = asyncio.ensure_future(call.read())
                await wait_subscribers(mesh, subject, 1)
                await nc.publish(subject, quote(symbol, 99.0, 101.0, 1))
                update = await asyncio.wait_for(reader, 10)
                assert update.full and update.spot == 100.0
            request = pb.PriceRequest()
            request.contracts.add(**{**EU, "option_type": pb.CALL})
            reply = await nc.request(PRICING_PRICE, request.SerializeToString(), timeout=5)
            assert "Tradecore-Error" not in (reply.headers or {}), reply.headers
            price = pb.PriceResponse.FromString(reply.data).results[0].price
            ref = pricing.european(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, "call")
            assert price == pytest.approx(float(ref["price"]), rel=1e-14)
        finally:
            await nc.close()

    asyncio.run(go())
