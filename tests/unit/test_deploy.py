"""Deployment: the Kubernetes manifests `tradecore deploy k8s` writes from the registry (checked
against the Kubernetes API schemas, rendered by kubectl's kustomize, the gateway's configuration
validated by Envoy itself) and the container entry point `tradecore serve <name>`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from tradecore_services.mesh.auth import auth_dir, ensure_keys
from tradecore_services.mesh.cli import main as cli_main
from tradecore_services.mesh.components import envoy_path, grpc_health
from tradecore_services.mesh.deploy import Options, manifests
from tradecore_services.registry import SERVICES

from tests.conftest import REPO, free_port

K8S_VERSION = "1.30"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s")
    assert cli_main(["deploy", "k8s", "--out", str(out), "--namespace", "trading"]) == 0
    return out


def objects(out: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_object_is_valid_against_the_kubernetes_schemas(written: Path) -> None:
    docs = objects(written)
    assert len(docs) > 10
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # and a broken one is refused (the check can fail)
    bad = json.loads(json.dumps(by_kind(docs, "Deployment")["tradecore-pricing"]))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_registered_service_is_deployed_with_probes_on_its_health_service(
    written: Path,
) -> None:
    docs = objects(written)
    workloads = by_kind(docs, "Deployment") | by_kind(docs, "StatefulSet")
    services = by_kind(docs, "Service")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    policies = by_kind(docs, "NetworkPolicy")
    assert all(d["metadata"]["namespace"] == "trading" for d in docs if d["kind"] != "Namespace")
    for spec in SERVICES:
        name = f"tradecore-{spec.name}"
        (container,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", spec.name]
        assert container["readinessProbe"]["grpc"] == {
            "port": spec.port,
            "service": spec.health_service,
        }
        ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert ports["grpc"] == spec.port and ports["metrics"] == spec.metrics_port
        assert (name in hpas) == spec.stateless
        assert (workloads[name]["kind"] == "StatefulSet") == spec.keeps_files
        assert workloads[name]["spec"]["replicas"] == (2 if spec.stateless else 1)
        ingress = policies[name]["spec"]["ingress"]
        assert {"port": spec.port, "protocol": "TCP"} in ingress[0]["ports"]
    assert policies["tradecore-default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }


def test_the_gateway_config_routes_to_the_in_cluster_services_and_envoy_accepts_it(
    written: Path, tmp_path: Path
) -> None:
    docs = objects(written)
    config = json.loads(by_kind(docs, "ConfigMap")["tradecore-envoy"]["data"]["envoy.json"])
    hosts = {
        c["name"]: (
            c["type"],
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                "socket_address"
            ],
        )
        for c in config["static_resources"]["clusters"]
    }
    for spec in SERVICES:
        for full in spec.grpc_services:
            kind, addr = hosts[full.replace(".", "_")]
            assert kind == "STRICT_DNS"
            assert addr == {
                "address": f"tradecore-{spec.name}.trading.svc",
                "port_value": spec.port,
            }
    # every route but health asks for a token checked against the JWKS of the Secret
    # tradecore-auth; Envoy reads that file at start: validated here with a real one
    (jwt,) = [
        f["typed_config"]
        for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"
        ]["http_filters"]
        if f["name"] == "envoy.filters.http.jwt_authn"
    ]
    provider = next(iter(jwt["providers"].values()))
    assert provider["local_jwks"] == {"filename": "/etc/tradecore-auth/jwks.json"}
    (gateway,) = [
        d for d in by_kind(docs, "Deployment").values() if "gateway" in d["metadata"]["name"]
    ]
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth"]["secret"] == {"secretName": "tradecore-auth"}
    ensure_keys(tmp_path)
    provider["local_jwks"] = {"filename": str(auth_dir(tmp_path) / "jwks.json")}
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    run = subprocess.run(
        [envoy_path(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_directory(written: Path) -> None:
    run = subprocess.run(
        ["kubectl", "kustomize", str(written)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(run.stdout)]
    assert kinds.count("Namespace") == 1 and "NetworkPolicy" in kinds


def test_options_reach_the_objects() -> None:
    files = manifests(opts=Options(image="registry.local/tc:1", nats_url="nats://a:4222,nats://b"))
    config = files["config.yaml"][0]["data"]
    assert config["TRADECORE_NATS_URL"] == "nats://a:4222,nats://b"
    (pod,) = files["pricing.yaml"][0]["spec"]["template"]["spec"]["containers"]
    assert pod["image"] == "registry.local/tc:1"


def test_the_dockerfile_copies_what_the_build_needs() -> None:
    text = (REPO / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), src
    assert 'ENTRYPOINT ["tradecore"]' in text and "TC_NATIVE=OFF" in text


def test_tradecore_serve_runs_a_registered_service_in_the_foreground(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    env = {
        **os.environ,
        "TRADECORE_PORT": str(port),
        "TRADECORE_METRICS_PORT": str(metrics),
        "TRADECORE_DATA_DIR": str(tmp_path),
        "TRADECORE_NATS_URL": f"nats://127.0.0.1:{free_port()}",  # nothing there
        "TRADECORE_LOG_FILE": "-",
    }
    tradecore = Path(sys.executable).parent / "tradecore"
    proc = subprocess.Popen([str(tradecore), "serve", "pricing"], env=env)
    try:
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            ok, status = grpc_health(f"127.0.0.1:{port}")
            if ok or status in ("NOT_SERVING", "SERVICE_UNKNOWN"):
                break
            time.sleep(0.2)
        # the process is the service itself (exec), serving gRPC on the port it was given
        assert status in ("SERVING", "NOT_SERVING"), status
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_service_with_an_http_port_gets_it_served_and_routed() -> None:
    # The InferenceService's REST port: in its container (as TRADECORE_HTTP_PORT), its Service,
    # and the gateway's routes for its prefixes.
    files = manifests()
    (inference,) = [s for s in SERVICES if s.http_port]
    docs = files[f"{inference.name}.yaml"]
    (workload,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TRADECORE_HTTP_PORT", "value": str(inference.http_port)} in container["env"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert {"name": "http", "port": inference.http_port, "targetPort": "http"} in service["spec"][
        "ports"
    ]
    (config,) = [d for d in files["gateway.yaml"] if d["kind"] == "ConfigMap"]
    envoy = json.loads(config["data"]["envoy.json"])
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    for prefix in inference.http_prefixes:
        (route,) = [r for r in routes if r["match"].get("path_separated_prefix") == prefix]
        assert route["route"]["cluster"] == f"{inference.name}_http"
