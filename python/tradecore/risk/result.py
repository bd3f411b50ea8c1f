"""What every VaR method returns, and VaR/ES of a sample of losses with their standard errors.

Conventions (docs/api.md, "Risk"): a loss is value now minus value at the horizon (a gain is a
negative loss). VaR at confidence ``c`` is the c-quantile of the loss: the ``k``-th smallest of
``N`` sampled losses with ``k = ceil(c N)``. ES is the mean of the losses at or beyond it (the
``N - k + 1`` largest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: Methods of :class:`VaRResult` (the RPC's ``method`` names, lower case).
VAR_METHODS = (
    "monte_carlo",
    "delta_gamma",
    "historical",
    "filtered_historical",
    "parametric",
    "cornish_fisher",
    "evt",
)


@dataclass(frozen=True)
class VaRResult:
    method: str
    confidence: float
    horizon_days: float
    #: Loss quantile and mean loss beyond it, in the currency (positive = a loss).
    var: float
    expected_shortfall: float
    #: Standard errors (NaN where a method has none, e.g. closed forms).
    var_stderr: float = math.nan
    es_stderr: float = math.nan
    #: The book's value now.
    value: float = math.nan
    #: Scenarios (paths, historical days) the figure rests on; 0 for a closed form.
    scenarios: int = 0
    device: str = "cpu"
    #: Method-specific facts, e.g. ``correlation_repaired``, ``interpolation_error``,
    #: ``delta_gamma_var``, ``threshold``, ``shape``.
    details: Mapping[str, float | int | str | bool] = field(default_factory=dict)


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    return c


def tail_index(n: int, confidence: float) -> int:
    """0-based index of the VaR order statistic among ``n`` sorted losses: ``ceil(c n) - 1``."""
    c = _check_confidence(confidence)
    return min(max(math.ceil(c * n - 1e-9) - 1, 0), n - 1)


def var_es(losses: npt.ArrayLike, confidence: float) -> tuple[float, float, float, float]:
    """``(var, es, var_stderr, es_stderr)`` of a sample of losses.

    VaR's standard error is half the spread of the order statistics one binomial standard
    deviation either side of ``k`` (``c N +- sqrt(N c (1-c))``); ES's is the asymptotic
    ``sqrt((Var(L | L >= VaR) + c (ES - VaR)^2) / (N (1 - c)))``.
    """
    c = _check_confidence(confidence)
    x = np.asarray(losses, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("losses: must not be empty")
    if not np.isfinite(x).all():
        raise ValueError("losses: must be finite")
    k = tail_index(n, c)
    spread = math.sqrt(n * c * (1.0 - c))
    lo = max(k - math.ceil(spread), 0)
    hi = min(k + math.ceil(spread), n - 1)
    part = np.partition(x, sorted({lo, k, hi}))
    var = float(part[k])
    tail = part[k:]
    es = float(tail.mean())
    var_se = 0.5 * float(part[hi] - part[lo])
    tail_var = float(tail.var()) if tail.size > 1 else 0.0
    es_se = math.sqrt(max(tail_var + c * (es - var) ** 2, 0.0) / tail.size)
    return var, es, var_se, es_se
