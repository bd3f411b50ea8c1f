"""The Open Inference Protocol over HTTP/REST (KServe v2), with Triton's binary tensor data and
model repository extensions, as an aiohttp application on the service's second port.

An inference request without a version is routed by the model's traffic policy by its id: the
body's ``id``, else the ``x-request-id`` header, else a new one; the response's ``id`` is that
id and its ``model_version`` the version that answered.

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``GET /v2`` (server metadata),
``GET /v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready``, ``POST .../infer``,
``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load|unload``.

An inference request is JSON, or, with the binary extension, a JSON header of
``Inference-Header-Content-Length`` bytes followed by the inputs whose parameters give
``binary_data_size``, in order. Outputs come back as binary data when the request asks
(``binary_data`` true in an output's parameters, or ``binary_data_output`` true in the
request's parameters when it names no outputs), else as JSON ``data``. Errors are
``{"error": "..."}`` with 400 (bad request), 404 (unknown model, version or route), 503
(not ready). :func:`make_app` returns the application, so more routes (a monitoring page) can be
added to it before it runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from tradecore.errors import (
    NotFoundError,
    PreconditionError,
    ResourceExhaustedError,
    UnavailableError,
    quote,
)
from tradecore.inference import Tensors, TensorSpec

from ..common.interceptors import REQUEST_ID_KEY, new_request_id, quote_id
from . import codec
from .models import Loaded, Models

log = logging.getLogger("tradecore.inference.rest")
HEADER_LENGTH = "Inference-Header-Content-Length"
# As the gRPC servicer's (servicer.MAX_ID_CHARS): the key routing and outcomes are kept under.
MAX_ID_CHARS = 128
MAX_BODY = web.AppKey("max_body_bytes", int)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def status_of(exc: BaseException) -> int:
    """The HTTP status of an exception raised while serving a request (as errors.status_for
    maps to gRPC codes)."""
    if isinstance(exc, ValueError | PreconditionError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ResourceExhaustedError):
        return 429
    if isinstance(exc, UnavailableError):
        return 503
    return 500


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error(400, f"request body: larger than {request.app[MAX_BODY]} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason)
    except Exception as exc:
        status = status_of(exc)
        if status == 500:
            log.exception("%s %s failed", request.method, request.path)
            return error(500, "internal error")
        log.info("%s %s: %s %s", request.method, request.path, status, exc)
        return error(status, str(exc))


def _obj(what: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what}: must be a JSON object")
    return value


def _str(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: must be a string, got {quote(value)}")
    return value


def _shape(what: str, value: object) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        raise ValueError(f"{what}.shape: must be a list of integers, got {quote(value)}")
    return value


def _params(what: str, body: dict[str, Any]) -> dict[str, Any]:
    return _obj(f"{what}.parameters", body.get("parameters", {}))


class InferRequest:
    """A decoded inference request: input tensors, requested outputs and which of them go back
    as binary data."""

    def __init__(self, body: bytes, header_length: str | None, max_elements: int) -> None:
        if header_length is not None:
            try:
                n = int(header_length)
            except ValueError:
                raise ValueError(
                    f"{HEADER_LENGTH}: not an integer: {quote(header_length)}"
                ) from None
            if not 0 <= n <= len(body):
                raise ValueError(f"{HEADER_LENGTH}: {n}, the body is {len(body)} bytes")
            head, binary = body[:n], memoryview(body)[n:]
        else:
            head, binary = body, memoryview(b"")
        try:
            doc = json.loads(head)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"request body: not valid JSON: {type(exc).__name__}: {exc}") from None
        doc = _obj("request body", doc)
        self.id = _str("id", doc.get("id", ""))
        params = _params("request", doc)
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise ValueError("inputs: must be a non-empty list")
        self.inputs: Tensors = {}
        pos = 0
        for i, t in enumerate(inputs):
            t = _obj(f"inputs[{i}]", t)
            name = _str(f"inputs[{i}].name", t.get("name"))
            what = f"input tensor {quote(name)}"
            if name in self.inputs:
                raise ValueError(f"{what}: given twice")
            dtype = _str(f"{what}.datatype", t.get("datatype"))
            shape = _shape(what, t.get("shape"))
            size = _params(what, t).get("binary_data_size")
            if size is not None:
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    raise ValueError(f"{what}: binary_data_size must be a non-negative integer")
                if pos + size > len(binary):
                    raise ValueError(
                        f"{what}: binary_data_size {size} runs past the {len(binary)} bytes of "
                        "binary data"
                    )
                if "data" in t:
                    raise ValueError(f"{what}: both data and binary_data_size")
                raw = bytes(binary[pos : pos + size])
                pos += size
                self.inputs[name] = codec.from_raw(what, dtype, shape, raw, max_elements)
            else:
                if "data" not in t:
                    raise ValueError(f"{what}: no data (nor binary_data_size)")
                self.inputs[name] = codec.from_json(what, dtype, shape, t["data"], max_elements)
        if pos != len(binary):
            raise ValueError(
                f"request body: {len(binary) - pos} bytes of binary data no input claims"
            )
        outputs = doc.get("outputs", [])
        if not isinstance(outputs, list):
            raise ValueError("outputs: must be a list")
        self.outputs: list[str] = []
        self.binary: set[str] = set()
        for i, o in enumerate(outputs):
            o = _obj(f"outputs[{i}]", o)
            name = _str(f"outputs[{i}].name", o.get("name"))
            if name in self.outputs:
                raise ValueError(f"output tensor {quote(name)}: requested twice")
            self.outputs.append(name)
            if _params(f"output tensor {quote(name)}", o).get("binary_data") is True:
                self.binary.add(name)
        self.all_binary = not self.outputs and params.get("binary_data_output") is True


def infer_response(req: InferRequest, loaded: Loaded, result: Tensors) -> web.Response:
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr in result.items():
        out: dict[str, Any] = {
            "name": name,
            "datatype": codec.oip_datatype(arr),
            "shape": list(arr.shape),
        }
        if req.all_binary or name in req.binary:
            raw = codec.to_raw(arr)
            out["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            try:
                out["data"] = codec.to_json(arr)
            except ValueError as exc:
                raise ValueError(f"output tensor {name!r}: {exc}") from None
        outputs.append(out)
    doc: dict[str, Any] = {
        "model_name": loaded.metadata.name,
        "model_version": str(loaded.version.version),
        "outputs": outputs,
    }
    if req.id:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return web.Response(body=head, content_type="application/json")
    return web.Response(
        body=b"".join([head, *blobs]),
        content_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(head))},
    )


def metadata_json(models: Models, loaded: Loaded) -> dict[str, Any]:
    meta = loaded.metadata

    def tensor(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}

    return {
        "name": meta.name,
        "versions": models.versions(meta.name),
        "platform": meta.platform,
        "inputs": [tensor(t) for t in meta.inputs],
        "outputs": [tensor(t) for t in meta.outputs],
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return _obj("request body", json.loads(raw))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"request body: not valid JSON: {type(exc).__name__}: {exc}") from None


def make_app(
    models: Models,
    *,
    server_name: str,
    version: str,
    extensions: tuple[str, ...],
    max_body_bytes: int,
) -> web.Application:
    """The REST application over ``models`` (add routes to it before it starts)."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=[errors_middleware])
    app[MAX_BODY] = max_body_bytes

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ready": models.ready}, status=200 if models.ready else 503)

    async def server_metadata(request: web.Request) -> web.Response:
        return web.json_response(
            {"name": server_name, "version": version, "extensions": list(extensions)}
        )

    def loaded_of(request: web.Request) -> Loaded:
        return models.get(request.match_info["name"], request.match_info.get("version", ""))

    async def model_metadata(request: web.Request) -> web.Response:
        loaded = await models.lookup(
            request.match_info["name"], request.match_info.get("version", "")
        )
        return web.json_response(metadata_json(models, loaded))

    async def model_ready(request: web.Request) -> web.Response:
        loaded_of(request)  # 404 naming the model or version when it is not loaded
        return web.json_response({"ready": True})

    async def infer(request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        await models.lookup(name, version)  # 404 naming the model or version before the body
        body = await request.read()
        req = InferRequest(body, request.headers.get(HEADER_LENGTH), models.max_elements)
        if req.id and len(req.id) > MAX_ID_CHARS:
            raise ValueError(f"id: at most {MAX_ID_CHARS} characters, got {len(req.id)}")
        header = request.headers.get(REQUEST_ID_KEY, "")
        rid = req.id or (quote_id(header) if header else new_request_id())
        loaded, result = await models.serve(name, version, rid, req.inputs, req.outputs)
        req.id = rid
        return infer_response(req, loaded, result)

    async def repository_index(request: web.Request) -> web.Response:
        body = await _json_body(request)
        ready_only = body.get("ready", False)
        if not isinstance(ready_only, bool):
            raise ValueError(f"ready: must be true or false, got {quote(ready_only)}")
        return web.json_response(
            [
                {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
                for e in models.index(ready_only)
            ]
        )

    async def load(request: web.Request) -> web.Response:
        body = await _json_body(request)
        for key in _params("request", body):
            raise ValueError(f"parameters[{quote(key)}]: not supported")
        await models.load(request.match_info["name"])
        return web.Response(status=200)

    async def unload(request: web.Request) -> web.Response:
        body = await _json_body(request)
        for key in _params("request", body):
            if key != "unload_dependents":
                raise ValueError(f"parameters[{quote(key)}]: not supported")
        await models.unload(request.match_info["name"])
        return web.Response(status=200)

    base = "/v2/models/{name}"
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2", server_metadata)
    for prefix in (base, base + "/versions/{version}"):
        app.router.add_get(prefix, model_metadata)
        app.router.add_get(prefix + "/ready", model_ready)
        app.router.add_post(prefix + "/infer", infer)
    app.router.add_post("/v2/repository/index", repository_index)
    app.router.add_post("/v2/repository/models/{name}/load", load)
    app.router.add_post("/v2/repository/models/{name}/unload", unload)
    return app
