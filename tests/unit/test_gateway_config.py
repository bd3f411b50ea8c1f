from __future__ import annotations

import json

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from tradecore_gateway.generate import (
    HttpUpstream,
    Upstream,
    descriptor_path,
    envoy_config,
    idempotent_methods,
    json_routes,
    json_schema,
    path_pattern,
    streaming_methods,
    strict_json_lua,
    tradecore_services,
)


def test_descriptor_lists_pricing_service() -> None:
    assert "tradecore.pricing.v1.PricingService" in tradecore_services(descriptor_path())


def test_config_routes_and_admin_loopback() -> None:
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams={"tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 5555)},
        listen_port=18080,
        admin_port=19901,
    )
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    # a route per method (server streams without an overall timeout), then the service prefix
    stream = routes[[r["match"] for r in routes].index(
        {"path": "/tradecore.pricing.v1.PricingService/StreamGreeks"}
    )]  # fmt: skip
    assert stream["route"]["timeout"] == "0s"
    prefix = [
        r for r in routes if r["match"].get("prefix") == "/tradecore.pricing.v1.PricingService/"
    ]
    assert len(prefix) == 1 and prefix[0]["route"]["timeout"] == "30s"
    assert routes.index(prefix[0]) > routes.index(stream)
    # The edge's CORS and gRPC-Web first, then the client's claims header removed
    # (gateway/auth.py), the strict-JSON Lua filter before the transcoder, the edge's limits,
    # the router last (auth and edge filters: test_gateway_auth.py, test_gateway_edge.py).
    names = [f["name"] for f in hcm["http_filters"]]
    lua_at = names.index("envoy.filters.http.lua")
    assert names.index("envoy.filters.http.header_mutation") < lua_at
    assert names.index("envoy.filters.http.grpc_json_transcoder") == lua_at + 1
    assert names[-1] == "envoy.filters.http.router"
    lua = hcm["http_filters"][lua_at]["typed_config"]["default_source_code"]["inline_string"]
    assert "local SCHEMA = " in lua and "function envoy_on_request(handle)" in lua
    transcoder = hcm["http_filters"][lua_at + 1]["typed_config"]
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["convert_grpc_status"] is True
    cluster = cfg["static_resources"]["clusters"][0]
    assert cluster["health_checks"][0]["grpc_health_check"] == {}
    # Every route retries only what never reached the service.
    for route in routes:
        if route["match"].get("prefix") == "/grpc.health.v1.Health/":
            continue
        policy = route["route"]["retry_policy"]
        assert policy["retry_on"].startswith("connect-failure,refused-stream,reset-before-request")
        assert policy["num_retries"] >= 3
    # Calls in flight are retried (`reset`) only for methods the proto marks side-effect free.
    by_match = {json.dumps(r["match"]): r["route"] for r in routes}
    price = by_match[json.dumps({"path": "/tradecore.pricing.v1.PricingService/Price"})]
    assert "reset" in price["retry_policy"]["retry_on"].split(",")
    assert price["timeout"] == "30s"  # a read (gateway/edge.py DEFAULT_LIMITS)
    assert "reset" not in prefix[0]["route"]["retry_policy"]["retry_on"].split(",")
    assert cluster["circuit_breakers"]["thresholds"][0]["max_retries"] >= 100


def test_streaming_methods_come_from_the_descriptor() -> None:
    streams = streaming_methods(descriptor_path())
    assert "/tradecore.pricing.v1.PricingService/StreamGreeks" in streams
    assert "/tradecore.pricing.v1.PricingService/Price" not in streams


def test_idempotent_methods_come_from_the_proto_options() -> None:
    safe = idempotent_methods(descriptor_path())
    assert "/tradecore.pricing.v1.PricingService/Price" in safe
    assert "/tradecore.marketdata.v1.MarketDataService/GetBars" in safe
    assert "/tradecore.pricing.v1.PricingService/FitSurface" not in safe
    assert "/tradecore.marketdata.v1.MarketDataService/StartFeed" not in safe


def test_unknown_service_rejected() -> None:
    with pytest.raises(ValueError, match="not in the descriptor"):
        envoy_config(descriptor=descriptor_path(), upstreams={"x.Y": Upstream("h", 1)})


def _http_methods() -> set[tuple[str, str]]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    return {
        (f"/{f.package}.{s.name}/{m.name}", m.input_type.lstrip("."))
        for f in fds.file
        if f.package.startswith("tradecore.")
        for s in f.service
        for m in s.method
        if m.options.HasExtension(annotations_pb2.http)
    }


def test_every_json_route_has_a_schema() -> None:
    """Every method with a google.api.http rule gets a route, and every message reachable from
    a route's request message (fields of message type, recursively) gets a schema."""
    schema = json_schema(descriptor_path())
    methods = _http_methods()
    assert len(methods) >= 16
    assert {(r["rpc"], r["q"]) for r in schema["routes"]} == methods
    messages, enums = schema["messages"], schema["enums"]
    todo = [r["q"] for r in schema["routes"]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert name in messages, name
        for key, field in messages[name]["f"].items():
            assert field["k"] in {"msg", "num", "bool", "str", "enum", "wkt", "any", "map"}
            if field["k"] == "msg":
                todo.append(field["t"])
            if field["k"] == "enum":
                assert field["t"] in enums, field
            assert key in (field["n"], _camel(field["n"]))
    assert seen == set(messages)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_schema_fields_kinds_and_names() -> None:
    schema = json_schema(descriptor_path())
    contract = schema["messages"]["tradecore.pricing.v1.OptionContract"]["f"]
    assert contract["dividend_yield"] is contract["dividendYield"]
    assert contract["dividend_yield"] == {"n": "dividend_yield", "k": "num"}
    assert contract["style"] == {
        "n": "style",
        "k": "enum",
        "t": "tradecore.pricing.v1.ExerciseStyle",
    }
    price = schema["messages"]["tradecore.pricing.v1.PriceRequest"]["f"]
    assert price["contracts"]["r"] is True and price["contracts"]["k"] == "msg"
    assert price["greek_names"] == {"n": "greek_names", "k": "str", "r": True}
    # Well-known types are leaves of their JSON mapping (strings), not messages.
    bars = schema["messages"]["tradecore.marketdata.v1.GetBarsRequest"]["f"]
    assert bars["interval"]["k"] == "wkt" and bars["start"]["k"] == "wkt"
    assert "google.protobuf.Duration" not in schema["messages"]
    # Oneof members know their oneof; proto3 optional fields are not oneofs.
    feed = schema["messages"]["tradecore.marketdata.v1.StartFeedRequest"]["f"]
    assert {feed[k]["o"] for k in ("lobster", "synthetic", "alpaca")} == {"spec"}
    fit = schema["messages"]["tradecore.pricing.v1.FitSurfaceRequest"]["f"]
    assert "o" not in fit["spot"]
    assert "AMERICAN" in schema["enums"]["tradecore.pricing.v1.ExerciseStyle"]


def test_routes_most_literal_first() -> None:
    routes = [(r.method, r.template) for r in json_routes(descriptor_path())]
    # /v1/marketdata/feeds/{id} must be tried before /v1/marketdata/{symbol}/book etc.
    assert routes.index(("GET", "/v1/marketdata/feeds/{id}")) < routes.index(
        ("GET", "/v1/marketdata/{symbol}/book")
    )


@pytest.mark.parametrize(
    ("template", "pattern"),
    [
        ("/v1/pricing/price", "^/v1/pricing/price/?$"),
        ("/v1/pricing/implied-vol", "^/v1/pricing/implied%-vol/?$"),
        ("/v1/pricing/surfaces/{surface_id}:query", "^/v1/pricing/surfaces/[^/]+:query/?$"),
        ("/v1/{name=shelves/*}/books/**", "^/v1/shelves/[^/]+/books/.*/?$"),
    ],
)
def test_path_patterns(template: str, pattern: str) -> None:
    assert path_pattern(template) == pattern


def test_lua_source_embeds_the_schema() -> None:
    src = strict_json_lua(descriptor_path())
    assert src.index("local SCHEMA = ") < src.index("local MESSAGES, ENUMS, ROUTES")
    assert '["tradecore.pricing.v1.OptionContract"]' in src


def test_the_inference_protocol_is_routed_untouched() -> None:
    # inference.GRPCInferenceService as gRPC, /v2 and /monitor to an HTTP/1.1 cluster: neither
    # the strict-JSON filter nor the transcoder sees them.
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams={
            "tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 5555),
            "inference.GRPCInferenceService": Upstream("127.0.0.1", 5556),
        },
        http_upstreams={
            "inference": HttpUpstream(
                "127.0.0.1", 5557, ("/v2", "/monitor"), ("/monitor/api/stream",)
            )
        },
    )
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    by_match = {json.dumps(r["match"], sort_keys=True): r for r in routes}
    # the event stream has no overall timeout, and its route comes before its prefix's
    matches = [r["match"] for r in routes]
    stream = matches.index({"path": "/monitor/api/stream"})
    assert stream < matches.index({"path_separated_prefix": "/monitor"})
    assert routes[stream]["route"]["timeout"] == "0s"
    disabled = {
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
    }
    for match, cluster in (
        ({"prefix": "/inference.GRPCInferenceService/"}, "inference_GRPCInferenceService"),
        ({"path_separated_prefix": "/v2"}, "inference_http"),
        ({"path_separated_prefix": "/monitor"}, "inference_http"),
    ):
        route = by_match[json.dumps(match, sort_keys=True)]
        assert route["route"]["cluster"] == cluster
        per_filter = route["typed_per_filter_config"]
        assert all(per_filter[name]["disabled"] for name in disabled)
    pricing = by_match[json.dumps({"prefix": "/tradecore.pricing.v1.PricingService/"})]
    assert not disabled & set(pricing.get("typed_per_filter_config", {}))
    (transcoder,) = [
        f["typed_config"]
        for f in hcm["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    ]
    assert transcoder["services"] == ["tradecore.pricing.v1.PricingService"]
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert "typed_extension_protocol_options" not in clusters["inference_http"]  # HTTP/1.1
    assert "http2_protocol_options" in json.dumps(clusters["inference_GRPCInferenceService"])
