from __future__ import annotations

import pytest
from tradecore_gateway.generate import Upstream, descriptor_path, envoy_config, tradecore_services


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
    assert routes[0]["match"]["prefix"] == "/tradecore.pricing.v1.PricingService/"
    transcoder = hcm["http_filters"][0]["typed_config"]
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["convert_grpc_status"] is True
    cluster = cfg["static_resources"]["clusters"][0]
    assert cluster["health_checks"][0]["grpc_health_check"] == {}


def test_unknown_service_rejected() -> None:
    with pytest.raises(ValueError, match="not in the descriptor"):
        envoy_config(descriptor=descriptor_path(), upstreams={"x.Y": Upstream("h", 1)})
