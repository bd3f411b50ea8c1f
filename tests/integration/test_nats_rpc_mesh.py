"""PricingService's NATS request/reply (``pricing.v1.price``) in the mesh: request ids in the
NATS headers, statuses and metrics as for its gRPC calls."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import nats
import pytest
from tradecore.subjects import PRICING_PRICE
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONTRACT = pb.OptionContract(
    spot=100.0,
    strike=100.0,
    expiry_years=0.5,
    rate=0.01,
    volatility=0.2,
    option_type=pb.OptionType.Value("CALL"),
    style=pb.ExerciseStyle.Value("EUROPEAN"),
)


def nats_counts(mesh: Mesh) -> dict[str, float]:
    """tradecore_rpc_requests_total of method pricing.v1.price, by code."""
    url = f"http://127.0.0.1:{mesh.pricing_metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tradecore_rpc_requests_total{") and f'method="{PRICING_PRICE}"' in line:
            code = re.search(r'code="([A-Z_]+)"', line)
            assert code is not None
            out[code.group(1)] = float(line.split()[-1])
    return out


def test_price_over_nats_carries_the_request_id_and_is_counted(mesh: Mesh) -> None:
    before = nats_counts(mesh)
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)
        try:
            ok = await nc.request(
                PRICING_PRICE,
                pb.PriceRequest(contracts=[CONTRACT]).SerializeToString(),
                timeout=5,
                headers={"x-request-id": "nats-ok-1", "traceparent": trace},
            )
            assert ok.headers == {"x-request-id": "nats-ok-1", "traceparent": trace}
            (result,) = pb.PriceResponse.FromString(ok.data).results
            assert 5.0 < result.price < 7.0

            bad_contract = pb.OptionContract()
            bad_contract.CopyFrom(CONTRACT)
            bad_contract.volatility = -1.0
            bad = await nc.request(
                PRICING_PRICE,
                pb.PriceRequest(contracts=[bad_contract]).SerializeToString(),
                timeout=5,
                headers={"x-request-id": "nats-bad-1"},
            )
            assert bad.data == b""
            assert bad.headers is not None
            assert bad.headers["x-request-id"] == "nats-bad-1"
            assert bad.headers["Tradecore-Error"].startswith(
                "INVALID_ARGUMENT: contracts[0].volatility"
            )

            junk = await nc.request(
                PRICING_PRICE, b"\xff\xff", timeout=5, headers={"x-request-id": "nats-junk-1"}
            )
            assert junk.headers == {
                "x-request-id": "nats-junk-1",
                "Tradecore-Error": (
                    "INVALID_ARGUMENT: request is not a valid PriceRequest for "
                    f"{PRICING_PRICE} (DecodeError)"
                ),
            }
        finally:
            await nc.close()

    asyncio.run(go())
    after = nats_counts(mesh)
    assert after.get("OK", 0) - before.get("OK", 0) == 1
    assert after.get("INVALID_ARGUMENT", 0) - before.get("INVALID_ARGUMENT", 0) == 2
    assert "INTERNAL" not in after
