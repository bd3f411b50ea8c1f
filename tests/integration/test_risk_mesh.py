"""RiskService with the real mesh up: ComputeVaR over gRPC and JSON through Envoy, bad input
named over JSON, stress P&L by exact repricing, the MathWorks backtest, a run refused for its
deadline, and ComputeVaR over NATS shared by two replicas in the queue group."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import nats
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradecore.risk.book import Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.valuation import revalue
from tradecore.subjects import RISK_COMPUTE_VAR
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_api.risk.v1 import risk_pb2_grpc as pb_grpc
from tradecore_services.common.nats_rpc import ERROR_HEADER

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SERVICE = "tradecore.risk.v1.RiskService"
# The request shape of the issue (docs/api.md, "Risk: RiskService API").
MARKET = {
    "rate": 0.03,
    "underlyings": [
        {"symbol": "AAA", "spot": 100, "volatility": 0.25, "dividend_yield": 0.01},
        {"symbol": "BBB", "spot": 50, "volatility": 0.4},
    ],
    "correlation": [1, 0.3, 0.3, 1],
}
POSITIONS = [
    {
        "instrument": {
            "symbol": "AAA",
            "kind": "OPTION",
            "option_type": "CALL",
            "style": "EUROPEAN",
            "strike": 105,
            "expiry_years": 0.5,
        },
        "quantity": 10,
    },
    {
        "instrument": {
            "symbol": "BBB",
            "kind": "OPTION",
            "option_type": "PUT",
            "style": "AMERICAN",
            "strike": 45,
            "expiry_years": 0.25,
        },
        "quantity": -5,
        "multiplier": 100,
    },
    {"instrument": {"symbol": "BBB", "kind": "EQUITY"}, "quantity": 200},
]
RNG = np.random.default_rng(11)
RETURNS = (RNG.standard_t(5, size=(250, 2)) * 0.015).ravel().tolist()


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


def var_body(**fields: Any) -> dict[str, Any]:
    body = {
        "positions": json.loads(json.dumps(POSITIONS)),
        "market": json.loads(json.dumps(MARKET)),
        "method": "PARAMETRIC",
        "confidence": 0.99,
        "horizon_days": 1,
    }
    body.update(fields)
    return body


def library_book() -> Any:
    market = Market(
        0.03,
        (Underlying("AAA", 100.0, 0.25, 0.01), Underlying("BBB", 50.0, 0.4)),
        [1, 0.3, 0.3, 1],
    )
    return book_arrays(
        [
            Position(Instrument("AAA", "option", "call", "european", 105.0, 0.5), 10.0),
            Position(Instrument("BBB", "option", "put", "american", 45.0, 0.25), -5.0, 100.0),
            Position(Instrument("BBB"), 200.0),
        ],
        market,
    )


def test_compute_var_over_grpc_and_json(mesh: Mesh) -> None:
    """The issue's request shape over JSON; the same seed gives the same answer, over JSON,
    gRPC direct and gRPC through the gateway."""
    mc = var_body(method="MONTE_CARLO", paths=50_000, seed=7, device="CPU", horizon_days=10)
    status, body = post(mesh, "/v1/risk/var", mc)
    assert status == 200, body
    assert (body["method"], body["paths"], body["device"]) == ("MONTE_CARLO", "50000", "CPU")
    assert body["var"] > 0 and body["expected_shortfall"] >= body["var"] > 0
    assert body["var_stderr"] > 0 and body["interpolation_error"] > 0  # the American put
    assert "delta_gamma_var" in body["details"]
    assert post(mesh, "/v1/risk/var", mc) == (200, body)
    request = json_format.ParseDict(mc, pb.ComputeVaRRequest())
    with grpc.insecure_channel(mesh.risk) as channel:
        direct = pb_grpc.RiskServiceStub(channel).ComputeVaR(request, timeout=30)
    with mesh.channel() as channel:
        via = pb_grpc.RiskServiceStub(channel).ComputeVaR(request, timeout=30)
    assert direct == via and direct.var == body["var"]
    assert direct.expected_shortfall == body["expected_shortfall"]
    status, other = post(mesh, "/v1/risk/var", {**mc, "seed": 8})
    assert status == 200 and other["var"] != body["var"]
    # Many books over one market and one set of scenarios: each book's own VaR.
    books = [{"positions": POSITIONS[:1]}, {"positions": POSITIONS[1:]}]
    settings = {k: v for k, v in mc.items() if k not in ("positions", "market")}
    status, batch = post(
        mesh, "/v1/risk/var:batch", {"books": books, "market": MARKET, "settings": settings}
    )
    assert status == 200, batch
    for book, result in zip(books, batch["results"], strict=True):
        status, one = post(mesh, "/v1/risk/var", {**mc, "positions": book["positions"]})
        assert status == 200 and result["var"] == pytest.approx(one["var"], rel=1e-12)
    # A historical method over the request's returns.
    status, hist = post(mesh, "/v1/risk/var", var_body(method="HISTORICAL", returns=RETURNS))
    assert status == 200 and hist["paths"] == "250" and hist["var"] > 0, hist


def without(body: dict[str, Any], *path: Any) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


def changed(body: dict[str, Any], value: Any, *path: Any) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


BAD = [
    (
        "unknown symbol",
        changed(var_body(), "ZZZ", "positions", 0, "instrument", "symbol"),
        "positions[0].instrument.symbol: unknown underlying 'ZZZ'",
    ),
    (
        "correlation size",
        changed(var_body(), [1, 0.3, 0.3], "market", "correlation"),
        "market.correlation: expected 2 x 2 values",
    ),
    ("confidence above 1", var_body(confidence=1.5), "confidence: must be in (0, 1)"),
    ("confidence below 0", var_body(confidence=-0.5), "confidence: must be in (0, 1)"),
    ("zero paths", var_body(method="MONTE_CARLO", paths=0), "paths: must be >= 1, got 0"),
    ("zero confidence", var_body(confidence=0), "confidence: must be in (0, 1), got 0.0"),
    (
        "absurd paths",
        var_body(method="MONTE_CARLO", paths="1000000000000"),
        "paths: at most 10000000 per call",
    ),
    (
        "expired option",
        changed(var_body(), 0, "positions", 1, "instrument", "expiry_years"),
        "positions[1].instrument.expiry_years: must be > 0 (the option has expired)",
    ),
    (
        "NaN quantity",
        changed(var_body(), "NaN", "positions", 2, "quantity"),
        "positions[2].quantity: must be finite",
    ),
    ("NaN confidence", var_body(confidence="NaN"), "confidence: must be finite"),
    (
        "infinite spot",
        changed(var_body(), "Infinity", "market", "underlyings", 0, "spot"),
        "market.underlyings[0].spot: must be finite",
    ),
    (
        "unset kind",
        without(var_body(), "positions", 0, "instrument", "kind"),
        "positions[0].instrument.kind: must be EQUITY or OPTION",
    ),
    (
        "option without type",
        without(var_body(), "positions", 0, "instrument", "option_type"),
        "positions[0].instrument.option_type: must be CALL or PUT",
    ),
    ("no positions", var_body(positions=[]), "positions: must not be empty"),
]


def test_bad_input_is_400_naming_the_field(mesh: Mesh) -> None:
    failures = []
    for name, body, message in BAD:
        status, reply = post(mesh, "/v1/risk/var", body)
        if status != 400 or reply.get("code") != 3 or not reply["message"].startswith(message):
            failures.append((name, status, reply))
    assert not failures, failures
    # Historical VaR without returns: the market-data service's stored closes, none for AAA
    # (test_risk_bars_mesh.py has the stored case).
    status, reply = post(mesh, "/v1/risk/var", var_body(method="HISTORICAL"))
    assert status == 400 and reply["code"] == 3, reply
    assert reply["message"].startswith(
        "market.underlyings[0].symbol: 'AAA' has 0 daily closes in the store"
    ), reply


def test_stress_over_json_is_exact_repricing(mesh: Mesh) -> None:
    body = {
        "positions": POSITIONS,
        "market": MARKET,
        "scenarios": [
            {
                "name": "crash",
                "spot_shocks": {"AAA": -0.2, "BBB": -0.1},
                "vol_shocks": {"AAA": 0.1},
                "rate_shock": -0.01,
            }
        ],
    }
    status, reply = post(mesh, "/v1/risk/stress", body)
    assert status == 200, reply
    book = library_book()
    now = revalue(book)
    after = revalue(
        book,
        spot=book.spot * np.array([0.8, 0.9]),
        volatility=book.volatility + np.array([0.1, 0.0]),
        rate=book.rate - 0.01,
    )
    (crash,) = reply["scenarios"]
    assert crash["pnl"] == pytest.approx(float((after - now).sum()), rel=1e-12)
    assert crash["position_pnl"] == pytest.approx((after - now).tolist(), rel=1e-12)
    assert reply["value"] == pytest.approx(float(now.sum()), rel=1e-12)
    body["scenarios"][0]["spot_shocks"]["ZZZ"] = 0.1
    status, reply = post(mesh, "/v1/risk/stress", body)
    assert status == 400 and reply["message"].startswith("scenarios[0].spot_shocks['ZZZ']")


def test_backtest_reproduces_the_mathworks_example_over_json(mesh: Mesh) -> None:
    status, reply = post(
        mesh,
        "/v1/risk/backtest",
        {"observations": 1043, "failures": 57, "confidence": 0.95},
    )
    assert status == 200, reply
    pof = reply["kupiec_pof"]
    assert round(pof["statistic"], 3) == 0.461 and round(pof["p_value"], 3) == 0.497
    assert reply["traffic_light"] == "GREEN" and pof["available"] is True


def test_a_run_too_large_for_its_deadline_is_refused_before_it_starts(mesh: Mesh) -> None:
    """10M paths x 100 options (2-3 s of the kernel) with a 1 s deadline: refused at once
    with a message, not left to run past the deadline."""
    request = pb.ComputeVaRRequest(method=pb.MONTE_CARLO, paths=10_000_000)
    for i in range(100):
        request.positions.add(quantity=1.0).instrument.CopyFrom(
            pb.RiskInstrument(
                symbol="AAA", kind=2, option_type=1, strike=80.0 + i / 2, expiry_years=1.0
            )
        )
    request.market.underlyings.add(symbol="AAA", spot=100.0, volatility=0.2)
    with grpc.insecure_channel(mesh.risk) as channel:
        stub = pb_grpc.RiskServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ComputeVaR(request, timeout=1.0)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert info.value.details().startswith("paths: the run would take about 3 s"), info.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_calls(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    total = 0.0
    for line in text.decode().splitlines():
        ours = line.startswith("tradecore_rpc_requests_total{") and RISK_COMPUTE_VAR in line
        if ours and re.search(r'code="OK"', line):
            total += float(line.split()[-1])
    return total


def test_two_replicas_share_compute_var_over_nats(mesh: Mesh, tmp_path: Path) -> None:
    """A second RiskService process joins the queue group: requests on risk.v1.compute_var
    are answered by both replicas (each answers some), every answer the same."""
    port, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
    env.update(
        TRADECORE_PORT=str(port),
        TRADECORE_METRICS_PORT=str(metrics),
        TRADECORE_NATS_URL=mesh.nats_url,
        TRADECORE_DATA_DIR=str(tmp_path),
        TRADECORE_LOG_FILE="-",
    )
    log = (tmp_path / "replica.log").open("wb")
    replica = subprocess.Popen(
        [sys.executable, "-m", "tradecore_services.risk"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    r = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline and replica.poll() is None
                time.sleep(0.2)
        before = nats_calls(mesh.risk_metrics_port), nats_calls(metrics)
        request = json_format.ParseDict(var_body(), pb.ComputeVaRRequest())
        data = request.SerializeToString()

        async def go() -> list[bytes]:
            nc = await nats.connect(mesh.nats_url)
            try:
                replies = [await nc.request(RISK_COMPUTE_VAR, data, timeout=10) for _ in range(40)]
                bad = pb.ComputeVaRRequest()
                bad.CopyFrom(request)
                bad.confidence = 2.0
                err = await nc.request(RISK_COMPUTE_VAR, bad.SerializeToString(), timeout=10)
                assert err.headers is not None
                assert err.headers[ERROR_HEADER].startswith("INVALID_ARGUMENT: confidence: ")
                return [r.data for r in replies]
            finally:
                await nc.close()

        answers = asyncio.run(go())
        after = nats_calls(mesh.risk_metrics_port), nats_calls(metrics)
    finally:
        replica.terminate()
        replica.wait(timeout=30)
        log.close()
    replies = [pb.ComputeVaRResponse.FromString(a) for a in answers]
    assert all(r == replies[0] for r in replies) and replies[0].var > 0
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(served) == 40 and min(served) > 0, served


def test_a_json_run_longer_than_the_gateway_waits_is_refused_before_it_starts(
    mesh: Mesh,
) -> None:
    """A JSON call carries no gRPC deadline, but the gateway answers 504 after its route
    timeout (the heavy route class's 120 s, sent as x-envoy-expected-rq-timeout-ms): a run
    estimated longer than that is refused at once instead of computing for nobody."""
    positions = [
        {
            "instrument": {
                "symbol": "AAA", "kind": "OPTION", "option_type": "PUT", "style": "AMERICAN",
                "strike": 60 + i / 10, "expiry_years": 1,
            },
            "quantity": 1,
        }
        for i in range(400)
    ]  # fmt: skip
    body = {
        "positions": positions,
        "market": {
            "rate": 0.05,
            "underlyings": [{"symbol": "AAA", "spot": 100, "volatility": 0.2}],
        },
        "method": "HISTORICAL",
        # 400 American options (20 European each) x 400k days x 100 ns: about 320 s.
        "returns": np.round(RNG.normal(0, 0.01, 400_000), 5).tolist(),
    }
    start = time.perf_counter()
    status, reply = post(mesh, "/v1/risk/var", body)
    assert time.perf_counter() - start < 30
    assert status == 504 and reply["code"] == 4, reply  # DEADLINE_EXCEEDED
    assert "left of the call's deadline; refused before it started" in reply["message"]
