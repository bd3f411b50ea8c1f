"""The shared event contracts through the mesh: MarketDataService.StreamQuotes returns
``tradecore.events.v1.Quote``, and the gateway (whose descriptor set must hold the events
package) streams it as the JSON it always had: the Quote's proto field names."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from tradecore_api.events.v1 import market_pb2
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

QUOTE_FIELDS = {
    "venue",
    "symbol",
    "exchange_time_ns",
    "receive_time_ns",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "sequence",
}


def first_json_object(stream: Any) -> dict[str, Any]:
    """The first element of a JSON array the gateway streams (read until it is complete)."""
    text = ""
    while True:
        chunk = stream.read1(4096).decode()
        assert chunk, f"stream ended: {text!r}"
        text += chunk
        start = text.find("{")
        if start < 0:
            continue
        depth = 0
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return dict(json.loads(text[start : i + 1]))


def test_stream_quotes_is_the_events_quote_over_grpc_and_json(mesh: Mesh) -> None:
    method = pb.DESCRIPTOR.services_by_name["MarketDataService"].methods_by_name["StreamQuotes"]
    assert method.output_type.full_name == "tradecore.events.v1.Quote"
    with grpc.insecure_channel(mesh.marketdata) as ch:
        stub = pb_grpc.MarketDataServiceStub(ch)
        spec = pb.SyntheticFeedSpec(symbols=["EVQ"], rate=2000, count=20000, speed=1, seed=5)
        stub.StartFeed(pb.StartFeedRequest(synthetic=spec), timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                stub.GetBook(pb.GetBookRequest(symbol="EVQ", depth=1), timeout=5)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        call = stub.StreamQuotes(pb.StreamQuotesRequest(symbol="EVQ"), timeout=20)
        quote = next(call)
        call.cancel()
    assert isinstance(quote, market_pb2.Quote) and quote.symbol == "EVQ"
    url = f"http://{mesh.gateway}/v1/marketdata/EVQ/quotes"
    req = urllib.request.Request(url, headers=mesh.auth_headers())
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status == 200
        obj = first_json_object(r)
    assert set(obj) == QUOTE_FIELDS
    parsed = json_format.ParseDict(obj, market_pb2.Quote())
    assert parsed.symbol == "EVQ" and parsed.venue == "synthetic"
    assert 0 < parsed.bid_price < parsed.ask_price and parsed.sequence > 0
