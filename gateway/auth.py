"""Authentication and authorisation at the gateway: JWT (``jwt_authn``) and roles (``rbac``).

The filters, in the order the gateway runs them (``generate.envoy_config``):

1. ``header_mutation`` removes a client's own :data:`CLAIMS_HEADER`, so the services can trust
   the one they get (only jwt_authn, after it, sets it from a verified token);
2. ``jwt_authn`` checks the bearer token (signature against the local JWKS file, issuer,
   audience, an ``exp`` that has not passed) on every route but the health checks
   (:data:`PUBLIC_PREFIXES`, :data:`PUBLIC_PATHS`), forwards its payload to the service in
   :data:`CLAIMS_HEADER` (base64url JSON) and keeps it as dynamic metadata for RBAC;
3. (the strict-JSON Lua filter and the gRPC-JSON transcoder: the transcoder rewrites a JSON
   request's path to its gRPC method path);
4. ``rbac`` allows a call when the token's ``role`` claim is at least the method's minimum role
   (:func:`method_roles`). It runs after the transcoder, so one rule per gRPC method path covers
   the method as gRPC and as JSON, and a JSON path can never be matched against a different
   rule set than its gRPC form.

Roles are ordered (:data:`ROLES`): each one may call what the roles before it may.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

_T = "type.googleapis.com/envoy.extensions."

#: The roles, lowest first: a role may call every method of the roles before it.
ROLES = ("viewer", "trader", "risk", "admin")
#: The header carrying the verified token's payload (base64url JSON) to the services.
CLAIMS_HEADER = "x-tradecore-claims"
#: The jwt_authn provider's name and the dynamic-metadata key of the verified payload.
PROVIDER = "tradecore"
PAYLOAD_METADATA = "jwt_payload"
JWT_FILTER = "envoy.filters.http.jwt_authn"
#: Routes that need no token: the health checks (gRPC and REST).
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)
PUBLIC_PATHS = ("/v2/health/live", "/v2/health/ready")

# The minimum role of each RPC, by full service name then method. Every RPC of every service
# in the descriptor set must appear here (method_roles raises otherwise; a unit test checks it).
_V, _T_, _R, _A = ROLES
METHOD_ROLES: dict[str, dict[str, str]] = {
    "tradecore.pricing.v1.PricingService": {
        "Price": _V,
        "ImpliedVol": _V,
        "FitSurface": _V,
        "QuerySurface": _V,
        "StreamGreeks": _V,
    },
    "tradecore.marketdata.v1.MarketDataService": {
        "GetBook": _V,
        "StreamQuotes": _V,
        "StreamBook": _V,
        "GetBars": _V,
        "GetVWAP": _V,
        "QueryTicks": _V,
        "ListSymbols": _V,
        "ListFeeds": _V,
        "GetFeed": _V,
        "StartFeed": _A,
        "StopFeed": _A,
    },
    "tradecore.risk.v1.RiskService": {
        "ComputeVaR": _V,
        "ComputeVaRBatch": _V,
        "StressTest": _V,
        "PortfolioGreeks": _V,
        "ProposeHedge": _V,
        "AttributePnL": _V,
        "BacktestVaR": _V,
        "EstimateCovariance": _V,
        "GetAccountRisk": _V,
        "StreamRisk": _V,
        "GetLimits": _V,
        "SetPositions": _R,
        "SetLimits": _R,
        "SetTradingState": _R,
    },
    "tradecore.execution.v1.ExecutionService": {
        # A trader acts on the account of its token only (checked by the service).
        "SubmitOrder": _T_,
        "CancelOrder": _T_,
        "ReplaceOrder": _T_,
        "GetOrder": _T_,
        "ListOrders": _T_,
        "StreamOrderUpdates": _T_,
        "GetPositions": _T_,
        "GetTradingState": _T_,
        "GetLimits": _T_,
        "StartAlgo": _T_,
        "GetAlgo": _T_,
        "StopAlgo": _T_,
        "ListAlgos": _T_,
        "SetTradingState": _R,
        "SetLimits": _R,
        "Reconcile": _R,
    },
    "tradecore.inference.v1.ModelService": {
        "ListModels": _V,
        "GetModel": _V,
        "GetTrafficPolicy": _V,
        "GetRolloutReport": _V,
        # Outcomes of served predictions, reported by the trading side.
        "RecordOutcome": _T_,
        "RegisterModel": _A,
        "SetAlias": _A,
        "DeleteAlias": _A,
        "Rollback": _A,
        "SetTrafficPolicy": _A,
    },
    "inference.GRPCInferenceService": {
        "ServerLive": _V,
        "ServerReady": _V,
        "ModelReady": _V,
        "ServerMetadata": _V,
        "ModelMetadata": _V,
        "ModelInfer": _V,
        "ModelStatistics": _V,
        "RepositoryIndex": _V,
        "RepositoryModelLoad": _A,
        "RepositoryModelUnload": _A,
    },
}


@dataclass(frozen=True)
class HttpRule:
    """A path of a plain HTTP upstream (not transcoded) and its minimum role: ``regex`` matches
    the whole path (without the query); ``example`` is a path it matches (the tests call it)."""

    regex: str
    role: str
    example: str
    method: str = "GET"


#: The minimum role of each path under the registry's ``http_prefixes`` (the inference
#: service's REST API and monitoring page). A path under a prefix that no rule matches is for
#: ``admin`` only. The health paths (PUBLIC_PATHS) need no token.
HTTP_RULES: tuple[HttpRule, ...] = (
    HttpRule(r"/v2/?", _V, "/v2"),
    HttpRule(r"/v2/models/[^/]+(/versions/[^/]+)?(/ready)?/?", _V, "/v2/models/m"),
    HttpRule(r"/v2/models/[^/]+(/versions/[^/]+)?/infer/?", _V, "/v2/models/m/infer", "POST"),
    HttpRule(r"/v2/repository/index/?", _V, "/v2/repository/index", "POST"),
    HttpRule(r"/v2/repository/models/[^/]+/load/?", _A, "/v2/repository/models/m/load", "POST"),
    HttpRule(r"/v2/repository/models/[^/]+/unload/?", _A, "/v2/repository/models/m/unload", "POST"),
    HttpRule(r"/monitor(/.*)?", _V, "/monitor/api/snapshot"),
)


@dataclass(frozen=True)
class AuthConfig:
    """What the gateway checks tokens against."""

    issuer: str
    audience: str
    jwks_file: Path


def rpc_methods(descriptor: Path) -> dict[str, str]:
    """Every RPC of every service in the descriptor set (``/<package>.<Service>/<Method>``) →
    its full service name."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return {
        f"/{f.package}.{s.name}/{m.name}": f"{f.package}.{s.name}"
        for f in fds.file
        for s in f.service
        for m in s.method
    }


def method_roles(descriptor: Path) -> dict[str, str]:
    """``/<package>.<Service>/<Method>`` → its minimum role, for every RPC of the descriptor
    set; a ValueError naming the RPCs that have no role in :data:`METHOD_ROLES` (or roles for
    RPCs that do not exist)."""
    out: dict[str, str] = {}
    missing = []
    for path, service in sorted(rpc_methods(descriptor).items()):
        role = METHOD_ROLES.get(service, {}).get(path.rsplit("/", 1)[1])
        if role is None:
            missing.append(path)
        else:
            out[path] = role
    if missing:
        raise ValueError(
            f"RPCs without a minimum role (add them to gateway/auth.py METHOD_ROLES): {missing}"
        )
    known = {f"/{s}/{m}" for s, methods in METHOD_ROLES.items() for m in methods}
    stale = sorted(known - set(out))
    if stale:
        raise ValueError(f"METHOD_ROLES names RPCs not in the descriptor set: {stale}")
    bad = sorted(p for p, r in out.items() if r not in ROLES)
    if bad:
        raise ValueError(f"unknown roles for {bad} (roles: {ROLES})")
    return out


def roles_at_least(role: str) -> tuple[str, ...]:
    """The roles that may call what ``role`` may: ``role`` and those above it."""
    return ROLES[ROLES.index(role) :]


def strip_claims_filter() -> dict[str, Any]:
    """Removes a client's own claims header before jwt_authn runs (it could otherwise reach a
    service on a route that needs no token, or with auth off)."""
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": _T + "filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": CLAIMS_HEADER}]},
        },
    }


def jwt_authn_filter(auth: AuthConfig) -> dict[str, Any]:
    """Every route needs a valid token except the health checks. The rules match the path as
    the client sent it (before the transcoder): everything not public needs a token, so no
    rewrite can lead around it."""
    public: list[dict[str, Any]] = [{"match": {"prefix": p}} for p in PUBLIC_PREFIXES]
    public += [{"match": {"path": p}} for p in PUBLIC_PATHS]
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": _T + "filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                PROVIDER: {
                    "issuer": auth.issuer,
                    "audiences": [auth.audience],
                    "local_jwks": {"filename": str(auth.jwks_file)},
                    "require_expiration": True,
                    "forward_payload_header": CLAIMS_HEADER,
                    "payload_in_metadata": PAYLOAD_METADATA,
                    "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                    # Verified tokens are kept (until they expire) so a client's repeated token
                    # is not verified again on every call (ES256 verification is ~0.1 ms).
                    "jwt_cache_config": {"jwt_cache_size": 4096},
                }
            },
            "rules": [*public, {"match": {"prefix": "/"}, "requires": {"provider_name": PROVIDER}}],
        },
    }


def _role_is(role: str) -> dict[str, Any]:
    return {
        "sourced_metadata": {
            "metadata_matcher": {
                "filter": JWT_FILTER,
                "path": [{"key": PAYLOAD_METADATA}, {"key": "role"}],
                "value": {"string_match": {"exact": role}},
            }
        }
    }


def _path_rule(path: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"url_path": {"path": path}}
    if method is None:
        return rule
    verb = {"header": {"name": ":method", "string_match": {"exact": method}}}
    return {"and_rules": {"rules": [verb, rule]}}


def rbac_filter(descriptor: Path, http_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """One ALLOW policy per role: the gRPC method paths whose minimum role it is (exact paths:
    after the transcoder a JSON call has its method's path), and the HTTP_RULES paths under
    ``http_prefixes``; ``admin`` may call anything; the health checks anyone."""
    by_role: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    for path, role in method_roles(descriptor).items():
        by_role[role].append(_path_rule({"exact": path}))
    for rule in HTTP_RULES:
        if any(rule.example == p or rule.example.startswith(p + "/") for p in http_prefixes):
            by_role[rule.role].append(_path_rule({"safe_regex": {"regex": rule.regex}}))
    by_role["admin"] = [{"any": True}]
    public = [_path_rule({"prefix": p}) for p in PUBLIC_PREFIXES]
    public += [_path_rule({"exact": p}) for p in PUBLIC_PATHS]
    policies: dict[str, Any] = {"public": {"permissions": public, "principals": [{"any": True}]}}
    for role in ROLES:
        if not by_role[role]:
            continue
        principals = [_role_is(r) for r in roles_at_least(role)]
        policies[role] = {
            "permissions": [{"or_rules": {"rules": by_role[role]}}],
            "principals": [{"or_ids": {"ids": principals}}],
        }
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": _T + "filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies},
        },
    }


def _status(code: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": f"tradecore.auth.status_{code}"},
            }
        }
    }


# A JSON (not gRPC) request: no content-type, one that is not application/grpc*, or a request
# the transcoder made gRPC (it keeps the JSON path in x-envoy-original-path; Envoy answers it as
# the JSON request it was).
_NOT_GRPC = {
    "or_filter": {
        "filters": [
            {"header_filter": {"header": {"name": "content-type", "present_match": False}}},
            {
                "header_filter": {
                    "header": {
                        "name": "content-type",
                        "string_match": {"prefix": "application/grpc"},
                        "invert_match": True,
                    }
                }
            },
            {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
        ]
    }
}
# A verified token: its payload's ``exp`` (required) is in the metadata.
_TOKEN = {
    "metadata_filter": {
        "matcher": {
            "filter": JWT_FILTER,
            "path": [{"key": PAYLOAD_METADATA}, {"key": "exp"}],
            "value": {"present_match": True},
        },
        "match_if_key_not_found": False,
    }
}
_DENIED = (
    "permission denied: role '%DYNAMIC_METADATA(" + JWT_FILTER + ":" + PAYLOAD_METADATA + ":role)%'"
    " may not call %REQ(:PATH)%"
)


def _all(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"and_filter": {"filters": list(filters)}}


def _json_body(code: int, message: str) -> dict[str, Any]:
    return {"json_format": {"code": code, "message": message}}


def local_reply_mappers() -> list[dict[str, Any]]:
    """The gateway's own refusals: UNAUTHENTICATED (16) / HTTP 401 for a missing or invalid
    token (jwt_authn answers 403 for a wrong audience: made 401 here, the token is not for this
    gateway), PERMISSION_DENIED (7) / HTTP 403 naming the role and the method for a role too
    low. A JSON caller gets ``{"code": .., "message": ..}`` (the transcoder's error body)."""
    return [
        {
            "filter": _all(_status(403), _TOKEN, _NOT_GRPC),
            "body_format_override": _json_body(7, _DENIED),
        },
        {
            "filter": _all(_status(403), _TOKEN),
            "body_format_override": {"text_format_source": {"inline_string": _DENIED}},
        },
        # A 403 without a verified token is jwt_authn's (a wrong audience).
        {
            "filter": _all(_status(403), _NOT_GRPC),
            "status_code": 401,
            "body_format_override": _json_body(16, "%LOCAL_REPLY_BODY%"),
        },
        {"filter": _status(403), "status_code": 401},
        {
            "filter": _all(_status(401), _NOT_GRPC),
            "body_format_override": _json_body(16, "%LOCAL_REPLY_BODY%"),
        },
    ]
