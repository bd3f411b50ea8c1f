"""Cost of recording one inference in the monitor (tradecore.inference.monitor), against the
peer the service already uses for metrics: a prometheus_client Histogram's ``observe`` (one
labelled child, its default buckets) plus a Counter's ``inc``, the least a Prometheus-only
recorder of latency and errors would do. Also the cost of a whole snapshot of a full window.

Run: ``python -m pytest bench/test_bench_monitor.py -q -s`` (figures printed, and in the
pytest-benchmark JSON of ``make bench``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from tradecore.inference.monitor import MonitorRecorder

N = 100_000
LATENCIES = np.random.default_rng(1).lognormal(-8, 1, N).tolist()


def _per_record(benchmark: pytest.FixtureRequest, name: str) -> float:
    per = benchmark.stats.stats.median / N  # type: ignore[attr-defined]
    benchmark.extra_info["ns_per_record"] = per * 1e9  # type: ignore[attr-defined]
    print(f"\n{name}: {per * 1e9:,.0f} ns per record")
    return float(per)


@pytest.mark.benchmark(group="monitor-record")
def test_record_inference(benchmark: pytest.FixtureRequest) -> None:
    rec = MonitorRecorder()
    record = rec.record_inference

    def run() -> None:
        for i, x in enumerate(LATENCIES):
            record("pricer", "3", "champion", x, 16, i % 100 != 0)

    benchmark.pedantic(run, rounds=5, iterations=1)  # type: ignore[attr-defined]
    _per_record(benchmark, "MonitorRecorder.record_inference")


@pytest.mark.peer
@pytest.mark.benchmark(group="monitor-record")
def test_prometheus_histogram_and_counter(benchmark: pytest.FixtureRequest) -> None:
    reg = CollectorRegistry()
    hist = Histogram("lat", "latency", ["model", "version"], registry=reg)
    errors = Counter("err", "errors", ["model", "version"], registry=reg)
    h = hist.labels("pricer", "3")
    e = errors.labels("pricer", "3")

    def run() -> None:
        for i, x in enumerate(LATENCIES):
            h.observe(x)
            if i % 100 == 0:
                e.inc()

    benchmark.pedantic(run, rounds=5, iterations=1)  # type: ignore[attr-defined]
    _per_record(benchmark, "prometheus Histogram.observe (+ Counter.inc per error)")


@pytest.mark.benchmark(group="monitor-snapshot")
def test_snapshot_of_a_full_window(benchmark: pytest.FixtureRequest) -> None:
    """Four series, every one of the 600 one-second buckets filled: what the page's first
    event costs (updates carry one or two buckets)."""
    clock = [0.0]
    rec = MonitorRecorder(clock=lambda: clock[0])
    for b in range(600):
        for k in range(50):
            clock[0] = b + k / 50
            for version, role in (("1", "champion"), ("2", "challenger"), ("3", "shadow")):
                rec.record_inference("pricer", version, role, LATENCIES[(b * 50 + k) % N], 8)
            rec.record_inference("other", "1", "", LATENCIES[k], 1)
        rec.record_drift("pricer", "1", "x0", "psi", 0.1, False)
    sizes = []

    def run() -> None:
        sizes.append(len(json.dumps(rec.snapshot(), allow_nan=False)))

    benchmark.pedantic(run, rounds=10, iterations=1)  # type: ignore[attr-defined]
    med = benchmark.stats.stats.median  # type: ignore[attr-defined]
    benchmark.extra_info["json_bytes"] = sizes[-1]  # type: ignore[attr-defined]
    print(f"\nsnapshot + JSON of 4 full series: {med * 1e3:.2f} ms, {sizes[-1]:,} bytes")
