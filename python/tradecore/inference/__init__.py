"""Model inference in process: engines behind one interface (ONNX Runtime by default, TensorRT
where built), input validation against a model's declared tensors, the in-process API
(``load_model``), dynamic batching, and the types the InferenceService shares.

This package never imports gRPC; ``onnxruntime`` is imported when an engine is made.
"""

from __future__ import annotations

from tradecore.inference.batching import BatchStats, DynamicBatcher
from tradecore.inference.onnx import OnnxEngine
from tradecore.inference.session import Model, load_model
from tradecore.inference.tensorrt import TensorRTEngine
from tradecore.inference.types import (
    DATATYPES,
    MAX_ELEMENTS,
    Engine,
    InputValidator,
    ModelMetadata,
    ModelSource,
    ModelVersion,
    Tensors,
    TensorSpec,
    datatype_of,
    dtype_of,
    validate_inputs,
)

__all__ = [
    "DATATYPES",
    "MAX_ELEMENTS",
    "BatchStats",
    "DynamicBatcher",
    "Engine",
    "InputValidator",
    "Model",
    "ModelMetadata",
    "ModelSource",
    "ModelVersion",
    "OnnxEngine",
    "TensorRTEngine",
    "TensorSpec",
    "Tensors",
    "datatype_of",
    "dtype_of",
    "load_model",
    "validate_inputs",
]
