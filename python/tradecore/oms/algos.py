"""Execution algorithms: parent orders that work through child orders of the OMS, with TCA.

An :class:`AlgoEngine` owns parent orders (:class:`Algo`) described by an :class:`AlgoSpec`.
Every child is an ordinary order sent with :meth:`tradecore.oms.oms.OMS.submit`, so it passes
the same pre-trade controls, is journaled by the same sink and reaches the same venue as any
other order. The engine is driven by the market and the clock only: :meth:`AlgoEngine.on_quote`,
:meth:`AlgoEngine.on_trade` and :meth:`AlgoEngine.on_time` (the time a caller was asked for by
:meth:`AlgoEngine.next_wakeup`). Each call first reads the children's state from the OMS, then
lets every working parent act, so a replay of the same market gives the same children
(:func:`replay_lobster` drives an engine and a :class:`~tradecore.oms.paper.PaperVenue` from a
LOBSTER day).

Algorithms (``AlgoKind``):

- ``TWAP``: ``slices`` equal parts over [start, end); slice k is due at
  ``start + k (end - start) / slices``, or, with ``randomize`` = r in [0, 1), at a seeded uniform
  offset up to ``r`` of a slice interval after that (it stays inside its own interval).
- ``VWAP``: ``curve`` gives the weight of each of ``len(curve)`` equal buckets of [start, end);
  bucket k's share of the quantity is due at its start. :func:`volume_curve` builds a curve
  from any trades or intraday bars (a stored history, or the LOBSTER day's own volume).
- ``POV``: after every market trade, with V the market volume since the algo started and E our
  filled plus working quantity, when E < ``min_rate`` x V a child of floor(``rate`` x V) - E is
  sent. E never exceeds ``rate`` x V <= ``max_rate`` x V; after the algo reacts,
  E >= floor(``min_rate`` x V) while the parent has quantity left (and no child is waiting out
  the duplicate window, below).
- ``IS`` (implementation shortfall): the Almgren–Chriss optimal trajectory over ``slices``
  intervals (:func:`almgren_chriss_trajectory`).
- ``ICEBERG``: one child of at most ``display_quantity`` at ``limit_price`` at a time; when it is
  done the next is sent (refill on fill).

Scheduled algorithms (TWAP, VWAP, IS) send at each due slice the scheduled cumulative quantity
less what is filled and working, so a shortfall (a capped child that did not fill, a partly
filled market order) is picked up by the next slice. Quantities are whole units; a schedule's
cumulative targets are rounded to the nearest unit, so the slices sum to the parent.

Children: ``LIMIT`` at the parent's ``limit_price`` (the cap) when it has one, else ``MARKET``;
time in force ``DAY``; never more than the parent's quantity less what is filled and working;
client order ids ``<algo_id>.<n>``. Children pass the pre-trade controls like any order, so a
child equal in quantity and price to the parent's previous one waits until the account's
``Limits.duplicate_window_ns`` has passed since that one was sent (an iceberg's refills, equal
slices close together) rather than be denied as a duplicate; an equal order from elsewhere
within the window is still denied. A child denied by the pre-trade controls or rejected by the
venue stops its parent (``reason`` names the child and the code, ``denials`` keeps them): the
engine never retries an order the controls refused.

States: ``WORKING`` -> ``COMPLETED`` (all filled) or ``STOPPED`` (:meth:`AlgoEngine.stop`, a
denied or rejected child, or ``end_ns`` reached with quantity left). Stopping cancels every
working child; fills that race the cancels still count.

Transaction-cost analysis (:class:`Tca`, signs: positive = cost to us): the arrival price is the
quote mid when the algo starts working; slippage against it is
``side x (average price - arrival) / arrival x 10^4`` bps; the interval VWAP is the market's VWAP
of the trades seen by :meth:`AlgoEngine.on_trade` from the start to the end of the algo (now while
it works), and slippage against it is computed the same way; participation is our filled
quantity over that market volume (the paper venue's fills are not in its market feed, so the
market volume excludes ours).
"""

from __future__ import annotations

import contextlib
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tradecore.errors import TradecoreError, quote
from tradecore.oms.order import Order, OrderStateError
from tradecore.oms.types import OrderStatus, OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from tradecore.lobster import Messages
    from tradecore.oms.oms import OMS
    from tradecore.oms.paper import PaperVenue

__all__ = [
    "Algo",
    "AlgoEngine",
    "AlgoKind",
    "AlgoNotFound",
    "AlgoSpec",
    "AlgoState",
    "Denial",
    "Tca",
    "almgren_chriss_kappa",
    "almgren_chriss_trajectory",
    "cumulative_slices",
    "replay_lobster",
    "volume_curve",
]

_NS = 1_000_000_000


class AlgoKind(StrEnum):
    TWAP = "TWAP"
    VWAP = "VWAP"
    POV = "POV"
    IS = "IS"
    ICEBERG = "ICEBERG"


class AlgoState(StrEnum):
    WORKING = "WORKING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"


_SCHEDULED = (AlgoKind.TWAP, AlgoKind.VWAP, AlgoKind.IS)


def _whole(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be a whole number >= {lo}, got {quote(value)}")
    return value


def _number(name: str, value: object, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {quote(value)}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (open_lo and v == lo) or v > hi:
        low = f"> {lo}" if open_lo else f">= {lo}"
        high = "" if hi == math.inf else f" and <= {hi}"
        raise ValueError(f"{name} must be a finite number {low}{high}, got {quote(value)}")
    return v


# ---------------------------------------------------------------------------- schedules
def cumulative_slices(quantity: int, fractions: Sequence[float]) -> list[int]:
    """Whole slices whose running sums are ``quantity`` x the cumulative ``fractions`` rounded
    to the nearest unit (the last fraction is taken as 1, so the slices sum to ``quantity``)."""
    out: list[int] = []
    done = 0
    n = len(fractions)
    for k, f in enumerate(fractions):
        target = quantity if k == n - 1 else min(quantity, math.floor(quantity * f + 0.5))
        target = max(target, done)
        out.append(target - done)
        done = target
    return out


def almgren_chriss_kappa(risk_aversion: float, volatility: float, impact: float) -> float:
    """kappa = sqrt(lambda sigma^2 / eta) (Almgren & Chriss 2000, continuous-time limit)."""
    return math.sqrt(risk_aversion * volatility * volatility / impact)


def almgren_chriss_trajectory(
    quantity: float, horizon: float, slices: int, kappa: float
) -> list[float]:
    """Holdings x_0 .. x_N of the Almgren–Chriss optimal liquidation trajectory.

    R. Almgren and N. Chriss, "Optimal execution of portfolio transactions", Journal of Risk
    3(2), 2000, pp. 5-39, eq. (20)::

        x_k = X sinh(kappa (T - t_k)) / sinh(kappa T),   t_k = k T / N,  k = 0..N

    with kappa the urgency, kappa^2 = lambda sigma^2 / eta (lambda the risk aversion, sigma the
    volatility, eta the temporary impact; :func:`almgren_chriss_kappa`). kappa = 0 (no risk
    aversion) is the limit x_k = X (T - t_k) / T: the straight line of a TWAP; a larger kappa
    trades more at the start. ``horizon`` T and kappa are in the same time unit (seconds in
    :class:`AlgoSpec`). Computed as a ratio of exponentials, so a large kappa T does not overflow.
    """
    out: list[float] = []
    b = kappa * horizon
    for k in range(slices + 1):
        rest = horizon * (slices - k) / slices
        if b < 1e-9:
            out.append(quantity * (slices - k) / slices)
            continue
        a = kappa * rest
        # sinh(a) / sinh(b) = e^(a-b) (1 - e^(-2a)) / (1 - e^(-2b))
        out.append(quantity * math.exp(a - b) * (-math.expm1(-2 * a)) / (-math.expm1(-2 * b)))
    return out


def volume_curve(
    times_ns: npt.ArrayLike,
    sizes: npt.ArrayLike,
    start_ns: int,
    end_ns: int,
    buckets: int,
) -> list[float]:
    """Weights of ``buckets`` equal buckets of [start_ns, end_ns) from trades or bars (their
    times and volumes; a stored history's intraday bars, or a day's own trades). Returns the
    fraction of the volume in each bucket (they sum to 1). ValueError when nothing falls in the
    window."""
    _whole("buckets", buckets, 1)
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be after start_ns, got {start_ns}..{end_ns}")
    t = np.asarray(times_ns, dtype=np.int64)
    v = np.asarray(sizes, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError("times_ns and sizes must be 1-D arrays of one length")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("sizes must be finite and >= 0")
    inside = (t >= start_ns) & (t < end_ns)
    idx = ((t[inside] - start_ns) * buckets // (end_ns - start_ns)).astype(np.int64)
    vol = np.bincount(idx, weights=v[inside], minlength=buckets)
    total = float(vol.sum())
    if total <= 0:
        raise ValueError("curve: no volume in the window")
    return [float(x) / total for x in vol]


# ---------------------------------------------------------------------------- spec and state
@dataclass(frozen=True, slots=True)
class AlgoSpec:
    """A parent order. Times are ns on the engine's clock; ``start_ns`` None: now.

    Per kind: TWAP ``slices``, ``randomize``, ``seed``; VWAP ``curve``; POV ``rate``,
    ``min_rate``, ``max_rate`` (``end_ns`` optional); IS ``slices``, ``risk_aversion``
    (lambda, per currency unit), ``volatility`` (sigma, currency per unit per sqrt(second)),
    ``impact`` (eta, currency per unit per (unit/second)); ICEBERG ``display_quantity`` and a
    ``limit_price`` (``end_ns`` optional). ``limit_price`` caps every child (buy: at most,
    sell: at least)."""

    kind: AlgoKind
    account: str
    symbol: str
    side: Side
    quantity: int
    start_ns: int | None = None
    end_ns: int | None = None
    limit_price: float | None = None
    venue: str = ""
    slices: int = 10
    randomize: float = 0.0
    seed: int = 0
    curve: tuple[float, ...] = ()
    rate: float = 0.1
    min_rate: float | None = None
    max_rate: float | None = None
    risk_aversion: float = 0.0
    volatility: float = 0.0
    impact: float = 0.0
    display_quantity: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", AlgoKind(self.kind))
        except ValueError:
            names = ", ".join(AlgoKind)
            raise ValueError(f"kind must be one of {names}, got {quote(self.kind)}") from None
        for name in ("account", "symbol"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v or len(v) > 128:
                raise ValueError(f"{name} must be a non-empty string of at most 128 characters")
        try:
            object.__setattr__(self, "side", Side(self.side))
        except ValueError:
            raise ValueError(f"side must be one of BUY, SELL, got {quote(self.side)}") from None
        _whole("quantity", self.quantity, 1)
        if self.start_ns is not None:
            _whole("start_ns", self.start_ns, 0)
        if self.end_ns is not None:
            _whole("end_ns", self.end_ns, 0)
            if self.start_ns is not None and self.end_ns <= self.start_ns:
                raise ValueError(f"end_ns must be after start_ns, got {self.end_ns}")
        elif self.kind in _SCHEDULED:
            raise ValueError(f"end_ns is required for a {self.kind.value} algo")
        if self.limit_price is not None:
            _number("limit_price", self.limit_price, 0.0, math.inf, open_lo=True)
        elif self.kind is AlgoKind.ICEBERG:
            raise ValueError("limit_price is required for an ICEBERG algo")
        if not isinstance(self.venue, str):
            raise ValueError("venue must be a string")
        kind = self.kind
        if kind in (AlgoKind.TWAP, AlgoKind.IS):
            _whole("slices", self.slices, 1)
        if kind is AlgoKind.TWAP:
            _number("randomize", self.randomize, 0.0, 1.0)
            if self.randomize >= 1.0:
                raise ValueError(f"randomize must be in [0, 1), got {quote(self.randomize)}")
            _whole("seed", self.seed, 0)
        if kind is AlgoKind.VWAP:
            curve = tuple(self.curve)
            if not curve:
                raise ValueError("curve must have at least one bucket")
            for i, w in enumerate(curve):
                _number(f"curve[{i}]", w, 0.0, math.inf)
            if sum(curve) <= 0:
                raise ValueError("curve must have a positive total weight")
            object.__setattr__(self, "curve", tuple(float(w) for w in curve))
        if kind is AlgoKind.POV:
            rate = _number("rate", self.rate, 0.0, 1.0, open_lo=True)
            lo = rate if self.min_rate is None else self.min_rate
            hi = rate if self.max_rate is None else self.max_rate
            lo = _number("min_rate", lo, 0.0, 1.0, open_lo=True)
            hi = _number("max_rate", hi, 0.0, 1.0, open_lo=True)
            if lo > rate:
                raise ValueError(f"min_rate must be <= rate {rate}, got {quote(lo)}")
            if hi < rate:
                raise ValueError(f"max_rate must be >= rate {rate}, got {quote(hi)}")
            object.__setattr__(self, "min_rate", lo)
            object.__setattr__(self, "max_rate", hi)
        if kind is AlgoKind.IS:
            _number("risk_aversion", self.risk_aversion, 0.0, math.inf)
            _number("volatility", self.volatility, 0.0, math.inf)
            _number("impact", self.impact, 0.0, math.inf, open_lo=True)
        if kind is AlgoKind.ICEBERG:
            _whole("display_quantity", self.display_quantity, 1)


@dataclass(frozen=True, slots=True)
class Denial:
    """A child the pre-trade controls denied (or the venue rejected)."""

    order_id: str
    status: OrderStatus
    reason: str


@dataclass(frozen=True, slots=True)
class Tca:
    """Transaction-cost analysis of a parent (None where there is nothing to measure yet)."""

    arrival_price: float | None
    average_price: float | None
    slippage_arrival_bps: float | None
    interval_vwap: float | None
    slippage_vwap_bps: float | None
    market_volume: int
    participation: float | None


@dataclass(slots=True)
class Algo:
    """A parent order and its state (the engine changes it)."""

    algo_id: str
    spec: AlgoSpec
    start_ns: int
    end_ns: int | None
    state: AlgoState = AlgoState.WORKING
    reason: str = ""
    #: The child order ids, in the order they were sent.
    children: list[str] = field(default_factory=list)
    filled_quantity: int = 0
    filled_value: float = 0.0
    #: Quantity of children still working.
    working_quantity: int = 0
    #: Whether the start time has come (the arrival price is taken then).
    started: bool = False
    arrival_price: float | None = None
    ended_ns: int | None = None
    #: Market trades seen from the start to the end: volume and price x volume.
    market_volume: int = 0
    market_value: float = 0.0
    denials: list[Denial] = field(default_factory=list)
    #: Scheduled algos: (due time, cumulative target quantity) per slice, and the next one.
    schedule: list[tuple[int, int]] = field(default_factory=list)
    next_slice: int = 0
    #: Scheduled algos: the cumulative target of the slices due so far, and whether the latest
    #: due slice has not been sent yet.
    target: int = 0
    slice_due: bool = False
    #: The latest child (quantity, limit price, time sent), and the time before which an equal
    #: child would be a duplicate to the pre-trade controls (the next one waits until then).
    last_child: tuple[int, float | None, int] | None = None
    hold_until: int | None = None

    @property
    def average_price(self) -> float | None:
        return self.filled_value / self.filled_quantity if self.filled_quantity else None

    @property
    def remaining(self) -> int:
        """Quantity neither filled nor working."""
        return self.spec.quantity - self.filled_quantity - self.working_quantity

    def tca(self) -> Tca:
        sign = self.spec.side.sign
        avg = self.average_price
        arrival = self.arrival_price
        vwap = self.market_value / self.market_volume if self.market_volume else None

        def bps(ref: float | None) -> float | None:
            if avg is None or ref is None:
                return None
            return sign * (avg - ref) / ref * 1e4

        return Tca(
            arrival,
            avg,
            bps(arrival),
            vwap,
            bps(vwap),
            self.market_volume,
            self.filled_quantity / self.market_volume if self.market_volume else None,
        )


class AlgoNotFound(TradecoreError):
    """An algo id the engine does not know."""


# ---------------------------------------------------------------------------- engine
class AlgoEngine:
    """Parent orders working through ``oms`` (see the module docstring).

    Args:
        oms: the OMS the children go through.
        id_prefix: algo ids are this prefix and a sequence number.
    """

    def __init__(self, oms: OMS, *, id_prefix: str = "A") -> None:
        self.oms = oms
        self.id_prefix = id_prefix
        self._algos: dict[str, Algo] = {}
        self._mid: dict[str, float] = {}
        self._now = 0
        self._seq = 0

    # -- queries --
    def get(self, algo_id: str) -> Algo:
        algo = self._algos.get(algo_id)
        if algo is None:
            raise AlgoNotFound(f"unknown algo_id {quote(algo_id)}")
        self._sync(algo)
        return algo

    def algos(self) -> list[Algo]:
        for a in self._algos.values():
            self._sync(a)
        return list(self._algos.values())

    def ids(self) -> list[str]:
        """Every algo's id, in start order (nothing is read from the OMS)."""
        return list(self._algos)

    def children(self, algo_id: str) -> list[Order]:
        return [self.oms.order(oid) for oid in self.get(algo_id).children]

    def next_wakeup(self) -> int | None:
        """The earliest time a working algo needs :meth:`on_time` (None: none needs it)."""
        best: int | None = None
        for a in self._algos.values():
            if a.state is not AlgoState.WORKING:
                continue
            if not a.started:
                times: tuple[int | None, ...] = (a.start_ns,)
            else:
                nxt = a.schedule[a.next_slice][0] if a.next_slice < len(a.schedule) else None
                times = (nxt, a.end_ns, a.hold_until)
            for t in times:
                if t is not None and (best is None or t < best):
                    best = t
        return best

    # -- commands --
    def start(
        self, spec: AlgoSpec, *, now_ns: int | None = None, algo_id: str | None = None
    ) -> Algo:
        """Start a parent order (ValueError naming the field for a bad spec). ``algo_id``:
        the caller's id for it (unique among the engine's algos), else the prefix and a
        sequence number."""
        if not isinstance(spec, AlgoSpec):
            raise ValueError("spec must be an AlgoSpec")
        if algo_id is not None and (not algo_id or algo_id in self._algos):
            raise ValueError(f"algo_id must be new and non-empty, got {quote(algo_id)}")
        now = self._tick(now_ns)
        start = now if spec.start_ns is None else spec.start_ns
        if start < now:
            raise ValueError(f"start_ns must not be before the current time {now}, got {start}")
        if spec.end_ns is not None and spec.end_ns <= start:
            raise ValueError(f"end_ns must be after the start {start}, got {spec.end_ns}")
        if spec.venue and spec.venue not in self.oms.venues:
            names = ", ".join(self.oms.venues)
            raise ValueError(f"venue must be one of {names}, got {quote(spec.venue)}")
        if algo_id is None:
            self._seq += 1
            algo_id = f"{self.id_prefix}{self._seq}"
        algo = Algo(algo_id, spec, start, spec.end_ns)
        algo.schedule = _schedule(spec, start)
        self._algos[algo.algo_id] = algo
        self._step(algo)
        return algo

    def stop(self, algo_id: str, reason: str = "stopped", *, now_ns: int | None = None) -> Algo:
        """Stop a parent: no further children, every working child is canceled."""
        algo = self.get(algo_id)
        self._tick(now_ns)
        if algo.state is AlgoState.WORKING:
            self._finish(algo, AlgoState.STOPPED, reason)
        return algo

    # -- persistence --
    def snapshot(self, algo_id: str) -> dict[str, object]:
        """The algo's state as JSON-ready values: what :meth:`restore` needs to carry on.
        Fills and working quantities are not in it (they are the children's, read from the
        OMS); nor is the schedule (recomputed from the spec and the start)."""
        a = self.get(algo_id)
        spec = {f: getattr(a.spec, f) for f in AlgoSpec.__slots__}
        spec["curve"] = list(a.spec.curve)
        return {
            "algo_id": a.algo_id,
            "spec": spec,
            "start_ns": a.start_ns,
            "end_ns": a.end_ns,
            "state": a.state.value,
            "reason": a.reason,
            "children": list(a.children),
            "started": a.started,
            "arrival_price": a.arrival_price,
            "ended_ns": a.ended_ns,
            "market_volume": a.market_volume,
            "market_value": a.market_value,
            "denials": [[d.order_id, d.status.value, d.reason] for d in a.denials],
            "next_slice": a.next_slice,
            "target": a.target,
            "slice_due": a.slice_due,
            "last_child": None if a.last_child is None else list(a.last_child),
            "hold_until": a.hold_until,
        }

    def restore(self, state: dict[str, typing.Any]) -> Algo:
        """Take back an algo from :meth:`snapshot` (nothing is sent). Children the OMS holds
        under the algo's next client order ids (``<algo_id>.<n>``: sent after the snapshot
        was taken) are adopted, so none is sent twice."""
        spec = AlgoSpec(**{**state["spec"], "curve": tuple(state["spec"]["curve"])})
        a = Algo(state["algo_id"], spec, int(state["start_ns"]), state["end_ns"])
        a.state = AlgoState(state["state"])
        a.reason = state["reason"]
        a.children = list(state["children"])
        a.started = bool(state["started"])
        a.arrival_price = state["arrival_price"]
        a.ended_ns = state["ended_ns"]
        a.market_volume = int(state["market_volume"])
        a.market_value = float(state["market_value"])
        a.denials = [Denial(o, OrderStatus(st), r) for o, st, r in state["denials"]]
        a.schedule = _schedule(spec, a.start_ns)
        a.next_slice = int(state["next_slice"])
        a.target = int(state["target"])
        a.slice_due = bool(state["slice_due"])
        last = state["last_child"]
        a.last_child = None if last is None else (int(last[0]), last[1], int(last[2]))
        a.hold_until = state["hold_until"]
        self._adopt(a)
        self._algos[a.algo_id] = a
        self._sync(a)
        return a

    def resume(self, algo_id: str) -> Algo:
        """Adopt children sent after the algo's last snapshot (see :meth:`restore`)."""
        a = self.get(algo_id)
        self._adopt(a)
        self._sync(a)
        return a

    def _adopt(self, a: Algo) -> None:
        while True:
            found = self.oms.find(a.spec.account, f"{a.algo_id}.{len(a.children) + 1}")
            if found is None:
                return
            a.children.append(found.order_id)
            a.last_child = (found.quantity, found.limit_price, found.created_ns)

    # -- market and clock --
    def on_quote(self, symbol: str, bid: float, ask: float, time_ns: int) -> None:
        self._tick(time_ns)
        if math.isfinite(bid) and math.isfinite(ask) and 0.0 < bid <= ask:
            self._mid[symbol] = 0.5 * (bid + ask)
        self._step_all(symbol)

    def on_trade(self, symbol: str, price: float, size: int, time_ns: int) -> None:
        _number("price", price, 0.0, math.inf, open_lo=True)
        _whole("size", size, 1)
        now = self._tick(time_ns)
        for a in self._algos.values():
            if a.state is AlgoState.WORKING and a.spec.symbol == symbol:
                if not a.started and now >= a.start_ns:
                    self._activate(a)
                if a.started:
                    a.market_volume += size
                    a.market_value += price * size
        self._step_all(symbol)

    def on_time(self, time_ns: int) -> None:
        self._tick(time_ns)
        self._step_all(None)

    # -- internals --
    def _tick(self, time_ns: int | None) -> int:
        t = self.oms.clock_ns() if time_ns is None else time_ns
        self._now = max(self._now, t)
        return self._now

    def _step_all(self, symbol: str | None) -> None:
        for a in list(self._algos.values()):
            if a.state is AlgoState.WORKING and (symbol is None or a.spec.symbol == symbol):
                self._step(a)
            elif a.working_quantity:
                self._sync(a)  # a finished parent's children still in flight (cancel races)

    def _activate(self, a: Algo) -> None:
        a.started = True
        a.arrival_price = self._mid.get(a.spec.symbol)

    def _sync(self, a: Algo) -> None:
        filled = 0
        value = 0.0
        working = 0
        for oid in a.children:
            o = self.oms.order(oid)
            filled += o.filled_quantity
            value += o.filled_value
            working += o.leaves
        a.filled_quantity, a.filled_value, a.working_quantity = filled, value, working

    def _step(self, a: Algo) -> None:
        now = self._now
        self._sync(a)
        if a.state is not AlgoState.WORKING:
            return
        if not a.started:
            if now < a.start_ns:
                return
            self._activate(a)
        if a.filled_quantity >= a.spec.quantity:
            self._finish(a, AlgoState.COMPLETED, "")
            return
        if a.end_ns is not None and now >= a.end_ns:
            left = a.spec.quantity - a.filled_quantity
            self._finish(a, AlgoState.STOPPED, f"end_ns reached with {left} unfilled")
            return
        while a.next_slice < len(a.schedule) and a.schedule[a.next_slice][0] <= now:
            a.target = a.schedule[a.next_slice][1]
            a.slice_due = True
            a.next_slice += 1
        if a.hold_until is not None:
            if now < a.hold_until:
                return
            a.hold_until = None
        qty = min(self._want(a), a.remaining)
        if qty <= 0:
            a.slice_due = False
            return
        price = a.spec.limit_price
        window = self.oms.controls.limits(a.spec.account).duplicate_window_ns
        last = a.last_child
        # a child equal to the last one is a duplicate to the controls until the window passes
        equal = last is not None and last[:2] == (qty, price)
        if equal and window is not None and last is not None and now - last[2] < window:
            a.hold_until = last[2] + window
            return
        a.slice_due = False
        self._send(a, qty, now)
        self._sync(a)
        if a.state is AlgoState.WORKING and a.filled_quantity >= a.spec.quantity:
            self._finish(a, AlgoState.COMPLETED, "")

    def _want(self, a: Algo) -> int:
        """How much the algo wants to send now."""
        spec = a.spec
        have = a.filled_quantity + a.working_quantity
        if spec.kind in _SCHEDULED:
            return a.target - have if a.slice_due else 0
        if spec.kind is AlgoKind.POV:
            assert spec.min_rate is not None
            v = a.market_volume
            if have < spec.min_rate * v:
                return math.floor(spec.rate * v) - have
            return 0
        # ICEBERG: one child at a time
        return 0 if a.working_quantity else spec.display_quantity

    def _send(self, a: Algo, qty: int, now: int) -> None:
        spec = a.spec
        n = len(a.children) + 1
        child = self.oms.submit(
            account=spec.account,
            client_order_id=f"{a.algo_id}.{n}",
            symbol=spec.symbol,
            side=spec.side,
            quantity=qty,
            type=OrderType.MARKET if spec.limit_price is None else OrderType.LIMIT,
            time_in_force=TimeInForce.DAY,
            limit_price=spec.limit_price,
            venue=spec.venue,
        )
        a.children.append(child.order_id)
        a.last_child = (qty, spec.limit_price, now)
        if child.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            a.denials.append(Denial(child.order_id, child.status, child.reason))
            self._sync(a)
            word = "denied" if child.status is OrderStatus.DENIED else "rejected"
            self._finish(a, AlgoState.STOPPED, f"child {child.order_id} {word}: {child.reason}")

    def _finish(self, a: Algo, state: AlgoState, reason: str) -> None:
        a.state = state
        a.reason = reason
        a.ended_ns = self._now
        for oid in a.children:
            o = self.oms.order(oid)
            if o.is_open and o.pending is not OrderStatus.PENDING_CANCEL:
                with contextlib.suppress(OrderStateError):  # a fill raced the cancel
                    self.oms.cancel(oid)
        self._sync(a)


def _schedule(spec: AlgoSpec, start: int) -> list[tuple[int, int]]:
    """(due time, cumulative target) of each slice of a scheduled algo (empty otherwise)."""
    if spec.kind not in _SCHEDULED:
        return []
    assert spec.end_ns is not None
    span = spec.end_ns - start
    q = spec.quantity
    if spec.kind is AlgoKind.TWAP:
        n = spec.slices
        offsets = [0.0] * n
        if spec.randomize > 0:
            rng = np.random.default_rng(spec.seed)
            offsets = [spec.randomize * float(u) for u in rng.random(n)]
        times = [start + k * span // n + int(offsets[k] * span / n) for k in range(n)]
        parts = cumulative_slices(q, [(k + 1) / n for k in range(n)])
    elif spec.kind is AlgoKind.VWAP:
        n = len(spec.curve)
        total = sum(spec.curve)
        cum = np.cumsum(spec.curve) / total
        times = [start + k * span // n for k in range(n)]
        parts = cumulative_slices(q, [float(c) for c in cum])
    else:  # IS
        n = spec.slices
        kappa = almgren_chriss_kappa(spec.risk_aversion, spec.volatility, spec.impact)
        x = almgren_chriss_trajectory(float(q), span / _NS, n, kappa)
        times = [start + k * span // n for k in range(n)]
        parts = cumulative_slices(q, [(q - x[k + 1]) / q for k in range(n)])
    out: list[tuple[int, int]] = []
    cum_q = 0
    for t, p in zip(times, parts, strict=True):
        cum_q += p
        out.append((t, cum_q))
    return out


# ---------------------------------------------------------------------------- replay driver
def replay_lobster(
    engine: AlgoEngine,
    venue: PaperVenue,
    symbol: str,
    messages: Messages,
    book_rows: npt.NDArray[np.int64],
    start: int = 0,
    stop: int | None = None,
    *,
    on_quote: Callable[[str, float, float], None] | None = None,
) -> None:
    """Replay LOBSTER messages ``start:stop`` (level-1 ``book_rows``) into ``venue`` and
    ``engine``: before each message the engine's due wake-ups run (the venue's clock moved to
    each), then the message goes to the venue, its execution (kinds 4 and 5) to
    :meth:`AlgoEngine.on_trade` and the row's best bid and ask to :meth:`AlgoEngine.on_quote`
    (and to ``on_quote``, e.g. the pre-trade controls' reference prices, before the engine).
    A day is replayed in consecutive windows (``start`` the previous ``stop``), from 0."""
    from tradecore.lobster import EMPTY_ASK, EMPTY_BID

    end = len(messages) if stop is None else stop
    scale = float(venue.config.price_scale)
    times = messages.time_ns.tolist()
    kinds = messages.type.tolist()
    prices = messages.price.tolist()
    sizes = messages.size.tolist()
    for i in range(start, end):
        t = times[i]
        wake = engine.next_wakeup()
        while wake is not None and wake <= t:
            venue.advance(max(wake, venue.now))
            engine.on_time(wake)
            wake = engine.next_wakeup()
        venue.feed_lobster(symbol, messages, book_rows, 1, i, i + 1)
        if kinds[i] in (4, 5):
            engine.on_trade(symbol, prices[i] / scale, sizes[i], t)
        ask, _, bid, _ = (int(x) for x in book_rows[i][:4])
        if bid != EMPTY_BID and ask != EMPTY_ASK:
            if on_quote is not None:
                on_quote(symbol, bid / scale, ask / scale)
            engine.on_quote(symbol, bid / scale, ask / scale, t)
