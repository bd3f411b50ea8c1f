"""The OMS core (``tradecore.oms.oms``) inside the service: what each call decides journaled as
one message before a venue outside this process acts on it and before the call answers.

The OMS hands each event to its sink before applying it; the sink here only collects it (as a
``JournalEntry.oms``). Calls run one at a time, each until its last write is acknowledged, so the
journal always holds what the next call starts from; a caller that is cancelled does not cut its
call short. A write that fails leaves the OMS with events it applied but the journal may lack:
UnavailableError, and the service rebuilds from the journal before serving again
(:meth:`Engine.on_lost`). All access to the OMS (commands, venue reports, queries, conversions to
messages) happens inside a call: an event emitted outside one is refused (the sink raises).

Two ways to run a call:

* **Inline** (every venue runs in this process, e.g. the paper venue; the default then): the
  call runs on the event loop and everything it collected (command, events, venue answers) goes
  as ONE JetStream message; it answers once that is acknowledged. No venue request needs a
  barrier: an in-process venue's actions are seen by nobody before the call is stored, and when
  the write fails the rebuild makes the venue forget the orders the journal lacks
  (``PaperVenue.retain``). A filled marketable order costs one acknowledgement.
* **On the OMS thread** (a venue outside the process, e.g. Alpaca): the OMS calls the engine's
  barrier before every request it sends a venue; the barrier journals what was collected (the
  call's command first, then its events) as one message and waits for the acknowledgement, on
  the OMS thread, while the event loop does the write. What the call collected after its last
  venue request goes as one more message when the call returns (sent from the OMS thread, so the
  write is on its way while the loop wakes): a filled marketable order costs two
  acknowledgements, and the order is in the journal before the venue could have seen it (after
  a crash the OMS looks it up at the venue before any retry).

After a call's events are journaled, what it changed is published as the event contracts:
``exec.order.<account>`` (``events.v1.OrderUpdate``, the order after the call) and
``exec.position.<account>`` (``events.v1.Position``) on core NATS, best effort (the journal
keeps the latest state), and ``exec.fill.<account>`` (``events.v1.Fill``) into the stream
``EXEC_FILLS``, without the call waiting for that acknowledgement: a fill is already journaled
when it is published, and a fill EXEC_FILLS did not acknowledge makes the service rebuild, which
publishes every journaled fill the stream lacks (:meth:`Engine.publish_missing_fills`; the
stream stores a fill id once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from nats.aio.client import Client
from tradecore.oms.oms import OMS, OmsEvent, OrderFilled, OrderNotFound
from tradecore.oms.order import Order
from tradecore.oms.positions import Position
from tradecore.oms.pretrade import MarketReference, PreTradeControls
from tradecore.oms.venue import Venue
from tradecore.subjects import ExecKind, exec_subject
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common import tracing
from ..common.errors import NotFoundError, UnavailableError
from ..common.nats_rpc import publish
from . import convert
from .codec import Codec
from .journal import ACK_TIMEOUT_S, Journal

log = logging.getLogger("tradecore.execution.engine")

T = TypeVar("T")
#: The journal subject of an event about no known account (a venue reporting an unknown order).
NO_ACCOUNT = "_none"
CODEC = Codec(typing.get_args(OmsEvent))


@dataclass
class _Call:
    """What one call collected (filled inside the call)."""

    request_id: str = ""
    #: Entries not journaled yet: the call's command (until its first write), then events.
    pending: list[pb.JournalEntry] = field(default_factory=list)
    emitted: list[OmsEvent] = field(default_factory=list)
    #: A barrier's write failed: its outcome is unknown, nothing more is written.
    failed: bool = False


class Engine:
    """The OMS, its pre-trade controls and reference prices, on one thread."""

    def __init__(
        self,
        journal: Journal,
        venues: Mapping[str, Venue],
        clock_ns: Callable[[], int] = time.time_ns,
        *,
        inline: bool | None = None,
    ) -> None:
        self.journal = journal
        self.venues = dict(venues)
        self.clock_ns = clock_ns
        #: Calls run on the event loop, journaled once (see the module's docstring): by default
        #: when every venue runs in this process (``in_process``, the paper venue).
        self.inline = (
            all(getattr(v, "in_process", False) for v in self.venues.values())
            if inline is None
            else inline
        )
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="execution-oms")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serial: asyncio.Lock | None = None
        self._call: _Call | None = None  # the call running now
        self._nc: Client | None = None
        self._order_listeners: list[Callable[[events.OrderUpdate], None]] = []
        self._lost_listeners: list[Callable[[], None]] = []
        self._fills: set[asyncio.Task[None]] = set()  # EXEC_FILLS publishes in flight
        self._replayed_fills: list[tuple[str, bytes]] = []  # (fill id, contract) of the replay
        self.reference = MarketReference(clock_ns)
        self.oms = self._new_oms()

    def _new_oms(self) -> OMS:
        controls = PreTradeControls(self.reference)
        barrier = None if self.inline else self._barrier
        return OMS(self.venues, controls, self.clock_ns, sink=self._sink, barrier=barrier)

    def attach(self, nc: Client) -> None:
        self._nc = nc

    def on_order(self, listener: Callable[[events.OrderUpdate], None]) -> None:
        """Call ``listener`` (on the loop) with every order update published."""
        self._order_listeners.append(listener)

    def on_lost(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop) when a journal write's outcome is unknown (the OMS
        may hold what the journal lacks) or a journaled fill was not stored in EXEC_FILLS: the
        service rebuilds from the journal (which publishes the fill)."""
        self._lost_listeners.append(listener)

    def serial(self) -> asyncio.Lock:
        """Held by each call until its last write is acknowledged; a rebuild holds it while it
        reads the journal and replays it, so no call's write falls between the two."""
        if self._serial is None:
            self._serial = asyncio.Lock()
        return self._serial

    async def close(self) -> None:
        if self._fills:
            await asyncio.gather(*self._fills, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.shutdown, True)

    # -- the sink and the barrier (inside a call) ----------------------------------------

    def _account(self, event: OmsEvent) -> str:
        account = getattr(event, "account", "")
        if account:
            return str(account)
        try:
            return self.oms.order(event.order_id).account  # type: ignore[union-attr]
        except (AttributeError, OrderNotFound):
            return NO_ACCOUNT

    def _sink(self, event: OmsEvent) -> None:
        call = self._call
        if call is None:  # nothing would journal it: refused, the OMS stays as it was
            raise RuntimeError(f"{type(event).__name__} outside a call of the engine")
        name, data = CODEC.encode(event)
        entry = pb.JournalEntry(
            account=self._account(event),
            request_id=call.request_id,
            time_ns=event.time_ns,
            oms=pb.OmsRecord(type=name, json=data),
        )
        call.pending.append(entry)
        call.emitted.append(event)

    def _barrier(self) -> None:
        """Journal what the call collected, before the OMS sends a venue request."""
        call = self._call
        if call is None or not call.pending:
            return
        loop = self._loop
        if loop is None:
            raise UnavailableError("the execution journal is not attached")
        write = self.journal.write_batch(call.pending, call.request_id)
        future = asyncio.run_coroutine_threadsafe(write, loop)
        try:
            future.result(ACK_TIMEOUT_S + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            call.failed = True
            raise UnavailableError("the execution journal did not acknowledge a write") from None
        except BaseException:
            call.failed = True
            raise
        call.pending = []

    # -- calls ---------------------------------------------------------------------------

    async def call(
        self,
        fn: Callable[[OMS], T],
        request_id: str = "",
        command: pb.JournalEntry | None = None,
    ) -> T:
        """Run ``fn(oms)`` as one call (inline or on the OMS thread), journal ``command``
        (first) and the events it produced, then publish what it changed. ``fn`` converts
        what it returns to messages itself, and may fill in the command's account. The
        command is journaled with the call's first write; a call that raises before producing
        an event journals nothing. A caller that is cancelled (a gRPC client gone) does not
        cut the call short: once started it runs to its last write."""
        task = asyncio.ensure_future(self._run_call(fn, request_id, command))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    def _run(
        self, fn: Callable[[OMS], T], request_id: str, command: pb.JournalEntry | None
    ) -> tuple[T | None, BaseException | None, _Call, list[tuple[str, bytes, bool]]]:
        """``fn(oms)`` as one call: what it returned or raised, what it collected, and the
        contracts of what it emitted (on the OMS thread, or on the loop when inline)."""
        call = self._call = _Call(request_id, [command] if command is not None else [])
        try:
            try:
                result: T | None = fn(self.oms)
                error: BaseException | None = None
            except OrderNotFound as exc:
                result, error = None, NotFoundError(str(exc))
            except Exception as exc:
                result, error = None, exc
            if call.failed or (error is not None and not call.emitted):
                # a barrier's write failed (the service rebuilds), or the call was refused
                # before it changed anything: nothing (more) to journal
                call.pending = []
            return result, error, call, self._outgoing(call.emitted)
        finally:
            self._call = None

    async def _run_call(
        self, fn: Callable[[OMS], T], request_id: str, command: pb.JournalEntry | None
    ) -> T:
        loop = asyncio.get_running_loop()
        self._loop = loop
        with tracing.child_span("execution.oms"):
            async with self.serial():
                if self.inline:
                    result, error, call, outgoing = self._run(fn, request_id, command)
                    written: asyncio.Future[int] | None = (
                        asyncio.ensure_future(self.journal.write_batch(call.pending, request_id))
                        if call.pending
                        else None
                    )
                else:
                    result, error, call, outgoing, written = await self._on_thread(
                        loop, fn, request_id, command
                    )
                if call.failed:
                    self._lose()
                elif written is not None:
                    try:
                        await written
                    except BaseException:
                        self._lose()
                        raise
            if not call.failed:
                await self._publish(outgoing)
        if error is not None:
            raise error
        return typing.cast(T, result)

    async def _on_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[[OMS], T],
        request_id: str,
        command: pb.JournalEntry | None,
    ) -> tuple[
        T | None,
        BaseException | None,
        _Call,
        list[tuple[str, bytes, bool]],
        asyncio.Future[int] | None,
    ]:
        """:meth:`_run` on the OMS thread; its last write sent from there, so that it is on its
        way while the loop wakes."""

        def run() -> tuple[
            T | None,
            BaseException | None,
            _Call,
            list[tuple[str, bytes, bool]],
            concurrent.futures.Future[int] | None,
        ]:
            result, error, call, outgoing = self._run(fn, request_id, command)
            written = (
                asyncio.run_coroutine_threadsafe(
                    self.journal.write_batch(call.pending, request_id), loop
                )
                if call.pending
                else None
            )
            return result, error, call, outgoing, written

        ctx = contextvars.copy_context()
        result, error, call, outgoing, written = await loop.run_in_executor(
            self._thread, ctx.run, run
        )
        return (
            result,
            error,
            call,
            outgoing,
            None if written is None else asyncio.wrap_future(written),
        )

    def _lose(self) -> None:
        """A write's outcome is unknown and the OMS may be ahead of the journal: rebuild."""
        for listener in self._lost_listeners:
            listener()

    async def replay(self, records: Iterable[pb.OmsRecord]) -> int:
        """Rebuild a fresh OMS from journaled events (no venue is called)."""
        decoded = [CODEC.decode(r.type, r.json) for r in records]

        def run() -> list[tuple[str, bytes]]:
            self.oms = self._new_oms()
            self.oms.replay(decoded)
            self._retain_at_venues()
            fills = []
            for e in decoded:
                if isinstance(e, OrderFilled):
                    data = order_fill(self.oms.order(e.order_id), e)
                    fills.append((events.Fill.FromString(data).fill_id, data))
            return fills

        loop = asyncio.get_running_loop()
        self._replayed_fills = await loop.run_in_executor(self._thread, run)
        return len(decoded)

    def _retain_at_venues(self) -> None:
        """An in-process venue forgets the orders the journal lacks: without a barrier (an
        inline engine) a call whose write failed may have reached it (PaperVenue.retain)."""
        known = {o.order_id for o in self.oms.orders()}
        for name, venue in self.venues.items():
            retain = getattr(venue, "retain", None)
            if retain is None:
                continue
            forgotten = retain(known)
            if forgotten:
                log.warning(
                    "execution: %s forgot %d orders the journal lacks: %s",
                    name,
                    len(forgotten),
                    ", ".join(forgotten[:10]),
                )

    async def publish_missing_fills(self, stored: set[str]) -> int:
        """Publish into EXEC_FILLS every fill of the last replay whose id is not in ``stored``
        (the ids EXEC_FILLS holds): fills journaled by a call that EXEC_FILLS never
        acknowledged. UnavailableError when one is not acknowledged (the rebuild is retried)."""
        missing = [data for fill_id, data in self._replayed_fills if fill_id not in stored]
        for data in missing:
            await self.journal.publish_fill(events.Fill.FromString(data))
        self._replayed_fills = []
        return len(missing)

    # -- contracts (OMS thread) ------------------------------------------------------------

    def _outgoing(self, emitted: list[OmsEvent]) -> list[tuple[str, bytes, bool]]:
        """(subject, payload, into EXEC_FILLS) of everything the events changed: each touched
        order once, after the call; each fill; each touched position."""
        out: list[tuple[str, bytes, bool]] = []
        orders: dict[str, None] = {}
        positions: dict[tuple[str, str], None] = {}
        for e in emitted:
            oid = getattr(e, "order_id", "")
            if oid and self._known(oid):
                orders[oid] = None
            if isinstance(e, OrderFilled):
                order = self.oms.order(e.order_id)
                fill = order_fill(order, e)
                out.append((exec_subject(ExecKind.FILL, order.account), fill, True))
                positions[(order.account, e.symbol)] = None
        for oid in orders:
            order = self.oms.order(oid)
            update = order_update(order).SerializeToString()
            out.append((exec_subject(ExecKind.ORDER, order.account), update, False))
        for account, symbol in positions:
            p = self.oms.positions.get(account, symbol)
            if p is not None:
                msg = position_event(p).SerializeToString()
                out.append((exec_subject(ExecKind.POSITION, account), msg, False))
        return out

    def _known(self, order_id: str) -> bool:
        try:
            self.oms.order(order_id)
        except OrderNotFound:
            return False
        return True

    async def _publish(self, outgoing: list[tuple[str, bytes, bool]]) -> None:
        """Publish the contracts of journaled events: order updates and positions on core
        NATS (best effort: a lost one is logged), fills into EXEC_FILLS in the background
        (in order, on the one connection); a fill not acknowledged there makes the service
        rebuild, which publishes it again."""
        nc = self._nc
        for subject, data, durable in outgoing:
            if durable:
                task = asyncio.create_task(self._publish_fill(subject, data))
                self._fills.add(task)
                task.add_done_callback(self._fills.discard)
                continue
            if self._order_listeners and subject.startswith("exec.order."):
                update = events.OrderUpdate.FromString(data)
                for listener in self._order_listeners:
                    listener(update)
            if nc is not None:
                try:
                    await publish(nc, subject, data)
                except Exception as exc:  # journaled already
                    log.warning("%s: not published: %s", subject, exc)

    async def _publish_fill(self, subject: str, data: bytes) -> None:
        try:
            await self.journal.publish_fill(events.Fill.FromString(data))
        except Exception as exc:  # journaled already: the rebuild publishes it
            log.warning("%s: not stored in EXEC_FILLS (%s); rebuilding", subject, exc)
            self._lose()


def _retrieve(task: asyncio.Future[typing.Any]) -> None:
    """Mark a call's outcome retrieved: its caller may have been cancelled."""
    if not task.cancelled():
        task.exception()


def order_message(o: Order) -> pb.Order:
    out = pb.Order(
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        account=o.account,
        symbol=o.symbol,
        side=convert.SIDE_OF[o.side],
        quantity=o.quantity,
        type=convert.TYPE_OF[o.type],
        time_in_force=convert.TIF_OF[o.time_in_force],
        venue=convert.VENUE_OF.get(o.venue, pb.VENUE_UNSPECIFIED),
        status=convert.STATUSES[o.status],
        filled_quantity=o.filled_quantity,
        leaves_quantity=o.leaves,
        average_price=o.average_fill_price,
        reason=o.reason,
        venue_order_id=o.venue_order_id,
        replaced_by_order_id=o.replaced_by,
        created_time_ns=o.created_ns,
        updated_time_ns=o.updated_ns,
    )
    if o.limit_price is not None:
        out.limit_price = o.limit_price
    if o.stop_price is not None:
        out.stop_price = o.stop_price
    if o.status.value == "DENIED":
        out.reason_code = o.reason
    for leg in o.legs:
        out.legs.add(symbol=leg.symbol, side=convert.SIDE_OF[leg.side], ratio=leg.ratio)
    return out


def order_update(o: Order) -> events.OrderUpdate:
    m = order_message(o)
    u = events.OrderUpdate(
        order_id=m.order_id,
        client_order_id=m.client_order_id,
        account=m.account,
        side=m.side,
        type=m.type,
        time_in_force=m.time_in_force,
        quantity=m.quantity,
        limit_price=m.limit_price,
        stop_price=m.stop_price,
        status=m.status,
        filled_quantity=m.filled_quantity,
        leaves_quantity=m.leaves_quantity,
        average_fill_price=m.average_price,
        venue=o.venue,
        venue_order_id=m.venue_order_id,
        reason=m.reason,
        replaced_by_order_id=m.replaced_by_order_id,
        created_time_ns=m.created_time_ns,
    )
    u.instrument.symbol = o.symbol
    return u


def order_fill(o: Order, e: OrderFilled) -> bytes:
    f = events.Fill(
        # unique across venues: the venue's id, prefixed by the venue unless it already is
        fill_id=e.fill_id if e.fill_id.startswith(f"{e.venue}-") else f"{e.venue}-{e.fill_id}",
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        account=o.account,
        side=convert.SIDE_OF[e.side],
        quantity=e.quantity,
        price=e.price,
        venue=e.venue,
        fee=e.fee,
        exchange_time_ns=e.time_ns,
        receive_time_ns=e.time_ns,
    )
    f.instrument.symbol = e.symbol
    if e.liquidity is not None:
        f.liquidity = events.MAKER if e.liquidity.value == "MAKER" else events.TAKER
    return bytes(f.SerializeToString())


def position_message(p: Position) -> pb.Position:
    return pb.Position(
        symbol=p.symbol,
        quantity=p.quantity,
        average_cost=p.average_cost,
        realized_pnl=p.realized_pnl,
        unrealized_pnl=p.unrealized_pnl,
        mark_price=p.mark_price,
    )


def position_event(p: Position) -> events.Position:
    e = events.Position(
        account=p.account,
        quantity=p.quantity,
        average_price=p.average_cost,
        mark_price=p.mark_price,
        mark_time_ns=p.mark_ns,
        realized_pnl=p.realized_pnl,
        unrealized_pnl=p.unrealized_pnl,
        event_time_ns=p.updated_ns,
    )
    e.instrument.symbol = p.symbol
    return e


__all__ = ["CODEC", "Engine", "order_message", "position_message"]
