"""The execution service's journal: every command it accepts and every event it produces, in
the JetStream stream ``EXEC_JOURNAL``, replayed in stream order when the service starts.

==================================  ==============================  ===========================
subject                             payload                         written
==================================  ==============================  ===========================
``exec.journal.command.<account>``  ``execution.v1.JournalEntry``   every accepted command
                                    (submit, cancel, replace,       (before the call answers)
                                    set_trading_state, set_limits,
                                    start_algo, stop_algo)
``exec.journal.event.<account>``    ``execution.v1.JournalEntry``   every order change, fill,
                                    (order, fill, risk_state,       risk state it follows and
                                    algo_progress)                  algo change (algos.py)
==================================  ==============================  ===========================

A write returns once JetStream has acknowledged it (stored in the server's file store), so a
call that answered has its command on disk: after a SIGKILL of the service the replay gives it
back. A call's command and the events it produced are written together, as one message holding
a ``JournalBatch`` (:meth:`Journal.write_batch`: one acknowledgement instead of one per entry;
the OMS's barrier writes what a call decided before each venue request, the rest goes before
the call answers). Replay gives a batch's entries one by one, as if each were a message; a
batch is on ``exec.journal.command.<account>`` when it starts with a command (its account),
else on ``exec.journal.event.<account>`` of its first entry. A write may carry a message id
(``Nats-Msg-Id``): JetStream stores a second message with the same id within
:data:`DUPLICATE_WINDOW_S` once only, and says so in its acknowledgement.

Fills are also published as the event contract ``exec.fill.<account>`` into their own stream,
``EXEC_FILLS`` (message id: the fill id), so a consumer such as the RiskService can read them
durably: a fill is published there once the journal holds it (never before, so the stream never
has a fill the journal lacks), and every start or rebuild publishes every journaled fill the
stream lacks (:meth:`Journal.fill_ids`). Order updates and positions go out
on core NATS (the latest state is what matters and the journal keeps it).

The service also reads the RiskService's trading states: the latest ``risk.state.<account>`` of
every account, from the stream ``RISK_JOURNAL`` when it exists.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind
from tradecore.subjects import (
    ExecJournalKind,
    ExecKind,
    RiskKind,
    exec_filter,
    exec_journal_filter,
    exec_journal_subject,
    exec_subject,
    risk_filter,
)
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common import tracing
from ..common.bus import JETSTREAM_UNAVAILABLE
from ..common.errors import UnavailableError
from ..common.nats_rpc import trace_headers
from ..common.settings import jetstream_replicas

log = logging.getLogger("tradecore.execution.journal")

STREAM = "EXEC_JOURNAL"
FILLS_STREAM = "EXEC_FILLS"
RISK_STREAM = "RISK_JOURNAL"
ACK_TIMEOUT_S = 5.0
FETCH_BATCH = 512
DUPLICATE_WINDOW_S = 120.0
MSG_ID = "Nats-Msg-Id"

_COMMANDS = frozenset(
    {"submit", "cancel", "replace", "set_trading_state", "set_limits", "start_algo", "stop_algo"}
)


def stream_config() -> StreamConfig:
    """Nothing is dropped: no age, size or count limit (the journal is the record)."""
    return StreamConfig(
        name=STREAM,
        subjects=[exec_journal_filter()],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=jetstream_replicas(),
    )


def fills_stream_config() -> StreamConfig:
    return StreamConfig(
        name=FILLS_STREAM,
        subjects=[exec_filter(ExecKind.FILL)],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=jetstream_replicas(),
    )


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)


def kind_of(entry: pb.JournalEntry) -> ExecJournalKind:
    """COMMAND for a command entry, EVENT for an event; a batch is the kind of its first entry
    (ValueError for an empty entry or batch)."""
    which = entry.WhichOneof("entry")
    if which == "batch":
        if not entry.batch.entries:
            raise ValueError("entry.batch: a batch holds at least one entry")
        return kind_of(entry.batch.entries[0])
    if which is None:
        raise ValueError("entry: a journal entry holds a command or an event")
    return ExecJournalKind.COMMAND if which in _COMMANDS else ExecJournalKind.EVENT


def entries_of(entry: pb.JournalEntry) -> list[pb.JournalEntry]:
    """The entries one journal message holds: a batch's, or the entry itself."""
    if entry.WhichOneof("entry") == "batch":
        return list(entry.batch.entries)
    return [entry]


def batch(entries: list[pb.JournalEntry], request_id: str = "") -> pb.JournalEntry:
    """One journal message holding ``entries`` (at least one; none a batch), in order."""
    if not entries:
        raise ValueError("entries: a batch holds at least one entry")
    first = entries[0]
    out = pb.JournalEntry(account=first.account, request_id=request_id, time_ns=first.time_ns)
    out.batch.entries.extend(entries)
    return out


Follower = Callable[[int, Sequence[pb.JournalEntry]], None]


class Journal:
    """Writes to and replays ``EXEC_JOURNAL`` on the service's NATS connection."""

    def __init__(self) -> None:
        self._js: JetStreamContext | None = None
        self._followers: list[Follower] = []

    def follow(self, follower: Follower) -> None:
        """Call ``follower(stream sequence, entries)`` (on the loop) with every journal message
        this journal stored (after JetStream acknowledged it; not a duplicate) or replayed."""
        self._followers.append(follower)

    def _stored(self, seq: int, entries: Sequence[pb.JournalEntry]) -> None:
        for follower in self._followers:
            follower(seq, entries)

    async def attach(self, nc: Client) -> None:
        """Use ``nc`` from now on (each new connection of the service's Bus); makes the
        streams when they do not exist."""
        js = nc.jetstream(timeout=ACK_TIMEOUT_S)
        await _ensure(js, stream_config())
        await _ensure(js, fills_stream_config())
        self._js = js

    def _context(self) -> JetStreamContext:
        if self._js is None:
            raise UnavailableError("NATS is not connected: the execution journal is unavailable")
        return self._js

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> PubAck:
        """Publish and wait for JetStream's acknowledgement (``duplicate``: JetStream had the
        message id already and did not store it again)."""
        js = self._context()
        with tracing.child_span(f"jetstream {subject}", SpanKind.PRODUCER, bytes=len(data)):
            try:
                return await js.publish(
                    subject, data, headers=tracing.headers_with_trace(headers) or None
                )
            except JETSTREAM_UNAVAILABLE as exc:
                raise UnavailableError(
                    f"the execution journal did not acknowledge {subject}"
                ) from exc

    async def write(self, entry: pb.JournalEntry, msg_id: str = "") -> bool:
        """Journal ``entry`` on ``exec.journal.<kind>.<account>`` and return once JetStream has
        stored it; True when ``msg_id`` was seen within the duplicate window (the entry is
        in the journal once, from the earlier write)."""
        subject = exec_journal_subject(kind_of(entry), entry.account)
        headers = trace_headers(entry.request_id) if entry.request_id else {}
        if msg_id:
            headers[MSG_ID] = msg_id
        ack = await self._publish(subject, entry.SerializeToString(), headers)
        if not ack.duplicate:
            self._stored(int(ack.seq), entries_of(entry))
        return bool(ack.duplicate)

    async def write_batch(self, entries: list[pb.JournalEntry], request_id: str = "") -> int:
        """Journal ``entries`` as one message (:func:`batch`) and return its stream sequence
        once JetStream has stored it."""
        message = batch(entries, request_id)
        subject = exec_journal_subject(kind_of(message), message.account)
        headers = trace_headers(request_id) if request_id else {}
        ack = await self._publish(subject, message.SerializeToString(), headers)
        self._stored(int(ack.seq), entries)
        return int(ack.seq)

    async def publish_fill(self, fill: events.Fill) -> None:
        """The fill contract on ``exec.fill.<account>``, stored in ``EXEC_FILLS`` (once per
        fill id within the duplicate window)."""
        subject = exec_subject(ExecKind.FILL, fill.account)
        await self._publish(subject, fill.SerializeToString(), {MSG_ID: fill.fill_id})

    async def fill_ids(self) -> set[str]:
        """The fill id of every fill contract in ``EXEC_FILLS``."""
        js = self._context()
        out: set[str] = set()
        async for _, subject, data in _read(js, FILLS_STREAM, exec_filter(ExecKind.FILL), False):
            try:
                out.add(events.Fill.FromString(data).fill_id)
            except DecodeError:
                log.warning("%s: not a Fill (%d bytes); skipped", subject, len(data))
        return out

    async def replay(self) -> AsyncIterator[tuple[int, pb.JournalEntry]]:
        """(stream sequence, entry) of every journaled entry, in the order they were written
        (a batch's entries one by one, with its sequence); each message is also given to the
        followers (:meth:`follow`)."""
        held: list[pb.JournalEntry] = []
        held_seq = 0
        async for seq, _, entry in self.records():
            if seq != held_seq and held:
                self._stored(held_seq, held)
                held = []
            held_seq = seq
            held.append(entry)
            yield seq, entry
        if held:
            self._stored(held_seq, held)

    async def records(self, after: int = 0) -> AsyncIterator[tuple[int, int, pb.JournalEntry]]:
        """(stream sequence, place in its message, entry) of every journaled entry of a
        message after stream sequence ``after``, in the order they were written."""
        js = self._context()
        async for seq, subject, data in _read(
            js, STREAM, exec_journal_filter(), last=False, after=after
        ):
            try:
                message = pb.JournalEntry.FromString(data)
            except DecodeError:
                log.error("%s #%d: not a JournalEntry (%d bytes); skipped", subject, seq, len(data))
                continue
            for i, entry in enumerate(entries_of(message)):
                yield seq, i, entry

    async def risk_states(self) -> dict[str, risk_events.TradingState]:
        """The latest ``risk.state.<account>`` of every account in ``RISK_JOURNAL`` (empty
        when the RiskService has not made the stream yet)."""
        js = self._context()
        try:
            await js.stream_info(RISK_STREAM)
        except NotFoundError:
            return {}
        out: dict[str, risk_events.TradingState] = {}
        async for _, subject, data in _read(js, RISK_STREAM, risk_filter(RiskKind.STATE), True):
            try:
                out[subject.rsplit(".", 1)[1]] = risk_events.TradingState.FromString(data)
            except DecodeError:
                log.warning("%s: not a TradingState (%d bytes); skipped", subject, len(data))
        return out


async def _read(
    js: JetStreamContext, stream: str, subject: str, last: bool, after: int = 0
) -> AsyncIterator[tuple[int, str, bytes]]:
    """(stream sequence, subject, data) of the stream's messages on ``subject`` present when
    the read starts: all of them (those after sequence ``after``), or the latest per subject
    when ``last``."""
    if last:
        policy, start = DeliverPolicy.LAST_PER_SUBJECT, None
    elif after > 0:
        policy, start = DeliverPolicy.BY_START_SEQUENCE, after + 1
    else:
        policy, start = DeliverPolicy.ALL, None
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=policy,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        ),
    )
    try:
        info = await sub.consumer_info()
        pending = info.num_pending or 0
        while pending > 0:
            msgs = await sub.fetch(min(FETCH_BATCH, pending), timeout=ACK_TIMEOUT_S)
            for m in msgs:
                md = m.metadata
                yield md.sequence.stream, m.subject, m.data
                pending = md.num_pending
    finally:
        await sub.unsubscribe()


__all__ = [
    "FILLS_STREAM",
    "STREAM",
    "Journal",
    "batch",
    "entries_of",
    "kind_of",
    "stream_config",
]
