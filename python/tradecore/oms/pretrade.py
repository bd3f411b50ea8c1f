"""Pre-trade controls (SEC 15c3-5, MiFID II RTS 6): every order, in process, before any venue.

:meth:`PreTradeControls.check` runs the controls below in this order and returns the first
denial as a :class:`DenyReason` (a typed code) with a message, or passes the order and returns
the credit it reserves per unit:

1. message-rate throttle: a token bucket per account (``message_rate`` orders per second,
   ``message_burst`` at once); every new order takes a token, denied or not;
2. trading state (:class:`TradingMode`, fed from ``risk.state.<account>`` and the kill switch):
   HALTED denies everything; REDUCE_ONLY denies an order that does not reduce a position;
3. restricted list (denied) and allowed list (when set, only those instruments);
4. maximum quantity per order;
5. price collar against the reference (:class:`ReferencePrices`: the quote mid for equities, the
   theoretical value for options): a buy priced above ``reference + band`` or a sell priced
   below ``reference - band`` is denied (a passive order far from the market cannot trade at an
   erroneous price and passes). The band is ``equity_collar x reference`` for equities and
   ``max(option_collar x reference, option_collar_min)`` for options (wider: theoretical values
   carry model error and option spreads are wide). The price is the limit price (stop price for
   a stop). A market order has no price to collar. A multi-leg order compares its net price with
   the legs' net reference (option band on the sum of the legs' references);
6. maximum notional per order (price x quantity x multiplier; a market order at the reference);
7. reduce-only orders (``Order.reduce_only``): the order plus the account's working orders on
   the same side must not exceed the position they reduce;
8. position limit: ``|position + working orders on the side + this order| <= max_position`` per
   instrument;
9. credit limit on open + pending: the credit reserved by the account's working orders plus this
   order's must not exceed ``credit_limit``. An order reserves, per unit that opens or increases a
   position, its notional (price x multiplier), except a sell of an option that opens a short:
   the margin rule ``premium + max(short_option_margin x underlying - out-of-the-money amount,
   short_option_min_margin x (strike for a put, underlying for a call))``, times the multiplier
   (the CBOE/Reg-T naked option rule with 20 % / 10 % by default). Units that close a position
   reserve nothing. A multi-leg order reserves the sum of its legs (no spread offset: a
   conservative bound);
10. duplicate orders: the same account, symbol, side, quantity and prices within
    ``duplicate_window_ns`` of a passed order;
11. repeated-execution throttle (RTS 6 article 15(3)): ``max_executions`` executions of the same
    instrument and side within ``execution_window_ns`` deny further orders there.

A limit of None is not checked. Limits change at run time through :meth:`set_limits` (the OMS
makes each change an event, so the service journals it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from tradecore.errors import quote
from tradecore.oms.order import Order, multiplier_of, parse_occ
from tradecore.oms.types import OrderType, Side
from tradecore.pricing.european import european_row

__all__ = [
    "DenyReason",
    "Exposure",
    "Limits",
    "MarketReference",
    "PreTradeControls",
    "ReferencePrices",
    "TradingMode",
    "short_option_margin",
]


class DenyReason(StrEnum):
    MESSAGE_RATE = "MESSAGE_RATE"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCE_ONLY = "TRADING_REDUCE_ONLY"
    RESTRICTED_INSTRUMENT = "RESTRICTED_INSTRUMENT"
    INSTRUMENT_NOT_ALLOWED = "INSTRUMENT_NOT_ALLOWED"
    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    PRICE_COLLAR = "PRICE_COLLAR"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    REDUCE_ONLY = "REDUCE_ONLY"
    POSITION_LIMIT = "POSITION_LIMIT"
    CREDIT_LIMIT = "CREDIT_LIMIT"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    REPEATED_EXECUTION = "REPEATED_EXECUTION"


class TradingMode(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"


def _opt_positive(name: str, value: object, integer: bool) -> None:
    if value is None:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name} must be {'a whole number' if integer else 'a number'}")
    assert isinstance(value, (int, float))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 (or unset), got {quote(value)}")


@dataclass(frozen=True, slots=True)
class Limits:
    """One account's limits (None: not checked)."""

    max_order_quantity: int | None = None
    max_order_notional: float | None = None
    max_position: int | None = None
    credit_limit: float | None = None
    #: Collar bands: fraction of the reference (equities; options) and the options' floor.
    equity_collar: float = 0.05
    option_collar: float = 0.25
    option_collar_min: float = 0.10
    #: Collar orders against the reference (False: no collar, and no reference needed for it).
    collar: bool = True
    duplicate_window_ns: int | None = 1_000_000_000
    message_rate: float | None = None
    message_burst: int = 1
    max_executions: int | None = None
    execution_window_ns: int = 1_000_000_000
    short_option_margin: float = 0.20
    short_option_min_margin: float = 0.10
    restricted: frozenset[str] = frozenset()
    #: None: every instrument not restricted.
    allowed: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("restricted", "allowed"):
                if v is not None and not isinstance(v, frozenset):
                    object.__setattr__(self, f.name, frozenset(v))
            elif f.name == "collar":
                if not isinstance(v, bool):
                    raise ValueError("collar must be true or false")
            elif f.name in (
                "max_order_quantity",
                "max_position",
                "duplicate_window_ns",
                "message_burst",
                "max_executions",
                "execution_window_ns",
            ):
                _opt_positive(f.name, v, integer=True)
            else:
                _opt_positive(f.name, v, integer=False)
        if self.message_burst is None or self.execution_window_ns is None:
            raise ValueError("message_burst and execution_window_ns must be set")


class ReferencePrices(Protocol):
    def reference(self, symbol: str) -> float | None:
        """The reference price of ``symbol`` (quote mid, or an option's theoretical value), or
        None when there is none."""
        ...


class MarketReference:
    """References from quotes: the mid for an equity; for an OCC option symbol the European
    Black-Scholes-Merton value (``tradecore.pricing``) at the underlying's mid, the volatility set
    for the underlying, the rate and dividend yield, to the expiry's 21:00 UTC (the US close)."""

    def __init__(self, clock_ns: Callable[[], int], rate: float = 0.0) -> None:
        self._clock = clock_ns
        self.rate = rate
        self._mid: dict[str, float] = {}
        self._vol: dict[str, tuple[float, float]] = {}

    def quote(self, symbol: str, bid: float, ask: float) -> None:
        if math.isfinite(bid) and math.isfinite(ask) and 0.0 < bid <= ask:
            self._mid[symbol] = 0.5 * (bid + ask)
        else:
            self._mid.pop(symbol, None)  # a crossed or one-sided quote is no reference

    def set_volatility(self, underlying: str, volatility: float, dividend: float = 0.0) -> None:
        self._vol[underlying] = (volatility, dividend)

    def reference(self, symbol: str) -> float | None:
        mid = self._mid.get(symbol)
        if mid is not None:
            return mid
        occ = parse_occ(symbol)
        if occ is None:
            return None
        spot = self._mid.get(occ.underlying)
        vol = self._vol.get(occ.underlying)
        if spot is None or vol is None:
            return None
        close = datetime(occ.expiry.year, occ.expiry.month, occ.expiry.day, 21, tzinfo=UTC)
        years = (close.timestamp() * 1e9 - self._clock()) / (365.0 * 86400e9)
        if years <= 0.0:
            return max(spot - occ.strike if occ.call else occ.strike - spot, 0.0)
        return european_row(
            spot, occ.strike, years, self.rate, vol[1], vol[0], 1 if occ.call else -1, ("price",)
        )["price"]


@dataclass(slots=True)
class Exposure:
    """What the controls read of an account (the OMS keeps it from its events)."""

    #: symbol -> signed position (a live view of the position book).
    net: dict[str, int]
    #: symbol -> leaves quantity of working buy / sell orders.
    open_buy: dict[str, int] = field(default_factory=dict)
    open_sell: dict[str, int] = field(default_factory=dict)
    #: Credit reserved by working orders.
    credit: float = 0.0


_NO_LIMITS = Limits()
_RECENT_CAP = 65536


class PreTradeControls:
    def __init__(
        self,
        references: ReferencePrices,
        default_limits: Limits = _NO_LIMITS,
    ) -> None:
        self.references = references
        self.default_limits = default_limits
        self._limits: dict[str, Limits] = {}
        self._modes: dict[str, TradingMode] = {}
        self._buckets: dict[str, list[float]] = {}  # account -> [tokens, last ns]
        self._recent: dict[tuple[object, ...], int] = {}
        self._recent_cap = _RECENT_CAP
        self._executions: dict[tuple[str, str, Side], deque[int]] = {}

    # -- configuration (the OMS calls these from its events) --
    def set_limits(self, account: str, limits: Limits) -> None:
        self._limits[account] = limits

    def limits(self, account: str) -> Limits:
        return self._limits.get(account, self.default_limits)

    def set_mode(self, account: str, mode: TradingMode) -> None:
        self._modes[account] = mode

    def mode(self, account: str) -> TradingMode:
        return self._modes.get(account, TradingMode.ACTIVE)

    def record_execution(self, account: str, symbol: str, side: Side, time_ns: int) -> None:
        """An execution of the account (the repeated-execution throttle counts them)."""
        key = (account, symbol, side)
        q = self._executions.get(key)
        if q is None:
            q = self._executions[key] = deque()
        window = self._limits.get(account, self.default_limits).execution_window_ns
        while q and time_ns - q[0] >= window:
            q.popleft()
        q.append(time_ns)

    # -- the check --
    def check(
        self, order: Order, exposure: Exposure, now_ns: int
    ) -> tuple[DenyReason | None, str, float]:
        """(None, "", credit per unit) when the order passes, else (reason, message, 0.0)."""
        account = order.account
        lim = self._limits.get(account, self.default_limits)

        if lim.message_rate is not None:
            bucket = self._buckets.get(account)
            if bucket is None:
                bucket = self._buckets[account] = [float(lim.message_burst), now_ns]
            tokens = min(
                float(lim.message_burst), bucket[0] + (now_ns - bucket[1]) * 1e-9 * lim.message_rate
            )
            bucket[1] = now_ns
            if tokens < 1.0:
                bucket[0] = tokens
                return DenyReason.MESSAGE_RATE, f"more than {lim.message_rate:g} orders/s", 0.0
            bucket[0] = tokens - 1.0

        legs = _legs(order)
        mode = self._modes.get(account, TradingMode.ACTIVE)
        if mode is TradingMode.HALTED:
            return DenyReason.TRADING_HALTED, f"account {account} is halted", 0.0
        if mode is TradingMode.REDUCE_ONLY and not _reduces(legs, exposure):
            return (
                DenyReason.TRADING_REDUCE_ONLY,
                f"account {account} may only reduce positions",
                0.0,
            )

        for symbol, _, _ in legs:
            if symbol in lim.restricted:
                return DenyReason.RESTRICTED_INSTRUMENT, f"{symbol} is restricted", 0.0
            if lim.allowed is not None and symbol not in lim.allowed:
                return DenyReason.INSTRUMENT_NOT_ALLOWED, f"{symbol} is not allowed", 0.0

        qty = order.quantity
        if lim.max_order_quantity is not None and qty > lim.max_order_quantity:
            return (
                DenyReason.MAX_ORDER_QUANTITY,
                f"quantity {qty} > max_order_quantity {lim.max_order_quantity}",
                0.0,
            )

        # references, per leg, only when a control needs them
        need_refs = (
            (lim.collar and order.type is not OrderType.MARKET)
            or lim.max_order_notional is not None
            or lim.credit_limit is not None
        )
        refs: list[float] = []
        if need_refs:
            for symbol, _, _ in legs:
                ref = self.references.reference(symbol)
                if ref is None or not ref > 0.0:
                    return DenyReason.NO_REFERENCE_PRICE, f"no reference price for {symbol}", 0.0
                refs.append(ref)

        price = order.limit_price if order.limit_price is not None else order.stop_price
        if lim.collar and price is not None:
            if order.legs:
                ref_net = sum(
                    s.sign * r * ratio for (_, s, ratio), r in zip(legs, refs, strict=True)
                )
                ref_net *= order.side.sign
                ref_abs = sum(r * ratio for (_, _, ratio), r in zip(legs, refs, strict=True))
                band = max(lim.option_collar * ref_abs, lim.option_collar_min)
            else:
                ref_net = refs[0]
                if multiplier_of(order.symbol) == 1:
                    band = lim.equity_collar * ref_net
                else:
                    band = max(lim.option_collar * ref_net, lim.option_collar_min)
            if (order.side is Side.BUY and price > ref_net + band) or (
                order.side is Side.SELL and price < ref_net - band
            ):
                return (
                    DenyReason.PRICE_COLLAR,
                    f"price {price:g} outside {ref_net:g} +/- {band:g}",
                    0.0,
                )

        if lim.max_order_notional is not None:
            if order.legs:
                notional = sum(
                    r * ratio * qty * multiplier_of(sym)
                    for (sym, _, ratio), r in zip(legs, refs, strict=True)
                )
            else:
                unit = price if price is not None else refs[0]
                notional = unit * qty * multiplier_of(order.symbol)
            if notional > lim.max_order_notional:
                return (
                    DenyReason.MAX_ORDER_NOTIONAL,
                    f"notional {notional:g} > max_order_notional {lim.max_order_notional:g}",
                    0.0,
                )

        if order.reduce_only and not _reduces(legs, exposure):
            return DenyReason.REDUCE_ONLY, "a reduce-only order would increase a position", 0.0

        if lim.max_position is not None:
            for symbol, side, n in legs:
                pos = exposure.net.get(symbol, 0)
                if side is Side.BUY:
                    after = pos + exposure.open_buy.get(symbol, 0) + n
                else:
                    after = pos - exposure.open_sell.get(symbol, 0) - n
                if abs(after) > lim.max_position:
                    return (
                        DenyReason.POSITION_LIMIT,
                        f"{symbol} position would reach {after}, max_position {lim.max_position}",
                        0.0,
                    )

        credit = 0.0
        if lim.credit_limit is not None:
            for (symbol, side, n), ref in zip(legs, refs, strict=True):
                unit = price if (price is not None and not order.legs) else ref
                c = self._credit(symbol, side, n, unit, exposure, lim)
                if c is None:
                    return (
                        DenyReason.NO_REFERENCE_PRICE,
                        f"no reference price for the underlying of {symbol}",
                        0.0,
                    )
                credit += c
            if exposure.credit + credit > lim.credit_limit:
                return (
                    DenyReason.CREDIT_LIMIT,
                    f"open {exposure.credit:g} + order {credit:g} > credit_limit "
                    f"{lim.credit_limit:g}",
                    0.0,
                )

        if lim.duplicate_window_ns is not None:
            key = (account, order.symbol, order.side, qty, order.limit_price, order.stop_price)
            last = self._recent.get(key)
            if last is not None and now_ns - last < lim.duplicate_window_ns:
                return (
                    DenyReason.DUPLICATE_ORDER,
                    f"the same order was accepted {(now_ns - last) / 1e6:g} ms ago",
                    0.0,
                )

        if lim.max_executions is not None:
            for symbol, side, _ in legs:
                q = self._executions.get((account, symbol, side))
                if q is None:
                    continue
                while q and now_ns - q[0] >= lim.execution_window_ns:
                    q.popleft()
                if len(q) >= lim.max_executions:
                    return (
                        DenyReason.REPEATED_EXECUTION,
                        f"{len(q)} executions of {symbol} {side.value} within "
                        f"{lim.execution_window_ns / 1e9:g} s",
                        0.0,
                    )

        if lim.duplicate_window_ns is not None:
            if len(self._recent) > self._recent_cap:
                # drop what left the window; the cap doubles when most entries are recent, so
                # pruning costs O(1) per order amortised
                self._recent = {
                    k: t for k, t in self._recent.items() if now_ns - t < lim.duplicate_window_ns
                }
                self._recent_cap = max(_RECENT_CAP, 2 * len(self._recent))
            self._recent[key] = now_ns
        return None, "", credit / qty

    def _credit(
        self, symbol: str, side: Side, n: int, unit: float, exposure: Exposure, lim: Limits
    ) -> float | None:
        """Credit reserved by ``n`` units of ``symbol`` on ``side`` at ``unit`` per unit; None
        when a short option's margin needs the underlying's price and there is none."""
        pos = exposure.net.get(symbol, 0)
        if side is Side.BUY:
            closing = min(n, max(-pos - exposure.open_buy.get(symbol, 0), 0))
        else:
            closing = min(n, max(pos - exposure.open_sell.get(symbol, 0), 0))
        opening = n - closing
        if opening == 0:
            return 0.0
        mult = multiplier_of(symbol)
        if side is Side.SELL and mult != 1:
            occ = parse_occ(symbol)
            assert occ is not None
            spot = self.references.reference(occ.underlying)
            if spot is None or not spot > 0.0:
                return None
            return opening * mult * short_option_margin(occ.call, occ.strike, spot, unit, lim)
        return opening * mult * unit


def short_option_margin(
    call: bool, strike: float, spot: float, premium: float, lim: Limits = _NO_LIMITS
) -> float:
    """Margin per unit of a short option: ``premium + max(short_option_margin x spot - OTM
    amount, short_option_min_margin x (spot for a call, strike for a put))``."""
    otm = max(strike - spot, 0.0) if call else max(spot - strike, 0.0)
    floor = lim.short_option_min_margin * (spot if call else strike)
    return premium + max(lim.short_option_margin * spot - otm, floor)


def _legs(order: Order) -> list[tuple[str, Side, int]]:
    """(symbol, effective side, quantity) per leg; one entry for a single-leg order."""
    if not order.legs:
        return [(order.symbol, order.side, order.quantity)]
    flip = order.side is Side.SELL
    out = []
    for leg in order.legs:
        side = leg.side
        if flip:
            side = Side.SELL if side is Side.BUY else Side.BUY
        out.append((leg.symbol, side, leg.ratio * order.quantity))
    return out


def _reduces(legs: list[tuple[str, Side, int]], exposure: Exposure) -> bool:
    """Whether every leg, with the working orders on its side, only reduces a position."""
    for symbol, side, n in legs:
        pos = exposure.net.get(symbol, 0)
        if side is Side.BUY:
            if pos >= 0 or exposure.open_buy.get(symbol, 0) + n > -pos:
                return False
        elif pos <= 0 or exposure.open_sell.get(symbol, 0) + n > pos:
            return False
    return True
