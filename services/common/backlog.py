"""The backlog of a service's durable JetStream consumer as a Prometheus gauge.

``tradecore_jetstream_consumer_pending{stream, consumer}``: the messages of the stream not yet
delivered to the consumer, as the last fetch reported them (``num_pending`` of its newest
message; 0 after a fetch that found nothing). The alert rules (deploy/prometheus/alerts.yml)
fire when it stays high: the consumer (a ClickHouse copy) is falling behind.
"""

from __future__ import annotations

from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Gauge


class Backlog:
    """One consumer's pending count, read by the gauge when Prometheus scrapes."""

    def __init__(self) -> None:
        self.pending = 0

    def fetched(self, msgs: list[Msg]) -> None:
        """Record what a fetch returned (an empty list: nothing was pending)."""
        self.pending = int(msgs[-1].metadata.num_pending) if msgs else 0

    def register(self, registry: CollectorRegistry, stream: str, consumer: str) -> None:
        gauge = Gauge(
            "tradecore_jetstream_consumer_pending",
            "Messages of the stream not yet delivered to the service's durable consumer",
            ["stream", "consumer"],
            registry=registry,
        )
        gauge.labels(stream, consumer).set_function(lambda: self.pending)
