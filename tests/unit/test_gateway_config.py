from __future__ import annotations

import pytest
from tradecore_gateway.generate import (
    Upstream,
    descriptor_path,
    envoy_config,
    streaming_methods,
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
    # server streams first, without an overall timeout; then the service prefix (60 s)
    assert routes[0]["match"] == {"path": "/tradecore.pricing.v1.PricingService/StreamGreeks"}
    assert routes[0]["route"]["timeout"] == "0s"
    assert routes[1]["match"]["prefix"] == "/tradecore.pricing.v1.PricingService/"
    assert routes[1]["route"]["timeout"] == "60s"
    transcoder = hcm["http_filters"][0]["typed_config"]
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["convert_grpc_status"] is True
    cluster = cfg["static_resources"]["clusters"][0]
    assert cluster["health_checks"][0]["grpc_health_check"] == {}


def test_streaming_methods_come_from_the_descriptor() -> None:
    streams = streaming_methods(descriptor_path())
    assert "/tradecore.pricing.v1.PricingService/StreamGreeks" in streams
    assert "/tradecore.pricing.v1.PricingService/Price" not in streams


def test_unknown_service_rejected() -> None:
    with pytest.raises(ValueError, match="not in the descriptor"):
        envoy_config(descriptor=descriptor_path(), upstreams={"x.Y": Upstream("h", 1)})
