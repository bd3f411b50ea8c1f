"""Option chains: quotes of one underlying, and their per-expiry preparation for a fit.

``rate`` is a constant continuously compounded rate or a :class:`tradecore.curve.RateCurve`
(its zero rate to each expiry discounts that expiry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore.curve import RateCurve
from tradecore.errors import quote
from tradecore.pricing.european import DOMAIN, option_type_codes

FloatArray = npt.NDArray[np.float64]
ForwardMethod = Literal["parity", "carry"]


def _column(value: npt.ArrayLike, name: str, n: int | None) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if n is not None and arr.size == 1 and n != 1:
        arr = np.full(n, arr[0])
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} values for {n} quotes")
    return arr


def _require(arr: FloatArray, ok: npt.NDArray[np.bool_], name: str, rule: str) -> None:
    bad = ~(ok & np.isfinite(arr))
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{idx}] must be finite and {rule} (got {arr[idx]!r})")


@dataclass(frozen=True, slots=True, eq=False)
class OptionChain:
    """Validated quotes (1-D arrays of one length); build with :meth:`from_quotes`."""

    strike: FloatArray
    expiry: FloatArray
    option_type: npt.NDArray[np.int8]  # +1 call, -1 put
    price: FloatArray  # mid prices
    spot: float | None
    rate: float | RateCurve
    dividend: float
    forward: FloatArray | None  # per quote, when given
    forward_method: ForwardMethod

    @classmethod
    def from_quotes(
        cls,
        strike: npt.ArrayLike,
        expiry: npt.ArrayLike,
        option_type: npt.ArrayLike,
        *,
        bid: npt.ArrayLike | None = None,
        ask: npt.ArrayLike | None = None,
        mid: npt.ArrayLike | None = None,
        spot: float | None = None,
        rate: float | RateCurve = 0.0,
        dividend: float = 0.0,
        forward: npt.ArrayLike | None = None,
        forward_method: ForwardMethod = "parity",
    ) -> OptionChain:
        """Quotes as arrays (scalars broadcast), in the pricing domain
        (:data:`tradecore.pricing.DOMAIN`): strike in [1e-100, 1e100], spot and forward in
        [1e-8, 1e15], expiry in [1e-12, 100] years,
        |rate| and |dividend| <= 2, option type call/put, and either ``mid`` or both ``bid``
        and ``ask`` (0 <= bid <= ask; mid = average).

        Forwards per expiry: ``forward`` when given (per quote or one value); otherwise with
        ``forward_method="parity"`` from put-call parity F = K + (C - P) / D at the strikes that
        have both a call and a put (median over the three nearest the money), else (and with
        ``"carry"``) ``spot * exp((r - q) T)``, which needs ``spot``."""
        K = _column(strike, "strike", None)
        n = K.size
        if n == 0:
            raise ValueError("strike: the chain is empty")
        T = _column(expiry, "expiry", n)
        _require(K, DOMAIN.strike_ok(K), "strike", DOMAIN.strike_rule)
        _require(T, DOMAIN.expiry_ok(T), "expiry", DOMAIN.expiry_rule)
        codes = option_type_codes(np.broadcast_to(np.asarray(option_type), (n,))).reshape(-1)
        if mid is not None:
            if bid is not None or ask is not None:
                raise ValueError("mid: give either mid or bid and ask, not both")
            price = _column(mid, "mid", n)
            _require(price, price >= 0, "mid", ">= 0")
        elif bid is not None and ask is not None:
            b, a = _column(bid, "bid", n), _column(ask, "ask", n)
            _require(b, b >= 0, "bid", ">= 0")
            _require(a, a >= b, "ask", ">= bid")
            price = 0.5 * (b + a)
        else:
            raise ValueError("mid: give mid, or both bid and ask")
        if spot is not None and not (math.isfinite(spot) and DOMAIN.spot_ok(spot)):
            raise ValueError(f"spot must be finite and {DOMAIN.spot_rule} (got {spot!r})")
        if not isinstance(rate, RateCurve) and not (math.isfinite(rate) and DOMAIN.rate_ok(rate)):
            raise ValueError(
                f"rate must be finite and {DOMAIN.rate_rule}, or a RateCurve (got {rate!r})"
            )
        if not (math.isfinite(dividend) and DOMAIN.rate_ok(dividend)):
            raise ValueError(f"dividend must be finite and {DOMAIN.rate_rule} (got {dividend!r})")
        if forward_method not in ("parity", "carry"):
            raise ValueError(
                f"forward_method must be 'parity' or 'carry' (got {quote(forward_method)})"
            )
        fwd = None
        if forward is not None:
            fwd = _column(forward, "forward", n)
            _require(fwd, DOMAIN.spot_ok(fwd), "forward", DOMAIN.spot_rule)
        elif spot is None and forward_method == "carry":
            raise ValueError("spot: needed for carry forwards (or give forward)")
        return cls(
            K,
            T,
            codes,
            price,
            None if spot is None else float(spot),
            rate,
            float(dividend),
            fwd,
            forward_method,
        )

    def zero_rate(self, T: float) -> float:
        if isinstance(self.rate, RateCurve):
            return float(self.rate.zero_rate(T))
        return float(self.rate)


@dataclass(frozen=True, slots=True, eq=False)
class SliceQuotes:
    """The quotes of one expiry selected for a fit (OTM first), with forward and discount."""

    expiry: float
    forward: float
    discount: float
    strike: FloatArray
    price: FloatArray
    option_type: npt.NDArray[np.int8]


def _parity_forward(
    K: FloatArray, P: FloatArray, codes: npt.NDArray[np.int8], discount: float
) -> float | None:
    calls = {float(k): float(p) for k, p, c in zip(K, P, codes, strict=True) if c > 0}
    pairs = [
        (k, calls[float(k)] - float(p))
        for k, p, c in zip(K, P, codes, strict=True)
        if c < 0 and float(k) in calls
    ]
    if not pairs:
        return None
    pairs.sort(key=lambda kp: abs(kp[1]))
    estimates = [k + cp / discount for k, cp in pairs[:3]]
    fwd = float(np.median(estimates))
    return fwd if fwd > 0 else None


def prepare_slices(chain: OptionChain) -> list[SliceQuotes]:
    """Per expiry (increasing): forward, discount and the OTM quote at each strike (the ITM one
    only where a strike has no OTM quote)."""
    out = []
    for T in np.unique(chain.expiry):
        sel = chain.expiry == T
        K, P, codes = chain.strike[sel], chain.price[sel], chain.option_type[sel]
        t = float(T)
        discount = math.exp(-chain.zero_rate(t) * t)
        fwd: float | None = None
        if chain.forward is not None:
            fwd = float(chain.forward[sel][0])
        elif chain.forward_method == "parity":
            fwd = _parity_forward(K, P, codes, discount)
        if fwd is None:
            if chain.spot is None:
                raise ValueError(f"spot: expiry {t} has no call/put pair for parity; give spot")
            fwd = chain.spot * math.exp((chain.zero_rate(t) - chain.dividend) * t)
        otm = ((codes > 0) & (fwd <= K)) | ((codes < 0) & (fwd > K))
        otm_strikes = set(K[otm].tolist())
        keep = otm | np.array([float(k) not in otm_strikes for k in K], dtype=bool)
        # one quote per strike: drop duplicates of an ITM fallback (keep the first)
        _, first = np.unique(K[keep], return_index=True)
        idx = np.flatnonzero(keep)[np.sort(first)]
        order = idx[np.argsort(K[idx], kind="stable")]
        out.append(SliceQuotes(t, fwd, discount, K[order], P[order], codes[order]))
    return out


__all__ = ["ForwardMethod", "OptionChain", "SliceQuotes", "prepare_slices"]
