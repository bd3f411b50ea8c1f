"""The in-process inference API: a model loaded into this process and called without a network
hop, its inputs validated against the model's declared tensors.

>>> model = load_model("surrogate.onnx", name="surrogate")      # doctest: +SKIP
>>> model.predict(x=np.zeros((1, 5), np.float32))["y"]          # doctest: +SKIP

``load_model`` takes a model file (``.onnx`` on ONNX Runtime, ``.plan``/``.engine`` on
TensorRT) or a :class:`~tradecore.inference.types.ModelSource` (the model registry, a
Triton-layout repository) with a model name and a version or alias. Every call validates its
inputs (:class:`~tradecore.inference.types.InputValidator`: a fast check for well-formed
requests, the full :func:`~tradecore.inference.types.validate_inputs` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import numpy.typing as npt

from tradecore.inference.onnx import PLATFORM as ONNX_PLATFORM
from tradecore.inference.onnx import OnnxEngine
from tradecore.inference.types import (
    MAX_ELEMENTS,
    Engine,
    InputValidator,
    ModelMetadata,
    ModelSource,
    ModelVersion,
    Tensors,
)

TENSORRT_PLATFORM = "tensorrt_plan"
# File suffixes and the platform that loads them.
SUFFIXES = {".onnx": ONNX_PLATFORM, ".plan": TENSORRT_PLATFORM, ".engine": TENSORRT_PLATFORM}


def open_engine(
    path: str | Path,
    platform: str | None = None,
    *,
    name: str = "model",
    version: str = "1",
    providers: str = "cpu",
    threads: int = 1,
    max_batch_size: int | None = None,
    device: int = 0,
) -> Engine:
    """The engine for a model file: ``platform`` (Triton's name: ``onnxruntime_onnx``,
    ``tensorrt_plan``) or, when None, the one the file's suffix implies. ``providers`` and
    ``threads`` apply to ONNX Runtime, ``device`` to TensorRT."""
    path = Path(path)
    if platform is None:
        try:
            platform = SUFFIXES[path.suffix]
        except KeyError:
            raise ValueError(
                f"model: cannot tell the runtime of {str(path)!r} from its suffix (one of "
                f"{', '.join(SUFFIXES)}); name the platform"
            ) from None
    if platform == ONNX_PLATFORM:
        return OnnxEngine(
            path,
            name=name,
            version=version,
            providers=providers,
            threads=threads,
            max_batch_size=max_batch_size,
        )
    if platform == TENSORRT_PLATFORM:
        from tradecore.inference.tensorrt import TensorRTEngine

        return TensorRTEngine(
            path, name=name, version=version, device=device, max_batch_size=max_batch_size
        )
    raise ValueError(f"platform: {ONNX_PLATFORM!r} or {TENSORRT_PLATFORM!r}, got {platform!r}")


class Model:
    """A loaded model version called in process (``predict(**inputs)`` or ``run(inputs)``).

    Thread-safe as far as its engine is (ONNX Runtime sessions are); for many concurrent
    callers of one model, :class:`tradecore.inference.batching.DynamicBatcher` gathers their
    requests into batches instead."""

    def __init__(self, engine: Engine, *, max_elements: int = MAX_ELEMENTS) -> None:
        if max_elements < 1:
            raise ValueError(f"max_elements: at least 1, got {max_elements}")
        self._engine = engine
        self._meta = engine.metadata
        self._validate = InputValidator(self._meta, max_elements=max_elements)

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    @property
    def engine(self) -> Engine:
        return self._engine

    def predict(self, **inputs: npt.ArrayLike) -> Tensors:
        """Every output of the model by name, for inputs given by name."""
        return self.run(inputs)

    def run(self, inputs: Mapping[str, npt.ArrayLike]) -> Tensors:
        """Every output of the model by name; a ValueError naming the tensor for an input the
        model does not accept."""
        return self._engine.run(self._validate(inputs))

    def warmup(self) -> None:
        self._engine.warmup()

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self._meta
        return f"Model({m.name!r}, version={m.version!r}, platform={m.platform!r})"


def load_model(
    source: str | Path | ModelSource,
    name: str | None = None,
    ref: str | None = None,
    *,
    providers: str = "cpu",
    threads: int = 1,
    max_batch_size: int | None = None,
    device: int = 0,
    warmup: bool = True,
    max_elements: int = MAX_ELEMENTS,
) -> Model:
    """A model ready to call in process.

    ``source`` is a model file (its suffix picks the runtime; ``name`` defaults to the file's
    stem, the version is ``ref`` or ``"1"``) or a ModelSource, where ``name`` is required and
    ``ref`` is a version number, an alias, or None for the source's default (see
    :class:`~tradecore.inference.types.ModelSource`; NotFoundError when there is none).
    ``warmup`` runs the model once on zeros so the first call pays no lazy initialisation."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"source: no model file {str(path)!r}")
        engine = open_engine(
            path,
            name=name or path.stem,
            version=ref or "1",
            providers=providers,
            threads=threads,
            max_batch_size=max_batch_size,
            device=device,
        )
    elif isinstance(source, ModelSource):
        if not name:
            raise ValueError("name: required with a model source")
        found: ModelVersion = source.resolve(name, ref)
        engine = open_engine(
            found.path,
            found.platform,
            name=found.name,
            version=str(found.version),
            providers=providers,
            threads=threads,
            max_batch_size=max_batch_size,
            device=device,
        )
    else:
        raise ValueError(f"source: a model file path or a ModelSource, got {type(source).__name__}")
    model = Model(engine, max_elements=max_elements)
    if warmup:
        try:
            model.warmup()
        except BaseException:
            engine.close()
            raise
    return model


__all__ = ["SUFFIXES", "TENSORRT_PLATFORM", "Model", "load_model", "open_engine"]
