"""The execution service's state, wired to NATS: the journal (journal.py), the trading states
(state.py) and the OMS (engine.py).

On each new NATS connection of the service's Bus, :class:`Execution` (1) attaches the journal;
(2) subscribes to the RiskService's trading states, ``risk.state.*``, and to quotes,
``md.*.*.quote`` (reference prices of the price collars, marks of the positions); and (3) the
first time, rebuilds its state by replaying the journal in order (the OMS from its events) and
publishes into ``EXEC_FILLS`` every journaled fill that stream lacks, then
takes the latest trading state of every account from the stream ``RISK_JOURNAL`` (a state the
subscription delivered meanwhile is kept when it is newer: states carry a sequence per account),
gives the OMS every account's effective mode, and asks the venues about orders sent but not
answered before the restart (``OMS.resume``).

Order commands (SubmitOrder, CancelOrder, ReplaceOrder) and SetLimits are run by the OMS; the
command and the events it produced are journaled together (engine.py: one message before each
venue request, one for the rest), and the call answers after that. A command refused before it
changed anything (an unknown order, a replace the order's state does not allow) is not
journaled. A resubmitted ``client_order_id`` returns the existing order.

A trading state from the RiskService takes effect as it arrives (a halt never waits for a
write) and is then journaled as an event, so the journal records what the pre-trade controls
saw. A command (SetTradingState) is journaled first and applied once JetStream acknowledged it,
and only then does the call answer: an answered change survives a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from tradecore.oms.oms import OMS
from tradecore.oms.order import Leg
from tradecore.oms.pretrade import TradingMode
from tradecore.oms.reconcile import Policy, ReconcileResult, reconcile
from tradecore.subjects import MdKind, RiskKind, md_filter, risk_filter
from tradecore_api.events.v1 import common_pb2, market_pb2
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common import tracing
from ..common.bus import Bus
from ..common.errors import PreconditionError, ResourceExhaustedError, UnavailableError
from . import convert
from .algos import AlgoCalls, Algos, replay_entry
from .convert import account, check_mode
from .engine import Engine, order_message, position_message
from .journal import Journal
from .paper_feed import PaperFeed
from .reconciliation import failed_accounts, policy_of, result_message
from .state import TradingStates

log = logging.getLogger("tradecore.execution")
T = TypeVar("T")

#: How long an RPC waits for the journal to be replayed at start before UNAVAILABLE.
RESTORE_WAIT_S = 5.0
REBUILD_RETRY_S = 1.0
MAX_LIST = 1000
#: Order updates a StreamOrderUpdates reader may fall behind by before its stream ends.
STREAM_BUFFER = 1024
_OMS_MODE: dict[int, TradingMode] = {
    risk_events.ENABLED: TradingMode.ACTIVE,
    risk_events.REDUCE_ONLY: TradingMode.REDUCE_ONLY,
    risk_events.HALTED: TradingMode.HALTED,
}


def apply(states: TradingStates, entry: pb.JournalEntry) -> None:
    """Apply one journal entry (at replay, and after a command is journaled)."""
    which = entry.WhichOneof("entry")
    if which == "set_trading_state":
        req = entry.set_trading_state
        held = states.operator.get(req.account)
        states.set_operator(
            risk_events.TradingState(
                account=req.account,
                mode=req.mode,
                reason=req.reason,
                changed_by=req.changed_by,
                event_time_ns=entry.time_ns,
                sequence=(held.sequence if held is not None else 0) + 1,
            )
        )
    elif which == "risk_state":
        states.set_risk(entry.risk_state)


class Execution:
    """The journaled state of every account and the logic of the RPCs that change it."""

    def __init__(
        self,
        bus: Bus,
        journal: Journal,
        engine: Engine,
        paper: PaperFeed | None = None,
        *,
        start_policy: Policy | None = None,
    ) -> None:
        self.bus = bus
        #: The policy of the reconciliation of every venue at start (None: none).
        self.start_policy = start_policy
        #: The results of the reconciliation at start, by venue.
        self.start_results: dict[str, pb.ReconcileResponse] = {}
        self.journal = journal
        self.engine = engine
        self.paper = paper
        self.states = TradingStates()
        self.restored = asyncio.Event()
        self.replayed = 0  # journal entries replayed at start
        self._rebuilding: asyncio.Task[None] | None = None
        self._watchers: dict[str, set[asyncio.Queue[events.OrderUpdate | None]]] = {}
        self.closing = asyncio.Event()
        self._overflowed: set[int] = set()
        engine.on_order(self._offer_update)
        #: The execution algorithms (algos.py): their engine runs on the OMS thread.
        self.algos = Algos()
        self.algo_calls = AlgoCalls(self)
        engine.on_lost(self._lost)
        # One change RPC at a time: each reads the account's sequence, journals, then applies.
        self._changing = asyncio.Lock()
        bus.on_connect(self._on_connect)

    # -- NATS --------------------------------------------------------------------------

    async def _on_connect(self, nc: Client) -> None:
        await self.journal.attach(nc)
        self.engine.attach(nc)
        await nc.subscribe(risk_filter(RiskKind.STATE), cb=self._on_risk_state)
        await nc.subscribe(md_filter(MdKind.QUOTE), cb=self._on_quote)
        if self.paper is not None:
            await nc.subscribe(md_filter(MdKind.TRADE), cb=self._on_trade)
        if not self.restored.is_set():
            await self._restore()

    async def _restore(self) -> None:
        """Rebuild the state from the whole journal into fresh objects, then take the latest
        RiskService states (a newer one that arrived meanwhile is kept)."""
        states = TradingStates()
        records: list[pb.OmsRecord] = []
        starts: dict[str, pb.AlgoStart] = {}
        progress: dict[str, pb.AlgoProgress] = {}
        stops: dict[str, str] = {}
        n = 0
        async with self.engine.serial():
            async for _, entry in self.journal.replay():
                if entry.WhichOneof("entry") == "oms":
                    records.append(entry.oms)
                elif not replay_entry(entry, starts, progress, stops):
                    apply(states, entry)
                n += 1
            await self.engine.replay(records)
        await self.engine.call(lambda oms: self.algos.rebuild(oms, starts, progress, stops))
        republished = await self.engine.publish_missing_fills(await self.journal.fill_ids())
        if republished:
            log.warning("execution: %d journaled fills were missing from EXEC_FILLS", republished)
        held = list(self.states.risk.values())
        self.states = states
        for state in held:
            states.set_risk(state)
        for state in (await self.journal.risk_states()).values():
            if states.set_risk(state):
                await self._journal_risk_state(state)
        for acct in set(states.operator) | set(states.risk):
            await self._sync_mode(acct)
        await self._oms(lambda oms: oms.resume())
        if self.start_policy is not None:
            for venue in self.engine.venues:
                result = await self._reconcile(venue, "", self.start_policy, "start")
                self.start_results[venue] = result
                if not result.clean:
                    log.warning(
                        "execution: reconciliation with %s at start: %s",
                        venue,
                        result.detail or f"{len(result.breaks)} breaks",
                    )
        await self._oms(self.algos.resume)  # algos carry on (HALTED accounts' stopped above)
        self.algo_calls.run()
        self.replayed = n
        log.info("execution: %d journal entries replayed", n)
        self.restored.set()

    async def _rebuild(self) -> None:
        """After a write whose outcome is unknown: replay until it succeeds (calls wait)."""
        while not self.restored.is_set():
            try:
                await self._restore()
            except Exception as exc:  # NATS still away: try again
                log.warning("execution: journal replay failed (%s); retrying", exc)
                await asyncio.sleep(REBUILD_RETRY_S)
        self._rebuilding = None

    def _lost(self) -> None:
        """A write's outcome is unknown: rebuild from the journal before the next call."""
        self.restored.clear()
        if self._rebuilding is None:
            self._rebuilding = asyncio.create_task(self._rebuild(), name="execution-rebuild")

    async def _write_command(self, entry: pb.JournalEntry, msg_id: str = "") -> None:
        """Journal a command. When JetStream's acknowledgement does not come, the command may
        still be stored: the state is then rebuilt from the journal before the next call is
        served, so memory never differs from what a restart would rebuild."""
        try:
            await self.journal.write(entry, msg_id)
        except UnavailableError:
            self._lost()
            raise

    async def _oms(
        self, fn: Callable[[OMS], T], request_id: str = "", command: pb.JournalEntry | None = None
    ) -> T:
        """Run ``fn`` on the OMS, ``command`` and its events journaled (engine.py), then journal
        the progress of every algo it changed; a journal write that failed leaves the OMS ahead
        of the journal, which may or may not hold the write: rebuild from the journal."""
        paper = self.paper
        algos = self.algos

        def run(oms: OMS) -> tuple[T, list[pb.JournalEntry]]:
            if paper is not None:  # the paper venue's clock is market time: bring it to now
                paper.tick()
            result = fn(oms)
            return result, algos.collect(oms.clock_ns())

        try:
            result, progress = await self.engine.call(run, request_id, command)
            for entry in progress:
                await self.journal.write(entry)
        except UnavailableError:
            self._lost()
            raise
        return result

    async def _on_risk_state(self, msg: Msg) -> None:
        try:
            state = risk_events.TradingState.FromString(msg.data)
            account("account", state.account)
        except (DecodeError, ValueError) as exc:
            log.warning("%s: trading state skipped: %s", msg.subject, exc)
            return
        with tracing.consume_span(f"consume {msg.subject}", msg.headers):
            await self._take_risk_state(state)

    async def _take_risk_state(self, state: risk_events.TradingState) -> None:
        if not self.states.set_risk(state):
            return
        await self._journal_risk_state(state)
        if self.restored.is_set():
            await self._sync_mode(state.account)

    async def _on_quote(self, msg: Msg) -> None:
        try:
            quote = market_pb2.Quote.FromString(msg.data)
        except DecodeError:
            return
        symbol = msg.subject.split(".")[2]
        bid, ask = quote.bid_price, quote.ask_price
        paper = self.paper

        def mark(oms: OMS) -> None:
            self.engine.reference.quote(symbol, bid, ask)
            mid = self.engine.reference.reference(symbol)
            if mid is not None:
                oms.mark(symbol, mid)
            if paper is not None:
                paper.quote(symbol, bid, quote.bid_size, ask, quote.ask_size)
            self.algos.on_quote(symbol, bid, ask, oms.clock_ns())

        if self.restored.is_set():
            with tracing.consume_span(f"consume {msg.subject}", msg.headers):
                await self._market(msg.subject, mark)

    async def _on_trade(self, msg: Msg) -> None:
        try:
            trade = market_pb2.Trade.FromString(msg.data)
        except DecodeError:
            return
        paper = self.paper
        if paper is None or not self.restored.is_set():
            return
        symbol = msg.subject.split(".")[2]
        aggressor = {common_pb2.BUY: True, common_pb2.SELL: False}.get(trade.aggressor)

        def take(oms: OMS) -> None:
            paper.trade(symbol, trade.price, trade.size, aggressor)
            self.algos.on_trade(symbol, trade.price, trade.size, oms.clock_ns())

        await self._market(msg.subject, take)

    async def _market(self, subject: str, fn: Callable[[OMS], None]) -> None:
        """Market data into the OMS thread; what it makes the venue report is journaled there
        (a journal failure triggers a rebuild, as for a command)."""
        try:
            await self._oms(fn)
        except Exception as exc:
            log.warning("%s: not applied: %s", subject, exc)

    async def _sync_mode(self, acct: str, reason: str = "", changed_by: str = "") -> None:
        """Give the OMS the account's effective mode when it differs from the one its controls
        hold (HALTED cancels the account's open orders there)."""
        mode = _OMS_MODE[self.states.mode(acct)]

        def sync(oms: OMS) -> None:
            if oms.controls.mode(acct) is not mode:
                oms.set_trading_state(acct, mode, reason, changed_by or "execution")
            if mode is TradingMode.HALTED:
                self.algos.halt(acct)

        await self._oms(sync)

    async def _journal_risk_state(self, state: risk_events.TradingState) -> None:
        entry = pb.JournalEntry(account=state.account, time_ns=time.time_ns())
        entry.risk_state.CopyFrom(state)
        try:
            await self.journal.write(entry)
        except UnavailableError as exc:
            log.error("risk state of %s not journaled: %s", state.account, exc)

    # -- replay ------------------------------------------------------------------------

    async def stop(self) -> None:
        await self.algo_calls.stop()
        task, self._rebuilding = self._rebuilding, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- RPCs --------------------------------------------------------------------------

    async def _ready(self) -> None:
        try:
            await asyncio.wait_for(self.restored.wait(), RESTORE_WAIT_S)
        except TimeoutError:
            raise UnavailableError(
                "NATS is unreachable: the execution journal has not been replayed yet"
            ) from None

    async def set_trading_state(
        self, request: pb.SetTradingStateRequest, request_id: str = ""
    ) -> pb.TradingState:
        account("account", request.account)
        check_mode("mode", request.mode)
        await self._ready()
        await self._operator_state(request, request_id)
        return self.states.get(request.account)

    async def _operator_state(self, request: pb.SetTradingStateRequest, request_id: str) -> None:
        """Journal the operator's trading state, then apply it (the OMS's mode follows)."""
        entry = pb.JournalEntry(account=request.account, request_id=request_id)
        entry.set_trading_state.CopyFrom(request)
        if not entry.set_trading_state.changed_by:
            entry.set_trading_state.changed_by = "operator"
        async with self._changing:
            entry.time_ns = time.time_ns()
            await self._write_command(entry)
            apply(self.states, entry)
            req = entry.set_trading_state
            await self._sync_mode(request.account, req.reason, req.changed_by)

    # -- reconciliation ----------------------------------------------------------------

    async def reconcile(
        self, request: pb.ReconcileRequest, request_id: str = ""
    ) -> pb.ReconcileResponse:
        acct = account("account", request.account)
        policy = policy_of(request.policy)
        venue = self._venue(convert.venue(request.venue))
        await self._ready()
        return await self._reconcile(venue, acct, policy, request_id)

    async def _reconcile(
        self, venue: str, acct: str, policy: Policy, request_id: str
    ) -> pb.ReconcileResponse:
        """Reconcile (ADOPT_VENUE's events journaled by the OMS's sink); then every account
        that failed it (breaks under HALT, unadopted breaks under ADOPT_VENUE) is HALTED by the
        operator's trading state, journaled, so it stays halted until SetTradingState."""
        run = Policy.REPORT if policy is Policy.HALT else policy
        result: ReconcileResult = await self._oms(
            lambda oms: reconcile(oms, venue, acct, run), request_id
        )
        if policy is Policy.HALT:
            result = dataclasses.replace(result, policy=Policy.HALT)
        halted = failed_accounts(result)
        for failed in halted:
            n = sum(1 for b in result.breaks if b.account == failed)
            await self._operator_state(
                pb.SetTradingStateRequest(
                    account=failed,
                    mode=risk_events.HALTED,
                    reason=f"reconciliation with {venue}: {n} breaks",
                    changed_by="reconciliation",
                ),
                request_id,
            )
        return result_message(result, halted)

    async def get_trading_state(self, request: pb.GetTradingStateRequest) -> pb.TradingState:
        account("account", request.account)
        await self._ready()
        return self.states.get(request.account)

    # -- orders ------------------------------------------------------------------------

    def _venue(self, name: str) -> str:
        if name not in self.engine.venues:
            raise PreconditionError(
                f"venue: {name} is not enabled in this execution service (running: "
                f"{', '.join(sorted(self.engine.venues))}; ALPACA needs Alpaca credentials)"
            )
        return name

    async def submit_order(self, request: pb.SubmitOrderRequest, request_id: str = "") -> pb.Order:
        spec = convert.order_spec(request)
        venue = self._venue(spec.venue)
        await self._ready()
        entry = pb.JournalEntry(account=spec.account, request_id=request_id, time_ns=time.time_ns())
        entry.submit.CopyFrom(request)
        legs = tuple(Leg(leg.symbol, leg.side, leg.ratio) for leg in spec.legs)

        def submit(oms: OMS) -> pb.Order:
            order = oms.submit(
                account=spec.account,
                client_order_id=spec.client_order_id,
                symbol=spec.symbol,
                side=spec.side,
                quantity=spec.quantity,
                type=spec.type,
                time_in_force=spec.time_in_force,
                limit_price=spec.limit_price,
                stop_price=spec.stop_price,
                venue=venue,
                legs=legs,
            )
            return order_message(order)

        return await self._oms(submit, request_id, entry)

    async def cancel_order(self, request: pb.CancelOrderRequest, request_id: str = "") -> pb.Order:
        order_id = _order_id(request.order_id)
        await self._ready()
        entry = pb.JournalEntry(request_id=request_id, time_ns=time.time_ns())
        entry.cancel.CopyFrom(request)

        def cancel(oms: OMS) -> pb.Order:
            entry.account = oms.order(order_id).account
            return order_message(oms.cancel(order_id))

        return await self._oms(cancel, request_id, entry)

    async def replace_order(
        self, request: pb.ReplaceOrderRequest, request_id: str = ""
    ) -> pb.Order:
        order_id = _order_id(request.order_id)
        quantity = request.quantity if request.HasField("quantity") else None
        limit = request.limit_price if request.HasField("limit_price") else None
        if quantity is not None and not 0 < quantity <= convert.MAX_QUANTITY:
            raise ValueError(f"quantity: must be in 1..{convert.MAX_QUANTITY}, got {quantity}")
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"limit_price: must be a finite number > 0, got {limit!r}")
        if quantity is None and limit is None:
            raise ValueError("quantity: give a new quantity, a new limit_price, or both")
        await self._ready()
        entry = pb.JournalEntry(request_id=request_id, time_ns=time.time_ns())
        entry.replace.CopyFrom(request)

        def replace(oms: OMS) -> pb.Order:
            order = oms.order(order_id)
            entry.account = order.account
            return order_message(
                oms.replace(order_id, order.quantity if quantity is None else quantity, limit)
            )

        return await self._oms(replace, request_id, entry)

    async def get_order(self, request: pb.GetOrderRequest) -> pb.Order:
        order_id = _order_id(request.order_id)
        await self._ready()
        return await self._oms(lambda oms: order_message(oms.order(order_id)))

    async def list_orders(self, request: pb.ListOrdersRequest) -> pb.ListOrdersResponse:
        acct = account("account", request.account)
        if not 0 <= request.limit <= MAX_LIST:
            raise ValueError(
                f"limit: must be in 0..{MAX_LIST} (0: {MAX_LIST}), got {request.limit}"
            )
        limit = request.limit or MAX_LIST
        await self._ready()

        def orders(oms: OMS) -> pb.ListOrdersResponse:
            found = oms.open_orders(acct) if request.open_only else oms.orders(acct)
            found = sorted(found, key=lambda o: o.created_ns, reverse=True)[:limit]
            return pb.ListOrdersResponse(orders=[order_message(o) for o in found])

        return await self._oms(orders)

    def _offer_update(self, update: events.OrderUpdate) -> None:
        for q in self._watchers.get(update.account, ()):
            if q.full():  # the reader is STREAM_BUFFER updates behind: its stream ends
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
                self._overflowed.add(id(q))
            elif id(q) not in self._overflowed:
                q.put_nowait(update)

    async def stream_order_updates(
        self, request: pb.StreamOrderUpdatesRequest
    ) -> AsyncIterator[events.OrderUpdate]:
        """Every change of the account's orders from now on, until the caller cancels or the
        service shuts down (:meth:`close_streams`). A reader that falls STREAM_BUFFER updates
        behind is ended with RESOURCE_EXHAUSTED (it reconnects and reads ListOrders) rather
        than missing an order's latest state."""
        acct = account("account", request.account)
        await self._ready()
        q: asyncio.Queue[events.OrderUpdate | None] = asyncio.Queue(STREAM_BUFFER)
        watchers = self._watchers.setdefault(acct, set())
        watchers.add(q)
        try:
            while not self.closing.is_set():
                update = await q.get()
                if update is None:
                    if id(q) in self._overflowed:
                        raise ResourceExhaustedError(
                            f"account {acct}: the reader fell {STREAM_BUFFER} order updates "
                            "behind; reconnect and read ListOrders"
                        )
                    return
                yield update
        finally:
            self._overflowed.discard(id(q))
            watchers.discard(q)
            if not watchers:
                self._watchers.pop(acct, None)

    async def close_streams(self) -> None:
        """End every StreamOrderUpdates cleanly (the server is shutting down)."""
        self.closing.set()
        for qs in self._watchers.values():
            for q in qs:
                if q.full():
                    q.get_nowait()
                q.put_nowait(None)

    async def get_positions(self, request: pb.GetPositionsRequest) -> pb.GetPositionsResponse:
        acct = account("account", request.account)
        await self._ready()

        def positions(oms: OMS) -> pb.GetPositionsResponse:
            held = sorted(oms.positions.positions(acct), key=lambda p: p.symbol)
            return pb.GetPositionsResponse(
                account=acct, positions=[position_message(p) for p in held]
            )

        return await self._oms(positions)

    async def set_limits(self, request: pb.SetLimitsRequest, request_id: str = "") -> pb.Limits:
        acct = account("account", request.account)
        if request.limits.account and request.limits.account != acct:
            raise ValueError(f"limits.account: must be empty or {acct!r}")
        limits = convert.limits_of(request.limits)
        await self._ready()
        entry = pb.JournalEntry(account=acct, request_id=request_id, time_ns=time.time_ns())
        entry.set_limits.CopyFrom(request)

        def set_limits(oms: OMS) -> pb.Limits:
            oms.set_limits(acct, limits)
            return convert.limits_message(acct, oms.controls.limits(acct))

        return await self._oms(set_limits, request_id, entry)

    async def get_limits(self, request: pb.GetLimitsRequest) -> pb.Limits:
        acct = account("account", request.account)
        await self._ready()
        return await self._oms(lambda oms: convert.limits_message(acct, oms.controls.limits(acct)))


def _order_id(value: str) -> str:
    if not value:
        raise ValueError("order_id: must not be empty")
    if len(value) > convert.MAX_CLIENT_ORDER_ID:
        raise ValueError(f"order_id: at most {convert.MAX_CLIENT_ORDER_ID} characters")
    return value


__all__ = ["RESTORE_WAIT_S", "Execution", "apply"]
