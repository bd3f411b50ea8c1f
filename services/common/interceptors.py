"""Server interceptor: request ids, exception → status mapping, per-RPC metrics."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from .errors import status_for

log = logging.getLogger("tradecore.rpc")

REQUEST_ID_KEY = "x-request-id"
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
)


class RpcMetrics:
    """Prometheus request counts and latency histograms per RPC."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.requests = Counter(
            "tradecore_rpc_requests",
            "gRPC requests handled, by method and status code",
            ["service", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "tradecore_rpc_latency_seconds",
            "gRPC handler latency in seconds, by method",
            ["service", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.service = service

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(self.service, method, code.name).inc()
        self.latency.labels(self.service, method).observe(seconds)


def request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)
    return uuid.uuid4().hex


async def _fail(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str, rid: str
) -> grpc.StatusCode:
    """Log the failure and end the call with its status (a trailers-only response)."""
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("internal error in %s (request id %s)", method, rid, exc_info=exc)
        message = f"internal error (request id {rid})"
    else:
        log.info("%s %s (request id %s): %s", method, code.name, rid, exc)
        message = str(exc) or code.name
    await context.abort(code, message)
    return code  # not reached: abort raises


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps unary and server-streaming handlers (the kinds Tradecore serves)."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if details.method.startswith("/grpc."):
            return handler  # health and reflection: no metrics, no wrapping
        metrics = self._metrics
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                rid = request_id(context)
                await context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
                start = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception as exc:
                    code = status_for(exc)
                    await _fail(context, exc, method, rid)
                    raise  # not reached
                finally:
                    metrics.observe(method, code, time.perf_counter() - start)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                rid = request_id(context)
                await context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
                start = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception as exc:
                    code = status_for(exc)
                    await _fail(context, exc, method, rid)
                finally:
                    metrics.observe(method, code, time.perf_counter() - start)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
