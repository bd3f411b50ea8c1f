"""Kubernetes manifests of the mesh, generated from the service registry.

``tradecore deploy k8s --out deploy/k8s`` writes one YAML file per kind of object plus a
``kustomization.yaml`` (``kubectl apply -k deploy/k8s``). Everything follows from
:data:`tradecore_services.registry.SERVICES`: a registered service gets its Deployment (or a
StatefulSet with a volume when it keeps files: the execution service's audit log), Service,
gRPC readiness and liveness probes on its health service, and, when it is stateless, a
HorizontalPodAutoscaler and a PodDisruptionBudget. NATS (JetStream) and ClickHouse are external
dependencies reached by URL/DSN (ConfigMap ``tradecore-config``); secrets (Alpaca credentials,
the audit signing key) come from the Secret ``tradecore-secrets``, which is optional and never
generated here. The gateway is Envoy (from the same image) with the configuration
``gateway/generate.py`` writes for the in-cluster service names. NetworkPolicies deny every
ingress but the gateway's port, the gateway's calls into the services and metric scrapes from
the namespace ``monitoring``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..registry import SERVICES, ServiceSpec

APP = "tradecore"
#: Containers listen on every interface inside the pod.
GATEWAY_PORT, ADMIN_PORT = 8080, 9901
AUTH_DIR = "/etc/tradecore-auth"


@dataclass(frozen=True)
class Options:
    namespace: str = "tradecore"
    image: str = "ghcr.io/tradecore/tradecore:0.1.0"
    nats_url: str = "nats://nats.nats.svc:4222"
    clickhouse_dsn: str = "http://clickhouse.clickhouse.svc:8123"
    #: Replicas of a stateless service: the autoscaler's bounds.
    min_replicas: int = 2
    max_replicas: int = 10
    cpu_target_percent: int = 70
    #: The tokens the gateway accepts: their issuer and audience (the JWKS from the Secret
    #: ``tradecore-auth``, key ``jwks.json``).
    auth_issuer: str = "tradecore"
    auth_audience: str = "tradecore"


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _meta(name: str, opts: Options, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": opts.namespace, "labels": _labels(component)}


def _security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _ports(spec: ServiceSpec) -> list[dict[str, Any]]:
    ports = [
        {"name": "grpc", "containerPort": spec.port, "protocol": "TCP"},
        {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"},
    ]
    http = spec.http_port
    if http:
        ports.append({"name": "http", "containerPort": http, "protocol": "TCP"})
    return ports


def _container(spec: ServiceSpec, opts: Options) -> dict[str, Any]:
    probe = {"grpc": {"port": spec.port, "service": spec.health_service}}
    return {
        "name": spec.name,
        "image": opts.image,
        "args": ["serve", spec.name],
        "ports": _ports(spec),
        "envFrom": [
            {"configMapRef": {"name": "tradecore-config"}},
            {"secretRef": {"name": "tradecore-secrets", "optional": True}},
        ],
        "env": [
            {"name": "TRADECORE_PORT", "value": str(spec.port)},
            {"name": "TRADECORE_METRICS_PORT", "value": str(spec.metrics_port)},
            *(
                [{"name": "TRADECORE_HTTP_PORT", "value": str(spec.http_port)}]
                if spec.http_port
                else []
            ),
        ],
        # Ready only while the service says SERVING (NOT_SERVING while NATS is unreachable);
        # restarted when it stops answering at all.
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {
            "grpc": {"port": spec.port},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {"grpc": {"port": spec.port}, "periodSeconds": 2, "failureThreshold": 60},
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": _security(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _pod(spec: ServiceSpec, opts: Options, *, data_volume: bool) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if not data_volume:
        volumes.append({"name": "data", "emptyDir": {}})
    return {
        "metadata": {"labels": _labels(spec.name)},
        "spec": {
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
            "terminationGracePeriodSeconds": 30,
            "containers": [_container(spec, opts)],
            "volumes": volumes,
        },
    }


def service_objects(spec: ServiceSpec, opts: Options) -> list[dict[str, Any]]:
    """The workload, its Service, and (stateless) autoscaler and disruption budget."""
    name = f"{APP}-{spec.name}"
    selector = {"matchLabels": _labels(spec.name)}
    out: list[dict[str, Any]] = []
    if spec.keeps_files:
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": _meta(name, opts, spec.name),
                "spec": {
                    "serviceName": name,
                    "replicas": 1,
                    "selector": selector,
                    "template": _pod(spec, opts, data_volume=True),
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "10Gi"}},
                            },
                        }
                    ],
                },
            }
        )
    else:
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta(name, opts, spec.name),
                "spec": {
                    "replicas": opts.min_replicas if spec.stateless else 1,
                    # A singleton (feeds, journal consumers) never runs twice, even briefly.
                    "strategy": {"type": "RollingUpdate"}
                    if spec.stateless
                    else {"type": "Recreate"},
                    "selector": selector,
                    "template": _pod(spec, opts, data_volume=False),
                },
            }
        )
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, opts, spec.name),
            "spec": {
                "selector": _labels(spec.name),
                "ports": [
                    {"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]}
                    for p in _ports(spec)
                ],
            },
        }
    )
    if spec.stateless:
        out.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": _meta(name, opts, spec.name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": opts.min_replicas,
                    "maxReplicas": opts.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": opts.cpu_target_percent,
                                },
                            },
                        }
                    ],
                },
            }
        )
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(name, opts, spec.name),
                "spec": {"minAvailable": 1, "selector": selector},
            }
        )
    return out


def gateway_objects(
    services: Iterable[ServiceSpec], opts: Options, envoy: dict[str, Any]
) -> list[dict[str, Any]]:
    name = f"{APP}-gateway"
    labels = _labels("gateway")
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{APP}-envoy", opts, "gateway"),
            "data": {"envoy.json": json.dumps(envoy, indent=1, sort_keys=True)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, opts, "gateway"),
            "spec": {
                "replicas": opts.min_replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                        "containers": [
                            {
                                "name": "envoy",
                                "image": opts.image,
                                "command": ["envoy", "-c", "/etc/tradecore/envoy.json"],
                                "args": ["--log-level", "warn"],
                                "ports": [
                                    {"name": "gateway", "containerPort": GATEWAY_PORT},
                                    {"name": "admin", "containerPort": ADMIN_PORT},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": ADMIN_PORT},
                                    "periodSeconds": 5,
                                },
                                "livenessProbe": {
                                    "tcpSocket": {"port": GATEWAY_PORT},
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "128Mi"},
                                    "limits": {"cpu": "2", "memory": "1Gi"},
                                },
                                "securityContext": _security(),
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/tradecore"},
                                    {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": f"{APP}-envoy"}},
                            # The issuer's public keys (jwks.json): required, the gateway
                            # checks a token on every route but health.
                            {"name": "auth", "secret": {"secretName": f"{APP}-auth"}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, opts, "gateway"),
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "gateway", "port": GATEWAY_PORT, "targetPort": "gateway"}],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, opts, "gateway"),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": opts.min_replicas,
                "maxReplicas": opts.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": opts.cpu_target_percent,
                            },
                        },
                    }
                ],
            },
        },
    ]


def network_policies(services: Iterable[ServiceSpec], opts: Options) -> list[dict[str, Any]]:
    """Deny all ingress; allow the gateway's port from anywhere, each service's serving ports
    from the gateway, and metrics from the ``monitoring`` namespace."""
    monitoring = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"},
        }
    }
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(f"{APP}-default-deny", opts, "policy"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(f"{APP}-gateway", opts, "policy"),
            "spec": {
                "podSelector": {"matchLabels": _labels("gateway")},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": GATEWAY_PORT, "protocol": "TCP"}]}],
            },
        },
    ]
    for spec in services:
        serving = [p for p in _ports(spec) if p["name"] != "metrics"]
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": _meta(f"{APP}-{spec.name}", opts, "policy"),
                "spec": {
                    "podSelector": {"matchLabels": _labels(spec.name)},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": _labels("gateway")}}],
                            "ports": [
                                {"port": p["containerPort"], "protocol": "TCP"} for p in serving
                            ],
                        },
                        {
                            "from": [monitoring],
                            "ports": [{"port": spec.metrics_port, "protocol": "TCP"}],
                        },
                    ],
                },
            }
        )
    return out


def manifests(
    services: tuple[ServiceSpec, ...] = SERVICES,
    opts: Options | None = None,
    envoy: dict[str, Any] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects in it."""
    opts = opts or Options()
    if envoy is None:
        envoy = gateway_config(services, opts)
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{APP}-config", opts, "config"),
        "data": {
            "TRADECORE_HOST": "0.0.0.0",
            "TRADECORE_METRICS_HOST": "0.0.0.0",
            "TRADECORE_NATS_URL": opts.nats_url,
            "TRADECORE_CLICKHOUSE_DSN": opts.clickhouse_dsn,
            "TRADECORE_DATA_DIR": "/data",
            "TRADECORE_LOG_FILE": "-",
        },
    }
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": opts.namespace, "labels": {"app.kubernetes.io/name": APP}},
    }
    out: dict[str, list[dict[str, Any]]] = {"namespace.yaml": [namespace], "config.yaml": [config]}
    for spec in services:
        out[f"{spec.name}.yaml"] = service_objects(spec, opts)
    out["gateway.yaml"] = gateway_objects(services, opts, envoy)
    out["network-policies.yaml"] = network_policies(services, opts)
    return out


def gateway_config(services: tuple[ServiceSpec, ...], opts: Options) -> dict[str, Any]:
    """The Envoy configuration with the services' in-cluster names as upstreams."""
    from tradecore_gateway.generate import HttpUpstream, Upstream, descriptor_path, envoy_config

    upstreams = {
        full: Upstream(f"{APP}-{spec.name}.{opts.namespace}.svc", spec.port)
        for spec in services
        for full in spec.grpc_services
    }
    http_upstreams = {
        spec.name: HttpUpstream(
            f"{APP}-{spec.name}.{opts.namespace}.svc",
            spec.http_port,
            spec.http_prefixes,
            spec.http_streams,
        )
        for spec in services
        if spec.http_port and spec.http_prefixes
    }
    from tradecore_gateway.auth import AuthConfig

    config: dict[str, Any] = envoy_config(
        descriptor=descriptor_path(),
        inline_descriptor=True,
        upstreams=upstreams,
        http_upstreams=http_upstreams,
        auth=AuthConfig(opts.auth_issuer, opts.auth_audience, Path(AUTH_DIR) / "jwks.json"),
        health_service=services[0].health_service,
        listen_host="0.0.0.0",
        listen_port=GATEWAY_PORT,
        admin_port=ADMIN_PORT,
    )
    return config


def write(out: Path, files: dict[str, list[dict[str, Any]]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, objects in files.items():
        path = out / name
        path.write_text(
            "# Generated by `tradecore deploy k8s` from services/registry.py; do not edit.\n"
            + yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)
        )
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    path = out / "kustomization.yaml"
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    written.append(path)
    return written


def deploy_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="tradecore deploy", description="Write deployment manifests from the registry."
    )
    sub = ap.add_subparsers(dest="what", required=True)
    k8s = sub.add_parser("k8s", help="Kubernetes manifests + kustomization.yaml")
    defaults = Options()
    k8s.add_argument("--out", type=Path, default=Path("deploy/k8s"))
    k8s.add_argument("--namespace", default=defaults.namespace)
    k8s.add_argument("--image", default=defaults.image)
    k8s.add_argument("--nats-url", default=defaults.nats_url)
    k8s.add_argument("--clickhouse-dsn", default=defaults.clickhouse_dsn)
    k8s.add_argument("--auth-issuer", default=defaults.auth_issuer)
    k8s.add_argument("--auth-audience", default=defaults.auth_audience)
    ns = ap.parse_args(argv)
    opts = Options(
        namespace=ns.namespace,
        image=ns.image,
        nats_url=ns.nats_url,
        clickhouse_dsn=ns.clickhouse_dsn,
        auth_issuer=ns.auth_issuer,
        auth_audience=ns.auth_audience,
    )
    for path in write(ns.out, manifests(SERVICES, opts)):
        print(path)
    return 0
