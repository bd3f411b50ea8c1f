"""TensorRT engine: a serialized TensorRT 10 plan run by the C++ module ``tradecore._core_trt``
(``core/cpp/src/inference/tensorrt.cpp``), built only where TensorRT and CUDA are found
(CMake option ``TC_TENSORRT``). Without it, making a :class:`TensorRTEngine` raises
UnavailableError; ONNX Runtime stays the default engine.

Inputs are copied to device buffers, the plan runs on the engine's CUDA stream (``enqueueV3``)
with the input shapes set per call inside the optimization profile's range, and the outputs
are copied back into new numpy arrays. The GIL is released for the copy-run-copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradecore.errors import PreconditionError, TradecoreError, UnavailableError
from tradecore.inference.types import ModelMetadata, Tensors, TensorSpec, dtype_of

PLATFORM = "tensorrt_plan"


def _module() -> Any:
    try:
        from tradecore import _core_trt  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _core_trt


def available() -> bool:
    """Whether this build has the TensorRT engine (a GPU is still needed to load a plan)."""
    return _module() is not None


class TensorRTEngine:
    """One TensorRT plan on one GPU (implements :class:`tradecore.inference.types.Engine`).

    ``max_batch_size`` defaults to the optimization profile's largest first dimension when
    every input's first dimension is dynamic (0 otherwise); it may only lower it."""

    def __init__(
        self,
        plan: str | Path | bytes,
        *,
        name: str = "model",
        version: str = "1",
        device: int = 0,
        max_batch_size: int | None = None,
    ) -> None:
        trt = _module()
        if trt is None:
            raise UnavailableError(
                "TensorRT: this tradecore was built without TensorRT (no tradecore._core_trt "
                "module); build it where the TensorRT 10 headers and libraries and CUDA are "
                "found (CMake option TC_TENSORRT=AUTO or ON), or use the ONNX Runtime engine"
            )
        if isinstance(plan, bytes):
            data = plan
        else:
            path = Path(plan)
            if not path.is_file():
                raise ValueError(f"model: no file {str(path)!r}")
            data = path.read_bytes()
        if device < 0:
            raise ValueError(f"device: at least 0, got {device}")
        # ValueError: a plan TensorRT cannot deserialize, a tensor this engine cannot serve.
        # TradecoreError at load: CUDA cannot serve it (no driver or device, out of memory).
        try:
            self._impl: Any = trt.Engine(data, device)
        except TradecoreError as exc:
            raise UnavailableError(f"TensorRT: {exc}") from exc
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        for tname, is_input, datatype, shape in self._impl.tensors():
            spec = TensorSpec(tname, datatype, tuple(int(d) for d in shape))
            (inputs if is_input else outputs).append(spec)
        profile_max = int(self._impl.max_batch())
        if max_batch_size is None:
            max_batch_size = profile_max
        elif max_batch_size < 0:
            raise ValueError(f"max_batch_size: at least 0, got {max_batch_size}")
        elif max_batch_size > profile_max:
            raise ValueError(
                f"max_batch_size: at most the optimization profile's {profile_max}, got "
                f"{max_batch_size}"
            )
        self._meta = ModelMetadata(
            name=name,
            version=version,
            platform=PLATFORM,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            max_batch_size=max_batch_size,
            parameters={"device": str(device)},
        )

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    def run(self, inputs: Mapping[str, npt.NDArray[np.generic]]) -> Tensors:
        impl = self._impl
        if impl is None:
            raise PreconditionError(
                f"model {self._meta.name!r} version {self._meta.version} is closed"
            )
        return dict(impl.run(dict(inputs)))

    def warmup(self) -> None:
        feed: Tensors = {}
        for t in self._meta.inputs:
            shape = tuple(1 if d == -1 else d for d in t.shape)
            feed[t.name] = np.zeros(shape, dtype=dtype_of(t.datatype))
        self.run(feed)

    def close(self) -> None:
        # The C++ engine frees its device buffers, context and stream when released.
        self._impl = None


__all__ = ["PLATFORM", "TensorRTEngine", "available"]
