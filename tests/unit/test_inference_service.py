"""The InferenceService's logic without its servers: loading from a model source, validation
naming the tensor, inference equal to ONNX Runtime run directly, statistics and Triton metrics,
the gRPC message conversion, and the REST application (served by aiohttp on a loopback port)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnxruntime as ort
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from tradecore.errors import NotFoundError
from tradecore.inference.repository import DirectorySource
from tradecore_api.inference import grpc_service_pb2 as pb
from tradecore_services.inference import convert, rest
from tradecore_services.inference.metrics import TritonCollector
from tradecore_services.inference.models import Models

from tests.inference_models import small_mlp, strings, write

T = TypeVar("T")
X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def expected(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    sess = ort.InferenceSession(small_mlp(scale), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["y"], {"x": x})[0]
    return out


def repo(tmp_path: Path) -> Path:
    write(tmp_path, "mlp", 1, small_mlp(), {"max_batch_size": 8})
    write(tmp_path, "mlp", 2, small_mlp(2.0))
    write(tmp_path, "strings", 1, strings())
    return tmp_path


def with_models(tmp_path: Path, fn: Callable[[Models], Awaitable[T]], **kw: Any) -> T:
    async def body() -> T:
        models = Models(DirectorySource(repo(tmp_path)), **kw)
        await models.load_all()
        try:
            return await fn(models)
        finally:
            await models.close()

    return run(body())


def test_every_model_loads_at_its_newest_version_and_infers_as_onnxruntime(
    tmp_path: Path,
) -> None:
    async def check(models: Models) -> None:
        assert models.ready
        loaded = models.get("mlp")
        assert loaded.version.version == 2 and models.versions("mlp") == ["2"]
        out = await models.infer(loaded, {"x": X}, None)
        np.testing.assert_array_equal(out["y"], expected(X, 2.0))
        # Version 1 named by a request is loaded on demand; the default stays.
        one = await models.lookup("mlp", "1")
        out = await models.infer(one, {"x": X}, ["y"])
        np.testing.assert_array_equal(out["y"], expected(X))
        assert models.get("mlp").version.version == 2 and models.versions("mlp") == ["1", "2"]
        assert one.metadata.max_batch_size == 8  # from config.json
        s = np.array([b"a", b"bc"], dtype=np.object_)
        n = np.arange(6, dtype=np.int64).reshape(2, 3)
        res = await models.infer(models.get("strings"), {"s": s, "n": n}, None)
        assert res["s_out"].tolist() == [b"a", b"bc"]
        np.testing.assert_array_equal(res["n2"], n * 2)
        bad = np.array([b"\xff"], dtype=np.object_)
        with pytest.raises(ValueError, match="input tensor 's': element 0 is not UTF-8 text"):
            await models.infer(models.get("strings"), {"s": bad, "n": n[:1]}, None)

    with_models(tmp_path, check)


@pytest.mark.parametrize(
    ("name", "version", "inputs", "outputs", "error", "message"),
    [
        ("nope", "", {"x": X}, None, NotFoundError, "model 'nope' is not loaded"),
        ("mlp", "1", {"x": X}, None, NotFoundError, r"model 'mlp' has no loaded version '1'"),
        (
            "mlp",
            "",
            {"x": X.astype(np.float64)},
            None,
            ValueError,
            "input tensor 'x': datatype FP64",
        ),
        ("mlp", "", {"x": X[:, :3]}, None, ValueError, r"input tensor 'x': shape \[3, 3\]"),
        ("mlp", "", {}, None, ValueError, "input tensor 'x': missing"),
        ("mlp", "", {"x": X, "z": X}, None, ValueError, "input tensor 'z'"),
        (
            "mlp",
            "",
            {"x": np.zeros((5, 4), np.float32)},
            None,
            ValueError,
            "input tensor 'x': 20 elements, at most 16",
        ),
        ("mlp", "", {"x": X}, ["q"], ValueError, "output tensor 'q'"),
    ],
)
def test_bad_requests_name_the_model_version_or_tensor(
    tmp_path: Path,
    name: str,
    version: str,
    inputs: dict[str, np.ndarray],
    outputs: list[str] | None,
    error: type[Exception],
    message: str,
) -> None:
    async def check(models: Models) -> None:
        with pytest.raises(error, match=message):
            await models.infer(models.get(name, version), inputs, outputs)

    with_models(tmp_path, check, max_elements=16)


def test_batch_above_max_batch_size_is_refused(tmp_path: Path) -> None:
    async def check(models: Models) -> None:
        one = await models.lookup("mlp", "1")  # max_batch_size 8
        with pytest.raises(ValueError, match="input tensor 'x': batch size 9, at most 8"):
            await models.infer(one, {"x": np.zeros((9, 4), np.float32)}, None)

    with_models(tmp_path, check)


def test_statistics_and_triton_metrics(tmp_path: Path) -> None:
    async def check(models: Models) -> bytes:
        loaded = models.get("mlp")
        await models.infer(loaded, {"x": X}, None)
        await models.infer(loaded, {"x": X[:1]}, None)
        with pytest.raises(ValueError):
            await models.infer(loaded, {}, None)
        await asyncio.sleep(0)  # a success is counted on the loop's next turn (Models.infer)
        s = loaded.stats
        assert (s.success.count, s.fail.count, s.inference_count, s.execution_count) == (2, 1, 4, 2)
        stats = convert.statistics([loaded]).model_stats[0]
        assert (stats.name, stats.version, stats.inference_count) == ("mlp", "2", 4)
        assert stats.inference_stats.compute_infer.count == 2
        registry = CollectorRegistry()
        registry.register(TritonCollector(models.loaded))
        return generate_latest(registry)

    text = with_models(tmp_path, check).decode()
    assert 'nv_inference_request_success{model="mlp",version="2"} 2.0' in text
    assert 'nv_inference_request_failure{model="mlp",version="2"} 1.0' in text
    assert 'nv_inference_count{model="mlp",version="2"} 4.0' in text
    assert 'nv_inference_exec_count{model="mlp",version="2"} 2.0' in text
    for name in (
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
    ):
        assert f'{name}{{model="mlp",version="2"}}' in text


def test_unload_index_and_a_model_that_fails_to_load(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not onnx")

    async def check(models: Models) -> None:
        index = {(e.name, e.version): (e.state, e.reason) for e in models.index()}
        assert index[("mlp", "2")] == ("READY", "")
        assert index[("mlp", "1")][0] == "UNAVAILABLE"
        assert index[("broken", "1")][0] == "UNAVAILABLE"
        assert "ONNX Runtime cannot load it" in index[("broken", "1")][1]
        await models.unload("mlp")
        assert not models.is_ready("mlp")
        with pytest.raises(NotFoundError, match="model 'mlp' is not loaded"):
            await models.unload("mlp")
        assert [e.name for e in models.index(ready_only=True)] == ["strings"]
        with pytest.raises(NotFoundError, match="model 'zz' is not in the repository"):
            await models.load("zz")

    with_models(tmp_path, check)


def test_grpc_inputs_raw_or_contents() -> None:
    req = pb.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="x", datatype="FP32", shape=[3, 4])
    req.raw_input_contents.append(X.tobytes())
    np.testing.assert_array_equal(convert.request_inputs(req, 100)["x"], X)
    req2 = pb.ModelInferRequest(model_name="mlp")
    t = req2.inputs.add(name="x", datatype="FP32", shape=[3, 4])
    t.contents.fp32_contents.extend(X.reshape(-1).tolist())
    np.testing.assert_array_equal(convert.request_inputs(req2, 100)["x"], X)
    req2.inputs[0].datatype = "INT8"
    req2.inputs[0].contents.Clear()
    req2.inputs[0].contents.int_contents.extend([300] * 12)
    with pytest.raises(ValueError, match=r"input tensor 'x': a value in contents\.int_contents"):
        convert.request_inputs(req2, 100)
    req.raw_input_contents.append(b"")
    with pytest.raises(ValueError, match="raw_input_contents: 2 entries for 1 inputs"):
        convert.request_inputs(req, 100)


def rest_call(
    tmp_path: Path, calls: Callable[[TestClient[Any, Any]], Awaitable[T]], **kw: Any
) -> T:
    async def check(models: Models) -> T:
        app = rest.make_app(
            models,
            server_name="tradecore",
            version="1",
            extensions=("model_repository",),
            max_body_bytes=kw.get("max_body_bytes", 1 << 20),
        )
        async with TestClient(TestServer(app)) as client:
            return await calls(client)

    return with_models(tmp_path, check)


def test_rest_json_and_binary_inference(tmp_path: Path) -> None:
    async def calls(client: TestClient[Any, Any]) -> None:
        r = await client.get("/v2/health/ready")
        assert r.status == 200 and await r.json() == {"ready": True}
        meta = await (await client.get("/v2/models/mlp")).json()
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": X.tolist()}]}
        r = await client.post("/v2/models/mlp/versions/2/infer", json=body)
        doc = await r.json()
        assert r.status == 200, doc
        np.testing.assert_allclose(
            np.array(doc["outputs"][0]["data"]).reshape(3, 2), expected(X, 2.0), rtol=1e-6
        )
        # Binary input and output (Triton's extension, as tritonclient.http sends it).
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [3, 4],
                        "parameters": {"binary_data_size": X.nbytes},
                    }
                ],
                "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
            }
        ).encode()
        r = await client.post(
            "/v2/models/mlp/infer",
            data=head + X.tobytes(),
            headers={rest.HEADER_LENGTH: str(len(head))},
        )
        raw = await r.read()
        assert r.status == 200, raw
        n = int(r.headers[rest.HEADER_LENGTH])
        out = json.loads(raw[:n])["outputs"][0]
        assert out["parameters"]["binary_data_size"] == 24
        y = np.frombuffer(raw[n:], dtype=np.float32).reshape(3, 2)
        np.testing.assert_array_equal(y, expected(X, 2.0))

    rest_call(tmp_path, calls)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", {"inputs": []}, 404, "model 'nope' is not loaded"),
        ("/v2/models/mlp/versions/9/infer", {"inputs": []}, 404, "model 'mlp' has no version '9'"),
        ("/v2/models/mlp/infer", {"inputs": []}, 400, "inputs: must be a non-empty list"),
        (
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
            400,
            "input tensor 'x': datatype FP64, the model expects FP32",
        ),
        (
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]},
            400,
            r"input tensor 'x': shape [1, 3]",
        ),
        (
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": "1", "data": [1]}]},
            400,
            "input tensor 'x'.shape: must be a list of integers",
        ),
        ("/v2/models/mlp/infer", "[1", 400, "request body: not valid JSON"),
        ("/v2/models/mlp/infer", "[" * 100_000, 400, "request body: not valid JSON"),
        ("/v2/repository/index", "[" * 100_000, 400, "request body: not valid JSON"),
        ("/v2/nothing", {}, 404, "Not Found"),
    ],
)
def test_rest_errors_are_kserve_json(
    tmp_path: Path, path: str, body: object, status: int, message: str
) -> None:
    async def calls(client: TestClient[Any, Any]) -> tuple[int, dict[str, str]]:
        data = body if isinstance(body, str) else json.dumps(body)
        r = await client.post(path, data=data)
        return r.status, await r.json()

    got, doc = rest_call(tmp_path, calls)
    assert got == status and message in doc["error"], doc


def test_rest_body_over_the_limit_is_a_400(tmp_path: Path) -> None:
    async def calls(client: TestClient[Any, Any]) -> tuple[int, dict[str, str]]:
        r = await client.post("/v2/models/mlp/infer", data=b"x" * 5000)
        return r.status, await r.json()

    got, doc = rest_call(tmp_path, calls, max_body_bytes=1024)
    assert got == 400 and "request body: larger than 1024 bytes" in doc["error"]


def test_rest_repository_extension(tmp_path: Path) -> None:
    async def calls(client: TestClient[Any, Any]) -> None:
        r = await client.post("/v2/repository/models/mlp/unload")
        assert r.status == 200
        r = await client.get("/v2/models/mlp/ready")
        assert r.status == 404
        index = await (await client.post("/v2/repository/index", json={"ready": True})).json()
        assert [m["name"] for m in index] == ["strings"]
        assert (await client.post("/v2/repository/models/mlp/load")).status == 200
        assert (await client.get("/v2/models/mlp/ready")).status == 200
        r = await client.post("/v2/repository/models/zz/load")
        assert r.status == 404 and "model 'zz'" in (await r.json())["error"]

    rest_call(tmp_path, calls)


def test_the_rest_app_takes_more_routes() -> None:
    # The monitoring page is mounted with add_routes(app, recorder) on the same app.
    async def body() -> int:
        models = Models(DirectorySource(Path("/nonexistent")))
        app = rest.make_app(
            models, server_name="t", version="1", extensions=(), max_body_bytes=1024
        )

        async def page(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.router.add_get("/monitor", page)
        async with TestClient(TestServer(app)) as client:
            return (await client.get("/monitor")).status

    assert run(body()) == 200


def test_the_runner_keeps_calls_off_the_loop_until_measured_small() -> None:
    from tradecore.inference import OnnxEngine
    from tradecore_services.inference.models import DirectRunner

    async def body() -> None:
        never = DirectRunner(OnnxEngine(small_mlp()), inline_ns=0)
        always = DirectRunner(OnnxEngine(small_mlp()), inline_ns=10**12)
        try:
            assert not always.inline(1)  # nothing measured yet: the thread
            out, timings = await always.run({"x": X})
            np.testing.assert_array_equal(out["y"], expected(X))
            assert always.inline(3) and not never.inline(1)
            out, timings = await always.run({"x": X})  # on the loop: no queue
            assert timings.queue_ns == 0
            np.testing.assert_array_equal(out["y"], expected(X))
            await never.run({"x": X})
            assert not never.inline(1)
        finally:
            never.close()
            always.close()

    run(body())
