"""VaR backtests: Kupiec's proportion of failures, Christoffersen's independence and
conditional coverage, and the Basel traffic light.

A failure (an exception, a hit) is a day whose loss exceeds that day's VaR: ``-pnl > var``.
With ``p = 1 - confidence`` the expected failure rate and ``x`` failures in ``N`` observations:

* Kupiec POF: ``LR = -2 ln[(1-p)^(N-x) p^x] + 2 ln[(1-x/N)^(N-x) (x/N)^x]``, chi-squared with 1
  degree of freedom under the null that the failure rate is ``p``.
* Christoffersen independence: from the counts ``n_ij`` of day-to-day transitions ``i -> j``
  of the hit sequence, ``LR = -2 ln[(1-pi)^(n00+n10) pi^(n01+n11)]
  + 2 ln[(1-pi0)^n00 pi0^n01 (1-pi1)^n10 pi1^n11]`` with ``pi0 = n01/(n00+n01)``,
  ``pi1 = n11/(n10+n11)``, ``pi = (n01+n11)/(N-1)``; chi-squared with 1 degree of freedom. It
  needs the sequence: from bare counts it is not available.
* Conditional coverage: POF + independence, chi-squared with 2 degrees of freedom.
* Basel traffic light: the zone of the cumulative binomial probability ``P(X <= x)`` for
  ``X ~ Binomial(N, p)``: GREEN below 95 %, YELLOW below 99.99 %, RED otherwise (for 250 days
  at 99 %: green 0-4 failures, yellow 5-9, red 10 or more).

A test rejects when its p-value is below ``1 - test_level``. ``0^0`` is taken as 1 (a log
term with a zero count vanishes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.special import xlogy

#: Basel traffic-light zone boundaries on the cumulative binomial probability.
GREEN_BELOW = 0.95
YELLOW_BELOW = 0.9999
#: At most this many observations in one backtest.
MAX_OBSERVATIONS = 10_000_000


@dataclass(frozen=True)
class LikelihoodRatioTest:
    #: The likelihood-ratio statistic (NaN when not available).
    statistic: float
    #: Its chi-squared p-value (NaN when not available).
    p_value: float
    #: True when the p-value is below 1 - test_level.
    reject: bool
    #: False when the input cannot give this test (independence from bare counts).
    available: bool = True


@dataclass(frozen=True)
class BacktestResult:
    observations: int
    failures: int
    expected_failures: float
    kupiec_pof: LikelihoodRatioTest
    christoffersen_independence: LikelihoodRatioTest
    conditional_coverage: LikelihoodRatioTest
    traffic_light: Literal["GREEN", "YELLOW", "RED"]
    #: P(X <= failures) for X ~ Binomial(observations, 1 - confidence): what sets the zone.
    cumulative_probability: float


_UNAVAILABLE = LikelihoodRatioTest(math.nan, math.nan, False, False)


def _series(name: str, value: npt.ArrayLike) -> npt.NDArray[np.float64]:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a list of numbers") from None
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D series, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: must not be empty")
    if a.size > MAX_OBSERVATIONS:
        raise ValueError(f"{name}: at most {MAX_OBSERVATIONS} observations, got {a.size}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}]: must be finite, got {a[i]!r}")
    return a


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    return int(value)


def _lr(statistic: float, dof: int, level: float) -> LikelihoodRatioTest:
    stat = max(float(statistic), 0.0)  # rounding can leave -1e-13 where the fit is exact
    p = float(stats.chi2.sf(stat, dof))
    return LikelihoodRatioTest(stat, p, p < 1.0 - level, True)


def kupiec_pof(observations: int, failures: int, p: float) -> float:
    """Kupiec's proportion-of-failures LR statistic."""
    n, x = observations, failures
    phat = x / n
    null = xlogy(n - x, 1.0 - p) + xlogy(x, p)
    alt = xlogy(n - x, 1.0 - phat) + xlogy(x, phat)
    return float(-2.0 * (null - alt))


def christoffersen_independence(hits: npt.NDArray[np.bool_]) -> float:
    """Christoffersen's independence LR statistic of a hit sequence (at least 2 days)."""
    prev, cur = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    alt = xlogy(n00, 1.0 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1.0 - pi1) + xlogy(n11, pi1)
    return float(-2.0 * (null - alt))


def traffic_light(
    observations: int, failures: int, confidence: float
) -> tuple[Literal["GREEN", "YELLOW", "RED"], float]:
    """The Basel zone and ``P(X <= failures)``, ``X ~ Binomial(observations, 1 - confidence)``."""
    cum = float(stats.binom.cdf(failures, observations, 1.0 - confidence))
    if cum < GREEN_BELOW:
        return "GREEN", cum
    if cum < YELLOW_BELOW:
        return "YELLOW", cum
    return "RED", cum


def backtest_var(
    *,
    pnl: npt.ArrayLike | None = None,
    var: npt.ArrayLike | None = None,
    hits: npt.ArrayLike | None = None,
    observations: int | None = None,
    failures: int | None = None,
    confidence: float,
    test_level: float = 0.95,
) -> BacktestResult:
    """Backtest a VaR model from one of: a P&L series and the VaR series forecast for it
    (``pnl``, ``var``: day ``t``'s VaR against day ``t``'s P&L), a hit sequence (``hits``:
    true/1 on a failure day), or bare counts (``observations``, ``failures``; no independence
    test). Raises ValueError naming the field on bad input."""
    c = float(confidence)
    if not (math.isfinite(c) and 0.0 < c < 1.0):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    level = float(test_level)
    if not (math.isfinite(level) and 0.0 < level < 1.0):
        raise ValueError(f"test_level: must be in (0, 1), got {test_level!r}")
    given = [
        name
        for name, v in (
            ("pnl/var", pnl if pnl is not None else var),
            ("hits", hits),
            ("observations/failures", observations if observations is not None else failures),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "pnl: give exactly one of pnl and var, hits, or observations and failures "
            f"(got {', '.join(given) or 'none'})"
        )
    seq: npt.NDArray[np.bool_] | None = None
    if pnl is not None or var is not None:
        if pnl is None:
            raise ValueError("pnl: required with var")
        if var is None:
            raise ValueError("var: required with pnl")
        p_arr = _series("pnl", pnl)
        v_arr = _series("var", var)
        if p_arr.size != v_arr.size:
            raise ValueError(
                f"var: must have one value per pnl value ({p_arr.size}), got {v_arr.size}"
            )
        seq = -p_arr > v_arr
    elif hits is not None:
        h_arr = _series("hits", hits)
        off = np.flatnonzero((h_arr != 0.0) & (h_arr != 1.0))
        if off.size:
            i = int(off[0])
            raise ValueError(f"hits[{i}]: must be 0/1 or false/true, got {h_arr[i]!r}")
        seq = h_arr == 1.0
    if seq is not None:
        n = int(seq.size)
        x = int(seq.sum())
    else:
        if observations is None:
            raise ValueError("observations: required with failures")
        if failures is None:
            raise ValueError("failures: required with observations")
        n = _count("observations", observations)
        x = _count("failures", failures)
        if not 1 <= n <= MAX_OBSERVATIONS:
            raise ValueError(f"observations: must be in [1, {MAX_OBSERVATIONS}], got {n}")
        if not 0 <= x <= n:
            raise ValueError(f"failures: must be in [0, observations={n}], got {x}")
    p = 1.0 - c
    pof = _lr(kupiec_pof(n, x, p), 1, level)
    if seq is not None and n >= 2:
        ind = _lr(christoffersen_independence(seq), 1, level)
        cc = _lr(pof.statistic + ind.statistic, 2, level)
    else:
        ind = cc = _UNAVAILABLE
    zone, cum = traffic_light(n, x, c)
    return BacktestResult(
        observations=n,
        failures=x,
        expected_failures=n * p,
        kupiec_pof=pof,
        christoffersen_independence=ind,
        conditional_coverage=cc,
        traffic_light=zone,
        cumulative_probability=cum,
    )


__all__ = [
    "BacktestResult",
    "LikelihoodRatioTest",
    "backtest_var",
    "christoffersen_independence",
    "kupiec_pof",
    "traffic_light",
]
