"""Serving from the model registry on the running mesh: versions registered with
``tradecore model register``, the champion answering tritonclient, a canary split by request id
with every answer computed by the version it names, a shadow that never reaches the caller, a
rollback by moving the alias, versions named by number, and the ModelService's JSON routes
through Envoy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import tritonclient.grpc as grpcclient
from tradecore.inference.rollout import bucket

from tests.inference_models import small_mlp
from tests.mesh import Mesh

NAME = "rollout"
X = (np.arange(12, dtype=np.float32).reshape(3, 4) - 6) / 4
SCALES = {1: 1.0, 2: 2.0}


def expected(version: int) -> npt.NDArray[np.float32]:
    sess = ort.InferenceSession(small_mlp(SCALES[version]), providers=["CPUExecutionProvider"])
    out: npt.NDArray[np.float32] = sess.run(["y"], {"x": X})[0]
    return out


def cli(mesh: Mesh, *args: str) -> dict[str, Any]:
    proc = mesh.run("model", *args)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def http(mesh: Mesh, url: str, body: object = None, method: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method or ("POST" if data else "GET"), headers=mesh.auth_headers()
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def infer(client: grpcclient.InferenceServerClient, rid: str, version: str = "") -> tuple[str, Any]:
    x = grpcclient.InferInput("x", list(X.shape), "FP32")
    x.set_data_from_numpy(X)
    result = client.infer(NAME, [x], model_version=version, request_id=rid)
    resp = result.get_response()
    assert resp.id == rid
    return resp.model_version, result.as_numpy("y")


def test_register_route_shadow_and_roll_back(mesh: Mesh, tmp_path: Path) -> None:
    for v, scale in SCALES.items():
        path = tmp_path / f"mlp_v{v}.onnx"
        path.write_bytes(small_mlp(scale))
        got = cli(mesh, "register", NAME, str(path), "--config", "max_batch_size=64")
        assert got["version"] == v
    cli(mesh, "alias", NAME, "champion", "1", "--reason", "validated")
    client = grpcclient.InferenceServerClient(str(mesh.inference))
    base = f"http://{mesh.gateway}"
    try:
        # The champion answers.
        version, y = infer(client, "first")
        assert version == "1"
        np.testing.assert_array_equal(y, expected(1))

        # Canary 30 %: the split follows the request id; each answer is its version's.
        cli(mesh, "policy", NAME, "canary", "--challenger", "2", "--percent", "30")
        n, challenger = 200, 0
        for i in range(n):
            rid = f"canary-{i}"
            version, y = infer(client, rid)
            want = 2 if bucket(NAME, 0, rid) < 30 else 1
            assert version == str(want), rid
            np.testing.assert_array_equal(y, expected(want))
            challenger += want == 2
        # Binomial(200, 0.3): mean 60, sd 6.5; 4.5 sd either side.
        assert 31 <= challenger <= 89, challenger
        # The outcome of a canary request, through Envoy's JSON transcoding.
        status, doc = http(
            mesh, f"{base}/v1/models:outcome", {"request_id": "canary-0", "value": 1.5}
        )
        want = "challenger" if bucket(NAME, 0, "canary-0") < 30 else "champion"
        assert status == 200 and doc["arm"] == want, doc
        status, report = http(mesh, f"{base}/v1/models/{NAME}/report")
        assert status == 200, report
        requests = {a["version"]: int(a["requests"]) for a in report["arms"]}
        assert requests == {1: n - challenger, 2: challenger}

        # REST through Envoy: routed by the body's id, the answer names its version and id.
        body = {
            "id": "rest-7",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": X.tolist()}],
        }
        status, doc = http(mesh, f"{base}/v2/models/{NAME}/infer", body)
        want_v = 2 if bucket(NAME, 0, "rest-7") < 30 else 1
        assert status == 200 and doc["id"] == "rest-7" and doc["model_version"] == str(want_v)
        np.testing.assert_allclose(
            np.array(doc["outputs"][0]["data"], np.float32).reshape(3, 2), expected(want_v)
        )

        # Shadow: the caller always gets the champion; the challenger is compared aside.
        cli(mesh, "policy", NAME, "shadow", "--challenger", "2", "--percent", "100")
        for i in range(30):
            version, y = infer(client, f"shadow-{i}")
            assert version == "1"
            np.testing.assert_array_equal(y, expected(1))
        deadline = time.monotonic() + 30
        while True:
            shadow = cli(mesh, "report", NAME).get("shadow", {})
            if int(shadow.get("compared", 0)) == 30 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (int(shadow["mirrored"]), int(shadow["compared"]), int(shadow["failed"])) == (
            30, 30, 0,
        )  # fmt: skip
        assert shadow["shadow_version"] == 2 and shadow["agreement"] == 0.0

        # Roll forward, then back by moving the alias: the next request follows.
        cli(mesh, "policy", NAME, "none")
        cli(mesh, "alias", NAME, "champion", "2", "--reason", "promote")
        version, y = infer(client, "after-promote")
        assert version == "2"
        np.testing.assert_array_equal(y, expected(2))
        back = cli(mesh, "rollback", NAME, "champion", "--reason", "p&l dropped")
        assert back["default_version"] == 1
        version, y = infer(client, "after-rollback")
        assert version == "1"
        np.testing.assert_array_equal(y, expected(1))

        # A version named by number is served (loaded on demand); an unknown one is NOT_FOUND.
        version, y = infer(client, "explicit", version="2")
        assert version == "2"
        np.testing.assert_array_equal(y, expected(2))
        status, doc = http(mesh, f"{base}/v2/models/{NAME}/versions/9/infer", body)
        assert status == 404 and "has no version 9" in doc["error"], doc

        # A request without an id is routed by a new one, which comes back with the answer
        # (through Envoy: the x-request-id Envoy sets).
        for target in (str(mesh.inference), mesh.gateway):
            other = mesh.triton(grpcclient.InferenceServerClient(target))
            try:
                x = grpcclient.InferInput("x", list(X.shape), "FP32")
                x.set_data_from_numpy(X)
                assert len(other.infer(NAME, [x]).get_response().id) >= 16
            finally:
                other.close()

        # Every inference is on the monitoring page by version and role.
        status, snap = http(mesh, f"{base}/monitor/api/snapshot?model={NAME}")
        assert status == 200, snap
        roles = {(x["version"], x["role"]) for x in snap["models"][0]["series"]}
        assert {("1", "champion"), ("2", "challenger"), ("2", "shadow")} <= roles, roles
    finally:
        client.close()


def test_model_service_json_routes_through_envoy(mesh: Mesh, tmp_path: Path) -> None:
    base = f"http://{mesh.gateway}"
    path = tmp_path / "m.onnx"
    path.write_bytes(small_mlp(3.0))
    cli(mesh, "register", "jsonroutes", str(path))
    status, doc = http(mesh, f"{base}/v1/models")
    assert status == 200 and "jsonroutes" in [m["name"] for m in doc["models"]], doc
    status, doc = http(mesh, f"{base}/v1/models/jsonroutes")
    assert status == 200 and doc["default_version"] == 1, doc
    status, doc = http(
        mesh,
        f"{base}/v1/models/jsonroutes/aliases/champion",
        {"version": 1, "actor": "test", "reason": "json"},
        method="PUT",
    )
    assert status == 200 and doc["aliases"] == {"champion": 1}, doc
    status, doc = http(mesh, f"{base}/v1/models/jsonroutes/policy")
    assert status == 200 and doc["kind"] == "NONE", doc
    status, doc = http(
        mesh,
        f"{base}/v1/models/jsonroutes/policy",
        {"kind": "CANARY", "challenger_version": 1, "percent": 10, "actor": "test"},
        method="PUT",
    )
    assert status == 400 and "challenger" in doc["message"], doc
    status, doc = http(mesh, f"{base}/v1/models/nope")
    assert status == 404, doc
