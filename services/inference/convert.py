"""Open Inference Protocol gRPC messages <-> numpy tensors and the repository's answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from tradecore.errors import quote
from tradecore.inference import ModelMetadata, Tensors
from tradecore_api.inference import grpc_service_pb2 as pb

from . import codec
from .models import Loaded

Array = npt.NDArray[Any]

# The InferTensorContents field of each datatype (FP16 travels only as raw data, as in Triton).
_CONTENTS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _from_contents(
    what: str, t: pb.ModelInferRequest.InferInputTensor, shape: list[int], max_elements: int
) -> Array:
    dt = codec.datatype(what, t.datatype)
    count = codec.check_shape(what, shape, max_elements)
    field = _CONTENTS.get(t.datatype)
    if field is None:
        raise ValueError(f"{what}: {t.datatype} data must be sent as raw_input_contents")
    values = getattr(t.contents, field)
    if len(values) != count:
        raise ValueError(
            f"{what}: {len(values)} values in contents.{field}, shape {shape} needs {count}"
        )
    if t.datatype == "BYTES":
        arr = np.empty(count, dtype=np.object_)
        arr[:] = list(values)
        return arr.reshape(shape)
    wide = np.array(values, dtype=np.int64 if dt.kind == "i" else None)
    arr = wide.astype(dt)
    if dt.kind in ("i", "u") and not np.array_equal(arr.astype(wide.dtype), wide):
        raise ValueError(f"{what}: a value in contents.{field} is out of range for {t.datatype}")
    return arr.reshape(shape)


def request_inputs(req: pb.ModelInferRequest, max_elements: int) -> Tensors:
    """The request's input tensors by name (raw_input_contents or contents), or a ValueError
    naming the tensor."""
    raw = req.raw_input_contents
    if raw and len(raw) != len(req.inputs):
        raise ValueError(
            f"raw_input_contents: {len(raw)} entries for {len(req.inputs)} inputs (one per input)"
        )
    out: Tensors = {}
    for i, t in enumerate(req.inputs):
        what = f"input tensor {quote(t.name)}"
        if t.name in out:
            raise ValueError(f"{what}: given twice")
        shape = list(t.shape)
        if raw:
            if t.HasField("contents"):
                raise ValueError(f"{what}: both contents and raw_input_contents")
            out[t.name] = codec.from_raw(what, t.datatype, shape, raw[i], max_elements)
        else:
            out[t.name] = _from_contents(what, t, shape, max_elements)
    return out


def requested_outputs(req: pb.ModelInferRequest) -> list[str]:
    names = [o.name for o in req.outputs]
    if len(set(names)) != len(names):
        raise ValueError("outputs: an output tensor is requested twice")
    return names


def infer_response(
    req: pb.ModelInferRequest, loaded: Loaded, result: Tensors
) -> pb.ModelInferResponse:
    """The response with every output as raw_output_contents (what tritonclient reads)."""
    resp = pb.ModelInferResponse(
        model_name=loaded.metadata.name, model_version=str(loaded.version.version), id=req.id
    )
    for name, arr in result.items():
        resp.outputs.add(name=name, datatype=codec.oip_datatype(arr), shape=arr.shape)
        resp.raw_output_contents.append(codec.to_raw(arr))
    return resp


def metadata_response(meta: ModelMetadata, versions: list[str]) -> pb.ModelMetadataResponse:
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=meta.name,
        versions=versions,
        platform=meta.platform,
        inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
        outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
    )


def statistics(loaded: list[Loaded]) -> pb.ModelStatisticsResponse:
    resp = pb.ModelStatisticsResponse()
    dur: Callable[[Any], pb.StatisticDuration] = lambda d: pb.StatisticDuration(  # noqa: E731
        count=d.count, ns=d.ns
    )
    for lv in sorted(loaded, key=lambda x: (x.version.name, x.version.version)):
        s = lv.stats
        resp.model_stats.add(
            name=lv.version.name,
            version=str(lv.version.version),
            last_inference=s.last_inference_ms,
            inference_count=s.inference_count,
            execution_count=s.execution_count,
            inference_stats=pb.InferStatistics(
                success=dur(s.success),
                fail=dur(s.fail),
                queue=dur(s.queue),
                compute_infer=dur(s.compute_infer),
            ),
        )
    return resp
