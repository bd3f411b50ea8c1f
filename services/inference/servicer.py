"""gRPC servicer for inference.GRPCInferenceService (thin: tensors are decoded and encoded by
convert.py, the models and their statistics are :class:`~.models.Models`')."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from tradecore.errors import NotFoundError, quote
from tradecore_api.inference import grpc_service_pb2 as pb
from tradecore_api.inference import grpc_service_pb2_grpc as pb_grpc

from ..common.interceptors import request_id as request_id_of
from . import convert
from .models import Models

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVER_NAME = "tradecore"
# The protocol extensions served (ServerMetadata.extensions, GET /v2).
EXTENSIONS = ("model_repository", "statistics", "binary_tensor_data")
# A request's id is the key its routing and its outcome (RecordOutcome) are kept under.
MAX_ID_CHARS = 128


def check_repository(name: str) -> None:
    if name:
        raise NotFoundError(f"repository_name {quote(name)}: the service has one repository ('')")


def check_parameters(what: str, params: Any, allowed: tuple[str, ...] = ()) -> None:
    """ValueError naming the first parameter not in ``allowed``."""
    for key in params:
        if key not in allowed:
            raise ValueError(f"{what}[{quote(key)}]: not supported (supported: {list(allowed)})")


def check_id(rid: str) -> str:
    if len(rid) > MAX_ID_CHARS:
        raise ValueError(f"id: at most {MAX_ID_CHARS} characters, got {len(rid)}")
    return rid


def routing_id(request_id: str, context: Context) -> str:
    """The id a request is routed by (docs/api.md, "Inference: serving from the registry"): the
    request's ``id``, else its ``x-request-id``, else a new one."""
    return check_id(request_id) if request_id else request_id_of(context)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: Models, version: str) -> None:
        self.models = models
        self.version = version

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.models.ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.models.is_ready(request.name, request.version))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self.version, extensions=EXTENSIONS
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        loaded = await self.models.lookup(request.name, request.version)
        return convert.metadata_response(loaded.metadata, self.models.versions(request.name))

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        # NOT_FOUND naming the model or version before the tensors are decoded.
        if self.models.loaded_now(request.model_name, request.model_version) is None:
            await self.models.lookup(request.model_name, request.model_version)
        rid = routing_id(request.id, context)
        inputs = convert.request_inputs(request, self.models.max_elements)
        loaded, result = await self.models.serve(
            request.model_name,
            request.model_version,
            rid,
            inputs,
            convert.requested_outputs(request),
        )
        response = convert.infer_response(request, loaded, result)
        response.id = rid
        return response

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        if request.name:
            loaded = [self.models.get(request.name, request.version)]
            if not request.version:
                loaded = [
                    self.models.get(request.name, v) for v in self.models.versions(request.name)
                ]
        else:
            loaded = self.models.loaded()
        return convert.statistics(loaded)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        check_repository(request.repository_name)
        resp = pb.RepositoryIndexResponse()
        for e in self.models.index(ready_only=request.ready):
            resp.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return resp

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        check_repository(request.repository_name)
        check_parameters("parameters", request.parameters)
        await self.models.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        check_repository(request.repository_name)
        # tritonclient always sends unload_dependents; no model here has dependents.
        check_parameters("parameters", request.parameters, ("unload_dependents",))
        await self.models.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
