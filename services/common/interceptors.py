"""Server interceptor: request ids, exception → status mapping (messages capped in length),
requests that do not decode → INVALID_ARGUMENT, per-RPC metrics, a server span per call
(services/common/tracing.py: the caller's ``traceparent`` is its parent; a sampled call's trace
id goes back in the ``x-trace-id`` trailer)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import functools
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from . import tracing
from .errors import PermissionDeniedError, status_for

log = logging.getLogger("tradecore.rpc")

REQUEST_ID_KEY = "x-request-id"
# The verified token's payload (base64url JSON), set by the gateway's jwt_authn filter only (it
# removes a client's own header of this name first): tradecore_gateway.auth.CLAIMS_HEADER.
CLAIMS_KEY = "x-tradecore-claims"
#: The claims of the call being served: the gateway's verified token payload, or None for a
#: call that did not come through an authenticating gateway (a loopback caller, auth off).
CLAIMS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tradecore_claims", default=None
)
# The largest status message sent, in UTF-8 bytes (the backstop behind the sources, which quote
# at most a short prefix of a bad value: tradecore.errors.quote).
MAX_STATUS_MESSAGE_BYTES = 1024
# A stream's headers go out with its first message, or after this long without one.
STREAM_HEADERS_AFTER_S = 0.5
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


class MethodMetrics:
    """The metric children of one method, bound once: ``labels(...)`` per call costs more than
    the observation itself."""

    __slots__ = ("_codes", "_latency", "_method", "_requests", "_service")

    def __init__(self, requests: Counter, latency: Histogram, service: str, method: str) -> None:
        self._requests = requests
        self._service = service
        self._method = method
        self._latency = latency.labels(service, method)
        self._codes: dict[grpc.StatusCode, Any] = {}

    def observe(self, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self._requests.labels(
                self._service, self._method, code.name
            )
        counter.inc()
        self._latency.observe(seconds)


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
        self._methods: dict[str, MethodMetrics] = {}

    def method(self, method: str) -> MethodMetrics:
        """The metrics of ``method``, bound once and kept."""
        bound = self._methods.get(method)
        if bound is None:
            bound = self._methods[method] = MethodMetrics(
                self.requests, self.latency, self.service, method
            )
        return bound

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.method(method).observe(code, seconds)


# Generated request ids: 16 random hex digits chosen once per process, then a 16-digit counter
# (32 hex digits, as a uuid4 hex; unique without a syscall or a uuid object per call).
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_request_id() -> str:
    """A fresh request id (32 hex digits, unique across processes and calls)."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _claims(raw: str | bytes) -> dict[str, Any]:
    """The gateway's claims header decoded; a ValueError when it is not base64url JSON of an
    object (it comes from the gateway only, so that is a fault)."""
    return _decode_claims(raw if isinstance(raw, str) else raw.decode("ascii", "replace"))


@functools.lru_cache(maxsize=256)
def _decode_claims(text: str) -> dict[str, Any]:
    """A token's calls repeat one value: its decoding is kept (read-only to its users)."""
    try:
        claims = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError(f"{CLAIMS_KEY}: not base64url JSON") from None
    if not isinstance(claims, dict):
        raise ValueError(f"{CLAIMS_KEY}: not a JSON object")
    return claims


def request_id(context: grpc.aio.ServicerContext[Any, Any] | None = None) -> str:
    """The id of the call being handled: the one the interceptor took from the caller's
    ``x-request-id`` or made (and sends back in the trailers); outside an intercepted call,
    the caller's ``x-request-id`` from ``context`` or a new one."""
    rid = tracing.current_request_id.get()
    if rid:
        return rid
    if context is not None:
        return _call_metadata(context)[0]
    return new_request_id()


def _call_metadata(
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[str, str | bytes | None, str | None]:
    """One pass over a call's metadata: the caller's ``x-request-id`` (cut by
    :func:`quote_id`, else a new one), the gateway's raw claims header and the
    ``traceparent`` (None when absent)."""
    rid = ""
    claims: str | bytes | None = None
    parent: str | None = None
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            if value and not rid:
                rid = quote_id(str(value))
        elif key == CLAIMS_KEY:
            if value and claims is None:
                claims = value
        elif key == tracing.TRACEPARENT and parent is None:
            parent = str(value)
    return rid or new_request_id(), claims, parent


# Roles that may act on any account; any other role only on its token's ``account`` claim.
ALL_ACCOUNT_ROLES = ("risk", "admin")


def check_account(account: str) -> None:
    """Raise PermissionDeniedError (naming ``account``) unless the call's token may act on
    ``account``: no claims (a call that did not come through an authenticating gateway), a
    role of ALL_ACCOUNT_ROLES, or a token whose ``account`` claim is ``account``."""
    claims = CLAIMS.get()
    if claims is None or claims.get("role") in ALL_ACCOUNT_ROLES:
        return
    own = claims.get("account")
    if not isinstance(own, str) or own != account:
        raise PermissionDeniedError(
            f"account {account[:64]!r}: the token (role {str(claims.get('role'))[:32]!r}) may "
            f"act on account {str(own)[:64]!r} only"
        )


def quote_id(rid: str) -> str:
    """A client-chosen request id, cut to 128 characters (it is echoed in headers and logs)."""
    return rid if len(rid) <= 128 else rid[:128]


def cap_message(message: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """``message`` cut to at most ``limit`` UTF-8 bytes (``…(N chars)`` marks a cut): the status
    message travels in the grpc-message trailer, percent-encoded, and a trailer past the
    peer's header limits resets the connection it shares with other calls."""
    data = message.encode("utf-8", "replace")
    if len(data) <= limit:
        return message
    suffix = f"…({len(message)} chars)"
    head = data[: limit - len(suffix.encode())].decode("utf-8", "ignore")
    return head + suffix


class _UndecodableRequest:
    """Stands in for a request whose bytes are not a valid message (the deserializer runs
    before the handler, so the handler turns this into INVALID_ARGUMENT)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _checked_deserializer(
    deserialize: Callable[[bytes], Any] | None, method: str
) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    # the generated deserializers are bound FromString methods of the request class
    owner = getattr(deserialize, "__self__", None)
    name = getattr(owner, "__name__", None) or "request message"

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:
            return _UndecodableRequest(
                f"request is not a valid {name} for {method} ({type(exc).__name__})"
            )

    return parse


async def _fail(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str, rid: str
) -> grpc.StatusCode:
    """Log the failure on one line (a traceback only for INTERNAL) and end the call with its
    status and the request id in the trailers."""
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("internal error in %s (request id %s)", method, rid, exc_info=exc)
        message = f"internal error (request id {rid})"
    else:
        message = cap_message(str(exc) or code.name)
        log.info("%s %s (request id %s): %s", method, code.name, rid, _one_line(message))
    await context.abort(code, message, trailing_metadata=((REQUEST_ID_KEY, rid),))
    return code  # not reached: abort raises


def _one_line(message: str) -> str:
    return message.replace("\n", "\\n").replace("\r", "\\r")


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps unary and server-streaming handlers (the kinds Tradecore serves).

    The request id goes out in the trailers of a unary call, in the initial metadata of a
    stream (with its first message), and in the trailers of a failed call. Nothing is sent
    before the handler has had its chance to reject the request, so a rejected call is a
    trailers-only response, which the gateway's JSON transcoder maps to its HTTP status (a
    status after headers would reach a JSON client as HTTP 200 with an error body).

    grpc.aio asks the interceptor for every call: the wrapped handler of a method is made once
    (with its metrics bound) and reused while the server resolves the method to the same
    handler."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics
        # full method name -> (the server's handler, its wrapped form)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        if details.method.startswith(("/grpc.", "/opentelemetry.")):
            return handler  # health, reflection, spans received: no metrics, no wrapping
        wrapped = self._wrap(handler, details.method.rsplit("/", 1)[-1], details.method[1:])
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler, method: str, span_name: str = ""
    ) -> grpc.RpcMethodHandler:
        metrics = self._metrics.method(method)
        span_name = span_name or method
        deserializer = _checked_deserializer(handler.request_deserializer, method)
        perf_counter = time.perf_counter
        get_running_loop = asyncio.get_running_loop
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                rid, claims, parent = _call_metadata(context)
                start = perf_counter()
                code = grpc.StatusCode.OK
                span, ids = _start_span(span_name, parent, rid)
                try:
                    CLAIMS.set(None if claims is None else _claims(claims))
                    if type(request) is _UndecodableRequest:
                        raise ValueError(request.message)
                    response = await inner(request, context)
                    # In the trailers, which go out with the response and status: awaiting
                    # send_initial_metadata is a batch of its own (~60-80 us a call).
                    context.set_trailing_metadata(_ids_metadata(rid, span))
                    return response
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception as exc:
                    code = status_for(exc)
                    await _fail(context, exc, method, rid)
                    raise  # not reached
                finally:
                    _end_span(span, ids, code, rid)
                    # Counted on the loop's next turn: by then the handler's task has handed
                    # the response and status to gRPC (it yields only to wait for the send), so
                    # the bookkeeping is off the caller's latency, and it still comes before
                    # the next request is read.
                    get_running_loop().call_soon(metrics.observe, code, perf_counter() - start)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                rid, claims, parent = _call_metadata(context)
                start = perf_counter()
                code = grpc.StatusCode.OK
                span, ids = _start_span(span_name, parent, rid)
                try:
                    CLAIMS.set(None if claims is None else _claims(claims))
                    if type(request) is _UndecodableRequest:
                        raise ValueError(request.message)
                    async for item in _with_headers(
                        inner_stream(request, context), context, _ids_metadata(rid, span)
                    ):
                        yield item
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception as exc:
                    code = status_for(exc)
                    await _fail(context, exc, method, rid)
                finally:
                    metrics.observe(code, perf_counter() - start)
                    _end_span(span, ids, code, rid)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _start_span(name: str, parent: str | None, rid: str) -> tuple[Any, tuple[object, Any]]:
    """The call's server span (its parent: the caller's ``traceparent``), made current with the
    request id (for logs and the NATS messages the call sends)."""
    context = None if parent is None else tracing.parent_of({tracing.TRACEPARENT: parent})
    span, token = tracing.server_span(name, context)
    return span, (token, tracing.current_request_id.set(rid))


def _end_span(span: Any, ids: tuple[object, Any], code: grpc.StatusCode, rid: str) -> None:
    token, rid_token = ids
    tracing.current_request_id.reset(rid_token)
    tracing.end_server_span(span, token, code.name, rid)


def _ids_metadata(rid: str, span: Any) -> tuple[tuple[str, str], ...]:
    """The request id, and the trace id of a sampled call, for the response's metadata."""
    ctx = span.get_span_context()
    if not ctx.trace_flags.sampled:
        return ((REQUEST_ID_KEY, rid),)
    return ((REQUEST_ID_KEY, rid), (tracing.TRACE_ID_KEY, f"{ctx.trace_id:032x}"))


async def _with_headers(
    items: AsyncIterator[Any],
    context: grpc.aio.ServicerContext[Any, Any],
    metadata: tuple[tuple[str, str], ...],
) -> AsyncIterator[Any]:
    """``items`` with the initial metadata sent just before the first one, or after
    STREAM_HEADERS_AFTER_S when the stream is still silent then (a valid stream waiting for
    data still shows its headers; a request rejected at the start gets no headers at all)."""
    it = aiter(items)
    first: asyncio.Future[Any] = asyncio.ensure_future(anext(it))
    sent = False
    try:
        done, _ = await asyncio.wait({first}, timeout=STREAM_HEADERS_AFTER_S)
        if not done:
            await context.send_initial_metadata(metadata)
            sent = True
        try:
            item = await first
        except StopAsyncIteration:
            return
    finally:
        if not first.done():
            first.cancel()
    if not sent:
        await context.send_initial_metadata(metadata)
    yield item
    async for item in it:
        yield item
