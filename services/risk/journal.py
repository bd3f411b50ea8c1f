"""The risk service's journal: every limit change, trading-state change and SetPositions,
kept in the JetStream stream ``RISK_JOURNAL`` and read back when the service starts.

==================================  ================================  ========================
subject                             payload                           written
==================================  ================================  ========================
``risk.state.<account>``            ``events.v1.TradingState``        every change of the mode
``risk.journal.limits.<account>``   ``risk.v1.Limits``                every SetLimits
``risk.journal.positions.<account>`` ``risk.v1.SetPositionsRequest``  every SetPositions
==================================  ================================  ========================

The trading state is journaled on the subject it is published on, so publishing it *is*
journaling it (a JetStream publish: core subscribers of ``risk.state.*`` get it as well) and
a reader such as the execution service can read the latest mode of every account from the
stream. The stream keeps the history (up to :data:`HISTORY_PER_SUBJECT` messages per subject)
for audit; a start reads only the latest message of each subject (a consumer with
``DeliverPolicy.LAST_PER_SUBJECT`` per subject filter).

A write returns once JetStream has acknowledged it (stored on the server's file store); an
RPC answers only after that, so an acknowledged change survives a restart of the service.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind
from tradecore.subjects import (
    RiskJournalKind,
    RiskKind,
    risk_filter,
    risk_journal_filter,
    risk_journal_subject,
    risk_subject,
)
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb

from ..common import tracing
from ..common.bus import JETSTREAM_UNAVAILABLE
from ..common.errors import UnavailableError
from ..common.nats_rpc import trace_headers
from ..common.settings import jetstream_replicas

log = logging.getLogger("tradecore.risk.journal")

STREAM = "RISK_JOURNAL"
HISTORY_PER_SUBJECT = 10_000
ACK_TIMEOUT_S = 5.0
FETCH_BATCH = 256


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[
            risk_filter(RiskKind.STATE),
            risk_journal_filter(RiskJournalKind.LIMITS),
            risk_journal_filter(RiskJournalKind.POSITIONS),
        ],
        storage=StorageType.FILE,
        max_msgs_per_subject=HISTORY_PER_SUBJECT,
        duplicate_window=120.0,
        num_replicas=jetstream_replicas(),
    )


async def ensure_stream(js: JetStreamContext) -> None:
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(stream_config())


def stored_ns(t: datetime) -> int:
    """A JetStream store time in ns since the epoch."""
    return int(t.timestamp() * 1e9)


@dataclass
class Restored:
    """The latest journaled limits, state and positions per account."""

    limits: dict[str, pb.Limits] = field(default_factory=dict)
    states: dict[str, events.TradingState] = field(default_factory=dict)
    positions: dict[str, tuple[pb.SetPositionsRequest, int]] = field(default_factory=dict)

    @property
    def accounts(self) -> set[str]:
        return set(self.limits) | set(self.states) | set(self.positions)


async def _latest(js: JetStreamContext, subject: str) -> list[tuple[str, bytes, int]]:
    """(subject, data, publish time ns) of the latest message of every subject matching
    ``subject`` in the stream."""
    sub = await js.pull_subscribe(
        subject,
        stream=STREAM,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        ),
    )
    out: list[tuple[str, bytes, int]] = []
    try:
        info = await sub.consumer_info()
        pending = info.num_pending or 0
        while pending > 0:
            msgs = await sub.fetch(min(FETCH_BATCH, pending), timeout=ACK_TIMEOUT_S)
            for m in msgs:
                md = m.metadata
                out.append((m.subject, m.data, stored_ns(md.timestamp)))
                pending = md.num_pending
    finally:
        await sub.unsubscribe()
    return out


class Journal:
    """Writes to and reads from ``RISK_JOURNAL`` on the service's NATS connection."""

    def __init__(self) -> None:
        self._js: JetStreamContext | None = None

    async def attach(self, nc: Client) -> None:
        """Use ``nc`` from now on (each new connection of the service's Bus)."""
        js = nc.jetstream(timeout=ACK_TIMEOUT_S)
        await ensure_stream(js)
        self._js = js

    def _context(self) -> JetStreamContext:
        if self._js is None:
            raise UnavailableError("NATS is not connected: the risk journal cannot be written")
        return self._js

    async def _write(self, subject: str, data: bytes, request_id: str) -> int:
        """Publish and wait for JetStream's acknowledgement; the stream sequence stored."""
        js = self._context()
        with tracing.child_span(f"jetstream {subject}", SpanKind.PRODUCER, bytes=len(data)):
            try:
                ack = await js.publish(
                    subject,
                    data,
                    headers=trace_headers(request_id, tracing.traceparent())
                    if request_id
                    else tracing.headers_with_trace(),
                )
            except JETSTREAM_UNAVAILABLE as exc:
                raise UnavailableError(f"the risk journal did not acknowledge {subject}") from exc
        return int(ack.seq)

    async def limits(self, limits: pb.Limits, request_id: str = "") -> None:
        subject = risk_journal_subject(RiskJournalKind.LIMITS, limits.account)
        await self._write(subject, limits.SerializeToString(), request_id)

    async def positions(self, request: pb.SetPositionsRequest, request_id: str = "") -> int:
        """Journal a SetPositions; the server's store time of it (ns), the time :meth:`restore`
        gives back with it."""
        subject = risk_journal_subject(RiskJournalKind.POSITIONS, request.account)
        seq = await self._write(subject, request.SerializeToString(), request_id)
        try:
            stored = await self._context().get_msg(STREAM, seq)
        except JETSTREAM_UNAVAILABLE as exc:
            raise UnavailableError(f"the risk journal did not give back {subject}") from exc
        assert stored.time is not None
        return stored_ns(stored.time)

    async def state(self, state: events.TradingState, request_id: str = "") -> None:
        """Journal and publish the state (one JetStream publish on ``risk.state.<account>``)."""
        subject = risk_subject(RiskKind.STATE, state.account)
        await self._write(subject, state.SerializeToString(), request_id)

    async def restore(self) -> Restored:
        """The latest journaled entries of every account."""
        js = self._context()
        out = Restored()
        for subject, data, _ in await _latest(js, risk_filter(RiskKind.STATE)):
            try:
                st = events.TradingState.FromString(data)
            except DecodeError:
                log.warning("%s: not a TradingState (%d bytes); skipped", subject, len(data))
                continue
            out.states[subject.rsplit(".", 1)[1]] = st
        for subject, data, _ in await _latest(js, risk_journal_filter(RiskJournalKind.LIMITS)):
            out.limits[subject.rsplit(".", 1)[1]] = pb.Limits.FromString(data)
        kind = risk_journal_filter(RiskJournalKind.POSITIONS)
        for subject, data, t_ns in await _latest(js, kind):
            out.positions[subject.rsplit(".", 1)[1]] = (
                pb.SetPositionsRequest.FromString(data),
                t_ns,
            )
        return out


__all__ = ["HISTORY_PER_SUBJECT", "STREAM", "Journal", "Restored", "ensure_stream", "stored_ns"]
