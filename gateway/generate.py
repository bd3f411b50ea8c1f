"""Generate the Envoy gateway configuration from the proto descriptor set.

One listener serves gRPC (HTTP/2) and JSON/REST (HTTP/1.1, transcoded by the gRPC-JSON
transcoder from the ``google.api.http`` annotations) on the same port. Each gRPC service is
routed by its path prefix ``/<package>.<Service>/`` to its upstream cluster, which Envoy
health-checks with grpc.health.v1. Unknown paths get 404. The admin interface listens on
loopback only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

_T = "type.googleapis.com/envoy.extensions."


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int


def descriptor_path() -> Path:
    """The descriptor set built from proto/ and installed with the package."""
    return Path(str(resources.files("tradecore_api") / "descriptors.binpb"))


def tradecore_services(descriptor: Path) -> list[str]:
    """Full names of the services defined in our own protos (package tradecore.*)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return sorted(
        f"{f.package}.{s.name}"
        for f in fds.file
        if f.package.startswith("tradecore.")
        for s in f.service
    )


def streaming_methods(descriptor: Path) -> list[str]:
    """gRPC paths (``/<package>.<Service>/<Method>``) of our server-streaming methods."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return sorted(
        f"/{f.package}.{s.name}/{m.name}"
        for f in fds.file
        if f.package.startswith("tradecore.")
        for s in f.service
        for m in s.method
        if m.server_streaming
    )


def _cluster(name: str, up: Upstream) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _T + "upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": up.host, "port_value": up.port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "no_traffic_interval": "2s",
                "grpc_health_check": {},
            }
        ],
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
    }


def envoy_config(
    *,
    descriptor: Path,
    upstreams: Mapping[str, Upstream],
    listen_host: str = "127.0.0.1",
    listen_port: int = 8080,
    admin_port: int = 9901,
    max_request_bytes: int = 8 * 1024 * 1024,
    health_service: str = "",
) -> dict[str, Any]:
    """The Envoy bootstrap for the given service → upstream map (full service names)."""
    services = tradecore_services(descriptor)
    missing = [s for s in upstreams if s not in services]
    if missing:
        raise ValueError(f"upstreams name services not in the descriptor set: {missing}")
    routes: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    streams = streaming_methods(descriptor)
    for full_name, up in sorted(upstreams.items()):
        cluster = full_name.replace(".", "_")
        clusters.append(_cluster(cluster, up))
        # Server streams (gRPC, and JSON after the transcoder) run until the client cancels:
        # no overall route timeout for them, only an idle timeout of 1 hour without a message.
        for path in streams:
            if path.startswith(f"/{full_name}/"):
                routes.append(
                    {
                        "match": {"path": path},
                        "route": {"cluster": cluster, "timeout": "0s", "idle_timeout": "3600s"},
                    }
                )
        routes.append(
            {
                "match": {"prefix": f"/{full_name}/"},
                "route": {"cluster": cluster, "timeout": "60s"},
            }
        )
    # Health of the gateway itself over gRPC (routed to the health endpoint of
    # ``health_service``, by default the first service by name).
    if health_service and health_service not in upstreams:
        raise ValueError(f"health_service {health_service!r} is not one of the upstreams")
    if upstreams:
        first = (health_service or sorted(upstreams)[0]).replace(".", "_")
        routes.append({"match": {"prefix": "/grpc.health.v1.Health/"}, "route": {"cluster": first}})
    http_filters = [
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": _T + "filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                "proto_descriptor": str(descriptor),
                "services": sorted(upstreams),
                "print_options": {
                    "add_whitespace": False,
                    "always_print_primitive_fields": True,
                    "always_print_enums_as_ints": False,
                    "preserve_proto_field_names": True,
                },
                "convert_grpc_status": True,
                "request_validation_options": {
                    "reject_unknown_method": True,
                    "reject_unknown_query_parameters": False,
                },
                "max_request_body_size": max_request_bytes,
                "max_response_body_size": max_request_bytes * 4,
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _T + "filters.http.router.v3.Router"},
        },
    ]
    hcm = {
        "@type": _T + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "generate_request_id": True,
        "route_config": {
            "name": "tradecore",
            "virtual_hosts": [{"name": "tradecore", "domains": ["*"], "routes": routes}],
        },
        "http_filters": http_filters,
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {
                        "socket_address": {"address": listen_host, "port_value": listen_port}
                    },
                    "per_connection_buffer_limit_bytes": max_request_bytes,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the Envoy gateway config (JSON).")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--listen", default="127.0.0.1:8080")
    ap.add_argument("--admin-port", type=int, default=9901)
    ap.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="e.g. tradecore.pricing.v1.PricingService=127.0.0.1:50051 (default: every "
        "service of services/registry.py on its default port)",
    )
    ns = ap.parse_args(argv)
    ups: dict[str, Upstream] = {}
    for item in ns.upstream:
        name, _, addr = item.partition("=")
        host, _, port = addr.rpartition(":")
        ups[name] = Upstream(host, int(port))
    if not ns.upstream:
        from tradecore_services.registry import SERVICES

        ups = {g: Upstream("127.0.0.1", s.port) for s in SERVICES for g in s.grpc_services}
    host, _, port = ns.listen.rpartition(":")
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams=ups,
        listen_host=host,
        listen_port=int(port),
        admin_port=ns.admin_port,
    )
    write_config(ns.out, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
