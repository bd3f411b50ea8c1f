"""ServiceInterceptor without a server: handlers wrapped once per method, metrics bound once,
request ids generated without uuid4 (the call-level behaviour is tested on a real mesh in
tests/integration/test_rpc_errors_mesh.py)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc
from prometheus_client import CollectorRegistry
from tradecore_services.common.interceptors import (
    RpcMetrics,
    ServiceInterceptor,
    new_request_id,
    request_id,
)


class Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def _answer(request: Any, context: Any) -> Any:
    return request


def test_each_method_is_wrapped_once_and_its_metrics_bound_once() -> None:
    metrics = RpcMetrics(CollectorRegistry(), "svc")
    interceptor = ServiceInterceptor(metrics)
    handler = grpc.unary_unary_rpc_method_handler(_answer, request_deserializer=bytes)
    other = grpc.unary_stream_rpc_method_handler(_answer)

    async def resolve(method: str, h: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return h

        return await interceptor.intercept_service(continuation, Details(method))

    async def main() -> None:
        first = await resolve("/pkg.Svc/Price", handler)
        assert first is not handler and first.unary_unary is not None
        assert await resolve("/pkg.Svc/Price", handler) is first
        stream = await resolve("/pkg.Svc/Stream", other)
        assert stream is not other and await resolve("/pkg.Svc/Stream", other) is stream
        # a method resolved to another handler is wrapped again
        replaced = grpc.unary_unary_rpc_method_handler(_answer)
        again = await resolve("/pkg.Svc/Price", replaced)
        assert again is not first and await resolve("/pkg.Svc/Price", replaced) is again
        # health and reflection pass through unwrapped
        assert await resolve("/grpc.health.v1.Health/Check", handler) is handler

    asyncio.run(main())
    assert metrics.method("Price") is metrics.method("Price")
    metrics.observe("Price", grpc.StatusCode.OK, 0.001)
    metrics.method("Price").observe(grpc.StatusCode.INVALID_ARGUMENT, 0.002)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in metrics.requests.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    key = "tradecore_rpc_requests_total"
    assert samples[(key, (("code", "OK"), ("method", "Price"), ("service", "svc")))] == 1
    assert (
        samples[(key, (("code", "INVALID_ARGUMENT"), ("method", "Price"), ("service", "svc")))] == 1
    )


def test_generated_request_ids_are_32_hex_digits_and_distinct() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


class _Context:
    """What the wrapped handler reads of a call's context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata
        self.trailers: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def set_trailing_metadata(self, md: tuple[tuple[str, str], ...]) -> None:
        self.trailers = md


def test_the_handler_sees_the_request_id_that_goes_back_in_the_trailers() -> None:
    """One id per call: the caller's x-request-id, or the one the interceptor made; a servicer
    calling request_id(context) gets that one (the journal's id = the caller's trailer)."""
    seen: list[str] = []

    async def handler(request: Any, context: Any) -> Any:
        seen.append(request_id(context))
        return request

    interceptor = ServiceInterceptor(RpcMetrics(CollectorRegistry(), "svc"))
    wrapped = interceptor._wrap(grpc.unary_unary_rpc_method_handler(handler), "M")

    async def call(metadata: tuple[tuple[str, str], ...]) -> str:
        ctx = _Context(metadata)
        await wrapped.unary_unary(b"", ctx)
        return dict(ctx.trailers)["x-request-id"]

    made = asyncio.run(call(()))
    assert seen == [made] and re.fullmatch("[0-9a-f]{32}", made)
    given = asyncio.run(call((("x-request-id", "client-7"), ("traceparent", "garbage"))))
    assert seen[1] == given == "client-7"
    assert request_id() != made  # outside a call: a new one
