"""Client errors through the real mesh: short messages whatever the input (and innocent calls
on the shared gateway connection unharmed), the pricing domain, streams rejected with HTTP 400,
undecodable requests, one log line per client error, and FitSurface at its documented limit
(in time, and stopped when its caller goes away)."""

from __future__ import annotations

import concurrent.futures
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import grpc
import numpy as np
import pytest
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.integration.test_pricing_mesh import post_json
from tests.mesh import Mesh
from tests.unit.test_pricing_analytics import SVI_TRUE, svi_chain_quotes

pytestmark = pytest.mark.integration

EU = dict(
    spot=100.0, strike=105.0, expiry_years=0.5, rate=0.03, dividend_yield=0.01,
    volatility=0.25, option_type="CALL",
)  # fmt: skip
SHORT = 1500  # no error message may be longer than this (the cap is 1 KiB)


def get_json(mesh: Mesh, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://{mesh.gateway}{path}", headers=mesh.auth_headers()),
            timeout=30,
        ) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def price_request(**kw: float) -> pb.PriceRequest:
    c = pb.OptionContract(**{**EU, "option_type": pb.CALL, **kw})  # type: ignore[arg-type]
    return pb.PriceRequest(contracts=[c])


# ------------------------------------------------------------------------ long bad values
@pytest.mark.parametrize("size", [10_000, 100_000])
def test_long_bad_values_get_400_with_a_short_message(mesh: Mesh, size: int) -> None:
    long = "A" * size
    status, body = post_json(mesh, "/v1/pricing/price", {"contracts": [EU], "greek_names": [long]})
    assert status == 400 and body["code"] == 3, str(body)[:500]
    assert body["message"].startswith("greek_names[0] 'AAAA")
    assert len(body["message"]) < SHORT
    # (a URL stays under Envoy's 60 KiB header limit: at most 10 kB of symbol). The path also
    # travels as a request header to the service: repeated, as the service once refused
    # headers past 8 KiB at random (RESOURCE_EXHAUSTED, HTTP 429).
    for _ in range(20):
        status, text = get_json(mesh, f"/v1/marketdata/{long[:10_000]}/bars?interval=60s")
        assert status == 400, text[:500]
        assert "symbol must be 1-32 letters" in text and len(text) < SHORT
    with mesh.channel() as ch, pytest.raises(grpc.RpcError) as err:
        pb_grpc.PricingServiceStub(ch).QuerySurface(
            pb.QuerySurfaceRequest(surface_id=long), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(err.value.details() or "") < SHORT


def test_innocent_calls_survive_long_bad_values(mesh: Mesh) -> None:
    """Three requests echoing 100 kB values while 16 innocent calls share the gateway's
    connection to the service: every innocent call succeeds."""
    with mesh.channel() as ch:
        s = pb_grpc.PricingServiceStub(ch)
        good = price_request()

        def innocent(_: int) -> float:
            return s.Price(good, timeout=20).results[0].price

        def bad(i: int) -> grpc.StatusCode:
            req = pb.PriceRequest(contracts=good.contracts, greek_names=[str(i) * 100_000])
            try:
                s.Price(req, timeout=20)
            except grpc.RpcError as exc:
                assert len(exc.details() or "") < SHORT
                return exc.code()  # type: ignore[no-any-return]
            return grpc.StatusCode.OK

        with concurrent.futures.ThreadPoolExecutor(19) as pool:
            bads = [pool.submit(bad, i) for i in range(3)]
            goods = [pool.submit(innocent, i) for i in range(16)]
            assert [f.result() for f in bads] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
            prices = [f.result() for f in goods]
    assert len(set(prices)) == 1 and np.isfinite(prices[0])


# ------------------------------------------------------------------------ pricing domain
@pytest.mark.parametrize(
    ("field", "value"),
    [("volatility", 1e-300), ("expiry_years", 1e9), ("rate", 1e6)],
)
def test_price_outside_the_domain_is_400_naming_the_field(
    mesh: Mesh, field: str, value: float
) -> None:
    for style in ("EUROPEAN", "AMERICAN"):
        contract = {**EU, field: value, "style": style}
        status, body = post_json(mesh, "/v1/pricing/price", {"contracts": [EU, contract]})
        assert status == 400 and body["code"] == 3, body
        assert body["message"].startswith(f"contracts[1].{field} must be finite and "), body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rate": 1e6}, "rate must be finite and in [-2, 2]"),
        ({"quotes[0].expiry_years": 1e308}, "quotes[0].expiry_years must be finite and in"),
    ],
)
def test_fit_surface_outside_the_domain_is_400(
    mesh: Mesh, change: dict[str, float], message: str
) -> None:
    quotes = svi_chain_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.3, 0.3, 7))
    body: dict[str, Any] = {"underlying": "XYZ", "spot": 100.0, "rate": 0.01, "quotes": quotes}
    for key, value in change.items():
        if key.startswith("quotes[0]."):
            quotes[0][key.split(".", 1)[1]] = value
        else:
            body[key] = value
    status, res = post_json(mesh, "/v1/pricing/surfaces", body)
    assert status == 400 and res["code"] == 3, res
    assert message in res["message"]


# ------------------------------------------------------------------------ streams over JSON
def test_stream_greeks_bad_request_over_json_is_400(mesh: Mesh) -> None:
    body = {"venue": "XTST", "symbol": "SJ400", "contracts": [], "max_updates": 1}
    status, res = post_json(mesh, "/v1/pricing/stream-greeks", body)
    assert status == 400, res
    assert res["code"] == 3 and res["message"] == "contracts: the chain is empty"


def test_marketdata_stream_bad_request_over_json_is_400(mesh: Mesh) -> None:
    status, text = get_json(mesh, "/v1/marketdata/" + "B" * 40 + "/ticks")
    assert status == 400, text
    assert '"code":3' in text.replace(" ", "") and "symbol must be 1-32 letters" in text
    status, text = get_json(mesh, "/v1/marketdata/" + "B" * 40 + "/quotes")
    assert status == 400, text


def test_valid_stream_still_sends_its_request_id(mesh: Mesh) -> None:
    """A valid stream that waits for data shows its headers (with the request id) anyway."""
    req = pb.StreamGreeksRequest(
        venue="XTST", symbol="SHDRS", max_updates=1,
        contracts=[pb.StreamContract(strike=100.0, expiry_years=1.0, option_type=pb.CALL,
                                     volatility=0.2)],
    )  # fmt: skip
    with grpc.insecure_channel(mesh.pricing) as ch:
        call = pb_grpc.PricingServiceStub(ch).StreamGreeks(
            req, timeout=10, metadata=(("x-request-id", "hdr-1"),)
        )
        assert ("x-request-id", "hdr-1") in tuple(call.initial_metadata())
        call.cancel()


# ------------------------------------------------------------------------ undecodable requests
@pytest.mark.parametrize(
    "method",
    [
        "/tradecore.pricing.v1.PricingService/Price",
        "/tradecore.pricing.v1.PricingService/StreamGreeks",
        "/tradecore.marketdata.v1.MarketDataService/QueryTicks",
    ],
)
def test_corrupt_protobuf_is_invalid_argument(mesh: Mesh, method: str) -> None:
    service = method.split("/")[1]
    direct = mesh.pricing if "pricing" in service else mesh.marketdata
    for target in (direct, mesh.gateway):
        with mesh.channel(target) as ch:
            if method.endswith(("StreamGreeks", "QueryTicks")):
                call = ch.unary_stream(method)  # identity (de)serializers: raw bytes
                with pytest.raises(grpc.RpcError) as err:
                    list(call(b"\xff\xff\xff", timeout=10))
            else:
                with pytest.raises(grpc.RpcError) as err:
                    ch.unary_unary(method)(b"\xff\xff\xff", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (target, err.value)
        assert "request is not a valid" in (err.value.details() or "")


# ------------------------------------------------------------------------ logs
def test_a_client_error_logs_one_line_without_traceback(mesh: Mesh) -> None:
    rid = f"log-{uuid.uuid4().hex}"
    with mesh.channel() as ch:
        s = pb_grpc.PricingServiceStub(ch)
        with pytest.raises(grpc.RpcError):
            s.Price(price_request(volatility=-1.0), timeout=10, metadata=(("x-request-id", rid),))
        with pytest.raises(grpc.RpcError):
            ch.unary_unary("/tradecore.pricing.v1.PricingService/Price")(
                b"\xff\xff\xff", timeout=10, metadata=(("x-request-id", rid + "-decode"),)
            )
    logs = mesh.data_dir / "logs"
    service_log = logs / "pricing-service.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rid + "-decode" not in service_log.read_text():
        time.sleep(0.1)
    lines = service_log.read_text().splitlines()
    for tag in (rid + ")", rid + "-decode)"):
        hits = [i for i, line in enumerate(lines) if tag in line]
        assert len(hits) == 1, (tag, hits)
        assert "INVALID_ARGUMENT" in lines[hits[0]]
        after = lines[hits[0] + 1 : hits[0] + 2]
        assert all(re.match(r"\d{4}-\d\d-\d\d ", line) for line in after), after
    assert "Traceback" not in (logs / "pricing.log").read_text()


# ------------------------------------------------------------------------ FitSurface limits
def noisy_chain(expiries: int, strikes: int, seed: int = 7) -> pb.FitSurfaceRequest:
    """A chain of `expiries` x `strikes` x (call, put) quotes, 30 % lognormal noise on the
    prices (noisy smiles are the slow case for the least-squares fits)."""
    from tradecore.surface import SviParams

    params = {
        0.05 * (i + 1): SviParams(a=0.01 + 0.0005 * i, b=0.1, rho=-0.4, m=0.02, sigma=0.15)
        for i in range(expiries)
    }
    quotes = svi_chain_quotes(params, np.linspace(-0.5, 0.5, strikes))
    rng = np.random.default_rng(seed)
    noise = np.exp(0.3 * rng.standard_normal(len(quotes)))
    req = pb.FitSurfaceRequest(underlying="NOISY", spot=100.0, rate=0.01, dividend_yield=0.0)
    for q, f in zip(quotes, noise.tolist(), strict=True):
        req.quotes.add(
            strike=q["strike"], expiry_years=q["expiry_years"],
            option_type=pb.OptionType.Value(str(q["option_type"])),
            bid=float(q["bid"]) * f, ask=float(q["ask"]) * f,
        )  # fmt: skip
    return req


def expiries_fitted(mesh: Mesh) -> float:
    url = f"http://127.0.0.1:{mesh.pricing_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^tradecore_surface_expiries_fitted_total ([0-9.e+]+)$", text, re.M)
    assert m, "no tradecore_surface_expiries_fitted_total metric"
    return float(m.group(1))


@pytest.mark.parametrize("strikes", [390, 150])
def test_fit_surface_at_the_documented_limit_returns_through_the_gateway(
    mesh: Mesh, strikes: int
) -> None:
    """128 expiries (the limit) of noisy quotes: x 390 strikes x 2 = 99,840 quotes (the quote
    limit is 100,000), and x 150 strikes (38,400 quotes in smaller noisy slices, where the
    least-squares fits do the most work per quote). OK through the gateway, whose route
    timeout is 60 s."""
    req = noisy_chain(128, strikes)
    with mesh.channel() as ch:
        start = time.perf_counter()
        res = pb_grpc.PricingServiceStub(ch).FitSurface(req, timeout=65)
        took = time.perf_counter() - start
    print(f"FitSurface {len(req.quotes)} quotes, 128 expiries: {took:.1f} s")
    assert len(res.slices) == 128


def test_cancelled_fit_surface_stops_working(mesh: Mesh) -> None:
    req = noisy_chain(128, 40, seed=11)
    before = expiries_fitted(mesh)
    with grpc.insecure_channel(mesh.pricing) as ch:
        call = pb_grpc.PricingServiceStub(ch).FitSurface.future(req, timeout=120)
        deadline = time.monotonic() + 30
        while expiries_fitted(mesh) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert expiries_fitted(mesh) >= before + 3, "the fit did not start"
        call.cancel()
    # Settles within a few seconds (the expiry being fitted finishes), then stays put.
    last, settled = expiries_fitted(mesh), time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and time.monotonic() - settled < 2.0:
        time.sleep(0.2)
        now = expiries_fitted(mesh)
        if now != last:
            last, settled = now, time.monotonic()
    assert time.monotonic() - settled >= 2.0, "still fitting 15 s after the cancel"
    assert last < before + 128
    time.sleep(2.0)
    assert expiries_fitted(mesh) == last
