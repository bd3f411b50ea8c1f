"""Our Open Inference Protocol proto against the one tritonclient ships: every message, field
and method we define has Triton's name, number, type and shape, so tritonclient speaks to the
InferenceService unchanged; and both generated modules load in one process."""

from __future__ import annotations

import subprocess
import sys

from google.protobuf import descriptor as d
from tradecore_api.inference import grpc_service_pb2 as ours
from tritonclient.grpc import service_pb2 as triton


def _messages(desc: d.Descriptor) -> list[d.Descriptor]:
    out = [desc]
    for nested in desc.nested_types:
        out += _messages(nested)
    return out


def _field(f: d.FieldDescriptor) -> tuple[object, ...]:
    return (
        f.name,
        f.number,
        f.type,
        f.is_repeated,
        f.message_type.full_name if f.message_type else None,
        f.enum_type.full_name if f.enum_type else None,
        f.containing_oneof.name if f.containing_oneof else None,
    )


def test_every_message_we_define_is_triton_s_field_for_field() -> None:
    checked = 0
    for top in ours.DESCRIPTOR.message_types_by_name.values():
        for msg in _messages(top):
            theirs = triton.DESCRIPTOR.pool.FindMessageTypeByName(msg.full_name)
            by_number = {f.number: f for f in theirs.fields}
            for f in msg.fields:
                assert f.number in by_number, f"{msg.full_name}.{f.name}: not in Triton's"
                assert _field(f) == _field(by_number[f.number]), f"{msg.full_name}.{f.name}"
                checked += 1
            # A message Triton has more fields in is still compatible only when it is a
            # statistics message we serve a subset of; every request message is complete.
            if msg.full_name.endswith("Request") or "Infer" in msg.full_name:
                assert {f.number for f in msg.fields} == set(by_number), msg.full_name
    assert checked > 60


def test_every_method_we_define_is_triton_s() -> None:
    service = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == theirs.full_name == "inference.GRPCInferenceService"
    names = [m.name for m in service.methods]
    assert {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStatistics",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    } == set(names)
    for m in service.methods:
        t = theirs.methods_by_name[m.name]
        assert m.input_type.full_name == t.input_type.full_name, m.name
        assert m.output_type.full_name == t.output_type.full_name, m.name
        assert (m.client_streaming, m.server_streaming) == (
            t.client_streaming,
            t.server_streaming,
        ), m.name


def test_messages_cross_between_the_two_encodings() -> None:
    req = ours.ModelInferRequest(model_name="m", model_version="2", id="a")
    t = req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    t.parameters["p"].uint64_param = 7
    req.parameters["q"].double_param = 0.5
    req.raw_input_contents.append(b"\0" * 16)
    back = triton.ModelInferRequest.FromString(req.SerializeToString())
    assert back.inputs[0].parameters["p"].uint64_param == 7
    assert back.parameters["q"].double_param == 0.5
    assert ours.ModelInferRequest.FromString(back.SerializeToString()) == req


_CO_INSTALL = """
import importlib
for name in {order!r}:
    importlib.import_module(name)
from tradecore_api.inference import grpc_service_pb2 as ours
from tradecore_api.pricing.v1 import pricing_pb2
from tritonclient.grpc import service_pb2 as triton
import tritonclient.grpc
assert ours.ModelInferRequest is not triton.ModelInferRequest
assert ours.ModelInferRequest(model_name="m").model_name == "m"
assert pricing_pb2.PriceRequest.DESCRIPTOR.full_name.startswith("tradecore.")
print("ok")
"""


def test_tritonclient_and_our_generated_modules_load_in_one_process() -> None:
    # Both orders: whichever registers the `inference.*` names first, the other still loads.
    for order in (
        ["tritonclient.grpc", "tradecore_api.inference.grpc_service_pb2_grpc"],
        ["tradecore_api.inference.grpc_service_pb2_grpc", "tritonclient.grpc"],
    ):
        out = subprocess.run(
            [sys.executable, "-c", _CO_INSTALL.format(order=order)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
