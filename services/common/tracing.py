"""OpenTelemetry tracing of every service: spans, W3C trace context on NATS, and where spans go.

:func:`configure` (called once by :func:`.server.main`) installs a tracer provider named after
the service with a parent-based sampler: a span whose parent was sampled is sampled, a root span
(a gRPC call or NATS request that arrived without a ``traceparent``, background work) is
drawn here, before any span is made, with probability ``TRADECORE_TRACE_SAMPLE`` (default
0.01: a sampled order costs its call 1-2 milliseconds of span work on a loaded 2-core VM, see
docs/operations.md; a caller forces a trace by sending a sampled ``traceparent``, flags
``01``). Streaming work (a quote the market-data
service publishes, a batch of ticks it stores) starts a trace with probability
``TRADECORE_TRACE_STREAM_SAMPLE`` (default 0.001: quotes arrive by the thousand a second).

Spans go by OTLP/gRPC to ``TRADECORE_OTLP_ENDPOINT`` when it is set; otherwise a batching
exporter publishes them on the service's NATS connection to ``telemetry.spans.<trace id>``,
captured by the JetStream stream ``TELEMETRY_SPANS`` (limits retention: 24 h, 256 MiB, oldest
dropped first), which ``tradecore trace <trace id>`` reads by subject. Spans are telemetry:
while NATS is down they are dropped, never buffered without bound.

Costs on a hot path: a call whose parent is not sampled, or a root the draw did not pick, makes
no span and no context at all (:func:`server_span` of an unsampled root: one random draw;
:func:`child_span`, :func:`consume_span` check the parent first, ~0.3 µs); a NATS message
carries ``traceparent`` only when its trace is sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

log = logging.getLogger("tradecore.tracing")

TRACEPARENT = "traceparent"
TRACE_ID_KEY = "x-trace-id"  # the trace id of a sampled gRPC call, in its trailers
SPANS_STREAM = "TELEMETRY_SPANS"
SPANS_SUBJECT = "telemetry.spans"  # + ".<trace id>"
SPANS_MAX_AGE_S = 24 * 3600.0
SPANS_MAX_BYTES = 256 * 1024 * 1024
EXPORT_DELAY_MS = 200  # a span is published at most this long after it ends
MAX_SPANS_PER_MESSAGE = 200  # keeps a message far below NATS's 1 MiB payload limit

#: The request id of the call being handled (gRPC or NATS), for logs and NATS headers.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "tradecore_request_id", default=""
)

_tracer: trace.Tracer = trace.get_tracer("tradecore")
_stream_ratio = 0.001
_root_ratio = DEFAULT_SAMPLE = 0.01
_exporter: NatsSpanExporter | None = None
_provider: TracerProvider | None = None


def _ratio(name: str, default: float) -> float:
    raw = os.environ.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number in 0..1 (got {raw!r})") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in 0..1 (got {value})")
    return value


def configure(service: str) -> TracerProvider:
    """Install the service's tracer provider (see the module's docstring). The local exporter
    publishes once :func:`attach` gave it a NATS connection."""
    global _tracer, _stream_ratio, _root_ratio, _exporter, _provider
    _root_ratio = _ratio("TRADECORE_TRACE_SAMPLE", DEFAULT_SAMPLE)
    _stream_ratio = _ratio("TRADECORE_TRACE_STREAM_SAMPLE", 0.001)
    # Roots are drawn by the functions below (the ratio of each kind of root), so a root
    # reaching the provider is sampled; a child follows its parent.
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(ALWAYS_ON),
    )
    endpoint = os.environ.get("TRADECORE_OTLP_ENDPOINT", "")
    exporter: SpanExporter
    if endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
        _exporter = None
    else:
        exporter = _exporter = NatsSpanExporter(service)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS, max_queue_size=8192)
    )
    _provider = provider
    _tracer = provider.get_tracer("tradecore")
    return provider


def shutdown() -> None:
    """Flush and stop the exporter (at the end of the process)."""
    if _provider is not None:
        _provider.shutdown()


# -- W3C trace context ---------------------------------------------------------------------


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote span context of a W3C ``traceparent`` (version 00), None when malformed."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, tid, sid, flags = parts[:4]
    if len(tid) != 32 or len(sid) != 16 or len(flags) != 2 or (version == "00" and len(parts) > 4):
        return None
    try:
        trace_id, span_id, bits = int(tid, 16), int(sid, 16), int(flags, 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(bits & 1))


def format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 1:02x}"


def traceparent() -> str:
    """The ``traceparent`` of the current span when it is sampled, else ""."""
    ctx = trace.get_current_span().get_span_context()
    return format_traceparent(ctx) if ctx.trace_flags.sampled else ""


def parent_of(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    """The context of a message's or call's ``traceparent`` header (None without one)."""
    if not headers:
        return None
    value = headers.get(TRACEPARENT)
    if not value:
        return None
    span_ctx = parse_traceparent(value)
    if span_ctx is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_ctx))


# -- spans ---------------------------------------------------------------------------------


def _draw(ratio: float) -> bool:
    """Whether to start a new trace, with probability ``ratio``."""
    return ratio >= 1.0 or (ratio > 0.0 and random.random() < ratio)


def server_span(
    name: str, parent: otel_context.Context | None, kind: SpanKind = SpanKind.SERVER
) -> tuple[Span, object]:
    """Start the span of a request being served (a root when ``parent`` is None, sampled by
    the ratio) and make it current; end it with :func:`end_server_span`. Under a parent that
    is not sampled (or with a ratio of 0 for a root) no span is made: the parent's context (or
    none) is current, so the work below makes no spans either."""
    if parent is not None:
        remote = trace.get_current_span(parent)
        if not remote.get_span_context().trace_flags.sampled:
            return remote, otel_context.attach(parent)
    elif not _draw(_root_ratio):
        return trace.INVALID_SPAN, None
    else:
        parent = otel_context.Context()
    span = _tracer.start_span(name, context=parent, kind=kind)
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_server_span(span: Span, token: object, code: str, request_id: str = "") -> None:
    """End a :func:`server_span` with the call's status name (``OK`` or the error's)."""
    if token is None:  # an unsampled root: nothing was made current
        return
    otel_context.detach(token)  # type: ignore[arg-type]
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code)
        if request_id:
            span.set_attribute("request_id", request_id)
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, code))
    span.end()


#: What :func:`child_span` and :func:`consume_span` return outside a sampled trace.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def child_span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
) -> contextlib.AbstractContextManager[Span | None]:
    """A span under the current one when that one is sampled; a shared no-op otherwise, so
    work outside a sampled trace pays one context lookup."""
    if not trace.get_current_span().is_recording():
        return _NO_SPAN
    return _tracer.start_as_current_span(name, kind=kind, attributes=attributes)


@contextlib.contextmanager
def root_span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """A span under the current one, or a new trace sampled by the ratio (background work);
    a non-recording span when neither."""
    if not trace.get_current_span().get_span_context().is_valid and not _draw(_root_ratio):
        yield trace.INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        yield span


def consume_span(
    name: str, headers: Mapping[str, str] | None, **attributes: Any
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of a consumed NATS message that carries a sampled ``traceparent`` (a child of
    its publisher's span); a shared no-op for a message without one."""
    if not headers:
        return _NO_SPAN
    parent = parent_of(headers)
    if parent is None or not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
        return _NO_SPAN
    return _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )


#: What :func:`stream_root` returns for work it does not sample: no span, no traceparent.
_NO_TRACE: contextlib.nullcontext[str] = contextlib.nullcontext("")


def stream_root(
    name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
) -> contextlib.AbstractContextManager[str]:
    """Streaming work (a quote published, a batch of ticks stored): with probability
    TRADECORE_TRACE_STREAM_SAMPLE a new sampled trace (its ``traceparent`` for the headers of
    the messages it sends), else "" and no span at all (a shared no-op)."""
    if not _draw(_stream_ratio):
        return _NO_TRACE
    return _new_trace(name, kind, attributes)


@contextlib.contextmanager
def _new_trace(name: str, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[str]:
    with _tracer.start_as_current_span(
        name, context=otel_context.Context(), kind=kind, attributes=attributes
    ):
        yield traceparent()


@contextlib.contextmanager
def batch_span(
    name: str, headers: Sequence[Mapping[str, str] | None], **attributes: Any
) -> Iterator[None]:
    """Work on a batch of consumed messages (a ClickHouse insert of them): a span in the trace
    of the first message that carries a sampled ``traceparent``, linked to those of the
    others; nothing when none does."""
    parents = [
        ctx
        for h in headers
        if (p := parent_of(h)) is not None
        and (ctx := trace.get_current_span(p).get_span_context()).trace_flags.sampled
    ]
    if not parents:
        yield None
        return
    links = [trace.Link(c) for c in parents[1:] if c.trace_id != parents[0].trace_id]
    with _tracer.start_as_current_span(
        name,
        context=trace.set_span_in_context(NonRecordingSpan(parents[0])),
        links=links,
        attributes=attributes,
    ):
        yield None


def headers_with_trace(headers: dict[str, str] | None = None) -> dict[str, str] | None:
    """``headers`` plus the current sampled ``traceparent`` (``headers`` as given otherwise)."""
    tp = traceparent()
    if not tp:
        return headers
    out = dict(headers or {})
    out[TRACEPARENT] = tp
    return out


# -- the local span store ------------------------------------------------------------------


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as stored in ``TELEMETRY_SPANS`` (and read by ``tradecore trace``)."""
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    assert ctx is not None
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else "",
        "name": span.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "kind": span.kind.name,
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or 0,
        "status": status.status_code.name,
        "message": status.description or "",
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def spans_subject(trace_id: str) -> str:
    return f"{SPANS_SUBJECT}.{trace_id}"


class NatsSpanExporter(SpanExporter):
    """Publishes finished spans, one message per trace and batch, on the NATS connection given
    by :meth:`attach` (from the BatchSpanProcessor's thread, through the connection's loop)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._nc: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0

    def attach(self, nc: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._nc, self._loop = nc, loop

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        nc, loop = self._nc, self._loop
        if nc is None or loop is None or loop.is_closed() or not nc.is_connected:
            self.dropped += len(spans)
            return SpanExportResult.FAILURE
        by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for span in spans:
            rec = span_record(span)
            by_trace[rec["trace_id"]].append(rec)
        messages = [
            (spans_subject(tid), json.dumps(recs[i : i + MAX_SPANS_PER_MESSAGE]).encode())
            for tid, recs in by_trace.items()
            for i in range(0, len(recs), MAX_SPANS_PER_MESSAGE)
        ]
        try:
            loop.call_soon_threadsafe(_publish_all, nc, messages)
        except RuntimeError:  # the loop closed meanwhile
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._nc = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _publish_all(nc: Any, messages: list[tuple[str, bytes]]) -> None:
    async def send() -> None:
        for subject, data in messages:
            try:
                await nc.publish(subject, data)
            except Exception as exc:  # telemetry: dropped, never in the way
                log.debug("spans on %s dropped: %s", subject, exc)

    task = asyncio.ensure_future(send())
    _sending.add(task)
    task.add_done_callback(_sending.discard)


_sending: set[asyncio.Future[None]] = set()  # publishing tasks, kept until done


def spans_stream_config() -> Any:
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    from .settings import jetstream_replicas

    return StreamConfig(
        name=SPANS_STREAM,
        subjects=[f"{SPANS_SUBJECT}.*"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=SPANS_MAX_AGE_S,
        max_bytes=SPANS_MAX_BYTES,
        num_replicas=jetstream_replicas(),
    )


async def attach(nc: Any) -> None:
    """Give the local exporter the service's NATS connection (each new one) and make the span
    stream when it does not exist. Nothing to do when spans go by OTLP."""
    exporter = _exporter
    if exporter is None:
        return
    from nats.js.errors import NotFoundError

    js = nc.jetstream(timeout=5.0)
    try:
        await js.stream_info(SPANS_STREAM)
    except NotFoundError:
        try:
            await js.add_stream(spans_stream_config())
        except Exception as exc:  # another service made it meanwhile, or JetStream is off
            log.debug("span stream not made: %s", exc)
    exporter.attach(nc, asyncio.get_running_loop())


# -- the gateway's spans -------------------------------------------------------------------

_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _any_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(v, which)
    if which == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    return str(getattr(v, which)) if which else None


def otlp_records(request: Any) -> list[dict[str, Any]]:
    """The spans of an OTLP ``ExportTraceServiceRequest`` as stored in ``TELEMETRY_SPANS``."""
    out = []
    for rs in request.resource_spans:
        attrs = {a.key: _any_value(a.value) for a in rs.resource.attributes}
        service = str(attrs.get("service.name", ""))
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "service": service,
                        "kind": _KINDS.get(s.kind, "INTERNAL"),
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "status": _STATUS.get(s.status.code, "UNSET"),
                        "message": s.status.message,
                        "attributes": {a.key: _any_value(a.value) for a in s.attributes},
                    }
                )
    return out


def add_receiver(server: Any) -> None:
    """Serve OTLP/gRPC ``TraceService.Export`` on ``server``: the gateway (Envoy's tracer, when
    no TRADECORE_OTLP_ENDPOINT is set) sends its spans to a service, which stores them in
    ``TELEMETRY_SPANS`` beside its own, so ``tradecore trace`` shows the gateway's hop too."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request: Any, context: Any) -> Any:
            exporter = _exporter
            nc = exporter._nc if exporter is not None else None
            if nc is not None and nc.is_connected:
                by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for rec in otlp_records(request):
                    by_trace[rec["trace_id"]].append(rec)
                _publish_all(
                    nc,
                    [
                        (spans_subject(tid), json.dumps(recs).encode())
                        for tid, recs in by_trace.items()
                    ],
                )
            return trace_service_pb2.ExportTraceServiceResponse()

    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        Receiver(), server
    )
