"""Covariance of daily log-returns: sample, EWMA, Ledoit-Wolf shrinkage and GARCH(1,1);
rolling correlation matrices and a correlation-breakdown signal.

Every estimator takes ``returns`` of shape ``(days, n)`` (one column per symbol, daily
log-returns) and reports the covariance annualised (daily x 252), its correlation and the
annualised volatilities (square roots of the diagonal), the units of
:class:`tradecore.risk.book.Market`.

* ``sample``: ``numpy.cov`` (mean removed, divisor ``days - 1``).
* ``ewma`` (RiskMetrics): zero-mean recursion ``S_{t+1} = lam S_t + (1 - lam) r_t r_t'`` over
  the days in order, seeded with the zero-mean second moment of the whole window
  (``r'r / days``); the estimate is the forecast after the last day.
* ``ledoit_wolf``: Ledoit & Wolf (2004) shrinkage of the sample covariance (mean removed,
  divisor ``days``) towards the constant-correlation target ("Honey, I shrunk the sample
  covariance matrix", the default) or towards ``mu I`` with ``mu`` the mean variance ("A
  well-conditioned estimator for large-dimensional covariance matrices"); the estimated
  optimal intensity is reported as ``details["shrinkage"]``.
* ``garch``: a GARCH(1,1) ``s2_t = omega + alpha r_{t-1}^2 + beta s2_{t-1}`` per column by
  maximum likelihood (zero mean, normal innovations, ``alpha + beta < 1``), and the covariance
  ``D R D`` with ``D`` the next day's conditional volatilities and ``R`` the correlation of the
  standardised residuals ``r_t / s_t`` (constant conditional correlation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, signal

FloatArray = npt.NDArray[np.float64]

TRADING_DAYS = 252
ESTIMATORS = ("sample", "ewma", "ledoit_wolf", "garch")
Estimator = Literal["sample", "ewma", "ledoit_wolf", "garch"]
#: At most this many days and columns in one estimate.
MAX_DAYS = 100_000
MAX_COLUMNS = 4096
#: rolling_correlation returns at most this many values (windows x n x n; 256 MiB).
MAX_ROLLING_VALUES = 1 << 25
_CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class CovarianceEstimate:
    symbols: tuple[str, ...]
    #: Annualised (daily x 252) covariance of the log-returns, n x n.
    covariance: FloatArray
    correlation: FloatArray
    #: Annualised volatilities, sqrt(diag(covariance)).
    volatilities: FloatArray
    #: estimator, observations, and per estimator: ewma_lambda, shrinkage, target, or the
    #: GARCH parameters per symbol (``garch.<symbol>.alpha`` ...).
    details: dict[str, float | int | str | bool] = field(default_factory=dict)


def check_returns(
    returns: npt.ArrayLike, *, name: str = "returns", min_days: int = 2, columns: int | None = None
) -> FloatArray:
    """``returns`` as a finite ``(days, n)`` float array; ValueError naming the field (and the
    first bad entry ``returns[d][j]``) otherwise. A 1-D input is one column."""
    try:
        r = np.array(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a days x symbols array of numbers") from None
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"{name}: expected a days x symbols array, got shape {r.shape}")
    days, n = r.shape
    if columns is not None and n != columns:
        raise ValueError(f"{name}: expected {columns} columns (one per symbol), got {n}")
    if n == 0 or n > MAX_COLUMNS:
        raise ValueError(f"{name}: expected 1 to {MAX_COLUMNS} columns, got {n}")
    if days > MAX_DAYS:
        raise ValueError(f"{name}: at most {MAX_DAYS} days, got {days}")
    if days < min_days:
        raise ValueError(f"{name}: at least {min_days} days (observations) needed, got {days}")
    bad = np.argwhere(~np.isfinite(r))
    if bad.size:
        d, j = (int(x) for x in bad[0])
        raise ValueError(f"{name}[{d}][{j}]: must be finite, got {r[d, j]!r}")
    return r


def _symbols(symbols: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if symbols is None:
        return tuple(f"x{i}" for i in range(n))
    syms = tuple(symbols)
    if len(syms) != n:
        raise ValueError(f"symbols: expected {n} (one per returns column), got {len(syms)}")
    for i, s in enumerate(syms):
        if not isinstance(s, str) or not s:
            raise ValueError(f"symbols[{i}]: expected a non-empty string, got {s!r}")
    if len(set(syms)) != n:
        raise ValueError("symbols: must be distinct")
    return syms


def _lambda(ewma_lambda: float) -> float:
    lam = float(ewma_lambda)
    if not (math.isfinite(lam) and 0.0 < lam < 1.0):
        raise ValueError(f"ewma_lambda: must be in (0, 1), got {ewma_lambda!r}")
    return lam


def correlation_from(cov: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(correlation, standard deviations) of a covariance; a zero-variance column gets zero
    correlation with the others and a unit diagonal."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    safe = np.where(sd > 0.0, sd, 1.0)
    corr = cov / np.outer(safe, safe)
    corr[sd == 0.0, :] = 0.0
    corr[:, sd == 0.0] = 0.0
    corr = np.clip(0.5 * (corr + corr.T), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return corr, sd


def _estimate(
    symbols: tuple[str, ...], daily: FloatArray, details: dict[str, float | int | str | bool]
) -> CovarianceEstimate:
    cov = 0.5 * (daily + daily.T) * TRADING_DAYS
    corr, vol = correlation_from(cov)
    return CovarianceEstimate(symbols, cov, corr, vol, details)


def ewma_variances(returns: FloatArray, ewma_lambda: float = 0.94) -> FloatArray:
    """Per column, the EWMA variance forecast for each day and for the day after the last:
    shape ``(days + 1, n)``, row ``t`` the variance of day ``t`` from days before it
    (``v_0`` = mean of squares of the whole window, ``v_{t+1} = lam v_t + (1-lam) r_t^2``)."""
    lam = _lambda(ewma_lambda)
    r2 = returns * returns
    seed = r2.mean(axis=0)
    # v_{t+1} - lam v_t = (1 - lam) r_t^2: a first-order linear filter over the days.
    x = np.vstack([np.zeros((1, r2.shape[1])), (1.0 - lam) * r2])
    out: FloatArray = signal.lfilter([1.0], [1.0, -lam], x, axis=0, zi=seed[None, :])[0]
    return out


def ewma_covariance(
    returns: npt.ArrayLike, symbols: Sequence[str] | None = None, *, ewma_lambda: float = 0.94
) -> CovarianceEstimate:
    """The RiskMetrics EWMA covariance (zero mean) after the last day, annualised."""
    lam = _lambda(ewma_lambda)
    r = check_returns(returns)
    syms = _symbols(symbols, r.shape[1])
    days = r.shape[0]
    # The recursion unrolled: S = lam^T S_0 + (1-lam) sum_t lam^(T-1-t) r_t r_t'.
    w = (1.0 - lam) * lam ** np.arange(days - 1, -1, -1, dtype=np.float64)
    s0 = r.T @ r / days
    daily = lam**days * s0 + (r * w[:, None]).T @ r
    return _estimate(syms, daily, {"estimator": "ewma", "ewma_lambda": lam, "observations": days})


def sample_covariance(
    returns: npt.ArrayLike, symbols: Sequence[str] | None = None
) -> CovarianceEstimate:
    r = check_returns(returns)
    syms = _symbols(symbols, r.shape[1])
    daily = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    return _estimate(syms, daily, {"estimator": "sample", "observations": r.shape[0]})


def ledoit_wolf(
    returns: npt.ArrayLike,
    symbols: Sequence[str] | None = None,
    *,
    target: Literal["constant_correlation", "identity"] = "constant_correlation",
) -> CovarianceEstimate:
    """Ledoit-Wolf shrinkage ``d F + (1 - d) S`` of the sample covariance ``S`` (mean removed,
    divisor ``days``) towards ``F``, with the paper's estimate of the optimal ``d`` (clipped
    to [0, 1]), reported as ``details["shrinkage"]``."""
    r = check_returns(returns)
    syms = _symbols(symbols, r.shape[1])
    t, n = r.shape
    y = r - r.mean(axis=0)
    s = y.T @ y / t
    y2 = y * y
    if target == "identity":
        # Ledoit & Wolf (2004, JMVA): F = mu I, mu = tr(S)/n; the Frobenius norms are scaled
        # by 1/n as in the paper.
        mu = float(np.trace(s)) / n
        f = mu * np.eye(n)
        d2 = float(np.sum((s - f) ** 2)) / n
        # b2 = (1/t^2) sum_k ||y_k y_k' - S||^2 / n, expanded to avoid the t x n x n tensor.
        b2 = float(np.sum(y2.T @ y2) / t - np.sum(s * s)) / (t * n)
        b2 = min(b2, d2)
        shrink = 0.0 if d2 == 0.0 else b2 / d2
    elif target == "constant_correlation":
        # Ledoit & Wolf (2004, JPM): F_ii = s_ii, F_ij = rbar sqrt(s_ii s_jj); the optimal
        # intensity is (pi - rho) / gamma / t.
        var = np.diag(s).copy()
        sd = np.sqrt(var)
        if n == 1 or (sd == 0.0).any():
            f = s.copy()
            shrink = 0.0
        else:
            corr = s / np.outer(sd, sd)
            rbar = (float(corr.sum()) - n) / (n * (n - 1))
            f = rbar * np.outer(sd, sd)
            np.fill_diagonal(f, var)
            # pi_ij = (1/t) sum_k (y_ki y_kj - s_ij)^2
            pi_mat = y2.T @ y2 / t - s * s
            pi_hat = float(pi_mat.sum())
            # theta_ii,ij = (1/t) sum_k (y_ki^2 - s_ii)(y_ki y_kj - s_ij)
            theta = (y**3).T @ y / t - var[:, None] * s
            ratio = sd[None, :] / sd[:, None]  # sqrt(s_jj / s_ii) at [i, j]
            off = rbar / 2.0 * (ratio * theta + ratio.T * theta.T)
            np.fill_diagonal(off, 0.0)
            rho_hat = float(np.trace(pi_mat)) + float(off.sum())
            gamma_hat = float(np.sum((f - s) ** 2))
            kappa = (pi_hat - rho_hat) / gamma_hat if gamma_hat > 0.0 else 0.0
            shrink = max(0.0, min(kappa / t, 1.0))
    else:
        raise ValueError(f"target: must be 'constant_correlation' or 'identity', got {target!r}")
    daily = shrink * f + (1.0 - shrink) * s
    return _estimate(
        syms,
        daily,
        {
            "estimator": "ledoit_wolf",
            "target": target,
            "shrinkage": float(shrink),
            "observations": t,
        },
    )


@dataclass(frozen=True)
class Garch11:
    """A fitted GARCH(1,1) of daily returns (zero mean)."""

    omega: float
    alpha: float
    beta: float
    #: Conditional variance of each day (from the days before it), shape (days,).
    variances: FloatArray
    #: The conditional variance forecast for the day after the last.
    forecast: float
    log_likelihood: float

    def __iter__(self) -> Iterator[float | FloatArray]:
        """Unpacks as ``omega, alpha, beta, variances``."""
        return iter((self.omega, self.alpha, self.beta, self.variances))


def _garch_variances(
    x2: FloatArray, omega: float, alpha: float, beta: float, v0: float
) -> FloatArray:
    """s2_0 = v0, s2_t = omega + alpha x2_{t-1} + beta s2_{t-1}; returns days + 1 values."""
    drive = np.concatenate([[0.0], omega + alpha * x2])
    out: FloatArray = signal.lfilter([1.0], [1.0, -beta], drive, zi=[v0])[0]
    return out


def garch11(x: npt.ArrayLike, *, name: str = "x") -> Garch11:
    """Fit a GARCH(1,1) to a daily return series by maximum likelihood.

    The returns are scaled to unit sample variance for the fit (omega is scaled back); the
    recursion starts at the sample variance; the likelihood is Gaussian with zero mean.
    Stationarity ``alpha + beta < 1`` is a constraint of the fit. At least 30 observations."""
    a = check_returns(x, name=name, min_days=30)
    if a.shape[1] != 1:
        raise ValueError(f"{name}: expected one series, got {a.shape[1]} columns")
    r = a[:, 0]
    scale = float(np.mean(r * r))
    if scale <= 0.0:
        raise ValueError(f"{name}: all returns are zero; the variance cannot be modelled")
    z2 = r * r / scale
    v0 = 1.0

    def nll(theta: FloatArray) -> float:
        omega, alpha, beta = (float(t) for t in theta)
        s2 = _garch_variances(z2, omega, alpha, beta, v0)[:-1]
        if (s2 <= 0.0).any():
            return 1e12
        return 0.5 * float(np.sum(np.log(s2) + z2 / s2))

    best: optimize.OptimizeResult | None = None
    for alpha0, beta0 in ((0.05, 0.90), (0.10, 0.80), (0.20, 0.50)):
        start = np.array([1.0 - alpha0 - beta0, alpha0, beta0])
        res = optimize.minimize(
            nll,
            start,
            method="SLSQP",
            bounds=[(1e-8, 10.0), (0.0, 1.0), (0.0, 1.0)],
            constraints=[{"type": "ineq", "fun": lambda t: 1.0 - 1e-6 - t[1] - t[2]}],
            options={"maxiter": 500, "ftol": 1e-10},
        )
        if best is None or float(res.fun) < float(best.fun):
            best = res
    assert best is not None
    omega_s, alpha, beta = (float(t) for t in best.x)
    alpha, beta = max(alpha, 0.0), max(beta, 0.0)
    s2 = _garch_variances(z2, omega_s, alpha, beta, v0) * scale
    loglik = -0.5 * float(np.sum(np.log(2.0 * math.pi * s2[:-1]) + r * r / s2[:-1]))
    return Garch11(omega_s * scale, alpha, beta, s2[:-1], float(s2[-1]), loglik)


def garch_covariance(
    returns: npt.ArrayLike, symbols: Sequence[str] | None = None
) -> CovarianceEstimate:
    """Per-column GARCH(1,1) and the constant-conditional-correlation covariance ``D R D``."""
    r = check_returns(returns, min_days=30)
    syms = _symbols(symbols, r.shape[1])
    fits = [garch11(r[:, j], name=f"returns[:, {j}]") for j in range(r.shape[1])]
    d = np.sqrt([f.forecast for f in fits])
    z = r / np.sqrt(np.column_stack([f.variances for f in fits]))
    rmat = np.atleast_2d(np.corrcoef(z, rowvar=False))
    daily = rmat * np.outer(d, d)
    details: dict[str, float | int | str | bool] = {
        "estimator": "garch",
        "observations": r.shape[0],
    }
    for s, f in zip(syms, fits, strict=True):
        details[f"garch.{s}.omega"] = f.omega
        details[f"garch.{s}.alpha"] = f.alpha
        details[f"garch.{s}.beta"] = f.beta
    return _estimate(syms, daily, details)


def estimate_covariance(
    returns: npt.ArrayLike,
    symbols: Sequence[str] | None = None,
    *,
    estimator: Estimator = "ewma",
    ewma_lambda: float = 0.94,
    target: Literal["constant_correlation", "identity"] = "constant_correlation",
) -> CovarianceEstimate:
    """The annualised covariance of ``returns`` by ``estimator`` (see the module docstring)."""
    if estimator == "sample":
        return sample_covariance(returns, symbols)
    if estimator == "ewma":
        return ewma_covariance(returns, symbols, ewma_lambda=ewma_lambda)
    if estimator == "ledoit_wolf":
        return ledoit_wolf(returns, symbols, target=target)
    if estimator == "garch":
        return garch_covariance(returns, symbols)
    raise ValueError(f"estimator: must be one of {list(ESTIMATORS)}, got {estimator!r}")


def _window(window: int, days: int, name: str = "window", need: int = 1) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise ValueError(f"{name}: expected a whole number of days, got {window!r}")
    w = int(window)
    if w < 2:
        raise ValueError(f"{name}: must be >= 2 days, got {w}")
    if need * w > days:
        what = "window" if need == 1 else f"{need} x window"
        raise ValueError(f"{name}: {what} ({need * w}) must be <= the days of returns ({days})")
    return w


def rolling_correlation(returns: npt.ArrayLike, window: int) -> FloatArray:
    """Correlation matrices of every window of ``window`` consecutive days: shape
    ``(days - window + 1, n, n)``, entry ``k`` from days ``k .. k + window - 1``. A column
    constant over a window has zero correlation with the others there."""
    r = check_returns(returns)
    w = _window(window, r.shape[0])
    days, n = r.shape
    k = days - w + 1
    if k * n * n > MAX_ROLLING_VALUES:
        raise ValueError(
            f"returns: {k} windows of {n} x {n} correlations exceed {MAX_ROLLING_VALUES} values; "
            "use fewer days or symbols, or a longer window"
        )
    corr: FloatArray = np.empty((k, n, n))
    win = np.lib.stride_tricks.sliding_window_view(r, w, axis=0)  # (k, n, w), a view
    step = max(1, _CHUNK_VALUES // (n * w))  # windows per chunk: bounded intermediates
    for lo in range(0, k, step):
        part = win[lo : lo + step]
        dev = part - part.mean(axis=2, keepdims=True)
        cov = np.einsum("kiw,kjw->kij", dev, dev)
        sd = np.sqrt(np.einsum("kii->ki", cov))
        safe = np.where(sd > 0.0, sd, 1.0)
        out = cov / (safe[:, :, None] * safe[:, None, :])
        zero = sd == 0.0
        out[zero[:, :, None] | zero[:, None, :]] = 0.0
        np.clip(out, -1.0, 1.0, out=out)
        corr[lo : lo + step] = out
    idx = np.arange(n)
    corr[:, idx, idx] = 1.0
    return corr


@dataclass(frozen=True)
class CorrelationBreakdown:
    """For each day ``end[k]`` (index of the last day of a window), the largest absolute
    change of a pairwise correlation between the window ending there and the window of the
    same length just before it (no overlap), the pair that changed most, and whether the
    change exceeds the threshold."""

    end: npt.NDArray[np.int64]
    change: FloatArray
    pair: npt.NDArray[np.int64]  # (k, 2): the pair (i, j), i < j
    breakdown: npt.NDArray[np.bool_]
    threshold: float

    @property
    def latest(self) -> bool:
        """Whether the signal is on for the last day."""
        return bool(self.breakdown[-1])


def correlation_breakdown(
    returns: npt.ArrayLike, window: int, threshold: float = 0.3
) -> CorrelationBreakdown:
    """The correlation-breakdown signal: on when some pairwise correlation of the latest
    ``window`` days differs from that of the ``window`` days before by more than
    ``threshold`` (needs ``2 x window`` days and at least two columns)."""
    r = check_returns(returns)
    if r.shape[1] < 2:
        raise ValueError("returns: a correlation breakdown needs at least 2 columns")
    w = _window(window, r.shape[0], need=2)
    thr = float(threshold)
    if not (math.isfinite(thr) and 0.0 < thr <= 2.0):
        raise ValueError(f"threshold: must be in (0, 2], got {threshold!r}")
    rolling = rolling_correlation(r, w)
    now, before = rolling[w:], rolling[:-w]
    iu, ju = np.triu_indices(r.shape[1], 1)
    diff = np.abs(now[:, iu, ju] - before[:, iu, ju])  # (k, pairs)
    top = np.argmax(diff, axis=1)
    change = diff[np.arange(diff.shape[0]), top]
    end = np.arange(2 * w - 1, r.shape[0], dtype=np.int64)
    pair = np.column_stack([iu[top], ju[top]]).astype(np.int64)
    return CorrelationBreakdown(end, change, pair, change > thr, thr)


__all__ = [
    "ESTIMATORS",
    "CorrelationBreakdown",
    "CovarianceEstimate",
    "Garch11",
    "check_returns",
    "correlation_breakdown",
    "estimate_covariance",
    "ewma_covariance",
    "ewma_variances",
    "garch11",
    "garch_covariance",
    "ledoit_wolf",
    "rolling_correlation",
    "sample_covariance",
]
