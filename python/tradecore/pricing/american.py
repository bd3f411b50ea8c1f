"""American options on a stock with a continuous dividend yield (Black-Scholes-Merton dynamics).

Methods (``method=``):

===========  ===================================================================================
``alo``      Andersen-Lake-Offengenden (2016) fixed-point exercise-boundary method (default):
             Chebyshev interpolation of the boundary in sqrt(tau), QD+ start, FP-A iterations,
             tanh-sinh quadrature. About 1e-4 absolute or better at K = 100 with the defaults.
``baw``      Barone-Adesi & Whaley (1987) quadratic approximation.
``bjs2002``  Bjerksund & Stensland (2002) approximation.
``crr``      Cox-Ross-Rubinstein binomial tree (``steps`` time steps).
``lr``       Leisen-Reimer binomial tree (``steps`` rounded up to odd).
===========  ===================================================================================

Greeks are raw partial derivatives per year and per 1.00 of vol/rate (as in
:mod:`tradecore.pricing.european`): ``delta``=dV/dS, ``gamma``=d2V/dS2, ``theta``=-dV/dT,
``vega``=dV/dsigma, ``rho``=dV/dr. How they are computed:

* ``alo``: all from one boundary solve and one pass of the premium integral, as exact
  derivatives of the engine's price: delta and gamma from the premium integral's derivatives in S
  with the exercise boundary held fixed (the boundary does not depend on S); vega and rho through
  the boundary's sensitivities to sigma and r, carried through the QD+ start and every fixed-point
  iteration (forward-mode differentiation); theta from the Black-Scholes PDE,
  ``theta = r V - (r - q) S delta - sigma^2 S^2 gamma / 2`` (0 where immediate exercise is
  optimal). About 1.7-1.8x the cost of the price alone.
* trees: delta and gamma from the three nodes of step 2, theta from the PDE as above.
* ``baw``, ``bjs2002``: delta and gamma by central differences in S (bump 1e-4 S), theta by a
  central difference in T (bump min(1e-4, T/2)).
* ``baw``, ``bjs2002``, trees: vega and rho by central differences of the same engine, bumps 1e-4
  in sigma and r.
* T = 0, and regimes where early exercise is never optimal (put: r <= 0 <= q - r; call: q <= 0
  and r >= q): the exact European values.

Regimes: a put with ``q < r <= 0`` (a call with ``r < q <= 0``) has two exercise boundaries. The
trees price it directly; ``alo``, ``baw`` and ``bjs2002`` hand those rows to the Leisen-Reimer tree
with Richardson extrapolation, ``(1601 P(1601) - 801 P(801)) / 800`` (within ~1e-5 of a converged
price at K = 100; Greeks the same combination of the trees' Greeks), unless
``unsupported="raise"``/``"nan"``. The ``engine`` column says which engine priced each row (codes
into :data:`AMERICAN_ENGINES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore.errors import quote
from tradecore.pricing.european import _prepare, _raise_invalid

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
Method = Literal["alo", "baw", "bjs2002", "crr", "lr"]

AMERICAN_METHODS: tuple[str, ...] = ("alo", "baw", "bjs2002", "crr", "lr")
AMERICAN_GREEKS: tuple[str, ...] = ("delta", "gamma", "theta", "vega", "rho")
# Names of the result's per-row "engine" codes (255: the row was not priced, status != 0).
AMERICAN_ENGINES: tuple[str, ...] = (
    "european",  # T = 0 or early exercise never optimal: the closed form
    "alo",
    "baw",
    "bjs2002",
    "crr",
    "lr",
    "lr_richardson",  # double-boundary rows of alo/baw/bjs2002
)
ENGINE_NONE = 255

# Row status codes in the result's "status" column.
STATUS_OK = 0
STATUS_INVALID = 1
STATUS_UNSUPPORTED = 2


@dataclass(frozen=True, slots=True)
class AloScheme:
    """Discretisation of the ALO engine.

    ``nodes``: Chebyshev nodes of the boundary; ``quadrature``: points of each boundary integral;
    ``iterations``: fixed-point iterations after the QD+ start; ``price_quadrature``: points of
    the premium integral; ``equation``: ``"fp_a"`` (smooth pasting) or ``"fp_b"`` (value
    matching); ``rule``: ``"tanh_sinh"`` or ``"gauss_legendre"``.
    """

    nodes: int = 8
    quadrature: int = 16
    iterations: int = 6
    price_quadrature: int = 40
    equation: Literal["fp_a", "fp_b"] = "fp_a"
    rule: Literal["tanh_sinh", "gauss_legendre"] = "tanh_sinh"


DEFAULT_ALO = AloScheme()
# Six FP-A iterations: every row of a 4,000-option random book (q, r 0-10 %, T to 3 y) within
# 1e-4 of QuantLib's QD-FP high-precision price (three leave rows with q >> r at 1e-3).
# PRECISE_ALO: converged to ~1e-6 or better, about 100x slower; FP-B, because FP-A at this
# resolution does not settle for puts with q slightly above r.
PRECISE_ALO = AloScheme(
    nodes=32, quadrature=64, iterations=24, price_quadrature=128, equation="fp_b"
)


def american(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    option_type: ArrayLike,
    method: Method = "alo",
    steps: int = 801,
    greeks: bool = True,
    boundary: bool = False,
    *,
    boundary_points: int = 33,
    alo: AloScheme = DEFAULT_ALO,
    unsupported: Literal["tree", "raise", "nan"] = "tree",
    threads: int = 0,
) -> dict[str, FloatArray]:
    """Price (and Greeks) of American options with dividend yield ``q``.

    Args:
        S: spot (> 0).  K: strike (> 0).  T: time to expiry in years (>= 0).
        r: continuously compounded rate.  q: continuous dividend yield.
        sigma: volatility (> 0).  option_type: ``"call"``/``"put"`` (or +1/-1), scalar or array.
            All inputs broadcast against each other (numpy rules).
        method: ``"alo"``, ``"baw"``, ``"bjs2002"``, ``"crr"`` or ``"lr"``.
        steps: time steps of the trees (ignored by the other methods).
        greeks: also return ``delta``, ``gamma``, ``theta``, ``vega`` and ``rho``.
        boundary: also return the early-exercise boundary (``method="alo"`` only):
            ``boundary_time`` (time to expiry, ``boundary_points`` values from 0 to T per option)
            and ``boundary`` (critical spot there; a put is exercised at or below it, a call at
            or above it; 0 for a put and inf for a call that is never exercised early), both of
            shape ``(*shape, boundary_points)``.
        boundary_points: number of boundary times (>= 2).
        alo: the ALO discretisation (:data:`DEFAULT_ALO`, :data:`PRECISE_ALO` or your own).
        unsupported: double-boundary rows of ``alo``, ``baw`` and ``bjs2002``: ``"tree"``
            prices them with the Richardson-extrapolated LR tree (engine ``lr_richardson``),
            ``"raise"`` raises :class:`tradecore.errors.UnsupportedRegime`, ``"nan"`` leaves NaN
            there (status 2).
        threads: CPU threads (0: all cores).

    Returns:
        ``{"price", ["delta", "gamma", "theta", "vega", "rho"], "status", "engine",
        ["boundary_time", "boundary"]}``: float64 arrays of the broadcast shape (``status``:
        uint8, 0 ok, 2 refused regime; ``engine``: uint8 index into :data:`AMERICAN_ENGINES`
        of the engine that priced the row, 255 where none did). Double-boundary rows have a
        NaN ``boundary`` (it is ALO's single boundary).

    Raises:
        ValueError: an invalid input (the message names the argument and the row), an unknown
            method or an invalid setting.
        tradecore.errors.UnsupportedRegime: refused rows with ``unsupported="raise"``.
    """
    if method not in AMERICAN_METHODS:
        raise ValueError(f"method must be one of {list(AMERICAN_METHODS)} (got {quote(method)})")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (got {quote(steps)})")
    if boundary and method != "alo":
        raise ValueError(f"boundary=True needs method='alo' (got {quote(method)})")
    if boundary and (not isinstance(boundary_points, int | np.integer) or boundary_points < 2):
        raise ValueError(f"boundary_points must be an integer >= 2 (got {quote(boundary_points)})")
    if unsupported not in ("tree", "raise", "nan"):
        raise ValueError(f"unsupported must be 'tree', 'raise' or 'nan' (got {quote(unsupported)})")
    shape, flat = _prepare(S, K, T, r, q, sigma, option_type)
    _raise_invalid(flat)
    outputs = ["price", *(AMERICAN_GREEKS if greeks else ())]
    result, failed = _core.american(
        flat[0],  # type: ignore[arg-type]
        flat[1],  # type: ignore[arg-type]
        flat[2],  # type: ignore[arg-type]
        flat[3],  # type: ignore[arg-type]
        flat[4],  # type: ignore[arg-type]
        flat[5],  # type: ignore[arg-type]
        flat[6],  # type: ignore[arg-type]
        method=method,
        outputs=outputs,
        steps=int(steps),
        alo_nodes=alo.nodes,
        alo_quadrature=alo.quadrature,
        alo_iterations=alo.iterations,
        alo_price_quadrature=alo.price_quadrature,
        alo_equation=alo.equation,
        alo_rule=alo.rule,
        boundary_points=int(boundary_points) if boundary else 0,
        threads=threads,
        double_boundary_tree=unsupported == "tree",
    )
    status = result["status"]
    if failed and unsupported == "raise":
        row = int(np.flatnonzero(status == STATUS_UNSUPPORTED)[0])
        raise _core.UnsupportedRegime(
            f"method {quote(method)} does not price the double-boundary regime (put: q < r <= 0, "
            f"call: r < q <= 0): {failed} row(s), the first at row {row}; use 'crr' or 'lr'"
        )
    out: dict[str, FloatArray] = {}
    for name, arr in result.items():
        if name in ("boundary", "boundary_time"):
            out[name] = arr.reshape((*shape, arr.shape[-1]))
        else:
            out[name] = arr.reshape(shape)
    return out


__all__ = [
    "AMERICAN_ENGINES",
    "AMERICAN_GREEKS",
    "AMERICAN_METHODS",
    "DEFAULT_ALO",
    "ENGINE_NONE",
    "PRECISE_ALO",
    "STATUS_INVALID",
    "STATUS_OK",
    "STATUS_UNSUPPORTED",
    "AloScheme",
    "american",
]
