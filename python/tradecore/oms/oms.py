"""The OMS core: commands become events, and state changes only by :meth:`OMS.apply`.

Every command (:meth:`OMS.submit`, :meth:`~OMS.cancel`, :meth:`~OMS.replace`,
:meth:`~OMS.set_limits`, :meth:`~OMS.set_trading_state`, :meth:`~OMS.kill_switch`,
:meth:`~OMS.end_session`, :meth:`~OMS.on_trade`) and every venue report produces events (the
dataclasses below). Each event goes first to the sink (the service journals and publishes it;
when the sink raises, the state is unchanged and the exception reaches the caller, so nothing
unjournaled is acknowledged), then to :meth:`OMS.apply`, the only code that changes orders,
positions, the idempotency index, the fill-id set and the controls' limits and trading states.
A sink may instead collect the events and store them together: the OMS then calls its
``barrier`` before every request it sends a venue (submit, cancel, replace), so what it
decided before a request is stored before the venue acts on it; the sink's owner stores the
rest before it answers the command. A barrier that raises leaves events applied but not stored:
the exception reaches the caller, who must rebuild the OMS from what was stored.
Replaying a session's events into a fresh OMS with :meth:`OMS.apply` therefore rebuilds the same
orders and positions; ``apply`` never calls a venue.

Submit path: validate (ValueError naming the field) -> a repeated ``client_order_id`` of the
account returns the existing order (one journaled as created but without the controls'
outcome, after a journal failure or a crash, finishes its submit path first) ->
``OrderCreated`` (INITIALIZED) -> pre-trade controls -> ``OrderDenied`` (DENIED with a
:class:`~tradecore.oms.pretrade.DenyReason`) or ``OrderSubmitted`` (SUBMITTED) and
``venue.submit`` (stops: ``StopArmed``, held by the OMS until :meth:`OMS.on_trade` sees the
stop price reached; see :mod:`tradecore.oms.order`).
When ``venue.submit`` raises TimeoutError the OMS asks ``venue.lookup(order_id)`` before any
retry: a venue that knows the order reports its state (adopted as a venue event), one that does
not gets the order again (up to ``submit_retries`` times); when the lookup itself fails the OMS
does not retry (the order may be live) and reports an ``ExecutionAnomaly``. After a restart
(:meth:`OMS.replay`), :meth:`OMS.resume` does the same for every order still SUBMITTED and
unanswered: look it up, adopt the venue's state, or send it.

Venue reports the state machine does not allow (an overfill, a partial fill of a FOK order, a
fill of a done order, an unknown order) become ``ExecutionAnomaly`` events: the order is left as
it was, and a fill is still booked into the position (the venue says we hold it). Fills are
deduplicated by (venue, fill id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tradecore.errors import TradecoreError, quote
from tradecore.oms.order import (
    Leg,
    Order,
    OrderStateError,
    OverfillError,
    Trigger,
    validate_order,
)
from tradecore.oms.positions import Position, PositionBook, PositionMode
from tradecore.oms.pretrade import DenyReason, Exposure, Limits, PreTradeControls, TradingMode
from tradecore.oms.types import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
)
from tradecore.oms.venue import Venue

__all__ = [
    "OMS",
    "AnomalyKind",
    "BookedFill",
    "CancelRejected",
    "CancelRequested",
    "ExecutionAnomaly",
    "LimitsSet",
    "OmsEvent",
    "OrderAccepted",
    "OrderCanceled",
    "OrderCreated",
    "OrderDenied",
    "OrderExpired",
    "OrderFilled",
    "OrderNotFound",
    "OrderRejected",
    "OrderReplaced",
    "OrderSubmitted",
    "ReplaceDenied",
    "ReplaceRejected",
    "ReplaceRequested",
    "StopArmed",
    "StopTriggered",
    "TradingStateSet",
    "VenueTimeout",
]


@dataclass(frozen=True, slots=True)
class BookedFill:
    """A fill the OMS booked (from an ``OrderFilled`` or a fill-carrying ``ExecutionAnomaly``)."""

    venue: str
    fill_id: str
    account: str
    order_id: str
    symbol: str
    side: Side
    quantity: int
    price: float
    time_ns: int


class OrderNotFound(TradecoreError):
    """A command named an order id the OMS does not know."""


class AnomalyKind(StrEnum):
    OVERFILL = "OVERFILL"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    SUBMIT_TIMEOUT = "SUBMIT_TIMEOUT"
    VENUE_ERROR = "VENUE_ERROR"


# ---- events (each carries its time; order events the order id) ----
@dataclass(frozen=True, slots=True)
class OrderCreated:
    time_ns: int
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: int
    limit_price: float | None
    stop_price: float | None
    venue: str
    legs: tuple[Leg, ...] = ()
    reduce_only: bool = False
    position_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderDenied:
    time_ns: int
    order_id: str
    reason: DenyReason
    detail: str


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    time_ns: int
    order_id: str
    credit_per_unit: float


@dataclass(frozen=True, slots=True)
class StopArmed:
    time_ns: int
    order_id: str
    credit_per_unit: float


@dataclass(frozen=True, slots=True)
class StopTriggered:
    time_ns: int
    order_id: str
    trade_price: float


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    time_ns: int
    order_id: str
    venue_order_id: str


@dataclass(frozen=True, slots=True)
class OrderRejected:
    time_ns: int
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderFilled:
    time_ns: int
    order_id: str
    venue: str
    fill_id: str
    #: The instrument filled (a multi-leg order: the leg's) and the side it was traded on.
    symbol: str
    side: Side
    quantity: int
    price: float
    liquidity: Liquidity | None = None
    fee: float = 0.0
    venue_order_id: str = ""


@dataclass(frozen=True, slots=True)
class CancelRequested:
    time_ns: int
    order_id: str


@dataclass(frozen=True, slots=True)
class CancelRejected:
    time_ns: int
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    time_ns: int
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReplaceRequested:
    time_ns: int
    order_id: str
    quantity: int
    limit_price: float | None


@dataclass(frozen=True, slots=True)
class ReplaceDenied:
    """The pre-trade controls refused a replace (the order keeps working unchanged)."""

    time_ns: int
    order_id: str
    reason: DenyReason
    detail: str


@dataclass(frozen=True, slots=True)
class ReplaceRejected:
    time_ns: int
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderReplaced:
    time_ns: int
    order_id: str
    quantity: int
    limit_price: float | None


@dataclass(frozen=True, slots=True)
class OrderExpired:
    time_ns: int
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExecutionAnomaly:
    """A venue report the state machine refused (an alert). A fill in it (``quantity`` > 0) is
    booked into the position, not into the order."""

    time_ns: int
    order_id: str
    kind: AnomalyKind
    detail: str
    account: str = ""
    venue: str = ""
    fill_id: str = ""
    symbol: str = ""
    side: Side | None = None
    quantity: int = 0
    price: float = 0.0
    fee: float = 0.0


@dataclass(frozen=True, slots=True)
class VenueTimeout:
    """``venue.submit`` timed out and the OMS looked the order up (found: the venue knows it)."""

    time_ns: int
    order_id: str
    attempt: int
    found: bool


@dataclass(frozen=True, slots=True)
class LimitsSet:
    time_ns: int
    account: str
    limits: Limits


@dataclass(frozen=True, slots=True)
class TradingStateSet:
    time_ns: int
    account: str
    mode: TradingMode
    reason: str
    changed_by: str = ""


OmsEvent = (
    OrderCreated
    | OrderDenied
    | OrderSubmitted
    | StopArmed
    | StopTriggered
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | CancelRequested
    | CancelRejected
    | OrderCanceled
    | ReplaceRequested
    | ReplaceDenied
    | ReplaceRejected
    | OrderReplaced
    | OrderExpired
    | ExecutionAnomaly
    | VenueTimeout
    | LimitsSet
    | TradingStateSet
)

_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)


def _flip(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


class OMS:
    """Orders, positions and pre-trade controls of any number of accounts.

    Args:
        venues: venue name -> venue (the OMS becomes each venue's listener).
        controls: the pre-trade controls (they hold the reference-price source for collars).
        clock_ns: the time in ns since the epoch (default ``time.time_ns``).
        sink: receives every event before it is applied (journal / publish); default none.
        barrier: called before every venue request (submit, cancel, replace): a sink that
            collects events stores them there; default none.
        position_mode: NETTING or HEDGING.
        order_id_prefix: order ids are this prefix and a sequence number.
        submit_retries: how many times a timed-out submit is sent again (after a lookup).
    """

    def __init__(
        self,
        venues: Mapping[str, Venue],
        controls: PreTradeControls,
        clock_ns: Callable[[], int] = time.time_ns,
        sink: Callable[[OmsEvent], None] | None = None,
        *,
        barrier: Callable[[], None] | None = None,
        position_mode: PositionMode = PositionMode.NETTING,
        order_id_prefix: str = "O",
        submit_retries: int = 1,
    ) -> None:
        self.venues = dict(venues)
        self.controls = controls
        self.clock_ns = clock_ns
        self._sink = sink
        self._barrier = barrier
        self._sink_failure: BaseException | None = None
        self.positions = PositionBook(position_mode)
        self.order_id_prefix = order_id_prefix
        self.submit_retries = submit_retries
        self._orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], str] = {}
        #: (venue, fill id) -> (account, the event that booked it): deduplication, reconciliation.
        self._fills: dict[tuple[str, str], tuple[str, OrderFilled | ExecutionAnomaly]] = {}
        self._exposure: dict[str, Exposure] = {}
        self._held: dict[str, dict[str, None]] = {}  # symbol -> held stop order ids
        self._open: dict[str, dict[str, None]] = {}  # account -> open order ids
        self._seq = 0
        for name, venue in self.venues.items():
            venue.set_listener(self._listener(name))
        self._apply: dict[type, Callable[[Any], None]] = {
            OrderCreated: self._on_created,
            OrderDenied: self._on_denied,
            OrderSubmitted: self._on_submitted,
            StopArmed: self._on_armed,
            StopTriggered: self._on_triggered,
            OrderAccepted: self._on_accepted,
            OrderRejected: self._on_rejected,
            OrderFilled: self._on_filled,
            CancelRequested: self._on_cancel_requested,
            CancelRejected: self._on_cancel_rejected,
            OrderCanceled: self._on_canceled,
            ReplaceRequested: self._on_replace_requested,
            ReplaceDenied: _nothing,
            ReplaceRejected: self._on_replace_rejected,
            OrderReplaced: self._on_replaced,
            OrderExpired: self._on_expired,
            ExecutionAnomaly: self._on_anomaly,
            VenueTimeout: _nothing,
            LimitsSet: self._on_limits,
            TradingStateSet: self._on_trading_state,
        }

    # ------------------------------------------------------------------ queries
    def order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFound(f"unknown order_id {quote(order_id)}")
        return order

    def find(self, account: str, client_order_id: str) -> Order | None:
        oid = self._by_client.get((account, client_order_id))
        return None if oid is None else self._orders[oid]

    def orders(self, account: str | None = None) -> list[Order]:
        return [o for o in self._orders.values() if account is None or o.account == account]

    def open_orders(self, account: str) -> list[Order]:
        return [self._orders[oid] for oid in self._open.get(account, {})]

    def fills(self, venue: str) -> list[BookedFill]:
        """The fills with a fill id booked from ``venue``, in booking order."""
        return [
            BookedFill(v, fid, acct, e.order_id, e.symbol, e.side, e.quantity, e.price, e.time_ns)
            for (v, fid), (acct, e) in self._fills.items()
            if v == venue and e.side is not None
        ]

    def exposure(self, account: str) -> Exposure:
        exp = self._exposure.get(account)
        if exp is None:
            exp = self._exposure[account] = Exposure(net=self.positions.net(account))
        return exp

    def mark(self, symbol: str, price: float, time_ns: int | None = None) -> list[Position]:
        """Mark positions in ``symbol`` at ``price`` (market data, not an event)."""
        return self.positions.mark(symbol, price, self.clock_ns() if time_ns is None else time_ns)

    # ------------------------------------------------------------------ events
    def _emit(self, event: OmsEvent) -> None:
        if self._sink is not None:
            try:
                self._sink(event)
            except BaseException as exc:
                # Remembered so that a venue call this failure unwinds through (a venue
                # reporting inside submit) is not taken for the venue refusing the request.
                self._sink_failure = exc
                raise
        self._apply[type(event)](event)

    def _venue(self, name: str) -> Venue:
        """The venue ``name``, once what was emitted before the request is stored (the
        barrier)."""
        if self._barrier is not None:
            try:
                self._barrier()
            except BaseException as exc:
                self._sink_failure = exc
                raise
        return self.venues[name]

    def apply(self, event: OmsEvent) -> None:
        """Apply one event (the only path that changes the state; replay uses it)."""
        self._apply[type(event)](event)

    def replay(self, events: Iterable[OmsEvent]) -> None:
        for event in events:
            self._apply[type(event)](event)

    def record(self, event: OmsEvent) -> None:
        """Emit a corrective event made outside the command path (reconciliation adopting a
        venue's order): to the sink first, then applied, as every event."""
        self._emit(event)

    def adopt(self, venue: str, event: VenueEvent) -> None:
        """Take a venue report obtained other than through the listener (reconciliation) by the
        listener's path: the state machine's checks, fill deduplication, anomalies."""
        if venue not in self.venues:
            raise ValueError(f"venue must be one of {', '.join(self.venues)}, got {quote(venue)}")
        self._on_venue_event(venue, event)

    # ------------------------------------------------------------------ commands
    def submit(
        self,
        *,
        account: str,
        client_order_id: str,
        symbol: str,
        side: Side | str,
        quantity: int,
        type: OrderType | str = OrderType.LIMIT,
        time_in_force: TimeInForce | str = TimeInForce.DAY,
        limit_price: float | None = None,
        stop_price: float | None = None,
        venue: str = "",
        legs: tuple[Leg, ...] = (),
        reduce_only: bool = False,
        position_id: str = "",
    ) -> Order:
        """Submit an order; a repeated ``client_order_id`` of the account returns the existing
        order. Raises ValueError naming the first invalid field."""
        oid = self._by_client.get((account, client_order_id))
        if oid is not None:
            existing = self._orders[oid]
            if existing.status is OrderStatus.INITIALIZED:
                # created, but the journal failed (or the process died) before the controls'
                # outcome was recorded: finish the submit path now
                self._check_and_send(existing, self.clock_ns())
            return existing
        side_v, type_v, tif, qty, limit, stop = validate_order(
            account=account,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            time_in_force=time_in_force,
            quantity=quantity,
            limit_price=limit_price,
            stop_price=stop_price,
            legs=legs,
        )
        if not venue and len(self.venues) == 1:
            venue = next(iter(self.venues))
        if venue not in self.venues:
            raise ValueError(f"venue must be one of {', '.join(self.venues)}, got {quote(venue)}")
        now = self.clock_ns()
        seq = self._seq + 1
        while f"{self.order_id_prefix}{seq}" in self._orders:  # an adopted venue order's id
            seq += 1
        oid = f"{self.order_id_prefix}{seq}"
        self._emit(
            OrderCreated(
                now,
                oid,
                client_order_id,
                account,
                symbol,
                side_v,
                type_v,
                tif,
                qty,
                limit,
                stop,
                venue,
                tuple(legs),
                reduce_only,
                position_id,
            )
        )
        order = self._orders[oid]
        self._check_and_send(order, now)
        return order

    def _check_and_send(self, order: Order, now: int) -> None:
        oid = order.order_id
        reason, detail, credit = self.controls.check(order, self.exposure(order.account), now)
        if reason is not None:
            self._emit(OrderDenied(now, oid, reason, detail))
        elif order.type in _STOPS:
            self._emit(StopArmed(now, oid, credit))
        else:
            self._emit(OrderSubmitted(now, oid, credit))
            self._send(order)

    def resume(self) -> list[Order]:
        """After a restart (a replay): every order the journal has as SUBMITTED but no venue
        has answered for is looked up at its venue; a venue that knows it reports its state,
        one that does not gets it (again). Returns the orders looked up."""
        pending = [
            o
            for o in self._orders.values()
            if o.status is OrderStatus.SUBMITTED and not o.venue_order_id
        ]
        for order in pending:
            found = self.venues[order.venue].lookup(order.order_id)
            if found is not None:
                self._on_venue_event(order.venue, found)
            else:
                self._send(order)
        return pending

    def _send(self, order: Order) -> None:
        request = order.venue_order()
        for attempt in range(self.submit_retries + 1):
            venue = self._venue(order.venue)
            try:
                venue.submit(request)
                return
            except TimeoutError as exc:
                if exc is self._sink_failure:
                    raise
                try:
                    found = venue.lookup(order.order_id)
                except Exception as exc:  # the venue failing is reported, not raised
                    self._emit(
                        ExecutionAnomaly(
                            self.clock_ns(),
                            order.order_id,
                            AnomalyKind.SUBMIT_TIMEOUT,
                            f"submit timed out and the lookup failed ({exc!r}); not retried",
                            order.account,
                        )
                    )
                    return
                self._emit(
                    VenueTimeout(self.clock_ns(), order.order_id, attempt, found is not None)
                )
                if found is not None:
                    self._on_venue_event(order.venue, found)
                    return
            except Exception as exc:  # a venue refusing the request rejects it
                if exc is self._sink_failure:
                    # Our journal failed while the venue reported (e.g. a fill inside submit):
                    # the venue took the order; the outcome is the caller's to retry or rebuild.
                    raise
                if order.status is OrderStatus.SUBMITTED:
                    self._emit(OrderRejected(self.clock_ns(), order.order_id, f"venue: {exc}"))
                return
        self._emit(
            ExecutionAnomaly(
                self.clock_ns(),
                order.order_id,
                AnomalyKind.SUBMIT_TIMEOUT,
                f"submit timed out {self.submit_retries + 1} times; the order stays SUBMITTED",
                order.account,
            )
        )

    def cancel(self, order_id: str) -> Order:
        """Ask to cancel an order (the venue's answer arrives as an event); a held stop is
        canceled at once. Asking again while the cancel is pending sends it again. Raises
        OrderNotFound, or OrderStateError for an order that cannot be canceled (done)."""
        order = self.order(order_id)
        now = self.clock_ns()
        if order.pending is OrderStatus.PENDING_CANCEL and not order.status.done:
            self._venue(order.venue).cancel(order_id)
            return order
        order.target(Trigger.CANCEL_REQUEST)  # raises when not allowed
        held = order.held
        self._emit(CancelRequested(now, order_id))
        if held:
            self._emit(OrderCanceled(now, order_id, "canceled before the stop was reached"))
        else:
            self._venue(order.venue).cancel(order_id)
        return order

    def replace(self, order_id: str, quantity: int, limit_price: float | None = None) -> Order:
        """Ask to amend an order's quantity (the total, fills included) and limit price; the
        amended order goes through the pre-trade controls first (a denial is a ReplaceDenied
        event and the order keeps working unchanged)."""
        order = self.order(order_id)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise ValueError(f"quantity must be a whole number > 0, got {quote(quantity)}")
        if quantity <= order.filled_quantity:
            raise ValueError(
                f"quantity must exceed the filled quantity {order.filled_quantity}, got {quantity}"
            )
        if limit_price is not None:
            if order.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                raise ValueError(f"limit_price must be unset for a {order.type.value} order")
            if (
                isinstance(limit_price, bool)
                or not isinstance(limit_price, (int, float))
                or not (0.0 < limit_price < float("inf"))
            ):
                raise ValueError(
                    f"limit_price must be a finite number > 0, got {quote(limit_price)}"
                )
        order.target(Trigger.REPLACE_REQUEST)
        now = self.clock_ns()
        reason, detail = self._check_amended(order, quantity, limit_price, now)
        if reason is not None:
            self._emit(ReplaceDenied(now, order_id, reason, detail))
            return order
        held = order.held
        self._emit(ReplaceRequested(now, order_id, quantity, limit_price))
        if held:
            self._emit(OrderReplaced(now, order_id, quantity, limit_price))
        else:
            self._venue(order.venue).replace(order_id, quantity, limit_price)
        return order

    def _check_amended(
        self, order: Order, quantity: int, limit_price: float | None, now: int
    ) -> tuple[DenyReason | None, str]:
        exposure = self.exposure(order.account)
        amended = Order(
            order.order_id,
            order.client_order_id,
            order.account,
            order.symbol,
            order.side,
            order.type,
            order.time_in_force,
            quantity - order.filled_quantity,
            order.limit_price if limit_price is None else limit_price,
            order.stop_price,
            order.venue,
            legs=order.legs,
            reduce_only=order.reduce_only,
        )
        self._unbook(order, exposure)  # the order's own working quantity is being replaced
        try:
            reason, detail, _ = self.controls.check(amended, exposure, now)
        finally:
            self._book(order, exposure)
        return reason, detail

    def set_limits(self, account: str, limits: Limits) -> None:
        if not isinstance(limits, Limits):
            raise ValueError("limits must be a Limits")
        self._emit(LimitsSet(self.clock_ns(), account, limits))

    def set_trading_state(
        self, account: str, mode: TradingMode | str, reason: str = "", changed_by: str = ""
    ) -> list[Order]:
        """Set the account's trading mode; HALTED also cancels every open order of the account
        (returned)."""
        try:
            mode_v = TradingMode(mode)
        except ValueError:
            names = ", ".join(TradingMode)
            raise ValueError(f"mode must be one of {names}, got {quote(mode)}") from None
        self._emit(TradingStateSet(self.clock_ns(), account, mode_v, reason, changed_by))
        if mode_v is not TradingMode.HALTED:
            return []
        canceled = []
        for order in self.open_orders(account):
            if order.pending is OrderStatus.PENDING_REPLACE:
                # a replace is outstanding: the venue's CANCELED ends the order from there
                self._venue(order.venue).cancel(order.order_id)
            else:
                self.cancel(order.order_id)
            canceled.append(order)
        return canceled

    def kill_switch(
        self, account: str, reason: str = "kill switch", changed_by: str = ""
    ) -> list[Order]:
        """HALTED and cancel every open order of the account."""
        return self.set_trading_state(account, TradingMode.HALTED, reason, changed_by)

    def end_session(self, reason: str = "session end") -> list[Order]:
        """Expire every open DAY order (and ask its venue to stop working it); return them."""
        now = self.clock_ns()
        expired = []
        for account in list(self._open):
            for order in self.open_orders(account):
                if order.time_in_force is not TimeInForce.DAY:
                    continue
                held = order.held
                self._emit(OrderExpired(now, order.order_id, reason))
                if not held:
                    self._venue(order.venue).cancel(order.order_id)
                expired.append(order)
        return expired

    def on_trade(self, symbol: str, price: float, time_ns: int | None = None) -> list[Order]:
        """A trade of ``symbol`` at ``price``: send the held stops it reaches (a buy stop at or
        below the price, a sell stop at or above); return them."""
        held = self._held.get(symbol)
        if not held:
            return []
        now = self.clock_ns() if time_ns is None else time_ns
        fired = []
        for oid in list(held):
            order = self._orders[oid]
            stop = order.stop_price
            assert stop is not None
            reached = (price >= stop) if order.side is Side.BUY else (price <= stop)
            if reached and order.target_allows(Trigger.TRIGGER):
                self._emit(StopTriggered(now, oid, price))
                self._send(order)
                fired.append(order)
        return fired

    # ------------------------------------------------------------------ venue reports
    def _listener(self, venue: str) -> Callable[[VenueEvent], None]:
        def listener(event: VenueEvent) -> None:
            self._on_venue_event(venue, event)

        return listener

    def _on_venue_event(self, venue: str, ev: VenueEvent) -> None:
        order = self._orders.get(ev.order_id)
        kind = ev.kind
        t = ev.time_ns
        if order is None or order.venue != venue:
            self._emit(
                ExecutionAnomaly(
                    t,
                    ev.order_id,
                    AnomalyKind.UNKNOWN_ORDER,
                    f"{venue} reported {kind.value} for an order it was not sent",
                    "",
                    venue,
                    ev.fill_id,
                )
            )
            return
        oid = order.order_id
        if kind is VenueEventKind.FILL:
            self._on_venue_fill(venue, order, ev)
            return
        try:
            if kind is VenueEventKind.ACCEPTED:
                order.target(Trigger.ACCEPT)
                event: OmsEvent = OrderAccepted(t, oid, ev.venue_order_id)
            elif kind is VenueEventKind.REJECTED:
                order.target(Trigger.REJECT)
                event = OrderRejected(t, oid, ev.reason)
            elif kind is VenueEventKind.CANCELED:
                order.target(Trigger.CANCEL)
                event = OrderCanceled(t, oid, ev.reason)
            elif kind is VenueEventKind.CANCEL_REJECTED:
                order.target(Trigger.CANCEL_REJECT)
                event = CancelRejected(t, oid, ev.reason)
            elif kind is VenueEventKind.REPLACED:
                order.replace_target(ev.new_quantity)
                event = OrderReplaced(t, oid, ev.new_quantity, ev.new_limit_price)
            elif kind is VenueEventKind.REPLACE_REJECTED:
                order.target(Trigger.REPLACE_REJECT)
                event = ReplaceRejected(t, oid, ev.reason)
            else:  # EXPIRED
                order.target(Trigger.EXPIRE)
                event = OrderExpired(t, oid, ev.reason)
        except OrderStateError as exc:
            self._emit(
                ExecutionAnomaly(
                    t, oid, AnomalyKind.INVALID_TRANSITION, str(exc), order.account, venue
                )
            )
            return
        self._emit(event)

    def _on_venue_fill(self, venue: str, order: Order, ev: VenueEvent) -> None:
        if ev.fill_id and (venue, ev.fill_id) in self._fills:
            return  # the same execution reported again
        symbol = ev.symbol or order.symbol
        side = order.side
        if order.legs:
            for leg in order.legs:
                if leg.symbol == symbol:
                    side = leg.side if order.side is Side.BUY else _flip(leg.side)
        try:
            order.check_fill(symbol, ev.fill_quantity)
        except OrderStateError as exc:
            kind = (
                AnomalyKind.OVERFILL
                if isinstance(exc, OverfillError)
                else AnomalyKind.INVALID_TRANSITION
            )
            self._emit(
                ExecutionAnomaly(
                    ev.time_ns,
                    order.order_id,
                    kind,
                    str(exc),
                    order.account,
                    venue,
                    ev.fill_id,
                    symbol,
                    side,
                    max(ev.fill_quantity, 0),
                    ev.fill_price,
                    ev.fee,
                )
            )
            return
        self._emit(
            OrderFilled(
                ev.time_ns,
                order.order_id,
                venue,
                ev.fill_id,
                symbol,
                side,
                ev.fill_quantity,
                ev.fill_price,
                ev.liquidity,
                ev.fee,
                ev.venue_order_id,
            )
        )

    # ------------------------------------------------------------------ apply
    def _book(self, order: Order, exposure: Exposure) -> None:
        """Add the order's working quantity and reserved credit to the account's exposure."""
        if not order.is_open:
            return
        if order.legs:
            for leg in order.legs:
                side = leg.side if order.side is Side.BUY else _flip(leg.side)
                left = leg.ratio * order.quantity - order.leg_filled.get(leg.symbol, 0)
                book = exposure.open_buy if side is Side.BUY else exposure.open_sell
                book[leg.symbol] = book.get(leg.symbol, 0) + left
        else:
            book = exposure.open_buy if order.side is Side.BUY else exposure.open_sell
            book[order.symbol] = book.get(order.symbol, 0) + order.leaves
        exposure.credit += order.credit_per_unit * order.leaves

    def _unbook(self, order: Order, exposure: Exposure) -> None:
        if not order.is_open:
            return
        if order.legs:
            for leg in order.legs:
                side = leg.side if order.side is Side.BUY else _flip(leg.side)
                left = leg.ratio * order.quantity - order.leg_filled.get(leg.symbol, 0)
                book = exposure.open_buy if side is Side.BUY else exposure.open_sell
                book[leg.symbol] -= left
        else:
            book = exposure.open_buy if order.side is Side.BUY else exposure.open_sell
            book[order.symbol] -= order.leaves
        exposure.credit -= order.credit_per_unit * order.leaves
        if exposure.credit < 1e-9:
            exposure.credit = 0.0  # no rounding residue once nothing is reserved

    def _change(self, order_id: str, change: Callable[[Order], None]) -> Order:
        """Apply ``change`` to the order, keeping the exposure and the open-order index."""
        order = self._orders[order_id]
        exposure = self.exposure(order.account)
        self._unbook(order, exposure)
        try:
            change(order)
        finally:
            self._book(order, exposure)
            opened = self._open.setdefault(order.account, {})
            if order.is_open:
                opened[order_id] = None
            else:
                opened.pop(order_id, None)
            if order.held:
                self._held.setdefault(order.symbol, {})[order_id] = None
            else:
                held = self._held.get(order.symbol)
                if held is not None:
                    held.pop(order_id, None)
        return order

    def _on_created(self, e: OrderCreated) -> None:
        order = Order(
            e.order_id,
            e.client_order_id,
            e.account,
            e.symbol,
            e.side,
            e.type,
            e.time_in_force,
            e.quantity,
            e.limit_price,
            e.stop_price,
            e.venue,
            created_ns=e.time_ns,
            updated_ns=e.time_ns,
            legs=e.legs,
            reduce_only=e.reduce_only,
            position_id=e.position_id,
        )
        self._orders[e.order_id] = order
        self._by_client[(e.account, e.client_order_id)] = e.order_id
        self._seq += 1

    def _on_denied(self, e: OrderDenied) -> None:
        def change(o: Order) -> None:
            o.transition(Trigger.DENY, e.time_ns, e.reason.value)

        self._change(e.order_id, change)

    def _on_submitted(self, e: OrderSubmitted) -> None:
        def change(o: Order) -> None:
            o.transition(Trigger.SUBMIT, e.time_ns)
            o.credit_per_unit = e.credit_per_unit

        self._change(e.order_id, change)

    def _on_armed(self, e: StopArmed) -> None:
        def change(o: Order) -> None:
            o.transition(Trigger.ARM, e.time_ns)
            o.credit_per_unit = e.credit_per_unit

        self._change(e.order_id, change)

    def _on_triggered(self, e: StopTriggered) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.TRIGGER, e.time_ns))

    def _on_accepted(self, e: OrderAccepted) -> None:
        def change(o: Order) -> None:
            o.transition(Trigger.ACCEPT, e.time_ns)
            if e.venue_order_id:
                o.venue_order_id = e.venue_order_id

        self._change(e.order_id, change)

    def _on_rejected(self, e: OrderRejected) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.REJECT, e.time_ns, e.reason))

    def _on_filled(self, e: OrderFilled) -> None:
        def change(o: Order) -> None:
            sign = 1 if e.side is o.side else -1
            o.apply_fill(e.symbol, e.quantity, e.price, sign, e.time_ns)
            if e.venue_order_id and not o.venue_order_id:
                o.venue_order_id = e.venue_order_id

        order = self._change(e.order_id, change)
        self._book_fill(
            order.account,
            order,
            e.venue,
            e.fill_id,
            e.symbol,
            e.side,
            e.quantity,
            e.price,
            e.fee,
            e.time_ns,
            e,
        )

    def _book_fill(
        self,
        account: str,
        order: Order | None,
        venue: str,
        fill_id: str,
        symbol: str,
        side: Side,
        quantity: int,
        price: float,
        fee: float,
        time_ns: int,
        event: OrderFilled | ExecutionAnomaly,
    ) -> None:
        if fill_id:
            self._fills[(venue, fill_id)] = (account, event)
        position_id = ""
        if self.positions.mode is PositionMode.HEDGING:
            assert order is not None
            position_id = order.position_id or order.order_id
            if order.legs:
                position_id = f"{position_id}:{symbol}"
        self.positions.apply_fill(
            account,
            symbol,
            side,
            quantity,
            price,
            position_id=position_id,
            fee=fee,
            time_ns=time_ns,
        )
        self.controls.record_execution(account, symbol, side, time_ns)

    def _on_cancel_requested(self, e: CancelRequested) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.CANCEL_REQUEST, e.time_ns))

    def _on_cancel_rejected(self, e: CancelRejected) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.CANCEL_REJECT, e.time_ns, e.reason))

    def _on_canceled(self, e: OrderCanceled) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.CANCEL, e.time_ns, e.reason))

    def _on_replace_requested(self, e: ReplaceRequested) -> None:
        self._change(e.order_id, lambda o: o.request_replace(e.quantity, e.limit_price, e.time_ns))

    def _on_replace_rejected(self, e: ReplaceRejected) -> None:
        self._change(
            e.order_id, lambda o: o.transition(Trigger.REPLACE_REJECT, e.time_ns, e.reason)
        )

    def _on_replaced(self, e: OrderReplaced) -> None:
        self._change(e.order_id, lambda o: o.apply_replace(e.quantity, e.limit_price, e.time_ns))

    def _on_expired(self, e: OrderExpired) -> None:
        self._change(e.order_id, lambda o: o.transition(Trigger.EXPIRE, e.time_ns, e.reason))

    def _on_anomaly(self, e: ExecutionAnomaly) -> None:
        if e.quantity > 0 and e.side is not None and e.account:
            if e.fill_id and (e.venue, e.fill_id) in self._fills:
                return
            self._book_fill(
                e.account,
                self._orders.get(e.order_id),
                e.venue,
                e.fill_id,
                e.symbol,
                e.side,
                e.quantity,
                e.price,
                e.fee,
                e.time_ns,
                e,
            )

    def _on_limits(self, e: LimitsSet) -> None:
        self.controls.set_limits(e.account, e.limits)

    def _on_trading_state(self, e: TradingStateSet) -> None:
        self.controls.set_mode(e.account, e.mode)


def _nothing(_: object) -> None:
    return None
