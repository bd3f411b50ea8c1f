"""The cost of tracing per call (``python -m bench.trace_overhead``): the span operations the
services run on their hot paths, each timed over many calls in this process (best of 5 runs,
median µs per operation), with the provider of services/common/tracing.py (batching exporter,
not attached: finished spans are queued and dropped, as while NATS is away)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

N = 20_000


def per_op_us(fn: Callable[[], object], n: int = N) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(sorted(runs)[:3])


def main() -> None:
    os.environ.setdefault("TRADECORE_TRACE_SAMPLE", "1")
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from services.common import tracing

    tracing.configure("bench")
    sampled_parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    unsampled_parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-00"

    def server(tp: str) -> Callable[[], None]:
        md = (("traceparent", tp),) if tp else ()

        def op() -> None:
            span, token = tracing.server_span("svc/Method", tracing.parent_of_metadata(md))
            tracing.end_server_span(span, token, "OK", "rid")

        return op

    def child() -> None:
        with tracing.child_span("journal x", bytes=10):
            pass

    def consume(headers: dict[str, str] | None) -> Callable[[], None]:
        def op() -> None:
            with tracing.consume_span("consume x", headers):
                pass

        return op

    def quote() -> None:
        with tracing.stream_root("publish q"):
            pass

    rows = [
        ("server span, caller's traceparent sampled", per_op_us(server(sampled_parent))),
        ("server span, caller's traceparent not sampled", per_op_us(server(unsampled_parent))),
        ("server span, no traceparent (root, ratio 1)", per_op_us(server(""))),
        ("child span, no sampled parent", per_op_us(child)),
        ("consume span, message without traceparent", per_op_us(consume(None))),
        ("consume span, sampled traceparent", per_op_us(consume({"traceparent": sampled_parent}))),
        ("traceparent() of a non-sampled context", per_op_us(tracing.traceparent)),
        ("a quote not sampled (stream ratio 0.001)", per_op_us(quote)),
    ]
    span, token = tracing.server_span("svc/Method", None)
    rows.append(("child span under a sampled span", per_op_us(child)))
    rows.append(("traceparent() under a sampled span", per_op_us(tracing.traceparent)))
    tracing.end_server_span(span, token, "OK")
    assert not trace.get_current_span().is_recording()
    otel_context.get_current()
    tracing.shutdown()
    # The default: a root sampled at 1 % (the SDK's sampler decides, most calls unsampled).
    os.environ["TRADECORE_TRACE_SAMPLE"] = str(tracing.DEFAULT_SAMPLE)
    tracing.configure("bench")
    rows.append(("server span, no traceparent (root, default ratio)", per_op_us(server(""))))
    for name, us in rows:
        print(f"{name:<50} {us:7.2f} µs")
    tracing.shutdown()


if __name__ == "__main__":
    main()
