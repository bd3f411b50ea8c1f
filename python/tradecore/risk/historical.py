"""Historical simulation VaR (plain and filtered) and EVT VaR over a history of daily returns.

Scenario model (docs/api.md, "Risk"): ``returns`` are daily log-returns, one row per day, one
column per underlying in ``book.symbols`` order. Day ``d`` becomes the scenario
``S_i exp(r_di sqrt(horizon_days))`` at the horizon ``h = horizon_days / 252`` years: a daily
return is scaled to the horizon by the square root of time (the returns are treated as
independent with a constant distribution; for a 1-day horizon the day is replayed as it was).
Volatilities and the rate are unchanged, options are revalued exactly with time to expiry
``T - h`` (:func:`tradecore.risk.valuation.revalue`). The loss of a scenario is the value now
minus the value there; VaR/ES and their standard errors are :func:`tradecore.risk.result.var_es`
of the losses (VaR the ``ceil(c N)``-th smallest of ``N`` days).

Filtered historical simulation (Hull & White 1998; Barone-Adesi et al. 1999): each day's return
is first rescaled by ``sigma_today / sigma_d``, the ratio of today's EWMA volatility of that
underlying to the EWMA volatility the day had (:func:`tradecore.risk.covariance.ewma_variances`:
``v_{t+1} = lam v_t + (1 - lam) r_t^2`` seeded with the window's mean square; today's is the
forecast after the last day), so a calm history is scaled up in a volatile market and the
reverse.

EVT (McNeil & Frey 2000, peaks over threshold): the historical-simulation losses above their
``threshold`` quantile are fitted with a generalised Pareto distribution (maximum likelihood,
:func:`scipy.stats.genpareto`). With ``u`` the threshold loss, ``N_u`` of ``N`` losses beyond it,
shape ``xi`` and scale ``beta``: ``VaR = u + beta/xi ((N (1-c) / N_u)^(-xi) - 1)`` and
``ES = (VaR + beta - xi u) / (1 - xi)`` (``xi -> 0``: ``u - beta ln(N (1-c)/N_u)`` and
``VaR + beta``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from scipy import stats

from tradecore.risk.book import Book
from tradecore.risk.covariance import check_returns, ewma_variances
from tradecore.risk.result import VaRResult, var_es
from tradecore.risk.valuation import revalue

FloatArray = npt.NDArray[np.float64]

TRADING_DAYS = 252.0
#: The longest horizon a method accepts, in trading days.
MAX_HORIZON_DAYS = 2520.0
#: EVT needs at least this many losses beyond the threshold.
MIN_EXCEEDANCES = 20


def check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence: expected a number, got {confidence!r}") from None
    if not (math.isfinite(c) and 0.0 < c < 1.0):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    return c


def check_horizon(horizon_days: float) -> float:
    try:
        h = float(horizon_days)
    except (TypeError, ValueError):
        raise ValueError(f"horizon_days: expected a number, got {horizon_days!r}") from None
    if not (math.isfinite(h) and 0.0 < h <= MAX_HORIZON_DAYS):
        raise ValueError(
            f"horizon_days: must be in (0, {MAX_HORIZON_DAYS:g}], got {horizon_days!r}"
        )
    return h


def _book_returns(book: Book, returns: npt.ArrayLike, confidence: float) -> FloatArray:
    r = check_returns(returns, columns=book.n_underlyings, min_days=2)
    days = r.shape[0]
    need = math.ceil(1.0 / (1.0 - confidence) - 1e-9)
    if days < need:
        raise ValueError(
            f"returns: {days} days leave no loss beyond the {confidence:.6g} quantile; "
            f"need at least {need} days"
        )
    return r


def filtered_returns(returns: npt.ArrayLike, ewma_lambda: float = 0.94) -> FloatArray:
    """Each day's return rescaled by today's EWMA volatility over that day's (see the module
    docstring); a column that is zero throughout stays zero."""
    r = check_returns(returns, min_days=2)
    v = ewma_variances(r, ewma_lambda)
    day, today = v[:-1], v[-1:]
    ratio = np.sqrt(np.divide(today, day, out=np.ones_like(day), where=day > 0.0))
    out: FloatArray = r * ratio
    return out


def scenario_losses(
    book: Book, returns: FloatArray, horizon_days: float
) -> tuple[float, FloatArray]:
    """(value now, loss of each day's scenario) under the historical scenario model."""
    h = horizon_days / TRADING_DAYS
    now = float(revalue(book).sum())
    with np.errstate(over="ignore"):
        spot = book.spot * np.exp(returns * math.sqrt(horizon_days))
    if not np.isfinite(spot).all() or (spot <= 0.0).any():
        raise ValueError("returns: a return scaled to the horizon moves a spot out of range")
    later = revalue(book, spot=spot, horizon=h).sum(axis=-1)
    return now, now - later


def historical_var(
    book: Book,
    returns: npt.ArrayLike,
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    filtered: bool = False,
    ewma_lambda: float = 0.94,
) -> VaRResult:
    """Historical-simulation VaR and ES of ``book`` over ``returns`` (days x underlyings, daily
    log-returns in ``book.symbols`` order); ``filtered=True`` rescales them first (filtered
    historical simulation, method ``filtered_historical``). At least ``1 / (1 - c)`` days."""
    c = check_confidence(confidence)
    hd = check_horizon(horizon_days)
    r = _book_returns(book, returns, c)
    details: dict[str, float | int | str | bool] = {"scaling": "sqrt_time"}
    if filtered:
        r = filtered_returns(r, ewma_lambda)
        details["ewma_lambda"] = float(ewma_lambda)
    value, losses = scenario_losses(book, r, hd)
    var, es, var_se, es_se = var_es(losses, c)
    return VaRResult(
        method="filtered_historical" if filtered else "historical",
        confidence=c,
        horizon_days=hd,
        var=var,
        expected_shortfall=es,
        var_stderr=var_se,
        es_stderr=es_se,
        value=value,
        scenarios=int(losses.size),
        details=details,
    )


def evt_tail(
    losses: npt.ArrayLike, *, confidence: float = 0.99, threshold: float = 0.90
) -> tuple[float, float, dict[str, float | int | str | bool]]:
    """``(VaR, ES, details)`` of a loss sample by a generalised Pareto fit to the losses above
    its ``threshold`` quantile (see the module docstring). The ``floor(N (1 - threshold))``
    largest losses form the tail; ``u`` is the largest loss below them."""
    c = check_confidence(confidence)
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold: expected a number, got {threshold!r}") from None
    if not (math.isfinite(thr) and 0.0 < thr < 1.0):
        raise ValueError(f"threshold: must be in (0, 1), got {threshold!r}")
    if c <= thr:
        raise ValueError(f"confidence: must be above the EVT threshold quantile {thr:g}, got {c:g}")
    x = np.sort(np.asarray(losses, dtype=np.float64).ravel())
    if not np.isfinite(x).all():
        raise ValueError("returns: the scenario losses must be finite")
    n = x.size
    n_u = math.floor(n * (1.0 - thr) + 1e-9)
    if n_u < MIN_EXCEEDANCES or n_u >= n:
        need = math.ceil(MIN_EXCEEDANCES / (1.0 - thr) - 1e-9)
        raise ValueError(
            f"returns: {n} observations leave {n_u} losses above the {thr:g} quantile; EVT "
            f"needs at least {MIN_EXCEEDANCES} (at least {need} observations)"
        )
    u = float(x[n - n_u - 1])
    y = x[n - n_u :] - u
    scale0 = float(y.mean())
    if scale0 <= 0.0:
        raise ValueError(
            "returns: the losses above the EVT threshold are all equal; no tail to fit"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        xi, _, beta_s = stats.genpareto.fit(y / scale0, floc=0.0)
    xi = float(xi)
    beta = float(beta_s) * scale0
    if xi >= 1.0:
        raise ValueError(
            f"returns: the fitted tail shape xi = {xi:.3g} >= 1 has no finite expected "
            "shortfall; use a longer history or another method"
        )
    ratio = n * (1.0 - c) / n_u
    if abs(xi) < 1e-9:
        var = u - beta * math.log(ratio)
        es = var + beta
    else:
        var = u + beta / xi * (ratio ** (-xi) - 1.0)
        es = (var + beta - xi * u) / (1.0 - xi)
    details: dict[str, float | int | str | bool] = {
        "shape": xi,
        "scale": beta,
        "threshold": thr,
        "threshold_loss": u,
        "exceedances": n_u,
    }
    return var, es, details


def evt_var(
    book: Book,
    returns: npt.ArrayLike,
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    threshold: float = 0.90,
) -> VaRResult:
    """EVT (peaks-over-threshold) VaR and ES of ``book``: a generalised Pareto tail fitted to
    its historical-simulation losses over ``returns`` (see the module docstring). Details:
    ``shape`` (xi), ``scale`` (beta), ``threshold``, ``threshold_loss`` (u), ``exceedances``,
    ``historical_var``. No standard errors (NaN)."""
    c = check_confidence(confidence)
    hd = check_horizon(horizon_days)
    r = check_returns(returns, columns=book.n_underlyings, min_days=2)
    value, losses = scenario_losses(book, r, hd)
    var, es, details = evt_tail(losses, confidence=c, threshold=threshold)
    details["historical_var"] = var_es(losses, c)[0]
    return VaRResult(
        method="evt",
        confidence=c,
        horizon_days=hd,
        var=var,
        expected_shortfall=es,
        value=value,
        scenarios=int(losses.size),
        details=details,
    )


__all__ = [
    "MAX_HORIZON_DAYS",
    "MIN_EXCEEDANCES",
    "evt_tail",
    "evt_var",
    "filtered_returns",
    "historical_var",
    "scenario_losses",
]
