"""The gateway's strict JSON checks (the Lua filter before the transcoder) and its retries of
the gateway -> service hop, with the real mesh up."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.integration.test_marketdata_mesh import http_get
from tests.integration.test_pricing_mesh import post_json
from tests.mesh import Mesh

pytestmark = pytest.mark.integration

PUT = {
    "spot": 100.0,
    "strike": 100.0,
    "expiry_years": 1.0,
    "rate": 0.05,
    "volatility": 0.2,
    "option_type": "PUT",
}


def price(mesh: Mesh, body: Any) -> tuple[int, Any]:
    return post_json(mesh, "/v1/pricing/price", body)


def assert_invalid(status: int, body: Any, message: str) -> None:
    assert status == 400, body
    assert isinstance(body, dict), body
    assert body["code"] == 3 and body["details"] == [], body
    assert message in body["message"], body


def test_misspelled_fields_are_rejected_not_ignored(mesh: Mesh) -> None:
    status, body = price(mesh, {"contracts": [PUT], "greeks": "GREEKS_NONE"})
    assert status == 200, body
    european_no_dividend = body["results"][0]["price"]
    good = dict(PUT, dividend_yield=0.5, style="AMERICAN")
    status, body = price(mesh, {"contracts": [good], "greeks": "GREEKS_NONE"})
    assert status == 200, body
    american = body["results"][0]["price"]
    assert american > 0 and american != pytest.approx(european_no_dividend, rel=1e-3)
    # The same in json_name form (camelCase) and with the enum as a number.
    camel = dict(PUT, dividendYield=0.5, style=2)
    status, body = price(mesh, {"contracts": [camel], "greeks": "GREEKS_NONE"})
    assert status == 200 and body["results"][0]["price"] == american, body

    typo = dict(PUT, dividend_yeld=0.5, styel="AMERICAN")
    status, body = price(mesh, {"contracts": [typo], "greeks": "GREEKS_NONE"})
    assert_invalid(
        status, body, "contracts[0].dividend_yeld is not a field of tradecore.pricing.v1."
    )
    status, body = price(mesh, {"contracts": [PUT], "greek": "GREEKS_ALL"})
    assert_invalid(status, body, "greek is not a field of tradecore.pricing.v1.PriceRequest")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"contracts": [null]}', "contracts[0] is null"),
        (b'{"greek_names": ["delta", null]}', "greek_names[1] is null"),
        (b'{"contracts": [{"spot": 100, }]}', "trailing comma after contracts[0].spot"),
        (b'{"contracts": [{"spot": 100}, ]}', "trailing comma after contracts[0]"),
        (b'{"contracts": []} garbage', "unexpected data after the JSON value"),
        (b'{"contracts": [{"spot": 100', "the body ends"),
        (b"{not json", "invalid JSON"),
        (b'{"contracts": [{"spot": 01}]}', "leading zero"),
        (b'{"contracts": [{"spot": null}]}', "contracts[0].spot is null"),
        (b'{"contracts": [{"spot": 1, "spot": 2}]}', "contracts[0].spot is given twice"),
        (b'{"contracts": [{"spot": true}]}', "contracts[0].spot must be a number"),
        (b'{"contracts": {"spot": 1}}', "contracts must be a list"),
        (b'{"contracts": [{"style": "AMERCAN"}]}', '"AMERCAN" is not a value of'),
        (b"[]", "the body must be a JSON object"),
    ],
)
def test_malformed_json_nulls_and_wrong_types_are_400(mesh: Mesh, raw: bytes, message: str) -> None:
    status, body = price(mesh, raw)
    assert_invalid(status, body, message)


def test_every_json_route_is_strict(mesh: Mesh) -> None:
    status, body = post_json(mesh, "/v1/pricing/implied-vol", {"options": [{"prise": 1.0}]})
    assert_invalid(status, body, "options[0].prise is not a field")
    status, body = post_json(mesh, "/v1/pricing/surfaces/abc:query", {"points": [{"k": 1}]})
    assert_invalid(status, body, "points[0].k is not a field")
    status, body = post_json(mesh, "/v1/marketdata/feeds", {"lobster": {}, "synthetic": {}})
    assert_invalid(status, body, "only one of oneof spec")
    status, body = post_json(mesh, "/v1/marketdata/feeds", {"synthetic": {"symbol": ["X"]}})
    assert_invalid(status, body, "synthetic.symbol is not a field")
    status, body = post_json(mesh, "/v1/marketdata/feeds/x:stop", {"idd": 1})
    assert_invalid(status, body, "takes no body")


def test_long_keys_are_quoted_short(mesh: Mesh) -> None:
    status, body = price(mesh, {"x" * 10_000: 1})
    assert_invalid(status, body, "x" * 64 + "... is not a field")
    assert len(body["message"]) < 200


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/marketdata/GOOG/book?depth=5&dpeth=5", "dpeth"),
        ("/v1/marketdata/feeds/x?wiat=1s", "wiat"),
        ("/v1/marketdata/GOOG/bars?interval.secs=60", "interval.secs"),
        ("/v1/marketdata/symbols?limit=5", "limit"),
    ],
)
def test_unknown_query_parameter_is_400_naming_it(mesh: Mesh, path: str, name: str) -> None:
    status, body = http_get(mesh, path)
    assert_invalid(status, body, f"unknown query parameter '{name}'")


def test_known_query_parameters_still_bind(mesh: Mesh) -> None:
    status, body = post_json(mesh, "/v1/pricing/price?greeks=GREEKS_NONE", {"contracts": [PUT]})
    assert status == 200 and set(body["results"][0]) == {"price"}, body
    status, body = http_get(mesh, "/v1/marketdata/NOPE/book?depth=5&venue=X")
    assert status == 404, body


def call_price_until(stub: Any, stop: threading.Event, counts: dict[str, int]) -> None:
    req = pb.PriceRequest(
        contracts=[pb.OptionContract(**dict(PUT, option_type=pb.PUT))],
        greeks=pb.GREEKS_NONE,
    )
    while not stop.is_set():
        try:
            stub.Price(req, timeout=15)
            counts["ok"] += 1
        except grpc.RpcError as exc:
            counts["failed"] += 1
            counts[exc.code().name] = counts.get(exc.code().name, 0) + 1


def pricing_pid(mesh: Mesh) -> int | None:
    """The pricing service's pid as the supervisor records it (None while it restarts)."""
    pid = mesh.state()["components"]["pricing"]["pid"]  # type: ignore[index]
    return None if pid is None else int(pid)


def wait_direct_price(mesh: Mesh, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(mesh.pricing) as ch:
        stub = pb_grpc.PricingServiceStub(ch)
        while True:
            try:
                stub.Price(pb.PriceRequest(), timeout=2)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_killed_pricing_service_costs_few_failed_calls(mesh: Mesh) -> None:
    """The supervisor restarts a SIGKILLed service in a second or two; the gateway retries the
    calls that could not reach it meanwhile, and (Price being marked NO_SIDE_EFFECTS) the calls
    in flight at the kill, instead of failing them."""
    threads_n = 4
    counts: dict[str, int] = {"ok": 0, "failed": 0}
    stop = threading.Event()
    old_pid = pricing_pid(mesh)
    assert old_pid is not None
    with mesh.channel() as ch:
        stub = pb_grpc.PricingServiceStub(ch)
        threads = [
            threading.Thread(target=call_price_until, args=(stub, stop, counts))
            for _ in range(threads_n)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            ok_before = counts["ok"]
            assert ok_before > 0, counts
            os.kill(old_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            deadline = time.monotonic() + 60
            while pricing_pid(mesh) in (None, old_pid):
                assert time.monotonic() < deadline, "pricing was not restarted"
                time.sleep(0.05)
            wait_direct_price(mesh)
            down_s = time.monotonic() - killed_at
            ok_at_restart = counts["ok"]
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    print(f"calls through a SIGKILL of pricing ({down_s:.1f} s down): {counts}")
    assert counts["ok"] > ok_at_restart, counts  # serving again through the gateway
    # Without retries this is thousands (every call while the service restarts fails at once);
    # with them 0 in practice. The bound leaves room for a restart slower than the retries.
    assert counts["failed"] <= 4 * threads_n, counts


def test_gateway_errors_are_json(mesh: Mesh) -> None:
    # The 400s above are the gateway's own; they carry the transcoder's error shape.
    req = urllib.request.Request(
        f"http://{mesh.gateway}/v1/pricing/price",
        data=b'{"contracts": [null]}',
        method="POST",
        headers={"content-type": "application/json", **mesh.auth_headers()},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    with err.value:
        assert err.value.code == 400
        assert err.value.headers["content-type"] == "application/json"
