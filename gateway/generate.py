"""Generate the Envoy gateway configuration from the proto descriptor set.

One listener serves gRPC (HTTP/2) and JSON/REST (HTTP/1.1, transcoded by the gRPC-JSON
transcoder from the ``google.api.http`` annotations) on the same port. Each gRPC service is
routed by its path prefix ``/<package>.<Service>/`` to its upstream cluster, which Envoy
health-checks with grpc.health.v1. Unknown paths get 404. The admin interface listens on
loopback only.

JSON requests first go through a Lua filter (``strict_json.lua`` with a schema generated here
from the same descriptor set) that rejects malformed JSON, unknown fields, nulls and unknown
query parameters with 400 before the transcoder, which would ignore them. Every route retries
the upstream hop when the request never reached the service (connect failure, refused stream,
reset before the request was sent), so a restarting service costs few failed calls.

Every method has a route of its own, so the edge (gateway/edge.py: rate, size and time limits
per route class and role, TLS, gRPC-Web, CORS, the access log) applies per method.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from . import edge as edge_mod
from .auth import (
    AuthConfig,
    jwt_authn_filter,
    local_reply_mappers,
    rbac_filter,
    strip_claims_filter,
)
from .edge import Edge

_T = "type.googleapis.com/envoy.extensions."


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int


@dataclass(frozen=True)
class HttpUpstream:
    """A service's HTTP/1.1 port and the path prefixes routed to it (each matches the prefix
    itself and anything under ``<prefix>/``)."""

    host: str
    port: int
    prefixes: tuple[str, ...]
    #: Exact paths of long-lived responses (Server-Sent Events): no overall route timeout, an
    #: idle timeout of an hour (the service writes at least once a minute).
    streams: tuple[str, ...] = ()


# Proto packages outside tradecore.* that we define (names fixed by an external protocol:
# proto/inference is the Open Inference Protocol). Routed as gRPC, never transcoded.
EXTRA_PACKAGES = ("inference",)


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


def api_services(descriptor: Path) -> list[str]:
    """Full names of every service of our protos: tradecore.* (routed and transcoded) and the
    external protocols of EXTRA_PACKAGES (routed as gRPC only)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return sorted(
        f"{f.package}.{s.name}"
        for f in fds.file
        if f.package.startswith("tradecore.") or f.package in EXTRA_PACKAGES
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


def api_methods(descriptor: Path, service: str) -> list[str]:
    """gRPC paths of every method of ``service`` (a full name)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return sorted(
        f"/{f.package}.{s.name}/{m.name}"
        for f in fds.file
        for s in f.service
        if f"{f.package}.{s.name}" == service
        for m in s.method
    )


def idempotent_methods(descriptor: Path) -> list[str]:
    """gRPC paths of our methods whose proto marks them NO_SIDE_EFFECTS or IDEMPOTENT."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    level = descriptor_pb2.MethodOptions
    return sorted(
        f"/{f.package}.{s.name}/{m.name}"
        for f in fds.file
        if f.package.startswith("tradecore.")
        for s in f.service
        for m in s.method
        if m.options.idempotency_level in (level.NO_SIDE_EFFECTS, level.IDEMPOTENT)
    )


_FD = descriptor_pb2.FieldDescriptorProto
_NUMBERS = {
    _FD.TYPE_DOUBLE, _FD.TYPE_FLOAT, _FD.TYPE_INT64, _FD.TYPE_UINT64, _FD.TYPE_INT32,
    _FD.TYPE_FIXED64, _FD.TYPE_FIXED32, _FD.TYPE_UINT32, _FD.TYPE_SFIXED32, _FD.TYPE_SFIXED64,
    _FD.TYPE_SINT32, _FD.TYPE_SINT64,
}  # fmt: skip
# Well-known types by their JSON mapping: a string, a wrapped scalar, or any JSON value.
_WKT_KIND = {
    "google.protobuf.Timestamp": "wkt",
    "google.protobuf.Duration": "wkt",
    "google.protobuf.FieldMask": "wkt",
    "google.protobuf.DoubleValue": "num",
    "google.protobuf.FloatValue": "num",
    "google.protobuf.Int64Value": "num",
    "google.protobuf.UInt64Value": "num",
    "google.protobuf.Int32Value": "num",
    "google.protobuf.UInt32Value": "num",
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.StringValue": "str",
    "google.protobuf.BytesValue": "str",
    "google.protobuf.Struct": "any",
    "google.protobuf.Value": "any",
    "google.protobuf.ListValue": "any",
    "google.protobuf.Any": "any",
}


@dataclass(frozen=True)
class JsonRoute:
    """One HTTP binding of a method: the request message and how the body maps onto it."""

    method: str  # HTTP method
    template: str  # the google.api.http path template
    pattern: str  # Lua pattern matching the path (without the query)
    request: str  # full name of the request message
    body: str  # "*", a field name, or "" (no body)
    rpc: str  # /<package>.<Service>/<Method>


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _lua_magic(text: str) -> str:
    return "".join("%" + c if c in "^$()%.[]*+-?" else c for c in text)


def _segments_pattern(segments: str) -> str:
    out = []
    for seg in _split_segments(segments):
        if seg == "*":
            out.append("[^/]+")
        elif seg == "**":
            out.append(".*")
        elif seg.startswith("{") and seg.endswith("}"):
            _, eq, sub = seg[1:-1].partition("=")
            out.append(_segments_pattern(sub) if eq else "[^/]+")
        elif any(c in seg for c in "{}*"):
            raise ValueError(f"unsupported path segment {seg!r}")
        else:
            out.append(_lua_magic(seg))
    return "/".join(out)


def _split_segments(segments: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in segments:
        depth += (c == "{") - (c == "}")
        if c == "/" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return out


def path_pattern(template: str) -> str:
    """The Lua pattern of a google.api.http path template (``/v1/{name=shelves/*}:verb``).

    A trailing slash is allowed, as the transcoder allows it."""
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    body, verb = template[1:], ""
    last = body.rfind("/")
    colon = body.rfind(":")
    if colon > last and "}" not in body[colon:]:
        body, verb = body[:colon], ":" + body[colon + 1 :]
    return "^/" + _segments_pattern(body) + _lua_magic(verb) + "/?$"


def _specificity(template: str) -> tuple[int, ...]:
    # Literal segments before variables, as the transcoder's path matcher prefers them.
    return tuple(
        1 if s.startswith("{") or s.startswith("*") else 0
        for s in _split_segments(template.lstrip("/"))
    )


def json_routes(descriptor: Path, services: list[str] | None = None) -> list[JsonRoute]:
    """Every HTTP binding (rule and additional bindings) of the given services' methods."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    routes = []
    for f in fds.file:
        for s in f.service:
            full = f"{f.package}.{s.name}"
            if services is not None and full not in services:
                continue
            for m in s.method:
                if not m.options.HasExtension(annotations_pb2.http):
                    continue
                rule = m.options.Extensions[annotations_pb2.http]
                rules: list[http_pb2.HttpRule] = [rule, *rule.additional_bindings]
                for r in rules:
                    kind = r.WhichOneof("pattern")
                    if kind is None:
                        continue
                    if kind == "custom":
                        verb, template = r.custom.kind, r.custom.path
                    else:
                        verb, template = kind.upper(), getattr(r, kind)
                    routes.append(
                        JsonRoute(
                            method=verb,
                            template=template,
                            pattern=path_pattern(template),
                            request=m.input_type.lstrip("."),
                            body=r.body,
                            rpc=f"/{full}/{m.name}",
                        )
                    )
    return sorted(routes, key=lambda r: (_specificity(r.template), r.template, r.method))


def json_schema(descriptor: Path, services: list[str] | None = None) -> dict[str, Any]:
    """The schema the strict-JSON Lua filter checks requests against (see strict_json.lua):
    the routes, and every message and enum reachable from their request messages."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}

    def collect(prefix: str, msgs: Any, ens: Any) -> None:
        for e in ens:
            enums[f"{prefix}.{e.name}"] = e
        for m in msgs:
            name = f"{prefix}.{m.name}"
            messages[name] = m
            collect(name, m.nested_type, m.enum_type)

    for f in fds.file:
        collect(f.package, f.message_type, f.enum_type)

    routes = json_routes(descriptor, services)
    out_msgs: dict[str, Any] = {}
    out_enums: dict[str, Any] = {}

    def field_spec(fd: descriptor_pb2.FieldDescriptorProto, owner: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"n": fd.name}
        if fd.HasField("oneof_index") and not fd.proto3_optional:
            spec["o"] = owner.oneof_decl[fd.oneof_index].name
        repeated = fd.label == _FD.LABEL_REPEATED
        if fd.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
            t = fd.type_name.lstrip(".")
            entry = messages[t]
            if entry.options.map_entry:
                spec["k"] = "map"
                spec["v"] = field_spec(entry.field[1], entry)
                return spec
            if t in _WKT_KIND:
                spec["k"] = _WKT_KIND[t]
            else:
                spec["k"] = "msg"
                add_message(t)
            spec["t"] = t
        elif fd.type == _FD.TYPE_ENUM:
            t = fd.type_name.lstrip(".")
            spec["k"], spec["t"] = "enum", t
            out_enums[t] = {v.name: True for v in enums[t].value}
        elif fd.type == _FD.TYPE_BOOL:
            spec["k"] = "bool"
        elif fd.type in (_FD.TYPE_STRING, _FD.TYPE_BYTES):
            spec["k"] = "str"
        elif fd.type in _NUMBERS:
            spec["k"] = "num"
        else:
            raise ValueError(f"unsupported field type {fd.type} of {owner.name}.{fd.name}")
        if repeated:
            spec["r"] = True
        return spec

    def add_message(name: str) -> None:
        if name in out_msgs:
            return
        entry: dict[str, Any] = {"name": name, "f": {}}
        out_msgs[name] = entry
        m = messages[name]
        for fd in m.field:
            spec = field_spec(fd, m)
            entry["f"][fd.name] = spec
            entry["f"][fd.json_name or _json_name(fd.name)] = spec

    for r in routes:
        if r.request in _WKT_KIND:
            raise ValueError(f"{r.rpc}: a well-known type as the request is not supported")
        add_message(r.request)
        if r.body not in ("", "*") and r.body not in out_msgs[r.request]["f"]:
            raise ValueError(f"{r.rpc}: body field {r.body!r} is not a field of {r.request}")
    return {
        "routes": [
            {"m": r.method, "p": r.pattern, "q": r.request, "b": r.body, "rpc": r.rpc}
            for r in routes
        ],
        "messages": out_msgs,
        "enums": out_enums,
    }


def _lua_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(
                c if c.isascii() and c.isprintable() and c not in '"\\' else f"\\{ord(c):03d}"
                for c in value
            )
            + '"'
        )
    if isinstance(value, list):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{_lua_literal(k)}] = {_lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"no Lua literal for {value!r}")


def strict_json_lua(descriptor: Path, services: list[str] | None = None) -> str:
    """The Lua filter's source: the generated schema, then gateway/strict_json.lua."""
    code = (resources.files("tradecore_gateway") / "strict_json.lua").read_text()
    schema = _lua_literal(json_schema(descriptor, services))
    return f"-- generated by tradecore_gateway.generate\nlocal SCHEMA = {schema}\n\n{code}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster(name: str, up: Upstream) -> dict[str, Any]:
    return {
        "name": name,
        # A host name (a Kubernetes service) is resolved by DNS and followed as it changes.
        "type": "STATIC" if _is_ip(up.host) else "STRICT_DNS",
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
        # Retries wait for a restarting service (see _RETRY): more than Envoy's default of 3
        # retries may be in flight at once.
        "circuit_breakers": {"thresholds": [{"max_retries": 1024}]},
        # With one endpoint per cluster, an unhealthy host is still tried (Envoy's default panic
        # threshold): a call then fails on connect and is retried, rather than failing at once
        # with "no healthy upstream" until the next health check marks the host healthy.
    }


def _http_cluster(name: str, up: HttpUpstream) -> dict[str, Any]:
    """An HTTP/1.1 upstream. Not health-checked: the same process's gRPC cluster is, and a
    request to a restarting service is retried like a gRPC one (connect failure)."""
    cluster = _cluster(name, Upstream(up.host, up.port))
    del cluster["typed_extension_protocol_options"]
    del cluster["health_checks"]
    return cluster


# The strict-JSON filter and the transcoder stay out of routes that are not transcoded (the
# Open Inference Protocol's gRPC and REST): a route-level switch Envoy has for every filter.
_DISABLED = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
_PASS_THROUGH = {
    "envoy.filters.http.lua": _DISABLED,
    "envoy.filters.http.grpc_json_transcoder": _DISABLED,
}

# Retries of the gateway -> service hop, on every route: only failures where the request never
# reached the service (connection refused or reset before the request was sent, HTTP/2 stream
# refused), so retrying is safe for every method, idempotent or not. The jittered exponential
# backoff (each wait random up to 50 ms doubling to 1 s) spans about 4.5 s on average over 12
# retries: more than the 2-3 s the supervisor takes to restart a service that died.
_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
_RETRY: dict[str, Any] = {
    "retry_on": _RETRY_ON,
    "num_retries": 12,
    "retry_back_off": {"base_interval": "0.05s", "max_interval": "1s"},
}
# Methods marked `option idempotency_level = NO_SIDE_EFFECTS` (or IDEMPOTENT) in the protos are
# also retried when the service dies with the call in flight (`reset`: no response at all);
# Envoy never retries once the response has started.
_RETRY_IDEMPOTENT = dict(_RETRY, retry_on=_RETRY_ON + ",reset")


def envoy_config(
    *,
    descriptor: Path,
    upstreams: Mapping[str, Upstream],
    listen_host: str = "127.0.0.1",
    listen_port: int = 8080,
    admin_port: int = 9901,
    max_request_bytes: int = 8 * 1024 * 1024,
    health_service: str = "",
    strict_json: bool = True,
    inline_descriptor: bool = False,
    http_upstreams: Mapping[str, HttpUpstream] | None = None,
    edge: Edge | None = None,
    auth: AuthConfig | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap for the given service → upstream map (full service names), and
    ``http_upstreams`` (a name → an HTTP/1.1 upstream and its path prefixes, proxied as they
    are: no strict-JSON filter, no transcoder).

    ``strict_json=False`` leaves out the strict-JSON Lua filter (for measuring its cost).
    ``inline_descriptor`` puts the descriptor set into the configuration itself (base64) instead
    of naming its file, for a gateway that runs where the file is not (a Kubernetes pod).
    ``edge``: rate, size and time limits per route class, TLS, CORS origins and the access log
    (gateway/edge.py; default: the default limits, plain HTTP, no CORS, no access log).
    ``auth`` turns on JWT authentication and roles (gateway/auth.py); without it every route
    is open."""
    edge = edge or Edge()
    services = api_services(descriptor)
    missing = [s for s in upstreams if s not in services]
    if missing:
        raise ValueError(f"upstreams name services not in the descriptor set: {missing}")
    transcoded = sorted(s for s in upstreams if s in tradecore_services(descriptor))
    routes: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    streams = streaming_methods(descriptor)
    safe = idempotent_methods(descriptor)
    for full_name, up in sorted(upstreams.items()):
        cluster = full_name.replace(".", "_")
        clusters.append(_cluster(cluster, up))
        # A route per method: its own rate-limit bucket, size limit and timeout by its class
        # (gateway/edge.py). Server streams (gRPC, and JSON after the transcoder) run until the
        # client cancels: no overall timeout, only an idle timeout of 1 hour without a message.
        for path in api_methods(descriptor, full_name):
            stream = path in streams
            action: dict[str, Any] = {
                "cluster": cluster,
                "retry_policy": _RETRY_IDEMPOTENT if path in safe else _RETRY,
            }
            if stream:
                action.update(timeout="0s", idle_timeout="3600s")
            method_route: dict[str, Any] = {
                "name": path.lstrip("/"),
                "match": {"path": path},
                "route": action,
            }
            if full_name not in transcoded:
                method_route["typed_per_filter_config"] = dict(_PASS_THROUGH)
            routes.append(
                edge_mod.apply_route_limits(
                    method_route, edge_mod.route_class(path), edge.limits, stream=stream
                )
            )
        # Anything else under the service's prefix (a method the descriptor set does not know:
        # the service answers UNIMPLEMENTED).
        route: dict[str, Any] = {
            "name": f"{full_name}/*",
            "match": {"prefix": f"/{full_name}/"},
            "route": {"cluster": cluster, "retry_policy": _RETRY},
        }
        if full_name not in transcoded:
            route["typed_per_filter_config"] = dict(_PASS_THROUGH)
        routes.append(edge_mod.apply_route_limits(route, "reads", edge.limits))
    # Plain HTTP services (HTTP/1.1 upstreams), proxied untouched.
    for name, hup in sorted((http_upstreams or {}).items()):
        cluster = f"{name}_http"
        clusters.append(_http_cluster(cluster, hup))
        for path in hup.streams:  # before the prefixes, which would time them out
            routes.append(
                edge_mod.apply_route_limits(
                    {
                        "name": f"{name}:{path}",
                        "match": {"path": path},
                        "route": {
                            "cluster": cluster,
                            "timeout": "0s",
                            "idle_timeout": "3600s",
                            "retry_policy": _RETRY,
                        },
                        "typed_per_filter_config": dict(_PASS_THROUGH),
                    },
                    "reads",
                    edge.limits,
                    stream=True,
                )
            )
        for prefix in hup.prefixes:
            routes.append(
                edge_mod.apply_route_limits(
                    {
                        "name": f"{name}:{prefix}",
                        "match": {"path_separated_prefix": prefix},
                        "route": {"cluster": cluster, "retry_policy": _RETRY},
                        "typed_per_filter_config": dict(_PASS_THROUGH),
                    },
                    edge_mod.http_route_class(prefix),
                    edge.limits,
                )
            )
    # Health of the gateway itself over gRPC (routed to the health endpoint of
    # ``health_service``, by default the first service by name).
    if health_service and health_service not in upstreams:
        raise ValueError(f"health_service {health_service!r} is not one of the upstreams")
    if upstreams:
        first = (health_service or sorted(upstreams)[0]).replace(".", "_")
        routes.append(
            {
                "name": "grpc.health.v1.Health",
                "match": {"prefix": "/grpc.health.v1.Health/"},
                "route": {"cluster": first},
            }
        )
    http_filters = [
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": _T + "filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                **(
                    {"proto_descriptor_bin": base64.b64encode(descriptor.read_bytes()).decode()}
                    if inline_descriptor
                    else {"proto_descriptor": str(descriptor)}
                ),
                "services": transcoded,
                "print_options": {
                    "add_whitespace": False,
                    "always_print_primitive_fields": True,
                    "always_print_enums_as_ints": False,
                    "preserve_proto_field_names": True,
                },
                "convert_grpc_status": True,
                "request_validation_options": {
                    "reject_unknown_method": True,
                    # The Lua filter answers unknown query parameters first, naming them.
                    "reject_unknown_query_parameters": True,
                },
                "max_request_body_size": max_request_bytes,
                "max_response_body_size": max_request_bytes * 4,
            },
        },
        edge_mod.ratelimit_filter(),
        edge_mod.size_filter(max_request_bytes),
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _T + "filters.http.router.v3.Router"},
        },
    ]
    if strict_json:
        http_filters.insert(
            0,
            {
                # Strict JSON before the transcoder (which ignores unknown fields): see
                # strict_json.lua. gRPC requests pass through it untouched.
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": _T + "filters.http.lua.v3.Lua",
                    "default_source_code": {
                        "inline_string": strict_json_lua(descriptor, transcoded)
                    },
                },
            },
        )
    _add_auth_filters(http_filters, auth, descriptor, http_upstreams)
    # Edge filters first: CORS preflights answered (they carry no token) and gRPC-Web turned
    # into gRPC before anything reads the request (see docs/architecture.md, "The gateway").
    http_filters[:0] = [edge_mod.cors_filter(), edge_mod.grpc_web_filter()]
    vhost: dict[str, Any] = {"name": "tradecore", "domains": ["*"], "routes": routes}
    if edge.cors_origins:
        vhost["typed_per_filter_config"] = {
            "envoy.filters.http.cors": edge_mod.cors_policy(edge.cors_origins)
        }
    hcm = {
        "@type": _T + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "generate_request_id": True,
        # The request's x-request-id (the caller's or Envoy's, passed to the service, which
        # logs with it) in every response's headers, JSON callers included.
        "always_set_request_id_in_response": True,
        "route_config": {
            "name": "tradecore",
            "virtual_hosts": [vhost],
        },
        "http_filters": http_filters,
        # Resolve "..", "." and "//" before any filter or route sees the path, so a path
        # cannot look public to one filter and private to another.
        "normalize_path": True,
        "merge_slashes": True,
        # Envoy's own refusals (401/403 of auth, 413/429 of the edge) in the services' shape.
        "local_reply_config": {
            "mappers": (local_reply_mappers() if auth is not None else [])
            + edge_mod.local_reply_config()["mappers"]
        },
    }
    if edge.access_log_path:
        hcm["access_log"] = edge_mod.access_log(edge.access_log_path)
    filter_chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if edge.tls is not None:
        filter_chain["transport_socket"] = edge_mod.downstream_tls(edge.tls)
    config = {
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
                    "filter_chains": [filter_chain],
                }
            ],
            "clusters": clusters,
        },
    }
    if upstreams:
        add_tracing(config, hcm, (health_service or sorted(upstreams)[0]).replace(".", "_"))
    return config


def add_tracing(config: dict[str, Any], hcm: dict[str, Any], receiver: str) -> None:
    """Envoy's OpenTelemetry tracer on the gateway: a span per request, sampled at
    TRADECORE_TRACE_SAMPLE or forced by an ``x-client-trace-id`` header (Envoy's decision, not
    the caller's ``traceparent`` flags; its trace id is continued), its context sent
    to the service as ``traceparent`` and returned to the caller in the ``traceparent``
    response header. Exported by OTLP/gRPC to TRADECORE_OTLP_ENDPOINT (``http://host:port``)
    when set; otherwise to the service of cluster ``receiver`` (the health route's), which
    keeps them with its own spans (services/common/tracing.py, ``add_receiver``)."""
    raw = os.environ.get("TRADECORE_TRACE_SAMPLE", "0.01")  # the services' default too
    try:
        ratio = float(raw)
    except ValueError:
        raise ValueError(f"TRADECORE_TRACE_SAMPLE must be a number in 0..1 (got {raw!r})") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"TRADECORE_TRACE_SAMPLE must be in 0..1 (got {ratio})")
    otel: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        "service_name": "gateway",
    }
    endpoint = os.environ.get("TRADECORE_OTLP_ENDPOINT", "")
    if endpoint:
        url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if not url.hostname or not url.port:
            raise ValueError(f"TRADECORE_OTLP_ENDPOINT must be host:port (got {endpoint!r})")
        otlp = _cluster("otlp", Upstream(url.hostname, url.port))
        del otlp["health_checks"]
        config["static_resources"]["clusters"].append(otlp)
        receiver = "otlp"
    otel["grpc_service"] = {"envoy_grpc": {"cluster_name": receiver}, "timeout": "1s"}
    hcm["tracing"] = {
        "random_sampling": {"value": ratio * 100.0},
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": otel},
    }
    for host in hcm["route_config"]["virtual_hosts"]:
        host.setdefault("response_headers_to_add", []).append(
            {
                "header": {"key": "traceparent", "value": "%REQ(traceparent)%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        )


def _add_auth_filters(
    http_filters: list[dict[str, Any]],
    auth: AuthConfig | None,
    descriptor: Path,
    http_upstreams: Mapping[str, HttpUpstream] | None,
) -> None:
    """Authentication and roles (gateway/auth.py) around the filters already in
    ``http_filters`` (Lua, transcoder, the edge's limits, router): the claims header stripped
    first, jwt_authn before the Lua filter, RBAC right after the transcoder (on the gRPC method
    path; before the rate limits, so a refused call spends no tokens and the limits read a
    verified role). The claims header is stripped with auth off too (nothing may forge it)."""
    http_filters.insert(0, strip_claims_filter())
    if auth is None:
        return
    http_filters.insert(1, jwt_authn_filter(auth))
    prefixes = tuple(p for up in (http_upstreams or {}).values() for p in up.prefixes)
    transcoder = next(
        i
        for i, f in enumerate(http_filters)
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    )
    http_filters.insert(transcoder + 1, rbac_filter(descriptor, prefixes))


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
        http_ups = {
            s.name: HttpUpstream("127.0.0.1", s.http_port, s.http_prefixes, s.http_streams)
            for s in SERVICES
            if s.http_port is not None and s.http_prefixes
        }
    else:
        http_ups = {}
    host, _, port = ns.listen.rpartition(":")
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams=ups,
        listen_host=host,
        listen_port=int(port),
        admin_port=ns.admin_port,
        http_upstreams=http_ups,
    )
    write_config(ns.out, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
