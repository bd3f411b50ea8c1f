"""Small ONNX models built with ``onnx.helper`` for the inference tests and benchmarks, each with
the numpy computation it must agree with."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


@dataclass(frozen=True)
class Mlp:
    """A ReLU multilayer perceptron: ``x`` [batch, n_in] FP32 → ``y`` [batch, n_out] FP32."""

    weights: tuple[npt.NDArray[np.float32], ...]
    biases: tuple[npt.NDArray[np.float32], ...]
    onnx_bytes: bytes

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        h = x.astype(np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.astype(np.float64) + b.astype(np.float64)
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h.astype(np.float32)


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def mlp(
    n_in: int = 5,
    hidden: tuple[int, ...] = (64, 64, 64),
    n_out: int = 3,
    *,
    seed: int = 0,
    batch: str | int = "batch",
    scale: float = 1.0,
) -> Mlp:
    """An MLP with random weights; ``batch`` names the dynamic first dimension or fixes it;
    ``scale`` multiplies the output (another version of the same model)."""
    rng = np.random.default_rng(seed)
    dims = [n_in, *hidden, n_out]
    weights, biases, inits, nodes = [], [], [], []
    prev = "x"
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        c = (rng.standard_normal(b) * 0.1).astype(np.float32)
        if i == len(dims) - 2:
            w, c = (w * scale).astype(np.float32), (c * scale).astype(np.float32)
        weights.append(w)
        biases.append(c)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(c, f"B{i}")]
        last = i == len(dims) - 2
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"B{i}"], ["y" if last else f"a{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i}"]))
            prev = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])],
        inits,
    )
    return Mlp(tuple(weights), tuple(biases), _model(graph))


def two_inputs() -> bytes:
    """``a`` [batch, 3] FP32 and ``k`` [batch] INT64 → ``s`` [batch] FP32 (row sum of ``a``
    plus ``k``) and ``a2`` [batch, 3] FP32 (``a`` doubled)."""
    nodes = [
        helper.make_node("ReduceSum", ["a", "axes"], ["rs"], keepdims=0),
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["rs", "kf"], ["s"]),
        helper.make_node("Add", ["a", "a"], ["a2"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("a2", TensorProto.FLOAT, ["batch", 3]),
        ],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    return _model(graph)


def lookup(rows: int = 10) -> bytes:
    """``i`` [batch] INT64 → ``y`` [batch, 2] FP32: rows of a ``rows`` × 2 table (0, 1, 2, …);
    an index outside the table fails inside ONNX Runtime (a data-dependent model error)."""
    table = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["T", "i"], ["y"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("i", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(table, "T")],
    )
    return _model(graph)


def small_mlp(scale: float = 1.0) -> bytes:
    """The mesh tests' model: ``x`` FP32 [batch, 4] → ``y`` FP32 [batch, 2], one hidden layer of
    8 (``scale`` multiplies the output: a second version of the same model)."""
    return mlp(4, (8,), 2, seed=13, scale=scale).onnx_bytes


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
    return _model(graph)


def write(
    root: Path, name: str, version: int, model: bytes, config: dict[str, object] | None = None
) -> Path:
    """``model`` as ``<root>/<name>/<version>/model.onnx`` (and its config.json): a
    Triton-layout model repository."""
    folder = root / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    if config is not None:
        (root / name / "config.json").write_text(json.dumps(config))
    return folder / "model.onnx"
