"""PricingService with the real mesh up: gRPC direct, gRPC through Envoy, JSON through Envoy,
NATS request/reply, health, metrics and every bad input."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import grpc
import nats
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradecore.subjects import PRICING_PRICE
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.mesh import Mesh
from tests.unit.test_european import mp_greeks

pytestmark = pytest.mark.integration

CONTRACTS = [
    dict(
        spot=100.0,
        strike=105.0,
        expiry_years=0.5,
        rate=0.03,
        dividend_yield=0.01,
        volatility=0.25,
        option_type="CALL",
        style="EUROPEAN",
    ),
    dict(
        spot=100.0,
        strike=95.0,
        expiry_years=2.0,
        rate=-0.005,
        dividend_yield=0.02,
        volatility=0.4,
        option_type="PUT",
        style="EUROPEAN",
    ),
    dict(
        spot=50.0,
        strike=80.0,
        expiry_years=1 / 365,
        rate=0.05,
        dividend_yield=0.0,
        volatility=0.3,
        option_type="PUT",
    ),
]


def reference(c: dict[str, Any]) -> dict[str, float]:
    return mp_greeks(
        c["spot"],
        c["strike"],
        c["expiry_years"],
        c["rate"],
        c.get("dividend_yield", 0.0),
        c["volatility"],
        1 if c["option_type"] == "CALL" else -1,
    )


def proto_request(contracts: list[dict[str, Any]]) -> pb.PriceRequest:
    req = pb.PriceRequest()
    for c in contracts:
        req.contracts.add(
            **{
                k: (
                    pb.OptionType.Value(v)
                    if k == "option_type"
                    else pb.ExerciseStyle.Value(v)
                    if k == "style"
                    else v
                )
                for k, v in c.items()
            }
        )
    return req


def check_results(results: list[dict[str, float]]) -> None:
    assert len(results) == len(CONTRACTS)
    for c, r in zip(CONTRACTS, results, strict=True):
        ref = reference(c)
        for k, v in ref.items():
            assert float(r[k]) == pytest.approx(v, rel=1e-12, abs=1e-14), k


def post_json(mesh: Mesh, path: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=data,
        method="POST",
        headers={"content-type": "application/json", **mesh.auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_grpc_price(mesh: Mesh, via: str) -> None:
    target = mesh.pricing if via == "direct" else mesh.gateway
    with mesh.channel(target) as ch:
        stub = pb_grpc.PricingServiceStub(ch)
        res, call = stub.Price.with_call(
            proto_request(CONTRACTS), timeout=10, metadata=(("x-request-id", "req-123"),)
        )
    check_results(
        [
            {k: getattr(r, k) for k in ("price", "delta", "gamma", "vega", "theta", "rho", "phi")}
            for r in res.results
        ]
    )
    assert ("x-request-id", "req-123") in tuple(call.trailing_metadata())


def test_json_price_through_gateway(mesh: Mesh) -> None:
    status, body = post_json(mesh, "/v1/pricing/price", {"contracts": CONTRACTS})
    assert status == 200, body
    check_results(body["results"])
    assert set(body["results"][0]) == {"price", "delta", "gamma", "vega", "theta", "rho", "phi"}


@pytest.mark.parametrize(
    "field,value,expect",
    [
        ("volatility", -0.2, "contracts[1].volatility"),
        ("spot", 0, "contracts[1].spot"),
        ("strike", -5, "contracts[1].strike"),
        ("expiry_years", -1, "contracts[1].expiry_years"),
        ("option_type", "OPTION_TYPE_UNSPECIFIED", "contracts[1].option_type"),
    ],
)
def test_bad_input_json_400_and_grpc_invalid_argument(
    mesh: Mesh, field: str, value: Any, expect: str
) -> None:
    bad = [CONTRACTS[0], dict(CONTRACTS[1], **{field: value})]
    status, body = post_json(mesh, "/v1/pricing/price", {"contracts": bad})
    assert status == 400
    assert expect in body["message"] and body["code"] == 3
    for target in (mesh.pricing, mesh.gateway):
        with mesh.channel(target) as ch, pytest.raises(grpc.RpcError) as err:
            pb_grpc.PricingServiceStub(ch).Price(proto_request(bad), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expect in err.value.details()


def test_malformed_json_and_unknown_routes(mesh: Mesh) -> None:
    status, body = post_json(mesh, "/v1/pricing/price", {"contracts": [{"spot": "abc"}]})
    assert status == 400 and "spot" in str(body)
    status, _ = post_json(mesh, "/v1/pricing/price", b"{not json")
    assert status == 400
    status, _ = post_json(mesh, "/v1/nothing/here", {})
    assert status == 404
    with mesh.channel() as ch:
        call = ch.unary_unary("/tradecore.nothing.v1.Nope/Call")
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_over_large_request_is_refused_cleanly(mesh: Mesh) -> None:
    req = proto_request([CONTRACTS[0]] * 100_001)
    with grpc.insecure_channel(mesh.pricing) as ch, pytest.raises(grpc.RpcError) as err:
        pb_grpc.PricingServiceStub(ch).Price(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contracts: 100001 contracts exceed the limit" in err.value.details()
    # still serving afterwards
    with grpc.insecure_channel(mesh.pricing) as ch:
        assert len(pb_grpc.PricingServiceStub(ch).Price(proto_request(CONTRACTS)).results) == 3


def test_large_batch_matches_library(mesh: Mesh) -> None:
    rng = np.random.default_rng(2)
    n = 20_000
    req = pb.PriceRequest()
    S, K = rng.uniform(50, 150, n), rng.uniform(50, 150, n)
    for s, k in zip(S, K, strict=True):
        req.contracts.add(
            spot=s, strike=k, expiry_years=0.75, rate=0.02, volatility=0.3, option_type=pb.PUT
        )
    with mesh.channel() as ch:
        res = pb_grpc.PricingServiceStub(ch).Price(req, timeout=30)
    from tradecore import pricing

    expect = pricing.european(S, K, 0.75, 0.02, 0.0, 0.3, "put")["price"]
    np.testing.assert_array_equal([r.price for r in res.results], expect)


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_health(mesh: Mesh, via: str) -> None:
    target = mesh.pricing if via == "direct" else mesh.gateway
    with mesh.channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "tradecore.pricing.v1.PricingService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_metrics_count_requests(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.pricing) as ch:
        pb_grpc.PricingServiceStub(ch).Price(proto_request(CONTRACTS), timeout=5)
    url = f"http://127.0.0.1:{mesh.pricing_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    ok = [
        ln
        for ln in text.splitlines()
        if ln.startswith("tradecore_rpc_requests_total")
        and 'method="Price"' in ln
        and 'code="OK"' in ln
    ]
    assert ok and float(ok[0].split()[-1]) >= 1
    assert "tradecore_rpc_latency_seconds_bucket" in text
    assert 'code="INVALID_ARGUMENT"' in text  # from the bad-input tests or below


def test_nats_request_reply(mesh: Mesh) -> None:
    async def go() -> tuple[pb.PriceResponse, dict[str, str] | None]:
        nc = await nats.connect(mesh.nats_url)
        try:
            msg = await nc.request(
                PRICING_PRICE, proto_request(CONTRACTS).SerializeToString(), timeout=5
            )
            bad = await nc.request(
                PRICING_PRICE,
                proto_request([dict(CONTRACTS[0], volatility=-1.0)]).SerializeToString(),
                timeout=5,
            )
            return pb.PriceResponse.FromString(msg.data), bad.headers
        finally:
            await nc.close()

    res, bad_headers = asyncio.run(go())
    check_results([{k: getattr(r, k) for k in reference(CONTRACTS[0])} for r in res.results])
    assert bad_headers is not None
    assert bad_headers["Tradecore-Error"].startswith("INVALID_ARGUMENT: contracts[0].volatility")


def test_request_id_reaches_json_callers_as_a_header(mesh: Mesh) -> None:
    """Through the gateway every response carries x-request-id: the caller's, or the one Envoy
    made and passed to the service (the direct gRPC id is in the trailers)."""
    body = json.dumps({"contracts": CONTRACTS[:1]}).encode()
    for given in ("json-rid-1", None):
        headers = {"content-type": "application/json", **mesh.auth_headers()}
        if given:
            headers["x-request-id"] = given
        req = urllib.request.Request(
            f"http://{mesh.gateway}/v1/pricing/price", data=body, method="POST", headers=headers
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
            rid = r.headers["x-request-id"]
        assert rid == given if given else len(rid) >= 16
