"""The gateway's edge: rate limits, request size limits, per-route timeouts, TLS (optionally
mutual), gRPC-Web with CORS, identity header sanitising and the access log.

Each piece is a function returning Envoy configuration that ``generate.envoy_config`` places;
none of them knows about the others, so authentication (jwt_authn, RBAC) slots in between.

Route classes. Every gRPC method (and so every JSON binding of it, matched after the
transcoder) has a route of its own in one of three classes, each with a token bucket per route,
a request size limit and a timeout (``DEFAULT_LIMITS``, overridable by ``parse_limits``):

* ``reads``: market data, pricing, model metadata, every Get/List/Stream method;
* ``orders``: the execution service's commands and the risk service's Set* methods;
* ``heavy``: risk analytics (VaR, stress, hedge, attribution, backtest, covariance), model
  inference and registration.

Roles. Within a route, each role of ``ROLES`` has its own bucket (the class's rate times the
role's factor), so one role's traffic never spends another's. The role is the ``role`` claim of
the verified token, read from the dynamic metadata jwt_authn keeps it in
(``JWT_FILTER``/``JWT_PAYLOAD``, the names gateway/auth.py gives its provider), so a client
cannot claim one; a request without a verified token (the health checks, auth off) spends the
route's default bucket.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

_T = "type.googleapis.com/envoy.extensions."

#: Where jwt_authn keeps a verified token's payload (``payload_in_metadata`` of gateway/auth.py):
#: the rate limiter reads the ``role`` claim, the access log ``sub``, ``role`` and ``account``.
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "jwt_payload"

ROLES = ("viewer", "trader", "risk", "admin")
CLASSES = ("reads", "orders", "heavy")
MIN_REQUEST_BYTES = 16 << 10


@dataclass(frozen=True)
class RouteLimits:
    """One route class's limits. ``rate`` tokens per second refill a bucket of ``burst`` tokens
    (``rate`` 0: no rate limit); ``max_request_bytes`` of request body; ``timeout_s`` for the
    whole call (server streams have none)."""

    rate: int
    burst: int
    max_request_bytes: int
    timeout_s: int

    def __post_init__(self) -> None:
        for name in ("rate", "burst", "max_request_bytes", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer (got {value!r})")
        if self.rate and self.burst < 1:
            raise ValueError("burst must be at least 1 when rate is set")
        # Envoy checks the size as it buffers the body: a body that comes in one HTTP/2 frame
        # (at most 16 KiB) is not buffered, so a smaller limit would not hold.
        if self.max_request_bytes < MIN_REQUEST_BYTES:
            raise ValueError(f"max_request_bytes must be at least {MIN_REQUEST_BYTES}")
        if self.timeout_s < 1:
            raise ValueError("timeout_s must be at least 1")


DEFAULT_LIMITS: dict[str, RouteLimits] = {
    "reads": RouteLimits(rate=1000, burst=2000, max_request_bytes=8 << 20, timeout_s=30),
    "orders": RouteLimits(rate=100, burst=200, max_request_bytes=64 << 10, timeout_s=15),
    "heavy": RouteLimits(rate=20, burst=40, max_request_bytes=8 << 20, timeout_s=120),
}
DEFAULT_ROLE_FACTORS: dict[str, float] = {role: 1.0 for role in ROLES}


@dataclass(frozen=True)
class Limits:
    classes: Mapping[str, RouteLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    role_factors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ROLE_FACTORS))


def parse_limits(spec: str) -> Limits:
    """Limits from ``<class>.<field>=<int>`` and ``role.<role>=<factor>`` items separated by
    commas, over the defaults. ``<class>`` is one of ``CLASSES`` or ``*`` (all), ``<field>`` one
    of rate, burst, max_request_bytes, timeout_s; e.g. ``orders.rate=20,orders.burst=40``,
    ``*.rate=0`` (no rate limits), ``role.admin=2``. A ValueError names a bad item."""
    classes = dict(DEFAULT_LIMITS)
    factors = dict(DEFAULT_ROLE_FACTORS)
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        head, dot, name = key.strip().partition(".")
        if not eq or not dot:
            raise ValueError(f"gateway limits: {item!r} is not <class>.<field>=<value>")
        value = value.strip()
        if head == "role":
            if name not in ROLES:
                raise ValueError(f"gateway limits: unknown role {name!r} (roles: {ROLES})")
            try:
                factor = float(value)
            except ValueError:
                raise ValueError(f"gateway limits: {item!r}: factor must be a number") from None
            if not math.isfinite(factor) or factor <= 0:
                raise ValueError(f"gateway limits: {item!r}: factor must be > 0")
            factors[name] = factor
            continue
        targets = CLASSES if head == "*" else (head,)
        if head != "*" and head not in CLASSES:
            raise ValueError(f"gateway limits: unknown route class {head!r} (classes: {CLASSES})")
        if name not in ("rate", "burst", "max_request_bytes", "timeout_s"):
            raise ValueError(f"gateway limits: unknown field {name!r} in {item!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"gateway limits: {item!r}: value must be an integer") from None
        for c in targets:
            classes[c] = replace(classes[c], **{name: number})
    return Limits(classes, factors)


# Methods by route class (see the module docstring). Per service: the default class and the
# method-name prefixes that are reads; single methods named by path override both.
_SERVICE_CLASS = {
    "tradecore.execution.v1.ExecutionService": "orders",
    "tradecore.risk.v1.RiskService": "heavy",
}
_READ_PREFIXES = ("Get", "List", "Stream", "Query")
_METHOD_CLASS = {
    "/tradecore.risk.v1.RiskService/SetPositions": "orders",
    "/tradecore.risk.v1.RiskService/SetLimits": "orders",
    "/tradecore.risk.v1.RiskService/SetTradingState": "orders",
    "/inference.GRPCInferenceService/ModelInfer": "heavy",
    "/tradecore.inference.v1.ModelService/RegisterModel": "heavy",
}
# HTTP prefixes of plain HTTP upstreams by class (others: reads).
_HTTP_CLASS = {"/v2": "heavy"}


def route_class(path: str) -> str:
    """The route class of a gRPC path ``/<package>.<Service>/<Method>``."""
    if path in _METHOD_CLASS:
        return _METHOD_CLASS[path]
    service, _, method = path.strip("/").partition("/")
    default = _SERVICE_CLASS.get(service, "reads")
    if default != "reads" and method.startswith(_READ_PREFIXES):
        return "reads"
    return default


def http_route_class(prefix: str) -> str:
    return _HTTP_CLASS.get(prefix, "reads")


# ---------------------------------------------------------------------------- HTTP filters


def cors_filter() -> dict[str, Any]:
    """CORS: answers preflights and adds the response headers by the virtual host's policy
    (``cors_policy``); without a policy it does nothing."""
    return {
        "name": "envoy.filters.http.cors",
        "typed_config": {"@type": _T + "filters.http.cors.v3.Cors"},
    }


def cors_policy(origins: Sequence[str]) -> dict[str, Any]:
    """The virtual host's CORS policy: exactly ``origins`` (``*`` allows any), the headers a
    gRPC-Web and a JSON client send, and the gRPC status, request id and retry-after readable."""
    return {
        "@type": _T + "filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [
            {"prefix": ""} if o == "*" else {"exact": o} for o in origins
        ],
        "allow_methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "allow_headers": (
            "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, "
            "x-request-id, keep-alive, cache-control"
        ),
        "expose_headers": "grpc-status, grpc-message, x-request-id, retry-after",
        "max_age": "600",
    }


def grpc_web_filter() -> dict[str, Any]:
    """gRPC-Web (``application/grpc-web*``, binary and text) to gRPC for browser clients."""
    return {
        "name": "envoy.filters.http.grpc_web",
        "typed_config": {"@type": _T + "filters.http.grpc_web.v3.GrpcWeb"},
    }


def ratelimit_filter() -> dict[str, Any]:
    """local_ratelimit with no bucket of its own: only routes with a per-route configuration
    (``route_ratelimit``) are limited, so the health route never is."""
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": _T + "filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "gateway_ratelimit",
        },
    }


def size_filter(max_request_bytes: int) -> dict[str, Any]:
    """The buffer filter: a request body over the route's limit (``route_size``) is refused
    with 413 (gRPC: RESOURCE_EXHAUSTED, by ``local_reply_config``) before it is sent on."""
    return {
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": _T + "filters.http.buffer.v3.Buffer",
            "max_request_bytes": max_request_bytes,
        },
    }


_ALL_PERCENT = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def _bucket(rate: int, burst: int) -> dict[str, Any]:
    return {"max_tokens": burst, "tokens_per_fill": rate, "fill_interval": "1s"}


def route_ratelimit(limits: RouteLimits, role_factors: Mapping[str, float]) -> dict[str, Any]:
    """A route's local_ratelimit configuration: a bucket per role, the default bucket for a
    request without a role. Enabled and enforced for every request (without
    ``filter_enabled``/``filter_enforced`` the filter limits nothing) and answered
    RESOURCE_EXHAUSTED to gRPC callers (UNAVAILABLE otherwise, which clients retry), 429 to
    JSON callers, with ``retry-after``."""
    descriptors = [
        {
            "entries": [{"key": "role", "value": role}],
            "token_bucket": _bucket(
                max(1, round(limits.rate * factor)), max(1, round(limits.burst * factor))
            ),
        }
        for role, factor in role_factors.items()
    ]
    return {
        "@type": _T + "filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "route_ratelimit",
        "token_bucket": _bucket(limits.rate, limits.burst),
        "filter_enabled": {"runtime_key": "tradecore_ratelimit_enabled", **_ALL_PERCENT},
        "filter_enforced": {"runtime_key": "tradecore_ratelimit_enforced", **_ALL_PERCENT},
        "rate_limited_as_resource_exhausted": True,
        "descriptors": descriptors,
        "always_consume_default_token_bucket": False,
        "response_headers_to_add": [
            {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                # The bucket refills every second: a token is back within one.
                "header": {"key": "retry-after", "value": "1"},
            }
        ],
    }


def route_descriptors() -> list[dict[str, Any]]:
    """The route's ``rate_limits``: the verified token's ``role`` claim as the descriptor
    ``role`` (no token: no descriptor, the default bucket)."""
    return [
        {
            "actions": [
                {
                    "metadata": {
                        "descriptor_key": "role",
                        "metadata_key": {
                            "key": JWT_FILTER,
                            "path": [{"key": JWT_PAYLOAD}, {"key": "role"}],
                        },
                        "source": "DYNAMIC",
                        "skip_if_absent": True,
                    }
                }
            ]
        }
    ]


def route_size(max_request_bytes: int) -> dict[str, Any]:
    return {
        "@type": _T + "filters.http.buffer.v3.BufferPerRoute",
        "buffer": {"max_request_bytes": max_request_bytes},
    }


def apply_route_limits(
    route: dict[str, Any], cls: str, limits: Limits, *, stream: bool = False
) -> dict[str, Any]:
    """``route`` with its class's rate limit, size limit and (unless ``stream``) timeout."""
    lim = limits.classes[cls]
    action = route["route"]
    if not stream:
        action["timeout"] = f"{lim.timeout_s}s"
    per_filter = route.setdefault("typed_per_filter_config", {})
    per_filter["envoy.filters.http.buffer"] = route_size(lim.max_request_bytes)
    if lim.rate:
        per_filter["envoy.filters.http.local_ratelimit"] = route_ratelimit(lim, limits.role_factors)
        action["rate_limits"] = route_descriptors()
    return route


TOO_LARGE_MESSAGE = "request body exceeds the size limit of this route"
RATE_LIMITED_MESSAGE = "rate limit of this route exceeded; retry after the seconds in retry-after"


def local_reply_config() -> dict[str, Any]:
    """Envoy's own refusals in the services' error shape. Too large (413) and rate limited
    (429) are both RESOURCE_EXHAUSTED: to a gRPC caller a grpc-status 8 (Envoy would map 413
    to UNKNOWN) with a readable message, to a JSON caller the HTTP code with
    ``{"code": 8, "message": ..., "details": []}``. A transcoded JSON request is gRPC by then
    but keeps its JSON path in ``x-envoy-original-path``: it gets the JSON answer."""

    def status(code: int) -> dict[str, Any]:
        return {
            "status_code_filter": {
                "comparison": {
                    "op": "EQ",
                    "value": {"default_value": code, "runtime_key": f"tradecore_{code}"},
                }
            }
        }

    native_grpc = [
        {
            "header_filter": {
                "header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
            }
        },
        {
            "header_filter": {
                "header": {
                    "name": "x-envoy-original-path",
                    "present_match": True,
                    "invert_match": True,
                }
            }
        },
    ]
    json_body = {
        "json_format": {"code": 8, "message": "%LOCAL_REPLY_BODY%", "details": []},
        "content_type": "application/json",
    }
    mappers: list[dict[str, Any]] = []
    for code, message in ((413, TOO_LARGE_MESSAGE), (429, RATE_LIMITED_MESSAGE)):
        grpc_mapper: dict[str, Any] = {
            "filter": {"and_filter": {"filters": [status(code), *native_grpc]}},
            "body": {"inline_string": message},
        }
        if code == 413:
            grpc_mapper["headers_to_add"] = [
                {
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    "header": {"key": "grpc-status", "value": "8"},
                }
            ]
        mappers.append(grpc_mapper)
        mappers.append(
            {
                "filter": status(code),
                "body": {"inline_string": message},
                "body_format_override": json_body,
            }
        )
    return {"mappers": mappers}


# ---------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """The gateway's certificate chain and key (PEM files); ``client_ca`` set: mutual TLS, a
    client certificate signed by it is required."""

    cert: str
    key: str
    client_ca: str = ""


def downstream_tls(tls: TlsFiles) -> dict[str, Any]:
    """The listener's transport socket: TLS 1.2+, ALPN h2 and http/1.1 (gRPC and JSON on one
    port)."""
    ctx: dict[str, Any] = {
        "@type": _T + "transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": tls.cert},
                    "private_key": {"filename": tls.key},
                }
            ],
        },
    }
    if tls.client_ca:
        ctx["require_client_certificate"] = True
        ctx["common_tls_context"]["validation_context"] = {
            "trusted_ca": {"filename": tls.client_ca}
        }
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


# ---------------------------------------------------------------------------- access log

#: The access log's JSON fields (one object per line), read by services/mesh/access.py.
ACCESS_LOG_FORMAT: dict[str, str] = {
    "start": "%START_TIME(%s.%6f)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "peer": "%DOWNSTREAM_PEER_SUBJECT%",
    "subject": f"%DYNAMIC_METADATA({JWT_FILTER}:{JWT_PAYLOAD}:sub)%",
    "role": f"%DYNAMIC_METADATA({JWT_FILTER}:{JWT_PAYLOAD}:role)%",
    "account": f"%DYNAMIC_METADATA({JWT_FILTER}:{JWT_PAYLOAD}:account)%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "route": "%ROUTE_NAME%",
    "protocol": "%PROTOCOL%",
    "content_type": "%REQ(CONTENT-TYPE)%",
    "code": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS(NUMBER)%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "duration_ms": "%DURATION%",
    "bytes_in": "%BYTES_RECEIVED%",
    "bytes_out": "%BYTES_SENT%",
}


def access_log(path: str) -> list[dict[str, Any]]:
    """The HCM's access log: every request, refused ones included, one JSON line to ``path``."""
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": _T + "access_loggers.file.v3.FileAccessLog",
                "path": path,
                "log_format": {"json_format": ACCESS_LOG_FORMAT},
            },
        }
    ]


@dataclass(frozen=True)
class Edge:
    """The edge features of one gateway (``generate.envoy_config(edge=...)``)."""

    limits: Limits = field(default_factory=Limits)
    tls: TlsFiles | None = None
    cors_origins: tuple[str, ...] = ()
    access_log_path: str = ""
