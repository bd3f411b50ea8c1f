"""Request ids on NATS, and NATS request/reply handlers that behave like the gRPC calls.

Every NATS message a service sends because of a request carries that request's id in the
``x-request-id`` header (the same key as the gRPC metadata, :data:`.interceptors.REQUEST_ID_KEY`)
and, when the caller sent one or the current span is sampled, the W3C ``traceparent``
(services/common/tracing.py). :func:`publish` sets them,
:func:`request_id_of` reads them (a message without one gets a fresh id), and
:data:`current_request_id` holds the id of the request being handled, for logging.

:func:`unary_handler` wraps a request/reply method (``<service>.v<N>.<method>``, see
``tradecore.subjects``) the way :class:`.interceptors.ServiceInterceptor` wraps a gRPC one:
the request bytes are decoded (bytes that are no valid request: INVALID_ARGUMENT), exceptions
map to a status with :func:`.errors.status_for`, the call is counted in the same
:class:`.interceptors.RpcMetrics` (method label: the subject), failures are logged on one line
with the request id (a traceback only for INTERNAL), and the reply carries the request id.

Reply: the response message serialized, headers ``x-request-id`` (and ``traceparent``). Error:
an empty body with header ``Tradecore-Error: <STATUS_NAME>: <message>`` (INTERNAL says only
``internal error (request id <id>)``) and the same ids. :func:`request` is the client side.

Deadlines: :func:`request` sends how long it waits for the reply in the header
``x-timeout-ms`` (whole milliseconds, as gRPC sends ``grpc-timeout``); the handler takes it as a
deadline from the moment it starts on the request (time in transit and in the subscription's
queue is not counted: the deadline is at most that much late), and :func:`time_remaining`
(called while handling it) gives the seconds left, or None when the request carried no timeout
(a plain ``nc.request``), as a gRPC call without a deadline.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from . import tracing
from .errors import status_for
from .interceptors import REQUEST_ID_KEY, RpcMetrics, cap_message, quote_id

log = logging.getLogger("tradecore.rpc")

REQUEST_ID_HEADER = REQUEST_ID_KEY
TRACEPARENT_HEADER = "traceparent"
ERROR_HEADER = "Tradecore-Error"
TIMEOUT_HEADER = "x-timeout-ms"
# A header value is one line: CR, LF and other control characters would end it early (and
# let a value forge further headers), so they are replaced.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The request id of the call being handled (the same variable the gRPC interceptor sets).
current_request_id: contextvars.ContextVar[str] = tracing.current_request_id

# time.monotonic() by which the request being handled must be answered (None: no deadline).
current_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tradecore_deadline", default=None
)

Req = TypeVar("Req", bound=Message)
Handler = Callable[[Msg], Awaitable[None]]


def new_request_id() -> str:
    return uuid.uuid4().hex


def header_value(value: str) -> str:
    """``value`` made safe for one NATS header line."""
    return _CONTROL.sub(" ", value).strip()


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    """A header's value, its name matched without regard to case ("" when absent)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return ""


def request_id_of(msg: Msg, *, new: bool = True) -> str:
    """The request id ``msg`` carries (cut as a gRPC one: :func:`.interceptors.quote_id`),
    else a fresh one (``new``) or ""."""
    rid = quote_id(header_value(_header(msg.headers, REQUEST_ID_HEADER)))
    return rid or (new_request_id() if new else "")


def trace_headers(request_id: str, traceparent: str = "") -> dict[str, str]:
    """The headers that carry a request's ids on a message."""
    headers = {REQUEST_ID_HEADER: quote_id(header_value(request_id))}
    traceparent = quote_id(header_value(traceparent))
    if traceparent:
        headers[TRACEPARENT_HEADER] = traceparent
    return headers


async def publish(
    nc: Client,
    subject: str,
    data: bytes,
    *,
    request_id: str = "",
    traceparent: str = "",
    headers: Mapping[str, str] | None = None,
) -> str:
    """Publish ``data`` with the request's ids (``request_id`` or, when empty, the id being
    handled now, else a new one) added to ``headers``; returns the id sent."""
    rid = request_id or current_request_id.get() or new_request_id()
    with tracing.child_span(f"publish {subject}", SpanKind.PRODUCER):
        traceparent = traceparent or tracing.traceparent()
        await nc.publish(
            subject, data, headers={**(headers or {}), **trace_headers(rid, traceparent)}
        )
    return rid


def time_remaining() -> float | None:
    """Seconds left before the requester of the request being handled stops waiting (it sent
    ``x-timeout-ms``), else None."""
    deadline = current_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def deadline_of(msg: Msg, received: float) -> float | None:
    """The ``time.monotonic()`` deadline of a request received at ``received``: its
    ``x-timeout-ms`` later, or None when the header is absent or not a positive whole number."""
    value = header_value(_header(msg.headers, TIMEOUT_HEADER))
    if not (value.isascii() and value.isdecimal()) or len(value) > 12 or int(value) <= 0:
        return None
    return received + int(value) / 1000.0


def timeout_header(timeout: float) -> dict[str, str]:
    """The header that tells a handler how long the requester waits (at least 1 ms)."""
    return {TIMEOUT_HEADER: str(max(1, math.ceil(timeout * 1000.0)))}


class NatsRpcError(Exception):
    """An error reply to :func:`request`: ``code`` is the status name (``INVALID_ARGUMENT``)."""

    def __init__(self, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


async def request(
    nc: Client,
    subject: str,
    data: bytes,
    *,
    timeout: float,
    request_id: str = "",
    traceparent: str = "",
) -> tuple[bytes, str]:
    """Call a request/reply method: ``(reply bytes, request id)``, or NatsRpcError for an
    error reply (nats-py's TimeoutError / NoRespondersError when nobody answers). The handler
    learns ``timeout`` from the ``x-timeout-ms`` header (:func:`time_remaining`)."""
    rid = request_id or current_request_id.get() or new_request_id()
    with tracing.child_span(f"request {subject}", SpanKind.CLIENT):
        traceparent = traceparent or tracing.traceparent()
        headers = {**trace_headers(rid, traceparent), **timeout_header(timeout)}
        reply = await nc.request(subject, data, timeout=timeout, headers=headers)
    error = _header(reply.headers, ERROR_HEADER.lower())
    rid = _header(reply.headers, REQUEST_ID_HEADER) or rid
    if error:
        code, _, message = error.partition(": ")
        raise NatsRpcError(code, message, rid)
    return reply.data, rid


def unary_handler(
    method: str,
    request_type: type[Req],
    handle: Callable[[Req], Message | Awaitable[Message]],
    metrics: RpcMetrics,
) -> Handler:
    """A NATS subscription callback serving ``method`` (its subject) with ``handle``."""
    type_name = request_type.DESCRIPTOR.name

    async def on_request(msg: Msg) -> None:
        rid = request_id_of(msg)
        caller_tp = _header(msg.headers, TRACEPARENT_HEADER)
        span, span_token = tracing.server_span(
            method, tracing.parent_of({TRACEPARENT_HEADER: caller_tp}), SpanKind.SERVER
        )
        ids = trace_headers(rid, caller_tp)
        token = current_request_id.set(rid)
        deadline_token = current_deadline.set(deadline_of(msg, time.monotonic()))
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            try:
                req = request_type.FromString(msg.data)
            except DecodeError as exc:
                raise ValueError(
                    f"request is not a valid {type_name} for {method} ({type(exc).__name__})"
                ) from exc
            result = handle(req)
            if inspect.isawaitable(result):
                result = await result
            reply, headers = result.SerializeToString(), ids
        except Exception as exc:
            code = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("internal error in %s (request id %s)", method, rid)
                message = f"internal error (request id {rid})"
            else:
                message = cap_message(header_value(str(exc) or code.name))
                log.info("%s %s (request id %s): %s", method, code.name, rid, message)
            reply, headers = b"", {**ids, ERROR_HEADER: f"{code.name}: {message}"}
        finally:
            metrics.observe(method, code, time.perf_counter() - start)
            current_deadline.reset(deadline_token)
            current_request_id.reset(token)
            tracing.end_server_span(span, span_token, code.name, rid)
        if not msg.reply:
            return  # published without a reply subject: nobody to answer
        # Msg.respond sends msg.headers with the reply: the ids (and an error) go there.
        msg.headers = headers
        try:
            await msg.respond(reply)
        except Exception:
            log.warning("%s: reply not sent (request id %s)", method, rid, exc_info=True)

    return on_request
