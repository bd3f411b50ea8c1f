"""The inference contract (types.py) and the ONNX Runtime engine, on small models built with
onnx.helper and checked against the same computation in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tradecore.errors import PreconditionError, UnavailableError
from tradecore.inference import (
    Engine,
    ModelMetadata,
    OnnxEngine,
    TensorSpec,
    datatype_of,
    validate_inputs,
)

from tests.inference_models import lookup, mlp, two_inputs

MLP = mlp()


@pytest.fixture(scope="module")
def engine() -> OnnxEngine:
    return OnnxEngine(MLP.onnx_bytes, name="surrogate", version="3")


@pytest.fixture(scope="module")
def pair() -> OnnxEngine:
    return OnnxEngine(two_inputs(), name="pair")


def rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 5)).astype(np.float32)


# ---------------------------------------------------------------- metadata


def test_metadata_from_the_onnx_graph(engine: OnnxEngine) -> None:
    meta = engine.metadata
    assert isinstance(engine, Engine)
    assert (meta.name, meta.version, meta.platform) == ("surrogate", "3", "onnxruntime_onnx")
    assert meta.inputs == (TensorSpec("x", "FP32", (-1, 5)),)
    assert meta.outputs == (TensorSpec("y", "FP32", (-1, 3)),)
    assert meta.max_batch_size == 4096
    assert meta.parameters["providers"] == "CPUExecutionProvider"
    assert engine.providers == ["CPUExecutionProvider"]
    assert meta.input("x").shape == (-1, 5)
    with pytest.raises(ValueError, match="no input tensor 'q'"):
        meta.input("q")
    with pytest.raises(ValueError, match="no output tensor 'q'"):
        meta.output("q")


def test_metadata_of_several_inputs_and_datatypes(pair: OnnxEngine) -> None:
    meta = pair.metadata
    assert meta.inputs == (TensorSpec("a", "FP32", (-1, 3)), TensorSpec("k", "INT64", (-1,)))
    assert meta.outputs == (TensorSpec("s", "FP32", (-1,)), TensorSpec("a2", "FP32", (-1, 3)))


def test_a_fixed_first_dimension_does_not_batch() -> None:
    fixed = mlp(batch=2).onnx_bytes
    assert OnnxEngine(fixed).metadata.max_batch_size == 0
    assert OnnxEngine(fixed).metadata.inputs[0].shape == (2, 5)
    with pytest.raises(ValueError, match="max_batch_size: the model's inputs have no dynamic"):
        OnnxEngine(fixed, max_batch_size=8)


def test_max_batch_size_is_checked() -> None:
    assert OnnxEngine(MLP.onnx_bytes, max_batch_size=16).metadata.max_batch_size == 16
    with pytest.raises(ValueError, match="max_batch_size: at least 0, got -1"):
        OnnxEngine(MLP.onnx_bytes, max_batch_size=-1)


def test_loads_from_a_file_and_names_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(MLP.onnx_bytes)
    x = rows(4)
    np.testing.assert_allclose(OnnxEngine(path).run({"x": x})["y"], MLP(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="model: no file"):
        OnnxEngine(tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match="model: ONNX Runtime cannot load it"):
        OnnxEngine(b"not a model")
    with pytest.raises(ValueError, match="threads: at least 1"):
        OnnxEngine(MLP.onnx_bytes, threads=0)


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize("n", [1, 7, 256])
def test_outputs_equal_numpy(engine: OnnxEngine, n: int) -> None:
    x = rows(n, seed=n)
    out = engine.run(validate_inputs(engine.metadata, {"x": x}))
    assert set(out) == {"y"}
    assert out["y"].dtype == np.float32 and out["y"].shape == (n, 3)
    np.testing.assert_allclose(out["y"], MLP(x), rtol=1e-5, atol=1e-6)


def test_several_inputs_and_outputs(pair: OnnxEngine) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    k = np.array([10, 20], dtype=np.int64)
    out = pair.run(validate_inputs(pair.metadata, {"a": a, "k": k}))
    np.testing.assert_array_equal(out["s"], [13.0, 32.0])
    np.testing.assert_array_equal(out["a2"], 2 * a)


def test_strided_and_other_byte_order_inputs_are_accepted(engine: OnnxEngine) -> None:
    wide = rows(6)
    strided = np.repeat(wide, 2, axis=1)[:, ::2]
    assert not strided.flags.c_contiguous
    swapped = wide.astype(">f4")
    for x in (strided, swapped):
        checked = validate_inputs(engine.metadata, {"x": x})
        assert checked["x"].flags.c_contiguous and checked["x"].dtype == np.float32
        np.testing.assert_allclose(engine.run(checked)["y"], MLP(wide), rtol=1e-5, atol=1e-6)


def test_warmup_runs_on_zeros(engine: OnnxEngine, pair: OnnxEngine) -> None:
    engine.warmup()
    pair.warmup()


# ---------------------------------------------------------------- validation names the tensor


def _error(meta: ModelMetadata, inputs: dict[str, object], **kw: int) -> str:
    with pytest.raises(ValueError) as info:
        validate_inputs(meta, inputs, **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_unknown_input(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": rows(1), "z": rows(1)})
    assert msg.startswith("input tensor 'z':") and "['x']" in msg


def test_missing_input(pair: OnnxEngine) -> None:
    msg = _error(pair.metadata, {"a": np.zeros((1, 3), np.float32)})
    assert msg == "input tensor 'k': missing"


def test_datatype_other_than_declared(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": rows(1).astype(np.float64)})
    assert msg == "input tensor 'x': datatype FP64, the model expects FP32"
    msg = _error(engine.metadata, {"x": [[1.0, 2.0, 3.0, 4.0, 5.0]]})
    assert msg == "input tensor 'x': datatype FP64, the model expects FP32"


def test_a_dtype_the_protocol_lacks_names_the_tensor(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": rows(1).astype(np.complex64)})
    assert msg.startswith("input tensor 'x': datatype complex64")
    with pytest.raises(ValueError, match="has no Open Inference Protocol datatype"):
        datatype_of(np.complex64)


def test_ragged_input_names_the_tensor(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": [[1.0, 2.0], [1.0]]})
    assert msg.startswith("input tensor 'x': not an array")


def test_rank_other_than_declared(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": np.zeros(5, np.float32)})
    assert msg == "input tensor 'x': shape [5], the model expects [-1, 5]"


def test_dimension_other_than_declared(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": np.zeros((2, 4), np.float32)})
    assert msg == "input tensor 'x': shape [2, 4], the model expects [-1, 5] (dimension 1)"


def test_inputs_disagree_on_the_batch(pair: OnnxEngine) -> None:
    msg = _error(pair.metadata, {"a": np.zeros((2, 3), np.float32), "k": np.zeros(3, np.int64)})
    assert msg == "input tensor 'k': batch size 3, other inputs have 2"


def test_batch_larger_than_the_model_takes() -> None:
    small = OnnxEngine(MLP.onnx_bytes, max_batch_size=4)
    msg = _error(small.metadata, {"x": rows(5)})
    assert msg == "input tensor 'x': batch size 5, at most 4"


def test_oversized_tensor(engine: OnnxEngine) -> None:
    msg = _error(engine.metadata, {"x": rows(3)}, max_elements=10)
    assert msg == "input tensor 'x': 15 elements, at most 10"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinity(engine: OnnxEngine, bad: float) -> None:
    x = rows(3)
    x[2, 4] = bad
    assert _error(engine.metadata, {"x": x}) == "input tensor 'x': contains NaN or infinity"


# ---------------------------------------------------------------- providers and lifecycle


def test_cuda_without_a_gpu_is_unavailable_and_says_why() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    with pytest.raises(UnavailableError) as info:
        OnnxEngine(MLP.onnx_bytes, providers="cuda")
    msg = str(info.value)
    assert "CUDAExecutionProvider" in msg and "onnxruntime-gpu" in msg
    fallback = OnnxEngine(MLP.onnx_bytes, providers="cuda", allow_cpu_fallback=True)
    assert fallback.providers == ["CPUExecutionProvider"]
    assert OnnxEngine(MLP.onnx_bytes, providers="auto").providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="providers: 'cpu', 'cuda' or 'auto', got 'tpu'"):
        OnnxEngine(MLP.onnx_bytes, providers="tpu")


def test_a_model_error_at_run_time_is_a_value_error_naming_the_model() -> None:
    eng = OnnxEngine(lookup(10), name="table")
    ok = eng.run({"i": np.array([0, 9], np.int64)})
    np.testing.assert_array_equal(ok["y"], [[0, 1], [18, 19]])
    with pytest.raises(ValueError, match=r"model 'table': .*out of data bounds"):
        eng.run({"i": np.array([0, 10], np.int64)})


def test_close_is_idempotent_and_run_after_close_says_so() -> None:
    eng = OnnxEngine(MLP.onnx_bytes, name="gone")
    eng.close()
    eng.close()
    with pytest.raises(PreconditionError, match="model 'gone' version 1 is closed"):
        eng.run({"x": rows(1)})
    assert eng.metadata.name == "gone"
