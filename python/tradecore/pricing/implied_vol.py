"""Implied volatility of European options (Black-Scholes-Merton and Black-76), batch first.

Every price strictly inside the no-arbitrage bounds gets the volatility to the accuracy double
precision allows (prices down to ~1e-100 of the spot included) in a small, bounded number of
third-order Householder steps on the normalised Black function (two to three for most rows;
the method follows Jäckel's "Let's Be Rational": normalisation, reduction to out-of-the-money,
objective transformations by region, closed-form initial guesses). Rows on or outside the bounds
get NaN and a status code; a batch never raises for a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore.errors import quote
from tradecore.pricing.european import (
    DOMAIN,
    GPU_AUTO_THRESHOLD,
    ArrayLike,
    Device,
    FloatArray,
    Model,
    broadcast_batch,
)


class IVStatus(IntEnum):
    """Per-row outcome of :func:`implied_vol` (the ``status`` array holds these codes)."""

    OK = 0
    BELOW_INTRINSIC = 1  # price <= intrinsic value: no vol reproduces it
    ABOVE_UPPER = 2  # price >= S e^{-qT} (call) or K e^{-rT} (put)
    NON_POSITIVE = 3  # price <= 0
    # NaN/inf, S, K, T, r or q outside the pricing DOMAIN (T = 0 included), unknown option type
    INVALID_INPUT = 4


_STATUS_KEYS = {
    IVStatus.OK: "ok",
    IVStatus.BELOW_INTRINSIC: "below_intrinsic",
    IVStatus.ABOVE_UPPER: "above_upper",
    IVStatus.NON_POSITIVE: "non_positive",
}


@dataclass(frozen=True, slots=True)
class ImpliedVolResult:
    """Implied vols with a status per row and how many rows ended in each status."""

    vol: FloatArray  # NaN where status != OK
    status: npt.NDArray[np.int8]  # IVStatus codes
    counts: dict[str, int]  # ok, below_intrinsic, above_upper, non_positive, invalid_input

    @property
    def failed(self) -> int:
        """The number of rows without a vol."""
        return sum(v for k, v in self.counts.items() if k != "ok")


def implied_vol(
    price: ArrayLike,
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    option_type: ArrayLike,
    *,
    model: Model = "bsm",
    device: Device = "cpu",
    threads: int = 0,
) -> ImpliedVolResult:
    """Implied volatilities of European option prices.

    Args:
        price: option prices.  S: spot (forward with ``model="black76"``).  K: strike.
        T: time to expiry in years (> 0).  r: risk-free rate.  q: dividend yield (must be 0
        with ``model="black76"``). Rows with S, K, T, r or q outside
        :data:`tradecore.pricing.DOMAIN` get status INVALID_INPUT.
        option_type: ``"call"``/``"put"`` or +1/-1, or arrays.
        model: ``"bsm"`` or ``"black76"``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (GPU above ``GPU_AUTO_THRESHOLD`` rows).
        threads: CPU threads (0: all cores).

    Returns:
        :class:`ImpliedVolResult` with ``vol`` and ``status`` of the broadcast shape of the
        inputs and the per-status ``counts``.

    Raises:
        ValueError: an argument that is not numeric, shapes that do not broadcast, an unknown
            model/device/option type. Row values never raise: they get a status.
    """
    if model not in ("bsm", "black76"):
        raise ValueError(f"model must be 'bsm' or 'black76' (got {quote(model)})")
    if model == "black76" and np.any(np.asarray(q, dtype=np.float64) != 0.0):
        raise ValueError("q must be 0 with model='black76' (S is the forward)")
    shape, flat = broadcast_batch(
        {"price": price, "S": S, "K": K, "T": T, "r": r, "q": q}, option_type
    )
    n = flat[0].shape[0]
    if device == "cpu":
        gpu = False
    elif device == "cuda":
        gpu = True
    elif device == "auto":
        gpu = n >= GPU_AUTO_THRESHOLD and bool(_core.cuda_available())
    else:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto' (got {quote(device)})")
    vol, status, counts = _core.implied_vol(  # type: ignore[misc]
        *flat,  # type: ignore[arg-type]
        model=model,
        gpu=gpu,
        threads=threads,
    )
    # Rows outside the pricing domain would give absurd (if finite) vols: INVALID_INPUT.
    _, s_, k_, t_, r_, q_ = flat[:6]
    outside = ~(
        DOMAIN.spot_ok(s_)
        & DOMAIN.strike_ok(k_)
        & DOMAIN.expiry_ok(t_)
        & DOMAIN.rate_ok(r_)
        & (DOMAIN.rate_ok(q_) if model == "bsm" else True)
    )
    if outside.any():
        fresh = outside & (status != IVStatus.INVALID_INPUT)
        for code, key in _STATUS_KEYS.items():
            counts[key] = int(counts.get(key, 0)) - int(np.count_nonzero(fresh & (status == code)))
        counts["invalid_input"] = int(counts.get("invalid_input", 0)) + int(fresh.sum())
        status = np.where(outside, np.int8(IVStatus.INVALID_INPUT), status).astype(status.dtype)
        vol = np.where(outside, np.nan, vol)
    return ImpliedVolResult(
        vol=vol.reshape(shape),
        status=status.reshape(shape),
        counts={k: int(v) for k, v in counts.items()},
    )


def implied_vol_black76(
    price: ArrayLike,
    F: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    option_type: ArrayLike,
    *,
    device: Device = "cpu",
    threads: int = 0,
) -> ImpliedVolResult:
    """Black-76 implied volatilities of options on a forward/futures price ``F``."""
    return implied_vol(
        price, F, K, T, r, 0.0, option_type, model="black76", device=device, threads=threads
    )


__all__ = ["IVStatus", "ImpliedVolResult", "implied_vol", "implied_vol_black76"]
