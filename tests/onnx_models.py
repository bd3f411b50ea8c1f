"""Small ONNX models built with onnx.helper for the inference tests (no files committed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# A fixed MLP: y = relu(x @ W1 + b1) @ W2 + b2, x FP32 [batch, 4], y FP32 [batch, 2].
_RNG = np.random.default_rng(13)
W1 = _RNG.standard_normal((4, 8)).astype(np.float32)
B1 = _RNG.standard_normal(8).astype(np.float32)
W2 = _RNG.standard_normal((8, 2)).astype(np.float32)
B2 = _RNG.standard_normal(2).astype(np.float32)


def _save(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mlp(scale: float = 1.0) -> bytes:
    """The MLP (``scale`` multiplies the output: a different version of the same model)."""
    init = [
        numpy_helper.from_array(W1, "W1"),
        numpy_helper.from_array(B1, "B1"),
        numpy_helper.from_array(W2 * scale, "W2"),
        numpy_helper.from_array(B2 * scale, "B2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["o0"]),
        helper.make_node("Add", ["o0", "B2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        init,
    )
    return _save(graph)


def strings() -> bytes:
    """Two inputs, two outputs: ``s`` BYTES [batch] echoed as ``s_out``, ``n`` INT64 [batch, 3]
    doubled as ``n2``."""
    nodes = [
        helper.make_node("Identity", ["s"], ["s_out"]),
        helper.make_node("Add", ["n", "n"], ["n2"]),
    ]
    graph = helper.make_graph(
        nodes,
        "strings",
        [
            helper.make_tensor_value_info("s", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("n", TensorProto.INT64, ["batch", 3]),
        ],
        [
            helper.make_tensor_value_info("s_out", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("n2", TensorProto.INT64, ["batch", 3]),
        ],
    )
    return _save(graph)


def write(
    root: Path, name: str, version: int, model: bytes, config: dict[str, object] | None = None
) -> Path:
    """``model`` as ``<root>/<name>/<version>/model.onnx`` (and its config.json)."""
    folder = root / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    if config is not None:
        (root / name / "config.json").write_text(json.dumps(config))
    return folder / "model.onnx"
