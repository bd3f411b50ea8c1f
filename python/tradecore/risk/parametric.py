"""Parametric VaR: delta-normal and delta-gamma Cornish-Fisher.

Model (docs/api.md, "Risk"): over the horizon ``h = horizon_days / 252`` years the simple
returns ``x_i = dS_i / S_i`` of the underlyings are normal with mean 0 and covariance
``C = Sigma h``, ``Sigma`` the annualised covariance of the log-returns (from the market's
volatilities and correlation, ``Sigma_ij = sigma_i rho_ij sigma_j``, or a supplied one). The
book's P&L is approximated from the Greeks of the pricing kernels:

* delta-normal: ``P&L = theta h + D'x`` with ``D_i = S_i sum(delta units)`` (dollar delta per
  underlying) and ``theta`` the book's time decay per year (``-dV/dT``). The loss is normal:
  ``VaR = z_c sigma_P - theta h`` and ``ES = phi(z_c) / (1 - c) sigma_P - theta h`` with
  ``sigma_P^2 = D'CD``.
* Cornish-Fisher: ``P&L = theta h + D'x + x'Gx / 2`` with ``G = diag(S_i^2 sum(gamma units))``
  (every position depends on one underlying, so the gamma matrix is diagonal). Its cumulants
  are exact for normal ``x``: with ``A = GC``, ``k1 = theta h + tr(A)/2``,
  ``k2 = D'CD + tr(A^2)/2``, ``k3 = 3 D'CGCD + tr(A^3)``, ``k4 = 12 D'C(GC)^2 D + 3 tr(A^4)``.
  The loss quantile is the Cornish-Fisher expansion with the loss's skewness and excess
  kurtosis; ES integrates that quantile over the tail in closed form (the tail moments of a
  standard normal). A linear book has ``G = 0`` and gets the delta-normal figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from tradecore.pricing import american, european
from tradecore.risk.book import KIND_AMERICAN, KIND_EUROPEAN, Book, cholesky_factor
from tradecore.risk.covariance import CovarianceEstimate
from tradecore.risk.historical import TRADING_DAYS, check_confidence, check_horizon
from tradecore.risk.result import VaRResult
from tradecore.risk.valuation import revalue

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BookSensitivities:
    """Dollar Greeks of a book per underlying, in the parametric model's units."""

    #: D_i = S_i x sum over positions on i of delta x units (P&L per unit simple return).
    dollar_delta: FloatArray
    #: G_i = S_i^2 x sum of gamma x units (P&L per unit squared simple return, times 2).
    dollar_gamma: FloatArray
    #: sum of theta x units: the book's value change per year of time passing (-dV/dT).
    theta: float
    value: float


def sensitivities(book: Book) -> BookSensitivities:
    """Delta, gamma and theta of every position from the pricing kernels (European options
    analytically, American by the accurate engine; an equity has delta 1), aggregated per
    underlying."""
    m = book.n_positions
    delta = np.zeros(m)
    gamma = np.zeros(m)
    theta = np.zeros(m)
    delta[book.kind == 0] = 1.0
    u = book.underlying
    for kind in (KIND_EUROPEAN, KIND_AMERICAN):
        cols = np.flatnonzero(book.kind == kind)
        if cols.size == 0:
            continue
        args = (
            book.spot[u[cols]],
            book.strike[cols],
            book.expiry[cols],
            book.rate,
            book.dividend_yield[u[cols]],
            book.volatility[u[cols]],
            book.option_type[cols],
        )
        if kind == KIND_EUROPEAN:
            g = european(*args, ["delta", "gamma", "theta"])
        else:
            g = american(*args, greeks=True)
        delta[cols] = g["delta"]
        gamma[cols] = g["gamma"]
        theta[cols] = g["theta"]
    n = book.n_underlyings
    d = np.bincount(u, weights=delta * book.units, minlength=n) * book.spot
    gm = np.bincount(u, weights=gamma * book.units, minlength=n) * book.spot**2
    value = float(revalue(book).sum())
    return BookSensitivities(d, gm, float(np.sum(theta * book.units)), value)


def annual_covariance(
    book: Book, covariance: npt.ArrayLike | CovarianceEstimate | None
) -> tuple[FloatArray, dict[str, float | int | str | bool]]:
    """The annualised covariance of the book's underlyings: from the market (volatilities
    and correlation, repaired if not positive semi-definite) or ``covariance`` (an n x n
    array in ``book.symbols`` order, or a :class:`CovarianceEstimate` whose symbols include
    the book's)."""
    n = book.n_underlyings
    if covariance is None:
        chol = cholesky_factor(book.correlation)
        cov = chol.correlation * np.outer(book.volatility, book.volatility)
        return cov, {"covariance": "market", "correlation_repaired": chol.repaired}
    if isinstance(covariance, CovarianceEstimate):
        where = {s: i for i, s in enumerate(covariance.symbols)}
        missing = [s for s in book.symbols if s not in where]
        if missing:
            raise ValueError(f"covariance.symbols: no entry for {missing[0]!r}")
        idx = np.array([where[s] for s in book.symbols])
        c = np.asarray(covariance.covariance, dtype=np.float64)[np.ix_(idx, idx)]
    else:
        try:
            c = np.array(covariance, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"covariance: expected {n} x {n} numbers") from None
        if c.ndim == 1 and c.size == n * n:
            c = c.reshape(n, n)
    if c.shape != (n, n):
        raise ValueError(f"covariance: expected {n} x {n} (one row per underlying), got {c.shape}")
    bad = np.argwhere(~np.isfinite(c))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise ValueError(f"covariance[{i}][{j}]: must be finite, got {c[i, j]!r}")
    scale = max(float(np.abs(c).max()), 1e-300)
    asym = np.argwhere(np.abs(c - c.T) > 1e-10 * scale)
    if asym.size:
        i, j = (int(x) for x in asym[0])
        raise ValueError(f"covariance[{i}][{j}]: must equal [{j}][{i}] (symmetric)")
    c = 0.5 * (c + c.T)
    lo = float(np.linalg.eigvalsh(c)[0])
    if lo < -1e-10 * scale:
        raise ValueError(
            f"covariance: must be positive semi-definite (smallest eigenvalue {lo:.3g})"
        )
    return c, {"covariance": "supplied"}


def _loss_moments(
    s: BookSensitivities, c: FloatArray, h: float, gamma: bool
) -> tuple[float, float, float, float]:
    """(mean, standard deviation, skewness, excess kurtosis) of the loss."""
    cov = c * h
    d = s.dollar_delta
    cd = cov @ d
    k1 = s.theta * h
    k2 = float(d @ cd)
    k3 = k4 = 0.0
    if gamma:
        g = s.dollar_gamma
        a = g[:, None] * cov  # A = G C
        a2 = a @ a
        k1 += 0.5 * float(np.trace(a))
        k2 += 0.5 * float(np.sum(a * a.T))
        w = g * cd  # G C D
        k3 = 3.0 * float(cd @ w) + float(np.sum(a2 * a.T))
        k4 = 12.0 * float(w @ cov @ w) + 3.0 * float(np.sum(a2 * a2.T))
    sd = math.sqrt(max(k2, 0.0))
    if sd == 0.0:
        return -k1, 0.0, 0.0, 0.0
    # The loss is -P&L: odd cumulants change sign.
    return -k1, sd, -k3 / sd**3, k4 / sd**4


def parametric_var(
    book: Book,
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    covariance: npt.ArrayLike | CovarianceEstimate | None = None,
) -> VaRResult:
    """Delta-normal VaR and ES (see the module docstring). Details: ``stdev`` (sigma_P),
    ``theta_drift`` (theta h), ``covariance`` (market or supplied)."""
    c = check_confidence(confidence)
    hd = check_horizon(horizon_days)
    cov, details = annual_covariance(book, covariance)
    s = sensitivities(book)
    h = hd / TRADING_DAYS
    mean, sd, _, _ = _loss_moments(s, cov, h, gamma=False)
    z = float(stats.norm.ppf(c))
    var = mean + z * sd
    es = mean + float(stats.norm.pdf(z)) / (1.0 - c) * sd
    details.update({"stdev": sd, "theta_drift": s.theta * h})
    return VaRResult(
        method="parametric",
        confidence=c,
        horizon_days=hd,
        var=var,
        expected_shortfall=es,
        value=s.value,
        details=details,
    )


def cornish_fisher_quantile(z: float, skew: float, kurt: float) -> float:
    """The Cornish-Fisher standardised quantile at the normal quantile ``z``."""
    return (
        z
        + (z * z - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * kurt / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0
    )


def cornish_fisher_tail_mean(c: float, skew: float, kurt: float) -> float:
    """The mean of the Cornish-Fisher standardised quantile over ``u`` in ``(c, 1)``: the
    expansion integrated term by term with ``E[Z^k; Z > z_c]`` of a standard normal."""
    z = float(stats.norm.ppf(c))
    p = float(stats.norm.pdf(z))
    m0 = 1.0 - c
    m1 = p
    m2 = m0 + z * p
    m3 = (z * z + 2.0) * p
    total = (
        m1
        + (m2 - m0) * skew / 6.0
        + (m3 - 3.0 * m1) * kurt / 24.0
        - (2.0 * m3 - 5.0 * m1) * skew * skew / 36.0
    )
    return total / m0


def cornish_fisher_var(
    book: Book,
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    covariance: npt.ArrayLike | CovarianceEstimate | None = None,
) -> VaRResult:
    """Delta-gamma VaR by the Cornish-Fisher expansion and ES by its tail integral (see the
    module docstring). Details: the loss's ``mean``, ``stdev``, ``skewness``,
    ``excess_kurtosis``, ``delta_normal_var``, and ``monotone`` (False when the expansion is
    not increasing at the VaR quantile: the skew/kurtosis are beyond its range and the figure
    is unreliable)."""
    c = check_confidence(confidence)
    hd = check_horizon(horizon_days)
    cov, details = annual_covariance(book, covariance)
    s = sensitivities(book)
    h = hd / TRADING_DAYS
    mean, sd, skew, kurt = _loss_moments(s, cov, h, gamma=True)
    z = float(stats.norm.ppf(c))
    var = mean + sd * cornish_fisher_quantile(z, skew, kurt)
    es = mean + sd * cornish_fisher_tail_mean(c, skew, kurt)
    slope = 1.0 + z * skew / 3.0 + (z * z - 1.0) * kurt / 8.0 - (6.0 * z * z - 5.0) * skew**2 / 36.0
    dn_mean, dn_sd, _, _ = _loss_moments(s, cov, h, gamma=False)
    details.update(
        {
            "mean": mean,
            "stdev": sd,
            "skewness": skew,
            "excess_kurtosis": kurt,
            "delta_normal_var": dn_mean + z * dn_sd,
            "monotone": bool(slope > 0.0),
        }
    )
    return VaRResult(
        method="cornish_fisher",
        confidence=c,
        horizon_days=hd,
        var=var,
        expected_shortfall=es,
        value=s.value,
        details=details,
    )


__all__ = [
    "BookSensitivities",
    "annual_covariance",
    "cornish_fisher_quantile",
    "cornish_fisher_tail_mean",
    "cornish_fisher_var",
    "parametric_var",
    "sensitivities",
]
