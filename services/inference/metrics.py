"""Prometheus metrics in Triton's vocabulary, read from each loaded version's statistics at
scrape time (one source for the metrics and ModelStatistics), labelled ``model`` and
``version``.

Triton exposes these cumulative counts without the ``_total`` suffix that prometheus_client
gives a counter, so they are exposed untyped under exactly Triton's names, and dashboards built
for Triton read them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .models import Loaded, Stats

# name -> (help, value of a version's statistics)
TRITON_METRICS: dict[str, tuple[str, Callable[[Stats], float]]] = {
    "nv_inference_request_success": (
        "Number of successful inference requests, all batch sizes",
        lambda s: s.success.count,
    ),
    "nv_inference_request_failure": (
        "Number of failed inference requests, all batch sizes",
        lambda s: s.fail.count,
    ),
    "nv_inference_count": (
        "Number of inferences performed (a batch of n counts n)",
        lambda s: s.inference_count,
    ),
    "nv_inference_exec_count": (
        "Number of model executions performed",
        lambda s: s.execution_count,
    ),
    "nv_inference_request_duration_us": (
        "Cumulative inference request duration in microseconds (successful requests)",
        lambda s: s.success.ns // 1000,
    ),
    "nv_inference_queue_duration_us": (
        "Cumulative inference queuing duration in microseconds",
        lambda s: s.queue.ns // 1000,
    ),
    "nv_inference_compute_infer_duration_us": (
        "Cumulative compute inference duration in microseconds",
        lambda s: s.compute_infer.ns // 1000,
    ),
}


class TritonCollector(Collector):
    """Collects the Triton metrics of the versions ``loaded()`` returns at scrape time."""

    def __init__(self, loaded: Callable[[], list[Loaded]]) -> None:
        self._loaded = loaded

    def collect(self) -> Iterator[Metric]:
        versions = self._loaded()
        for name, (doc, value) in TRITON_METRICS.items():
            metric = Metric(name, doc, "unknown")
            for lv in versions:
                labels = {"model": lv.version.name, "version": str(lv.version.version)}
                metric.add_sample(name, labels, float(value(lv.stats)))
            yield metric
