"""The InferenceService in the running mesh, spoken to by tritonclient (gRPC and HTTP)
unchanged, directly and through the gateway; REST through Envoy with plain urllib.

The shared mesh starts the service with an empty model registry; the tests register ONNX models
with ``tradecore model register``, which serves them at once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.inference_models import small_mlp, strings
from tests.mesh import Mesh

X = (np.arange(20, dtype=np.float32).reshape(5, 4) - 10) / 3


def expected(x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(small_mlp(), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["y"], {"x": x})[0]
    return out


@pytest.fixture(scope="module")
def models(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("onnx")
    for name, model, config in (("mlp", small_mlp(), ["--config", "max_batch_size=64"]),
                                ("strings", strings(), [])):  # fmt: skip
        path = root / f"{name}.onnx"
        path.write_bytes(model)
        proc = mesh.run("model", "register", name, str(path), *config)
        assert proc.returncode == 0, proc.stderr
    client = grpcclient.InferenceServerClient(str(mesh.inference))
    assert client.is_model_ready("mlp") and client.is_model_ready("strings")
    yield mesh
    client.close()


def authed(client: Any, mesh: Mesh) -> Any:
    return mesh.triton(client)


def grpc_client(mesh: Mesh, via: str) -> grpcclient.InferenceServerClient:
    return authed(
        grpcclient.InferenceServerClient(str(mesh.inference) if via == "direct" else mesh.gateway),
        mesh,
    )


def http_url(mesh: Mesh, via: str) -> str:
    port = mesh.inference_http_port if via == "direct" else mesh.gateway_port
    return f"127.0.0.1:{port}"


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_tritonclient_grpc_unchanged(models: Mesh, via: str) -> None:
    client = grpc_client(models, via)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
        meta = client.get_model_metadata("mlp")
        assert (meta.name, list(meta.versions), meta.platform) == ("mlp", ["1"], "onnxruntime_onnx")
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
            ("x", "FP32", [-1, 4])
        ]
        assert client.get_server_metadata().name == "tradecore"
        x = grpcclient.InferInput("x", [5, 4], "FP32")
        x.set_data_from_numpy(X)
        result = client.infer("mlp", [x], outputs=[grpcclient.InferRequestedOutput("y")])
        np.testing.assert_array_equal(result.as_numpy("y"), expected(X))
        # BYTES and INT64, every output by default.
        s = grpcclient.InferInput("s", [2], "BYTES")
        s.set_data_from_numpy(np.array([b"ab", b""], dtype=np.object_))
        n = grpcclient.InferInput("n", [2, 3], "INT64")
        n.set_data_from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
        result = client.infer("strings", [s, n])
        assert result.as_numpy("s_out").tolist() == [b"ab", b""]
        np.testing.assert_array_equal(result.as_numpy("n2"), np.arange(6).reshape(2, 3) * 2)
        stats = client.get_inference_statistics("mlp")
        assert stats.model_stats[0].inference_count >= 5
    finally:
        client.close()


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_tritonclient_http_unchanged(models: Mesh, via: str) -> None:
    client = authed(httpclient.InferenceServerClient(http_url(models, via)), models)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
        meta = client.get_model_metadata("mlp")
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        for binary in (True, False):
            x = httpclient.InferInput("x", [5, 4], "FP32")
            x.set_data_from_numpy(X, binary_data=binary)
            out = httpclient.InferRequestedOutput("y", binary_data=binary)
            result = client.infer("mlp", [x], outputs=[out])
            np.testing.assert_allclose(result.as_numpy("y"), expected(X), rtol=1e-6)
        s = httpclient.InferInput("s", [2], "BYTES")
        s.set_data_from_numpy(np.array([b"ab", b"c"], dtype=np.object_))
        n = httpclient.InferInput("n", [2, 3], "INT64")
        n.set_data_from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
        result = client.infer("strings", [s, n])  # no outputs named: all, in binary
        assert result.as_numpy("s_out").tolist() == [b"ab", b"c"]
        np.testing.assert_array_equal(result.as_numpy("n2"), np.arange(6).reshape(2, 3) * 2)
    finally:
        client.close()


def _bad_inputs(module: Any) -> list[tuple[str, list[Any], str]]:
    def inp(name: str, arr: np.ndarray, dtype: str) -> Any:
        t = module.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        return t

    return [
        ("mlp", [inp("x", X.astype(np.float64), "FP64")], "input tensor 'x': datatype FP64"),
        ("mlp", [inp("x", X[:, :3].copy(), "FP32")], "input tensor 'x': shape [5, 3]"),
        ("mlp", [inp("z", X, "FP32")], "input tensor 'z'"),
        ("strings", [inp("n", np.zeros((1, 3), np.int64), "INT64")], "input tensor 's': missing"),
        (
            "mlp",
            [inp("x", np.zeros((65, 4), np.float32), "FP32")],
            "input tensor 'x': batch size 65, at most 64",
        ),
    ]


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_errors_name_the_model_version_or_tensor_grpc(models: Mesh, via: str) -> None:
    client = grpc_client(models, via)
    try:
        for model, inputs, message in _bad_inputs(grpcclient):
            with pytest.raises(InferenceServerException) as err:
                client.infer(model, inputs)
            assert err.value.status() == "StatusCode.INVALID_ARGUMENT", err.value
            assert message in err.value.message(), err.value
        x = grpcclient.InferInput("x", [5, 4], "FP32")
        x.set_data_from_numpy(X)
        for model, version, message in (
            ("nope", "", "model 'nope' is not loaded"),
            ("mlp", "7", "model 'mlp' has no version 7"),
        ):
            with pytest.raises(InferenceServerException) as err:
                client.infer(model, [x], model_version=version)
            assert err.value.status() == "StatusCode.NOT_FOUND", err.value
            assert message in err.value.message()
    finally:
        client.close()


def test_errors_over_http_are_400_and_404(models: Mesh) -> None:
    client = authed(httpclient.InferenceServerClient(http_url(models, "gateway")), models)
    try:
        for model, inputs, message in _bad_inputs(httpclient):
            with pytest.raises(InferenceServerException) as err:
                client.infer(model, inputs)
            assert err.value.status() == "400", err.value
            assert message in err.value.message(), err.value
        x = httpclient.InferInput("x", [5, 4], "FP32")
        x.set_data_from_numpy(X)
        with pytest.raises(InferenceServerException) as err:
            client.infer("nope", [x])
        assert err.value.status() == "404" and "model 'nope'" in err.value.message()
    finally:
        client.close()


def test_repository_index_load_unload(models: Mesh) -> None:
    client = authed(grpcclient.InferenceServerClient(models.gateway), models)
    try:
        index = {(m.name, m.state) for m in client.get_model_repository_index().models}
        assert {("mlp", "READY"), ("strings", "READY")} <= index
        client.unload_model("strings")
        assert not client.is_model_ready("strings")
        index = {(m.name, m.state) for m in client.get_model_repository_index().models}
        assert ("strings", "UNAVAILABLE") in index
        client.load_model("strings")
        assert client.is_model_ready("strings")
        with pytest.raises(InferenceServerException) as err:
            client.load_model("absent")
        assert err.value.status() == "StatusCode.NOT_FOUND"
        assert "model 'absent' is not registered" in err.value.message()
    finally:
        client.close()


def _get(url: str, data: bytes | None = None, mesh: Mesh | None = None) -> tuple[int, Any]:
    headers = mesh.auth_headers() if mesh is not None else {}
    req = urllib.request.Request(
        url, data=data, method="POST" if data is not None else "GET", headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rest_routes_through_envoy(models: Mesh) -> None:
    base = f"http://{models.gateway}"
    assert _get(f"{base}/v2/health/live") == (200, {"live": True})
    status, doc = _get(f"{base}/v2", mesh=models)
    assert status == 200 and doc["name"] == "tradecore" and "model_repository" in doc["extensions"]
    status, doc = _get(f"{base}/v2/models/mlp/versions/1", mesh=models)
    assert status == 200 and doc["outputs"][0]["name"] == "y"
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [5, 4], "data": X.tolist()}]}
    status, doc = _get(f"{base}/v2/models/mlp/infer", json.dumps(body).encode(), mesh=models)
    assert status == 200, doc
    np.testing.assert_allclose(
        np.array(doc["outputs"][0]["data"], dtype=np.float32).reshape(5, 2), expected(X), rtol=1e-6
    )
    # Unknown fields are the service's to judge: the strict-JSON filter stays out of /v2.
    body["parameters"] = {"anything": 1}
    assert _get(f"{base}/v2/models/mlp/infer", json.dumps(body).encode(), mesh=models)[0] == 200
    status, doc = _get(f"{base}/v2/models/nope", mesh=models)
    assert status == 404 and "model 'nope'" in doc["error"]
    status, doc = _get(f"{base}/v2/models/mlp/infer", b"{bad", mesh=models)
    assert status == 400 and "not valid JSON" in doc["error"]
    status, doc = _get(f"{base}/v2/repository/index", b"{}", mesh=models)
    assert status == 200 and {"name": "mlp", "version": "1", "state": "READY", "reason": ""} in doc


def test_triton_metrics_on_the_metrics_port(models: Mesh) -> None:
    client = grpcclient.InferenceServerClient(str(models.inference))
    x = grpcclient.InferInput("x", [5, 4], "FP32")
    x.set_data_from_numpy(X)
    client.infer("mlp", [x])
    client.close()
    url = f"http://127.0.0.1:{models.inference_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    for name in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
    ):
        assert f'{name}{{model="mlp",version="1"}}' in text, name
