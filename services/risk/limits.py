"""An account's limits, the breaches of them, and the trading state a breach leads to.

Limits (``risk.v1.Limits``; 0 = no limit) are checked after every update of the account
(:meth:`LimitSet.check`) against figures in the units the snapshot publishes
(``events.v1.GreekExposure``):

=============================  ===============================================  ==========
code                           measured value                                   per
=============================  ===============================================  ==========
``limit.var``                  the account's delta-gamma VaR (99 %, 1 day)      account
``limit.day_loss``             loss since the start of the UTC day (-day P&L)   account
``limit.delta``                abs(delta) (shares), per underlying and total     both
``limit.gamma``                abs(gamma) (shares per 1.00 of spot)             both
``limit.vega``                 abs(vega) (currency per 1.00 of volatility)      both
``limit.concentration``        abs(delta notional) of one underlying over the   underlying
                               sum of abs(delta notional) of all (gross)
=============================  ===============================================  ==========

A breach moves the account's trading mode to the limits' ``breach_mode`` (REDUCE_ONLY by
default, or HALTED); a day-loss breach always halts. The mode only escalates by itself
(ENABLED < REDUCE_ONLY < HALTED): a breach that clears leaves the mode where it is, and only an
operator (SetTradingState) moves it back; while a breach persists, the next update escalates
the mode again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tradecore.errors import quote
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb

ENABLED = events.ENABLED
REDUCE_ONLY = events.REDUCE_ONLY
HALTED = events.HALTED
MODES = (ENABLED, REDUCE_ONLY, HALTED)

# The limit fields: (proto field, code, scope) in the order they are checked.
_ACCOUNT_FIELDS = (("max_var", "limit.var"), ("max_day_loss", "limit.day_loss"))
_GREEK_FIELDS = (
    ("max_delta", "max_delta_per_underlying", "delta"),
    ("max_gamma", "max_gamma_per_underlying", "gamma"),
    ("max_vega", "max_vega_per_underlying", "vega"),
)
AMOUNT_FIELDS = (
    "max_var",
    "max_day_loss",
    "max_delta_per_underlying",
    "max_gamma_per_underlying",
    "max_vega_per_underlying",
    "max_delta",
    "max_gamma",
    "max_vega",
    "max_concentration",
)


def mode_name(mode: int) -> str:
    return str(events.TradingMode.Name(mode)) if mode in MODES else str(mode)


def check_mode(name: str, mode: int) -> int:
    """``mode`` if it is ENABLED, REDUCE_ONLY or HALTED, else ValueError naming ``name``."""
    if mode not in MODES:
        raise ValueError(f"{name}: must be ENABLED, REDUCE_ONLY or HALTED, got {quote(mode)}")
    return mode


@dataclass(frozen=True)
class Exposure:
    """What the limits read of one underlying (or of the whole account)."""

    delta: float
    gamma: float
    vega: float
    #: delta x spot, in the currency.
    delta_notional: float = 0.0


@dataclass(frozen=True)
class Breach:
    code: str
    value: float
    limit: float
    #: The underlying concerned; "" for a limit of the whole account.
    symbol: str
    #: The trading mode the breach requires.
    mode: int

    @property
    def key(self) -> tuple[str, str]:
        return self.code, self.symbol


def validate_limits(limits: pb.Limits, name: str = "limits") -> pb.Limits:
    """A copy of ``limits`` after checking every amount (finite, >= 0; concentration <= 1) and
    the breach mode (unset: REDUCE_ONLY); ValueError names ``<name>.<field>``."""
    out = pb.Limits()
    out.CopyFrom(limits)
    for f in AMOUNT_FIELDS:
        x = getattr(limits, f)
        if not math.isfinite(x):
            raise ValueError(f"{name}.{f}: must be finite, got {x!r}")
        if x < 0.0:
            raise ValueError(f"{name}.{f}: must be >= 0 (0 means no limit), got {x!r}")
    if limits.max_concentration > 1.0:
        raise ValueError(
            f"{name}.max_concentration: must be in (0, 1] (0 means no limit), "
            f"got {limits.max_concentration!r}"
        )
    mode = limits.breach_mode
    if mode == events.TRADING_MODE_UNSPECIFIED:
        out.breach_mode = REDUCE_ONLY
    elif mode not in (REDUCE_ONLY, HALTED):
        raise ValueError(
            f"{name}.breach_mode: must be REDUCE_ONLY or HALTED, got {quote(mode_name(mode))}"
        )
    return out


def check(
    limits: pb.Limits,
    *,
    var: float,
    day_pnl: float,
    total: Exposure,
    underlyings: Mapping[str, Exposure],
) -> list[Breach]:
    """Every limit of ``limits`` (validated) that the figures exceed (strictly)."""
    mode = limits.breach_mode or REDUCE_ONLY
    out: list[Breach] = []

    def over(code: str, value: float, limit: float, symbol: str = "", m: int = mode) -> None:
        if limit > 0.0 and value > limit:
            out.append(Breach(code, value, limit, symbol, m))

    over("limit.var", var, limits.max_var)
    over("limit.day_loss", -day_pnl, limits.max_day_loss, m=HALTED)
    for total_field, per_field, greek in _GREEK_FIELDS:
        code = f"limit.{greek}"
        over(code, abs(getattr(total, greek)), getattr(limits, total_field))
        per = getattr(limits, per_field)
        if per > 0.0:
            for symbol, e in underlyings.items():
                over(code, abs(getattr(e, greek)), per, symbol)
    if limits.max_concentration > 0.0:
        gross = sum(abs(e.delta_notional) for e in underlyings.values())
        if gross > 0.0:
            for symbol, e in underlyings.items():
                over(
                    "limit.concentration",
                    abs(e.delta_notional) / gross,
                    limits.max_concentration,
                    symbol,
                )
    return out


def required_mode(breaches: list[Breach]) -> int:
    """The strictest mode the breaches require (ENABLED when there are none)."""
    return max((b.mode for b in breaches), default=ENABLED)


__all__ = [
    "AMOUNT_FIELDS",
    "ENABLED",
    "HALTED",
    "MODES",
    "REDUCE_ONLY",
    "Breach",
    "Exposure",
    "check",
    "check_mode",
    "mode_name",
    "required_mode",
    "validate_limits",
]
