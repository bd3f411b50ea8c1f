"""The vocabulary of the inference layer: tensor datatypes by their Open Inference Protocol
names, tensor and model descriptions, the engine interface, and input validation.

Every engine (ONNX Runtime, TensorRT), the in-process API, the dynamic batcher and the
InferenceService speak these types, so a model's metadata reads the same in process, over gRPC
(KServe v2 ``ModelMetadata``) and over REST.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tradecore.errors import quote

# Open Inference Protocol datatype names and their numpy dtypes (BYTES: numpy object arrays of
# bytes).
DATATYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_BY_DTYPE = {dt: name for name, dt in DATATYPES.items()}


def datatype_of(dtype: npt.DTypeLike) -> str:
    """The OIP datatype name of a numpy dtype (ValueError for one the protocol lacks)."""
    dt = np.dtype(dtype)
    if dt.kind in ("S", "U"):
        return "BYTES"
    if not dt.isnative:
        # The same datatype in the other byte order (e.g. big-endian data read from a file).
        dt = dt.newbyteorder("=")
    try:
        return _BY_DTYPE[dt]
    except KeyError:
        raise ValueError(f"dtype {dt} has no Open Inference Protocol datatype") from None


def dtype_of(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype of an OIP datatype name (ValueError naming it when unknown)."""
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise ValueError(
            f"datatype {quote(datatype)} is not one of {', '.join(DATATYPES)}"
        ) from None


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a model: OIP datatype and shape, -1 where a dimension is dynamic (the
    batch dimension first when the model batches)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        dtype_of(self.datatype)
        if any(d < -1 for d in self.shape):
            raise ValueError(f"tensor {self.name!r}: shape dimensions are -1 or >= 0")


@dataclass(frozen=True)
class ModelMetadata:
    """What a loaded model version is: KServe v2 ModelMetadata plus the batching limit.

    ``platform`` is Triton's word for the runtime (``onnxruntime_onnx``, ``tensorrt_plan``).
    ``max_batch_size`` 0 means the model does not batch on its first dimension."""

    name: str
    version: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 0
    parameters: Mapping[str, str] = field(default_factory=dict)

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise ValueError(f"model {self.name!r} has no input tensor {name!r}")

    def output(self, name: str) -> TensorSpec:
        for t in self.outputs:
            if t.name == name:
                return t
        raise ValueError(f"model {self.name!r} has no output tensor {name!r}")


Tensors = dict[str, npt.NDArray[np.generic]]


@runtime_checkable
class Engine(Protocol):
    """One loaded model version on one runtime. ``run`` takes a whole batch (inputs by name,
    already validated: right names, dtypes and shapes) and returns every output by name; it may
    be called from any thread, one call at a time per engine unless the engine says otherwise.
    ``warmup`` runs the model once on zeros of its declared shapes (batch 1) so the first real
    call pays no lazy initialisation."""

    @property
    def metadata(self) -> ModelMetadata: ...

    def run(self, inputs: Mapping[str, npt.NDArray[np.generic]]) -> Tensors: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...


# Default cap on the elements of one input tensor.
MAX_ELEMENTS = 1 << 26
# Floating inputs of at most this many elements are checked for NaN/inf element by element in
# Python by InputValidator (about half the cost of ``np.isfinite(a).all()`` for a few values).
_SMALL = 32


def validate_inputs(
    meta: ModelMetadata, inputs: Mapping[str, npt.ArrayLike], *, max_elements: int = MAX_ELEMENTS
) -> Tensors:
    """``inputs`` as arrays the model accepts, or a ValueError naming the tensor: an unknown or
    missing input, a datatype other than the declared one, a rank or dimension other than the
    declared shape (-1 matches any size), inputs that disagree on the batch size, more than
    ``max_elements`` elements in a tensor, or NaN/inf in a floating input. Arrays are made
    C-contiguous; nothing is converted between datatypes (a caller sending FP64 to an FP32
    input is told so rather than silently rounded)."""
    out: Tensors = {}
    declared = {t.name: t for t in meta.inputs}
    for name in inputs:
        if name not in declared:
            raise ValueError(
                f"input tensor {quote(name)}: model {meta.name!r} has inputs {sorted(declared)}"
            )
    batch: int | None = None
    for spec in meta.inputs:
        if spec.name not in inputs:
            raise ValueError(f"input tensor {spec.name!r}: missing")
        try:
            arr = np.asarray(inputs[spec.name])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"input tensor {spec.name!r}: not an array ({exc})") from None
        want = dtype_of(spec.datatype)
        try:
            got = datatype_of(arr.dtype) if arr.dtype.kind != "O" else "BYTES"
        except ValueError:
            raise ValueError(
                f"input tensor {spec.name!r}: datatype {arr.dtype}, the model expects "
                f"{spec.datatype}"
            ) from None
        if got != spec.datatype:
            raise ValueError(
                f"input tensor {spec.name!r}: datatype {got}, the model expects {spec.datatype}"
            )
        if arr.ndim != len(spec.shape):
            raise ValueError(
                f"input tensor {spec.name!r}: shape {list(arr.shape)}, the model expects "
                f"{list(spec.shape)}"
            )
        for d, (have, need) in enumerate(zip(arr.shape, spec.shape, strict=True)):
            if need != -1 and have != need:
                raise ValueError(
                    f"input tensor {spec.name!r}: shape {list(arr.shape)}, the model expects "
                    f"{list(spec.shape)} (dimension {d})"
                )
        if arr.size > max_elements:
            raise ValueError(
                f"input tensor {spec.name!r}: {arr.size} elements, at most {max_elements}"
            )
        if meta.max_batch_size > 0 and arr.ndim > 0:
            if batch is None:
                batch = int(arr.shape[0])
            elif arr.shape[0] != batch:
                raise ValueError(
                    f"input tensor {spec.name!r}: batch size {arr.shape[0]}, other inputs have "
                    f"{batch}"
                )
            if arr.shape[0] > meta.max_batch_size:
                raise ValueError(
                    f"input tensor {spec.name!r}: batch size {arr.shape[0]}, at most "
                    f"{meta.max_batch_size}"
                )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"input tensor {spec.name!r}: contains NaN or infinity")
        out[spec.name] = np.ascontiguousarray(arr, dtype=want) if want.kind != "O" else arr
    return out


class InputValidator:
    """:func:`validate_inputs` for one model, with a fast path for the common case.

    A request whose tensors already are what the model takes (a dict of numpy arrays of the
    declared dtypes and ranks, C-contiguous, the declared fixed dimensions, one batch size
    within the limit, finite) is returned as it is after a few attribute comparisons (~1 µs
    for one small input); anything else goes through :func:`validate_inputs`, which converts
    what it may (strides, byte order) and raises the ValueError naming the tensor otherwise."""

    def __init__(self, meta: ModelMetadata, *, max_elements: int = MAX_ELEMENTS) -> None:
        if max_elements < 1:
            raise ValueError(f"max_elements: at least 1, got {max_elements}")
        self._meta = meta
        self._max_elements = max_elements
        self._max_batch = meta.max_batch_size
        # Per input: name, numpy dtype, rank, the declared fixed dimensions, floating or not.
        self._plan = tuple(
            (
                t.name,
                dtype_of(t.datatype),
                len(t.shape),
                tuple((axis, n) for axis, n in enumerate(t.shape) if n != -1),
                dtype_of(t.datatype).kind == "f",
            )
            for t in meta.inputs
        )

    def __call__(self, inputs: Mapping[str, npt.ArrayLike]) -> Tensors:
        checked = self._fast(inputs)
        if checked is None:
            checked = validate_inputs(self._meta, inputs, max_elements=self._max_elements)
        return checked

    def _fast(self, inputs: Mapping[str, npt.ArrayLike]) -> Tensors | None:
        """``inputs`` itself when every tensor already is what the model takes, else None."""
        if type(inputs) is not dict or len(inputs) != len(self._plan):
            return None
        max_batch = self._max_batch
        batch = -1
        for name, dtype, ndim, fixed, floating in self._plan:
            a = inputs.get(name)
            if (
                type(a) is not np.ndarray
                or a.dtype != dtype
                or a.ndim != ndim
                or not a.flags.c_contiguous
                or a.size > self._max_elements
            ):
                return None
            shape = a.shape
            for axis, n in fixed:
                if shape[axis] != n:
                    return None
            if max_batch > 0:
                if batch == -1:
                    batch = shape[0]
                    if batch > max_batch:
                        return None
                elif shape[0] != batch:
                    return None
            if floating and not (
                all(map(math.isfinite, a.ravel().tolist()))
                if a.size <= _SMALL
                else np.isfinite(a).all()
            ):
                return None
        return inputs  # every value checked to be an ndarray


@dataclass(frozen=True)
class ModelVersion:
    """One stored version of a model, as a model source (the registry, or a Triton-layout model
    repository directory) describes it: where its file is and which runtime loads it.
    ``aliases`` are the names that point at it (``champion``, ``challenger``)."""

    name: str
    version: int
    path: Path
    platform: str
    aliases: tuple[str, ...] = ()
    config: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ModelSource(Protocol):
    """Where the InferenceService and the in-process API find models.

    ``resolve(name, ref)``: ``ref`` is a version number as text, an alias, or None (the
    ``champion`` alias when set, else the highest version); raises
    :class:`tradecore.errors.NotFoundError` naming the model or the version/alias.
    ``index()``: every stored version of every model."""

    def resolve(self, name: str, ref: str | None = None) -> ModelVersion: ...

    def index(self) -> list[ModelVersion]: ...
