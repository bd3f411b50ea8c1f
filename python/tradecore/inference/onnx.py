"""ONNX Runtime engine: a model file (or bytes) loaded into an ``onnxruntime.InferenceSession``.

The CPU execution provider is the default; ``providers="cuda"`` asks for the CUDA execution
provider (falling back to CPU only when ``allow_cpu_fallback`` is set), ``"auto"`` takes CUDA
where onnxruntime offers it and CPU otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradecore.errors import PreconditionError, UnavailableError
from tradecore.inference.types import ModelMetadata, Tensors, TensorSpec, dtype_of

# onnxruntime's type strings and the OIP datatype names.
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
PLATFORM = "onnxruntime_onnx"
# Largest batch a model with a dynamic first dimension accepts unless told otherwise.
DEFAULT_MAX_BATCH = 4096


def _spec(arg: Any) -> TensorSpec:
    try:
        datatype = _ORT_TYPES[arg.type]
    except KeyError:
        raise ValueError(f"tensor {arg.name!r}: ONNX type {arg.type} is not supported") from None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


def _providers(kind: str, allow_cpu_fallback: bool) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "auto":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider"] + (
                ["CPUExecutionProvider"] if allow_cpu_fallback else []
            )
        if allow_cpu_fallback:
            return ["CPUExecutionProvider"]
        raise UnavailableError(
            f"providers 'cuda': this onnxruntime has no CUDAExecutionProvider (it offers "
            f"{available}); install onnxruntime-gpu on a machine with a GPU, or use "
            "providers 'cpu' or 'auto'"
        )
    raise ValueError(f"providers: 'cpu', 'cuda' or 'auto', got {kind!r}")


def _text_in(name: str, arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A BYTES tensor (object array of bytes) as ONNX Runtime's strings, which it takes as str
    (it would turn a bytes element into the text of its repr); ValueError naming the tensor for
    an element that is not UTF-8."""
    if arr.dtype.kind != "O":
        return arr
    out = np.empty(arr.shape, dtype=np.object_)
    flat, dst = arr.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat):
        try:
            dst[i] = v.decode() if isinstance(v, bytes) else v
        except UnicodeDecodeError:
            raise ValueError(f"input tensor {name!r}: element {i} is not UTF-8 text") from None
    return out


def _bytes_out(arr: Any) -> npt.NDArray[Any]:
    """An output as numpy; ONNX Runtime's strings as BYTES (an object array of bytes)."""
    a: npt.NDArray[Any] = np.asarray(arr)
    if a.dtype.kind in ("O", "U"):
        out = np.empty(a.shape, dtype=np.object_)
        out.reshape(-1)[:] = [v.encode() if isinstance(v, str) else v for v in a.reshape(-1)]
        return out
    return a


class OnnxEngine:
    """One ONNX model on ONNX Runtime (implements :class:`tradecore.inference.types.Engine`).

    ``threads`` sets ONNX Runtime's intra-op threads (1 by default: small models run fastest
    on one thread, and the service runs several models side by side)."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        name: str = "model",
        version: str = "1",
        providers: str = "cpu",
        allow_cpu_fallback: bool = False,
        threads: int = 1,
        max_batch_size: int | None = None,
    ) -> None:
        import onnxruntime as ort

        if threads < 1:
            raise ValueError(f"threads: at least 1, got {threads}")
        if max_batch_size is not None and max_batch_size < 0:
            raise ValueError(f"max_batch_size: at least 0, got {max_batch_size}")
        # Outside the try below: an unavailable provider is UnavailableError, not a bad model.
        wanted = _providers(providers, allow_cpu_fallback)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise ValueError(f"model: no file {str(model)!r}")
        try:
            session = ort.InferenceSession(source, sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own types for a bad model file
            raise ValueError(f"model: ONNX Runtime cannot load it: {exc}") from exc
        if (
            providers == "cuda"
            and not allow_cpu_fallback
            and "CUDAExecutionProvider" not in session.get_providers()
        ):
            # onnxruntime-gpu falls back to the CPU by itself when CUDA cannot start (no
            # driver, no device); a caller who asked for the GPU alone is told instead.
            raise UnavailableError(
                "providers 'cuda': the CUDAExecutionProvider did not start (no usable GPU or "
                f"CUDA libraries); the session runs on {session.get_providers()}"
            )
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        self._invalid_argument: type[Exception] = InvalidArgument
        self._session: Any = session
        # The compiled session under onnxruntime's Python wrapper: its run skips the wrapper's
        # check of the feed's names (ours are validated already), ~2 µs of a 6 µs batch-1 call.
        self._run: Any = getattr(session, "_sess", session).run
        # One RunOptions for every run (given None, the binding makes a default one per run).
        self._run_options = ort.RunOptions()
        self._providers: list[str] = list(session.get_providers())
        inputs = tuple(_spec(a) for a in session.get_inputs())
        outputs = tuple(_spec(a) for a in session.get_outputs())
        batches = bool(inputs) and all(t.shape and t.shape[0] == -1 for t in inputs)
        if max_batch_size is None:
            max_batch_size = DEFAULT_MAX_BATCH if batches else 0
        elif max_batch_size > 0 and not batches:
            raise ValueError(
                "max_batch_size: the model's inputs have no dynamic first dimension to batch on"
            )
        self._output_names = [t.name for t in outputs]
        # BYTES tensors are text to ONNX Runtime: converted on the way in and out (only then).
        self._text_inputs = any(t.datatype == "BYTES" for t in inputs)
        self._text_outputs = any(t.datatype == "BYTES" for t in outputs)
        self._meta = ModelMetadata(
            name=name,
            version=version,
            platform=PLATFORM,
            inputs=inputs,
            outputs=outputs,
            max_batch_size=max_batch_size,
            parameters={"providers": ",".join(self._providers)},
        )

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    def run(self, inputs: Mapping[str, npt.NDArray[np.generic]]) -> Tensors:
        if self._session is None:
            raise PreconditionError(
                f"model {self._meta.name!r} version {self._meta.version} is closed"
            )
        feed = inputs if type(inputs) is dict else dict(inputs)
        if self._text_inputs:
            feed = {name: _text_in(name, arr) for name, arr in feed.items()}
        try:
            results = self._run(self._output_names, feed, self._run_options)
        except self._invalid_argument as exc:
            # A data-dependent failure inside the graph (an index out of range, a shape the
            # model's own reshape rejects): the request's fault, not the server's.
            raise ValueError(f"model {self._meta.name!r}: {exc}") from None
        if self._text_outputs:
            return {
                name: _bytes_out(arr) for name, arr in zip(self._output_names, results, strict=True)
            }
        return dict(zip(self._output_names, results, strict=True))

    def warmup(self) -> None:
        feed: Tensors = {}
        for t in self._meta.inputs:
            shape = tuple(1 if d == -1 else d for d in t.shape)
            dt = np.dtype(np.object_) if t.datatype == "BYTES" else None
            if dt is not None:
                feed[t.name] = np.full(shape, b"", dtype=dt)
            else:
                feed[t.name] = np.zeros(shape, dtype=dtype_of(t.datatype))
        self.run(feed)

    def close(self) -> None:
        # InferenceSession frees its memory when the last reference goes; closing twice is
        # harmless and a later run says the model is closed.
        self._session = None
        self._run = None
