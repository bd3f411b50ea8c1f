"""Reconciliation: the OMS's journal-built state against a venue's own record.

:func:`reconcile` takes the venue's :meth:`~tradecore.oms.venue.Reconcilable.snapshot` and
compares, for one account or all of them, what the OMS has booked at that venue with what the
venue records. Each difference is a :class:`Break` of a :class:`BreakKind`:

- ``MISSING_FILL`` — the venue has a fill (by fill id) the journal lacks;
- ``UNKNOWN_FILL`` — the journal has a fill of an order the venue knows, which the venue lacks;
- ``QUANTITY_MISMATCH`` — one fill id with two quantities, or one order with two quantities;
- ``PRICE_MISMATCH`` — one fill id with two prices, or one order with two limit prices;
- ``UNKNOWN_VENUE_ORDER`` — an open order at the venue the OMS does not know;
- ``ORDER_MISSING_ON_VENUE`` — an order the OMS has working at the venue (not a stop it still
  holds) that the venue does not know, e.g. every working order after a paper venue restarted
  empty;
- ``STATUS_MISMATCH`` — open on one side and done on the other, done in two different ways, or
  unacknowledged in the journal but acknowledged at the venue;
- ``POSITION_DIFFERENCE`` — the venue's net position differs from the journal's net of the fills
  of the orders the venue knows, counting the venue's fills the journal lacks (each its own
  ``MISSING_FILL``, which ADOPT_VENUE books): a difference those fills explain is not reported
  again.

The venue's record is what it knows: fills of orders the venue does not know (a venue that
started empty forgot them) are not compared fill by fill, and positions are compared over the
orders both sides know. A venue keeps its record of an order as long as it can report it;
working orders it does not know are always breaks.

A :class:`Policy` says what happens when breaks are found:

- ``REPORT`` — nothing; the breaks are returned.
- ``ADOPT_VENUE`` — the OMS takes the venue's state, as journaled events through its sink (a
  replay of the journal reproduces it): unknown open venue orders are created (client order id
  ``reconciliation:<order id>``) and acknowledged; missing fills are taken as venue fills
  (deduplicated by fill id); orders the venue does not know are CANCELED with reason
  ``reconciliation``; orders the venue has ended are ended the same way; an order the venue
  acknowledged is acknowledged. What cannot be adopted without rewriting booked history (an
  unknown fill, a fill or order whose quantity or price differs, a done order the venue still
  works, a position difference) is left and reported in ``unresolved``.
- ``HALT`` — every account with breaks is set HALTED (journaled ``TradingStateSet`` with reason
  ``reconciliation: <n> breaks``; HALTED also cancels the account's open orders), so no order of
  it passes the pre-trade controls until an operator sets its trading state again.

A venue that does not implement ``snapshot`` cannot be reconciled, nor one whose snapshot
raises :class:`~tradecore.errors.UnavailableError` (its record could not be read): the result
says so (``supported`` False, ``detail`` why) and no policy is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from tradecore.errors import UnavailableError, quote
from tradecore.oms.oms import OMS, OrderAccepted, OrderCreated, OrderSubmitted
from tradecore.oms.order import Order
from tradecore.oms.pretrade import TradingMode
from tradecore.oms.types import OrderStatus, VenueEvent, VenueEventKind
from tradecore.oms.venue import Reconcilable, VenueFill, VenueOrderState, VenueSnapshot

__all__ = [
    "RECONCILIATION",
    "Break",
    "BreakKind",
    "Policy",
    "ReconcileResult",
    "compare",
    "reconcile",
]

#: The reason on orders canceled by ADOPT_VENUE and the prefix of adopted client order ids.
RECONCILIATION = "reconciliation"

#: Relative tolerance for prices (venues report decimal prices; we compare floats).
_PRICE_TOL = 1e-9


class BreakKind(StrEnum):
    MISSING_FILL = "MISSING_FILL"
    UNKNOWN_FILL = "UNKNOWN_FILL"
    QUANTITY_MISMATCH = "QUANTITY_MISMATCH"
    PRICE_MISMATCH = "PRICE_MISMATCH"
    UNKNOWN_VENUE_ORDER = "UNKNOWN_VENUE_ORDER"
    ORDER_MISSING_ON_VENUE = "ORDER_MISSING_ON_VENUE"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    POSITION_DIFFERENCE = "POSITION_DIFFERENCE"


class Policy(StrEnum):
    REPORT = "REPORT"
    ADOPT_VENUE = "ADOPT_VENUE"
    HALT = "HALT"


@dataclass(frozen=True, slots=True)
class Break:
    """One difference; ``journal`` and ``venue`` say what each side has, in words."""

    kind: BreakKind
    account: str
    order_id: str = ""
    fill_id: str = ""
    symbol: str = ""
    journal: str = ""
    venue: str = ""


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    venue: str
    #: The account reconciled ("" = every account with orders or fills at the venue).
    account: str
    #: False: the venue has no ``snapshot`` (nothing was compared).
    supported: bool
    policy: Policy
    breaks: tuple[Break, ...] = ()
    #: ADOPT_VENUE: the breaks it could not adopt.
    unresolved: tuple[Break, ...] = ()
    #: HALT: the accounts set HALTED.
    halted: tuple[str, ...] = ()
    detail: str = ""
    time_ns: int = 0

    @property
    def clean(self) -> bool:
        return self.supported and not self.breaks


@dataclass(slots=True)
class _Plan:
    """What ADOPT_VENUE does, gathered while comparing."""

    create: list[VenueOrderState] = field(default_factory=list)
    fills: list[VenueFill] = field(default_factory=list)
    events: list[VenueEvent] = field(default_factory=list)
    unresolved: list[Break] = field(default_factory=list)


def _same_price(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=_PRICE_TOL, abs_tol=_PRICE_TOL)


def _px(p: float | None) -> str:
    return "none" if p is None else f"{p:g}"


def _working_status(order: Order) -> OrderStatus:
    """The order's status as a venue would see it (a pending cancel or replace is the OMS's
    request in transit, not a venue state)."""
    if order.pending is not None and order.before_pending is not None:
        return order.before_pending
    return order.status


_VENUE_END = {
    OrderStatus.CANCELED: VenueEventKind.CANCELED,
    OrderStatus.EXPIRED: VenueEventKind.EXPIRED,
    OrderStatus.REJECTED: VenueEventKind.REJECTED,
}


def compare(oms: OMS, venue: str, snapshot: VenueSnapshot, account: str = "") -> list[Break]:
    """The breaks between the OMS's state at ``venue`` and the venue's ``snapshot``."""
    return _compare(oms, venue, snapshot, account, _Plan())


def _compare(oms: OMS, venue: str, snap: VenueSnapshot, account: str, plan: _Plan) -> list[Break]:
    breaks: list[Break] = []

    def add(b: Break, adoptable: bool) -> None:
        breaks.append(b)
        if not adoptable:
            plan.unresolved.append(b)

    now = snap.time_ns
    v_orders = {o.order_id: o for o in snap.orders if not account or o.account == account}
    ours = {
        o.order_id: o
        for o in oms.orders(account or None)
        if o.venue == venue and o.status is not OrderStatus.INITIALIZED
    }
    everyone = {o.order_id for o in oms.orders()}
    # ---- orders
    for oid, vo in v_orders.items():
        order = ours.get(oid)
        if order is None:
            if oid in everyone:
                continue  # known to the OMS, at another venue or of another account
            if not vo.status.done:
                add(
                    Break(
                        BreakKind.UNKNOWN_VENUE_ORDER,
                        vo.account,
                        oid,
                        symbol=vo.symbol,
                        journal="unknown",
                        venue=f"{vo.status.value} {vo.side.value} {vo.quantity} "
                        f"(filled {vo.filled_quantity})",
                    ),
                    True,
                )
            if not vo.status.done or vo.filled_quantity:
                plan.create.append(vo)  # adopted, so that its fills have an order to go to
            continue
        if order.quantity != vo.quantity:
            add(
                Break(
                    BreakKind.QUANTITY_MISMATCH,
                    order.account,
                    oid,
                    symbol=order.symbol,
                    journal=f"quantity {order.quantity}",
                    venue=f"quantity {vo.quantity}",
                ),
                False,
            )
        if vo.limit_price is not None and not _same_price(order.limit_price, vo.limit_price):
            add(
                Break(
                    BreakKind.PRICE_MISMATCH,
                    order.account,
                    oid,
                    symbol=order.symbol,
                    journal=f"limit {_px(order.limit_price)}",
                    venue=f"limit {_px(vo.limit_price)}",
                ),
                False,
            )
        ours_status = _working_status(order)
        mismatch = False
        adoptable = False
        event: VenueEvent | None = None
        if ours_status.done != vo.status.done:
            mismatch = True
            end = _VENUE_END.get(vo.status)
            if end is not None:  # the venue ended it: end it the same way
                adoptable = True
                event = VenueEvent(end, oid, now, vo.venue_order_id, reason=RECONCILIATION)
            elif vo.status is OrderStatus.FILLED:
                adoptable = True  # its missing fills (below) fill it
        elif ours_status.done and ours_status is not vo.status:
            mismatch = True
        elif ours_status is OrderStatus.SUBMITTED and vo.status is not OrderStatus.SUBMITTED:
            mismatch = adoptable = True
            event = VenueEvent(VenueEventKind.ACCEPTED, oid, now, vo.venue_order_id)
        if mismatch:
            add(
                Break(
                    BreakKind.STATUS_MISMATCH,
                    order.account,
                    oid,
                    symbol=order.symbol,
                    journal=order.status.value,
                    venue=vo.status.value,
                ),
                adoptable,
            )
            if event is not None:
                plan.events.append(event)
    for oid, order in ours.items():
        if oid in v_orders or not order.is_open or order.held:
            continue
        add(
            Break(
                BreakKind.ORDER_MISSING_ON_VENUE,
                order.account,
                oid,
                symbol=order.symbol,
                journal=f"{order.status.value} leaves {order.leaves}",
                venue="unknown",
            ),
            True,
        )
        plan.events.append(VenueEvent(VenueEventKind.CANCELED, oid, now, reason=RECONCILIATION))
    # ---- fills
    known = {oid for oid in v_orders}
    booked = {f.fill_id: f for f in oms.fills(venue) if not account or f.account == account}
    v_fills = {f.fill_id: f for f in snap.fills if not account or f.account == account}
    for fid, vf in v_fills.items():
        bf = booked.get(fid)
        if bf is None:
            add(
                Break(
                    BreakKind.MISSING_FILL,
                    vf.account,
                    vf.order_id,
                    fid,
                    vf.symbol,
                    journal="none",
                    venue=f"{vf.side.value} {vf.quantity} @ {vf.price:g}",
                ),
                True,
            )
            plan.fills.append(vf)
            continue
        if bf.quantity != vf.quantity:
            add(
                Break(
                    BreakKind.QUANTITY_MISMATCH,
                    vf.account,
                    vf.order_id,
                    fid,
                    vf.symbol,
                    journal=f"fill {bf.quantity}",
                    venue=f"fill {vf.quantity}",
                ),
                False,
            )
        if not _same_price(bf.price, vf.price):
            add(
                Break(
                    BreakKind.PRICE_MISMATCH,
                    vf.account,
                    vf.order_id,
                    fid,
                    vf.symbol,
                    journal=f"fill @ {bf.price:g}",
                    venue=f"fill @ {vf.price:g}",
                ),
                False,
            )
    for fid, bf in booked.items():
        if fid in v_fills or bf.order_id not in known:
            continue
        add(
            Break(
                BreakKind.UNKNOWN_FILL,
                bf.account,
                bf.order_id,
                fid,
                bf.symbol,
                journal=f"{bf.side.value} {bf.quantity} @ {bf.price:g}",
                venue="none",
            ),
            False,
        )
    # ---- positions, over the orders both sides know. The venue's fills the journal lacks
    # count on the journal's side: each is a MISSING_FILL break of its own, which ADOPT_VENUE
    # books, so a difference they explain is not a second (unadoptable) break.
    ours_net: dict[tuple[str, str], int] = {}
    counted = [
        (f.account, f.symbol, f.side.sign * f.quantity)
        for f in booked.values()
        if f.order_id in known
    ] + [
        (f.account, f.symbol, f.side.sign * f.quantity)
        for fid, f in v_fills.items()
        if fid not in booked and f.order_id in known
    ]
    for acct, symbol, signed in counted:
        ours_net[(acct, symbol)] = ours_net.get((acct, symbol), 0) + signed
    v_net = {
        (p.account, p.symbol): p.quantity
        for p in snap.positions
        if not account or p.account == account
    }
    for key in sorted(set(ours_net) | set(v_net)):
        mine, theirs = ours_net.get(key, 0), v_net.get(key, 0)
        if mine != theirs:
            add(
                Break(
                    BreakKind.POSITION_DIFFERENCE,
                    key[0],
                    symbol=key[1],
                    journal=f"net {mine}",
                    venue=f"net {theirs}",
                ),
                False,
            )
    return breaks


def reconcile(
    oms: OMS, venue: str, account: str = "", policy: Policy | str = Policy.REPORT
) -> ReconcileResult:
    """Compare the OMS with ``venue``'s record (one account, or all with ``account`` "") and
    apply ``policy`` when there are breaks. Raises ValueError for an unknown venue or policy.
    Under ADOPT_VENUE the breaks returned are those found before adopting; a second
    reconciliation shows what is left (``unresolved``)."""
    if venue not in oms.venues:
        raise ValueError(f"venue must be one of {', '.join(oms.venues)}, got {quote(venue)}")
    try:
        policy_v = Policy(policy)
    except ValueError:
        names = ", ".join(Policy)
        raise ValueError(f"policy must be one of {names}, got {quote(policy)}") from None
    v = oms.venues[venue]
    if not isinstance(v, Reconcilable):
        return ReconcileResult(
            venue,
            account,
            False,
            policy_v,
            detail=f"venue {venue} does not report its orders and fills (no snapshot); "
            "it cannot be reconciled",
            time_ns=oms.clock_ns(),
        )
    try:
        snap = v.snapshot()
    except UnavailableError as exc:
        # The venue's record could not be read (a remote venue unreachable): nothing is
        # compared and no policy applies; the caller may reconcile again later.
        return ReconcileResult(
            venue, account, False, policy_v, detail=f"venue {venue}: {exc}", time_ns=oms.clock_ns()
        )
    plan = _Plan()
    breaks = _compare(oms, venue, snap, account, plan)
    result = ReconcileResult(venue, account, True, policy_v, tuple(breaks), time_ns=oms.clock_ns())
    if not breaks or policy_v is Policy.REPORT:
        return result
    if policy_v is Policy.HALT:
        accounts = tuple(sorted({b.account for b in breaks}))
        for acct in accounts:
            n = sum(1 for b in breaks if b.account == acct)
            oms.set_trading_state(
                acct, TradingMode.HALTED, f"{RECONCILIATION}: {n} breaks", RECONCILIATION
            )
        return ReconcileResult(
            venue,
            account,
            True,
            policy_v,
            tuple(breaks),
            halted=accounts,
            detail=f"{len(breaks)} breaks; halted {', '.join(accounts)}",
            time_ns=result.time_ns,
        )
    _adopt(oms, venue, plan)
    return ReconcileResult(
        venue,
        account,
        True,
        policy_v,
        tuple(breaks),
        unresolved=tuple(plan.unresolved),
        detail=f"{len(breaks)} breaks; {len(breaks) - len(plan.unresolved)} adopted",
        time_ns=result.time_ns,
    )


def _adopt(oms: OMS, venue: str, plan: _Plan) -> None:
    for vo in plan.create:
        t = oms.clock_ns()
        oms.record(
            OrderCreated(
                t,
                vo.order_id,
                f"{RECONCILIATION}:{vo.order_id}",
                vo.account,
                vo.symbol,
                vo.side,
                vo.type,
                vo.time_in_force,
                vo.quantity,
                vo.limit_price,
                vo.stop_price,
                venue,
            )
        )
        oms.record(OrderSubmitted(t, vo.order_id, 0.0))
        if vo.status is not OrderStatus.SUBMITTED:
            oms.record(OrderAccepted(t, vo.order_id, vo.venue_order_id))
        end = _VENUE_END.get(vo.status)
        if end is not None:  # a done order adopted for its fills ends after them
            plan.events.append(VenueEvent(end, vo.order_id, t, vo.venue_order_id))
    for ev in plan.events:
        if ev.kind is VenueEventKind.ACCEPTED:
            oms.adopt(venue, ev)  # acknowledged before its fills
    for vf in plan.fills:
        oms.adopt(
            venue,
            VenueEvent(
                VenueEventKind.FILL,
                vf.order_id,
                vf.time_ns,
                vf.venue_order_id,
                fill_id=vf.fill_id,
                fill_quantity=vf.quantity,
                fill_price=vf.price,
                symbol=vf.symbol,
                liquidity=vf.liquidity,
                fee=vf.fee,
            ),
        )
    for ev in plan.events:
        if ev.kind is not VenueEventKind.ACCEPTED:
            oms.adopt(venue, ev)
