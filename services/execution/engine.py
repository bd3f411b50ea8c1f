"""The OMS core (``tradecore.oms.oms``) inside the service: on a thread of its own, every event
journaled before the OMS applies it.

The OMS hands each event to its sink before applying it, and a sink that raises leaves its state
unchanged and fails the command. The sink here journals the event (``JournalEntry.oms``) and
waits for JetStream's acknowledgement; it runs on the OMS thread and waits on the service's
event loop, which is free meanwhile (the call that runs the OMS awaits it from an executor). All
access to the OMS (commands, venue reports, queries, conversions to messages) happens on that
one thread, so nothing reads an order while another call changes it.

After a call, what it changed is published as the event contracts: ``exec.order.<account>``
(``events.v1.OrderUpdate``, the order after the call), ``exec.fill.<account>`` (``events.v1.Fill``,
into the stream ``EXEC_FILLS``) and ``exec.position.<account>`` (``events.v1.Position``). A fill
EXEC_FILLS did not acknowledge fails the call (UnavailableError: its events are journaled, the
caller retries with the same client_order_id); :meth:`Engine.publish_missing_fills` publishes
it after the rebuild that follows. Order updates and positions are best effort (core NATS).
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
    """What one call emitted (filled on the OMS thread)."""

    request_id: str = ""
    emitted: list[OmsEvent] = field(default_factory=list)


class Engine:
    """The OMS, its pre-trade controls and reference prices, on one thread."""

    def __init__(
        self,
        journal: Journal,
        venues: Mapping[str, Venue],
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.journal = journal
        self.venues = dict(venues)
        self.clock_ns = clock_ns
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="execution-oms")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._call = _Call()
        self._nc: Client | None = None
        self._order_listeners: list[Callable[[events.OrderUpdate], None]] = []
        self._replayed_fills: list[tuple[str, bytes]] = []  # (fill id, contract) of the replay
        self.reference = MarketReference(clock_ns)
        self.oms = self._new_oms()

    def _new_oms(self) -> OMS:
        controls = PreTradeControls(self.reference)
        return OMS(self.venues, controls, self.clock_ns, sink=self._sink)

    def attach(self, nc: Client) -> None:
        self._nc = nc

    def on_order(self, listener: Callable[[events.OrderUpdate], None]) -> None:
        """Call ``listener`` (on the loop) with every order update published."""
        self._order_listeners.append(listener)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._thread.shutdown, True)

    # -- the sink (OMS thread) -----------------------------------------------------------

    def _account(self, event: OmsEvent) -> str:
        account = getattr(event, "account", "")
        if account:
            return str(account)
        try:
            return self.oms.order(event.order_id).account  # type: ignore[union-attr]
        except (AttributeError, OrderNotFound):
            return NO_ACCOUNT

    def _sink(self, event: OmsEvent) -> None:
        loop = self._loop
        if loop is None:
            raise UnavailableError("the execution journal is not attached")
        name, data = CODEC.encode(event)
        entry = pb.JournalEntry(
            account=self._account(event),
            request_id=self._call.request_id,
            time_ns=event.time_ns,
            oms=pb.OmsRecord(type=name, json=data),
        )
        # A fill is journaled once per (venue, fill id) within JetStream's duplicate window: a
        # venue report re-sent after a write whose outcome was unknown is not stored twice.
        msg_id = (
            f"fill.{event.venue}.{event.fill_id}"
            if isinstance(event, OrderFilled) and event.fill_id
            else ""
        )
        future = asyncio.run_coroutine_threadsafe(self.journal.write(entry, msg_id), loop)
        try:
            future.result(ACK_TIMEOUT_S + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise UnavailableError("the execution journal did not acknowledge an event") from None
        self._call.emitted.append(event)

    # -- calls ---------------------------------------------------------------------------

    async def call(self, fn: Callable[[OMS], T], request_id: str = "") -> T:
        """Run ``fn(oms)`` on the OMS thread (its events journaled as they are emitted), then
        publish what it changed. ``fn`` converts what it returns to messages itself."""
        loop = asyncio.get_running_loop()
        self._loop = loop

        def run() -> tuple[T, list[tuple[str, bytes, bool]]]:
            self._call = _Call(request_id)
            try:
                return fn(self.oms), self._outgoing(self._call.emitted)
            except OrderNotFound as exc:
                raise NotFoundError(str(exc)) from None
            finally:
                self._call = _Call()

        with tracing.child_span("execution.oms"):
            ctx = contextvars.copy_context()
            result, outgoing = await loop.run_in_executor(self._thread, ctx.run, run)
            await self._publish(outgoing)
        return result

    async def replay(self, records: Iterable[pb.OmsRecord]) -> int:
        """Rebuild a fresh OMS from journaled events (no venue is called)."""
        decoded = [CODEC.decode(r.type, r.json) for r in records]

        def run() -> list[tuple[str, bytes]]:
            self.oms = self._new_oms()
            self.oms.replay(decoded)
            fills = []
            for e in decoded:
                if isinstance(e, OrderFilled):
                    data = order_fill(self.oms.order(e.order_id), e)
                    fills.append((events.Fill.FromString(data).fill_id, data))
            return fills

        loop = asyncio.get_running_loop()
        self._replayed_fills = await loop.run_in_executor(self._thread, run)
        return len(decoded)

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
        """Publish the contracts; UnavailableError, after all were tried, when EXEC_FILLS did
        not acknowledge a fill (the others are best effort: a lost one is logged)."""
        nc = self._nc
        lost_fill: Exception | None = None
        for subject, data, durable in outgoing:
            if self._order_listeners and subject.startswith("exec.order."):
                update = events.OrderUpdate.FromString(data)
                for listener in self._order_listeners:
                    listener(update)
            try:
                if durable:
                    await self.journal.publish_fill(events.Fill.FromString(data))
                elif nc is not None:
                    await publish(nc, subject, data)
            except Exception as exc:  # journaled already
                log.warning("%s: not published: %s", subject, exc)
                if durable:
                    lost_fill = exc
        if lost_fill is not None:
            raise UnavailableError(
                f"EXEC_FILLS did not acknowledge a fill ({lost_fill}); it is published again "
                "once the state is rebuilt from the journal"
            ) from lost_fill


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
