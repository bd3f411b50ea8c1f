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
from tradecore.pricing.european import (
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
    INVALID_INPUT = 4  # NaN/inf, S or K <= 0, T <= 0, unknown option type


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
        with ``model="black76"``).  option_type: ``"call"``/``"put"`` or +1/-1, or arrays.
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
        raise ValueError(f"model must be 'bsm' or 'black76' (got {model!r})")
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
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto' (got {device!r})")
    vol, status, counts = _core.implied_vol(  # type: ignore[misc]
        *flat,  # type: ignore[arg-type]
        model=model,
        gpu=gpu,
        threads=threads,
    )
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
