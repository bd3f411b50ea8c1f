"""Model inference in process: engines behind one interface (ONNX Runtime by default), input
validation against a model's declared tensors, and the types the InferenceService shares.

This package never imports gRPC; ``onnxruntime`` is imported when an engine is made.
"""

from __future__ import annotations

from tradecore.inference.onnx import OnnxEngine
from tradecore.inference.types import (
    DATATYPES,
    Engine,
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
    "Engine",
    "ModelMetadata",
    "ModelSource",
    "ModelVersion",
    "OnnxEngine",
    "TensorSpec",
    "Tensors",
    "datatype_of",
    "dtype_of",
    "validate_inputs",
]
