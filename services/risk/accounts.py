"""The state of one account: positions, marks, Greeks, fast VaR, day P&L, limits and mode.

An :class:`AccountBook` is pure logic (no NATS, no server): the service feeds it fills
(:meth:`AccountBook.apply_fill`), quotes (:meth:`AccountBook.on_quote`) and SetPositions
(:meth:`AccountBook.set_positions`), then calls :meth:`AccountBook.evaluate`, which returns the
snapshot to publish and, when limits are breached, the alerts and the new trading state, all
from that one update.

Positions
    From fills: signed quantity (BUY +, SELL -), average open price, realized P&L on a reduction
    (``(price - average) x closed quantity x multiplier``, fees subtracted), deduplicated by
    ``fill_id``. Options take their underlying, right, strike and expiry from the fill's
    instrument; time to expiry is ``(expiry_time_ns - now) / 365 days`` at each evaluation
    (``now`` is the caller's: the service passes its clock, since a replayed feed's event times
    are historical). Equity options from fills are American by default
    (:attr:`AccountConfig.option_style`). SetPositions replaces the positions wholesale, with
    its market (rate, dividend yields, volatilities, the correlation, and spots until the first
    quote); its positions' cost is their value at the first mark.

Marks and Greeks
    The spot of an underlying is the mid of its latest two-sided quote (any venue). Per unit of
    each position the price and first-order Greeks come from ``tradecore.pricing`` (European:
    BSM; American: ALO), cached and recomputed only for the underlying that moved (or whose
    positions changed). An underlying with no spot yet adds nothing to the Greeks or the VaR.
    Exposures are ``quantity x multiplier x`` the per-unit Greek (``events.v1.GreekExposure``).

Fast VaR
    Per account one fixed set of standard normals, ``tradecore.risk.normals(seed, paths, n)``
    (the seed is the CRC-32 of the account), correlated through the Cholesky factor of the
    account's correlation (identity for accounts built from fills), turned once into relative
    moves of each underlying under the issue's horizon model,
    ``R = exp(-sigma^2 h / 2 + sigma sqrt(h) Z) - 1`` (h = 1/252). On each update the loss per
    scenario is ``-(sum_u delta_u S_u R_u + 1/2 gamma_u S_u^2 R_u^2 + theta h)``; VaR is its
    99 % order statistic and ES the mean at or beyond it (``tradecore.risk.result.var_es``).
    The scenario set is rebuilt only when the account's set of underlyings or its
    volatilities/correlation change.

Day P&L
    Equity is cash (from fills: minus what was paid, plus what was received, minus fees) plus
    the marked value of the positions; the day's P&L is equity minus the equity at the
    account's first evaluation of the UTC day. SetPositions restarts the reference (cash 0).
"""

from __future__ import annotations

import math
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from tradecore.errors import quote
from tradecore.pricing import DOMAIN, american, european_arrays
from tradecore.risk.book import (
    KIND_AMERICAN,
    KIND_EQUITY,
    KIND_EUROPEAN,
    book_arrays,
    cholesky_factor,
)
from tradecore.risk.normals import normals
from tradecore.risk.result import var_es
from tradecore.subjects import validate_token
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb

from . import convert
from . import limits as lim

FloatArray = npt.NDArray[np.float64]

DAY_NS = 86_400 * 1_000_000_000
YEAR_NS = 365 * DAY_NS
TRADING_DAYS = 252.0
GREEKS = ("delta", "gamma", "vega", "theta", "rho")
SOURCE = "risk"


@dataclass(frozen=True)
class AccountConfig:
    """How accounts are valued (the service's settings)."""

    #: Scenarios of the fast VaR.
    paths: int = 10_000
    confidence: float = 0.99
    horizon_days: float = 1.0
    #: Volatility, dividend yield and rate of underlyings no SetPositions market describes.
    volatility: float = 0.25
    dividend_yield: float = 0.0
    rate: float = 0.0
    #: Exercise style of equity options built from fills.
    option_style: Literal["american", "european"] = "american"
    #: Multiplier of an option fill whose instrument leaves it 0.
    option_multiplier: float = 100.0


@dataclass
class Holding:
    """One instrument held (signed quantity) and what was realized on it."""

    symbol: str
    underlying: str
    kind: int  # KIND_EQUITY / KIND_EUROPEAN / KIND_AMERICAN
    option_type: int  # +1 call, -1 put, 0 equity
    strike: float
    expiry_ns: int  # 0 for an equity
    multiplier: float
    quantity: float = 0.0
    #: Per unit, before the multiplier; NaN: the value at the first mark (SetPositions).
    average_price: float = math.nan
    realized_pnl: float = 0.0

    def risk_position(self, now_ns: int) -> pb.RiskPosition:
        ins = pb.RiskInstrument(symbol=self.symbol)
        if self.kind == KIND_EQUITY:
            ins.kind = common_pb2.EQUITY
        else:
            ins.kind = common_pb2.OPTION
            ins.underlying = self.underlying
            ins.option_type = common_pb2.CALL if self.option_type > 0 else common_pb2.PUT
            ins.style = pb.AMERICAN if self.kind == KIND_AMERICAN else pb.EUROPEAN
            ins.strike = self.strike
            ins.expiry_years = max((self.expiry_ns - now_ns) / YEAR_NS, 0.0)
        return pb.RiskPosition(instrument=ins, quantity=self.quantity, multiplier=self.multiplier)


@dataclass
class Leg:
    """The positions on one underlying with their cached per-unit prices and Greeks."""

    symbol: str
    volatility: float
    dividend_yield: float
    spot: float = math.nan
    holdings: list[Holding] = field(default_factory=list)
    #: Per holding, per unit: price and the Greeks (rows in GREEKS order).
    price: FloatArray = field(default_factory=lambda: np.zeros(0))
    greeks: FloatArray = field(default_factory=lambda: np.zeros((len(GREEKS), 0)))
    dirty: bool = True
    #: Marked at ``spot`` (valid when not dirty): exposure, value, cost, realized.
    exposure: FloatArray = field(default_factory=lambda: np.zeros(len(GREEKS)))
    value: float = 0.0
    unrealized: float = 0.0
    realized: float = 0.0

    def revalue(self, rate: float, now_ns: int) -> None:
        """Reprice every holding at ``spot`` and the time ``now_ns`` (ALO for American
        options, BSM otherwise; intrinsic value once expired)."""
        hs = self.holdings
        n = len(hs)
        self.price = np.zeros(n)
        self.greeks = np.zeros((len(GREEKS), n))
        self.realized = sum(h.realized_pnl for h in hs)
        if not math.isfinite(self.spot):
            self.exposure = np.zeros(len(GREEKS))
            self.value = self.unrealized = 0.0
            self.dirty = False
            return
        s = self.spot
        units = np.array([h.quantity * h.multiplier for h in hs])
        opt = [i for i, h in enumerate(hs) if h.kind != KIND_EQUITY]
        for i, h in enumerate(hs):
            if h.kind == KIND_EQUITY:
                self.price[i] = s
                self.greeks[0, i] = 1.0
        live_eu: list[int] = []
        live_am: list[int] = []
        for i in opt:
            h = hs[i]
            t = (h.expiry_ns - now_ns) / YEAR_NS
            if t < DOMAIN.expiry_min:
                # Expired (or expiring now): intrinsic value, delta +-1 in the money.
                itm = h.option_type * (s - h.strike)
                self.price[i] = max(itm, 0.0)
                self.greeks[0, i] = float(h.option_type) if itm > 0 else 0.0
            elif h.kind == KIND_AMERICAN:
                live_am.append(i)
            else:
                live_eu.append(i)
        for rows, style in ((live_eu, "european"), (live_am, "american")):
            if not rows:
                continue
            idx = np.asarray(rows, np.intp)
            m = idx.size
            spot: FloatArray = np.full(m, s)
            strike: FloatArray = np.array([hs[i].strike for i in rows])
            tau: FloatArray = np.array([(hs[i].expiry_ns - now_ns) / YEAR_NS for i in rows])
            r: FloatArray = np.full(m, rate)
            q: FloatArray = np.full(m, self.dividend_yield)
            vol: FloatArray = np.full(m, self.volatility)
            codes = np.array([hs[i].option_type for i in rows], np.int8)
            if style == "european":
                out = european_arrays(spot, strike, tau, r, q, vol, codes, greeks=GREEKS)
            else:
                # One thread: OpenMP's wake-up of idle threads costs more than a few options.
                out = american(spot, strike, tau, r, q, vol, codes, greeks=True, threads=1)
            self.price[idx] = out["price"]
            for g, name in enumerate(GREEKS):
                self.greeks[g, idx] = out[name]
        for i, h in enumerate(hs):
            if math.isnan(h.average_price):
                h.average_price = float(self.price[i])
        cost = np.array([h.average_price for h in hs])
        self.exposure = self.greeks @ units
        self.value = float(self.price @ units)
        self.unrealized = float((self.price - cost) @ units)
        self.dirty = False


@dataclass
class Update:
    """What one evaluation produced: the snapshot, the alerts of new breaches and the new
    trading state (None when the mode did not change)."""

    snapshot: events.RiskSnapshot
    alerts: list[events.Alert]
    state: events.TradingState | None
    breaches: list[lim.Breach]


def fill_time(fill: execution_pb2.Fill) -> int:
    return fill.exchange_time_ns or fill.receive_time_ns


def option_from_fill(fill: execution_pb2.Fill) -> tuple[str, int, float, int]:
    """(underlying, +1/-1, strike, expiry_time_ns) of an option fill; ValueError naming the
    instrument field that is missing."""
    ins = fill.instrument
    if not ins.underlying:
        raise ValueError("instrument.underlying: must be set for an option")
    validate_token("instrument.underlying", ins.underlying)
    if ins.right == common_pb2.CALL:
        right = 1
    elif ins.right == common_pb2.PUT:
        right = -1
    else:
        raise ValueError("instrument.right: must be CALL or PUT for an option")
    if not (math.isfinite(ins.strike) and ins.strike > 0.0):
        raise ValueError(f"instrument.strike: must be > 0, got {ins.strike!r}")
    if ins.expiry_time_ns <= 0:
        raise ValueError("instrument.expiry_time_ns: must be set for an option")
    return ins.underlying, right, ins.strike, ins.expiry_time_ns


class AccountBook:
    """One account's positions, marks, risk, limits and trading mode."""

    def __init__(self, account: str, config: AccountConfig | None = None) -> None:
        self.account = validate_token("account", account)
        self.config = config or AccountConfig()
        self.holdings: dict[str, Holding] = {}
        self.legs: dict[str, Leg] = {}
        self.rate = self.config.rate
        #: Volatility and dividend yield per underlying set by SetPositions.
        self.market_vol: dict[str, float] = {}
        self.market_div: dict[str, float] = {}
        self.correlation: dict[tuple[str, str], float] = {}
        self.cash = 0.0
        self.fill_ids: set[str] = set()
        self.day: int | None = None
        self.day_start_equity = 0.0
        self.limits = pb.Limits(account=account, breach_mode=lim.REDUCE_ONLY)
        self.mode: int = lim.ENABLED
        self.mode_reason = ""
        self.mode_changed_by = ""
        self.mode_time_ns = 0
        self.state_sequence = 0
        self.snapshot_sequence = 0
        self.alert_sequence = 0
        self.active: set[tuple[str, str]] = set()
        self.last: Update | None = None
        self.var = 0.0
        self.es = 0.0
        self.day_pnl = 0.0
        # The fast VaR's scenarios: underlyings in column order and their relative moves.
        self._columns: tuple[str, ...] = ()
        self._moves: FloatArray = np.zeros((0, 0))
        self._moves_sq: FloatArray = np.zeros((0, 0))
        self._seed = zlib.crc32(account.encode())

    # -- inputs ---------------------------------------------------------------------------

    def _leg(self, underlying: str) -> Leg:
        leg = self.legs.get(underlying)
        if leg is None:
            leg = Leg(
                underlying,
                self.market_vol.get(underlying, self.config.volatility),
                self.market_div.get(underlying, self.config.dividend_yield),
            )
            self.legs[underlying] = leg
        return leg

    def apply_fill(self, fill: execution_pb2.Fill) -> bool:
        """Add a fill to the positions; False for a fill already applied (same ``fill_id``).
        ValueError naming the field for a fill that cannot be applied."""
        if not fill.fill_id:
            raise ValueError("fill_id: must not be empty")
        if fill.fill_id in self.fill_ids:
            return False
        if fill.side == common_pb2.BUY:
            sign = 1.0
        elif fill.side == common_pb2.SELL:
            sign = -1.0
        else:
            raise ValueError("side: must be BUY or SELL")
        if fill.quantity <= 0:
            raise ValueError(f"quantity: must be > 0, got {fill.quantity}")
        if not (math.isfinite(fill.price) and fill.price >= 0.0):
            raise ValueError(f"price: must be finite and >= 0, got {fill.price!r}")
        if not math.isfinite(fill.fee):
            raise ValueError(f"fee: must be finite, got {fill.fee!r}")
        ins = fill.instrument
        symbol = validate_token("instrument.symbol", ins.symbol)
        holding = self.holdings.get(symbol)
        if holding is None:
            if ins.kind == common_pb2.OPTION:
                underlying, right, strike, expiry_ns = option_from_fill(fill)
                style = KIND_AMERICAN if self.config.option_style == "american" else KIND_EUROPEAN
                mult = ins.multiplier or self.config.option_multiplier
                holding = Holding(symbol, underlying, style, right, strike, expiry_ns, mult)
            elif ins.kind in (common_pb2.EQUITY, common_pb2.INSTRUMENT_KIND_UNSPECIFIED):
                holding = Holding(symbol, symbol, KIND_EQUITY, 0, math.nan, 0, ins.multiplier or 1)
            else:
                raise ValueError("instrument.kind: must be EQUITY or OPTION")
            if not (math.isfinite(holding.multiplier) and holding.multiplier > 0):
                raise ValueError(f"instrument.multiplier: must be > 0, got {holding.multiplier!r}")
            self.holdings[symbol] = holding
            self._leg(holding.underlying).holdings.append(holding)
        self.fill_ids.add(fill.fill_id)
        qty = sign * fill.quantity
        old = holding.quantity
        mult = holding.multiplier
        if old == 0.0 or (old > 0) == (qty > 0):
            basis = 0.0 if old == 0.0 or math.isnan(holding.average_price) else old
            avg = 0.0 if basis == 0.0 else holding.average_price
            holding.average_price = (avg * basis + fill.price * qty) / (basis + qty)
        else:
            closed = min(abs(qty), abs(old))
            direction = 1.0 if old > 0 else -1.0
            holding.realized_pnl += (fill.price - holding.average_price) * closed * direction * mult
            if abs(qty) > abs(old):  # flipped: the rest opens at the fill's price
                holding.average_price = fill.price
        holding.quantity = old + qty
        holding.realized_pnl -= fill.fee
        self.cash -= qty * mult * fill.price + fill.fee
        if holding.kind == KIND_EQUITY and not math.isfinite(self._leg(holding.underlying).spot):
            self._leg(holding.underlying).spot = fill.price if fill.price > 0 else math.nan
        self._leg(holding.underlying).dirty = True
        return True

    def on_quote(self, symbol: str, mid: float) -> bool:
        """Mark ``symbol`` at ``mid``; True when it is held and the spot changed."""
        leg = self.legs.get(symbol)
        if leg is None or mid == leg.spot:
            return False
        leg.spot = mid
        leg.dirty = True
        return True

    def set_positions(self, request: pb.SetPositionsRequest, now_ns: int) -> None:
        """Replace the positions and market (ValueError naming the request's field)."""
        positions = convert.positions(request.positions)
        market = convert.market(request.market)
        # No positions: the account is emptied (its market is not needed).
        book = book_arrays(positions, market) if positions else None
        holdings: dict[str, Holding] = {}
        legs: dict[str, Leg] = {}
        vols: dict[str, float] = {}
        divs: dict[str, float] = {}
        corr: dict[tuple[str, str], float] = {}
        spots: dict[str, float] = {}
        if book is not None:
            for j, s in enumerate(book.symbols):
                vols[s] = float(book.volatility[j])
                divs[s] = float(book.dividend_yield[j])
                spots[s] = float(book.spot[j])
                for k, t in enumerate(book.symbols):
                    corr[(s, t)] = float(book.correlation[j, k])
            for i, p in enumerate(positions):
                u = book.symbols[int(book.underlying[i])]
                key = p.instrument.symbol
                if key in holdings:
                    raise ValueError(
                        f"positions[{i}].instrument.symbol: {quote(key)} is listed twice"
                    )
                kind = int(book.kind[i])
                if p.multiplier is not None:
                    mult = float(p.multiplier)
                else:
                    mult = 1.0 if kind == KIND_EQUITY else 100.0
                h = Holding(
                    key,
                    u,
                    kind,
                    int(book.option_type[i]),
                    float(book.strike[i]),
                    0 if kind == KIND_EQUITY else now_ns + round(float(book.expiry[i]) * YEAR_NS),
                    mult,
                    float(p.quantity),
                )
                holdings[key] = h
        self.rate = book.rate if book is not None else self.config.rate
        self.market_vol, self.market_div, self.correlation = vols, divs, corr
        self.holdings = holdings
        for h in holdings.values():
            if h.underlying not in legs:
                legs[h.underlying] = Leg(
                    h.underlying,
                    vols.get(h.underlying, self.config.volatility),
                    divs.get(h.underlying, self.config.dividend_yield),
                )
                old = self.legs.get(h.underlying)
                # A quote seen before wins over the request's spot.
                seen = old.spot if old is not None else math.nan
                legs[h.underlying].spot = seen if math.isfinite(seen) else spots[h.underlying]
            legs[h.underlying].holdings.append(h)
        self.legs = legs
        self.cash = 0.0
        self.day = None
        self._columns = ()  # the scenarios follow the new market

    def set_limits(self, limits: pb.Limits) -> pb.Limits:
        """Replace the limits (validated; ValueError naming ``limits.<field>``); the version
        goes up by one. Takes effect at the next evaluation."""
        new = lim.validate_limits(limits)
        new.account = self.account
        new.version = self.limits.version + 1
        self.limits = new
        return new

    def restore_limits(self, limits: pb.Limits) -> None:
        """Limits read back from the journal (already validated when they were set)."""
        self.limits = pb.Limits()
        self.limits.CopyFrom(limits)

    def set_mode(self, mode: int, reason: str, changed_by: str, now_ns: int) -> events.TradingState:
        """An operator's change of the trading mode; the state event to publish."""
        lim.check_mode("mode", mode)
        return self._change_mode(mode, reason, changed_by, now_ns)

    def restore_state(self, state: events.TradingState) -> None:
        """The trading state read back from the journal."""
        self.mode = int(state.mode)
        self.mode_reason = state.reason
        self.mode_changed_by = state.changed_by
        self.mode_time_ns = state.event_time_ns
        self.state_sequence = state.sequence

    def _change_mode(
        self, mode: int, reason: str, changed_by: str, now_ns: int
    ) -> events.TradingState:
        self.mode = mode
        self.mode_reason = reason
        self.mode_changed_by = changed_by
        self.mode_time_ns = now_ns
        self.state_sequence += 1
        return self.state()

    def state(self) -> events.TradingState:
        return events.TradingState(
            account=self.account,
            mode=events.TradingMode.ValueType(self.mode),
            reason=self.mode_reason,
            changed_by=self.mode_changed_by,
            event_time_ns=self.mode_time_ns,
            sequence=self.state_sequence,
        )

    # -- evaluation -----------------------------------------------------------------------

    def _scenarios(self) -> None:
        """(Re)build the fixed relative moves when the set of underlyings changed."""
        columns = tuple(self.legs)
        if columns == self._columns:
            return
        n = len(columns)
        self._columns = columns
        if n == 0:
            self._moves = self._moves_sq = np.zeros((self.config.paths, 0))
            return
        c = np.eye(n)
        for j, s in enumerate(columns):
            for k, t in enumerate(columns):
                if j != k:
                    c[j, k] = self.correlation.get((s, t), 0.0)
        z = normals(self._seed, self.config.paths, n)
        if n > 1:
            z = z @ cholesky_factor(c).factor.T
        h = self.config.horizon_days / TRADING_DAYS
        vol = np.array([self.legs[s].volatility for s in columns])
        self._moves = np.expm1(-0.5 * vol**2 * h + vol * math.sqrt(h) * z)
        self._moves_sq = self._moves**2

    def _var(self) -> tuple[float, float]:
        self._scenarios()
        legs = [self.legs[s] for s in self._columns]
        if not legs:
            return 0.0, 0.0
        spot = np.array([leg.spot if math.isfinite(leg.spot) else 0.0 for leg in legs])
        delta = np.array([leg.exposure[0] for leg in legs])
        gamma = np.array([leg.exposure[1] for leg in legs])
        theta = sum(float(leg.exposure[3]) for leg in legs)
        h = self.config.horizon_days / TRADING_DAYS
        pnl = self._moves @ (delta * spot) + self._moves_sq @ (0.5 * gamma * spot**2)
        pnl += theta * h
        var, es, _, _ = var_es(-pnl, self.config.confidence)
        return var, es

    def evaluate(self, now_ns: int) -> Update:
        """Reprice what moved, recompute the totals, the VaR and the day P&L, check the limits
        and move the trading mode; the update to publish (snapshot sequence + 1)."""
        for leg in self.legs.values():
            if leg.dirty:
                leg.revalue(self.rate, now_ns)
        self.var, self.es = self._var()
        total = np.zeros(len(GREEKS))
        value = realized = unrealized = 0.0
        snap = events.RiskSnapshot(account=self.account, as_of_time_ns=now_ns)
        per: dict[str, lim.Exposure] = {}
        for s, leg in self.legs.items():
            total += leg.exposure
            value += leg.value
            realized += leg.realized
            unrealized += leg.unrealized
            spot = leg.spot if math.isfinite(leg.spot) else 0.0
            e = leg.exposure
            notional = float(e[0]) * spot
            snap.underlyings.add(
                underlying=s,
                spot=spot,
                greeks=events.GreekExposure(**dict(zip(GREEKS, e.tolist(), strict=True))),
                delta_notional=notional,
                unrealized_pnl=leg.unrealized,
                realized_pnl=leg.realized,
            )
            per[s] = lim.Exposure(float(e[0]), float(e[1]), float(e[2]), notional)
        snap.total.CopyFrom(events.GreekExposure(**dict(zip(GREEKS, total.tolist(), strict=True))))
        snap.realized_pnl = realized
        snap.unrealized_pnl = unrealized
        equity = self.cash + value
        snap.equity = equity
        day = now_ns // DAY_NS
        if self.day != day:
            self.day = day
            self.day_start_equity = equity
        self.day_pnl = equity - self.day_start_equity
        self.snapshot_sequence += 1
        snap.sequence = self.snapshot_sequence
        breaches = lim.check(
            self.limits,
            var=self.var,
            day_pnl=self.day_pnl,
            total=lim.Exposure(float(total[0]), float(total[1]), float(total[2])),
            underlyings=per,
        )
        alerts = [self._alert(b, now_ns) for b in breaches if b.key not in self.active]
        self.active = {b.key for b in breaches}
        state = None
        need = lim.required_mode(breaches)
        if need > self.mode:
            codes = sorted({b.code for b in breaches if b.mode == need})
            state = self._change_mode(need, "breach: " + ", ".join(codes), SOURCE, now_ns)
        update = Update(snap, alerts, state, breaches)
        self.last = update
        return update

    def _alert(self, b: lim.Breach, now_ns: int) -> events.Alert:
        self.alert_sequence += 1
        where = f" on {b.symbol}" if b.symbol else ""
        return events.Alert(
            alert_id=uuid.uuid4().hex,
            account=self.account,
            severity=events.CRITICAL,
            code=b.code,
            message=(
                f"{b.code}{where}: {b.value:.6g} over the limit {b.limit:.6g}; "
                f"trading mode {lim.mode_name(b.mode)}"
            ),
            source=SOURCE,
            symbol=b.symbol,
            value=b.value,
            limit=b.limit,
            event_time_ns=now_ns,
            sequence=self.alert_sequence,
        )

    def account_risk(self, now_ns: int) -> pb.AccountRisk:
        """The latest state (an empty snapshot, sequence 0, before the first evaluation)."""
        snap = (
            self.last.snapshot
            if self.last is not None
            else events.RiskSnapshot(account=self.account, as_of_time_ns=now_ns)
        )
        out = pb.AccountRisk(
            snapshot=snap,
            var=self.var,
            expected_shortfall=self.es,
            day_pnl=self.day_pnl,
            state=self.state(),
            limits=self.limits,
        )
        out.positions.extend(h.risk_position(snap.as_of_time_ns) for h in self.holdings.values())
        return out


__all__ = [
    "DAY_NS",
    "YEAR_NS",
    "AccountBook",
    "AccountConfig",
    "Holding",
    "Leg",
    "Update",
    "fill_time",
    "option_from_fill",
]
