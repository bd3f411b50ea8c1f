"""Smile models of one expiry (raw SVI, SABR) and their calibrators; public via tradecore.surface.

Evaluation runs in the C++ kernels of ``tradecore._core``; the calibrators use scipy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from tradecore import _core
from tradecore.errors import quote

FloatArray = npt.NDArray[np.float64]

_RHO_MAX = 0.9999
# Residual evaluations per least-squares start. Clean smiles converge in a few dozen; a noisy one
# crawls towards the tolerances below for thousands of evaluations (~0.4 s a start) while its
# RMSE moves in the 7th digit, so the cap bounds the time a slice can take.
_MAX_NFEV = 100


def _vector(value: npt.ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    return np.ascontiguousarray(arr.reshape(-1))


@dataclass(frozen=True, slots=True)
class SviParams:
    """Raw SVI slice: w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), w = vol^2 T."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "rho", "m", "sigma"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"svi: {name} must be finite (got {v!r})")
        if self.b < 0.0:
            raise ValueError(f"svi: b must be >= 0 (got {self.b!r})")
        if not abs(self.rho) < 1.0:
            raise ValueError(f"svi: rho must be in (-1, 1) (got {self.rho!r})")
        if not self.sigma > 0.0:
            raise ValueError(f"svi: sigma must be > 0 (got {self.sigma!r})")
        if self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho**2) < -1e-14:
            raise ValueError(f"svi: a must keep a + b sigma sqrt(1 - rho^2) >= 0 (got {self.a!r})")

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.a, self.b, self.rho, self.m, self.sigma)

    def total_variance(self, k: npt.ArrayLike) -> FloatArray:
        """w(k) at log-moneyness k (flattened to 1-D)."""
        return _core.svi_total_variance(_vector(k, "k"), *self.as_tuple(), 0, 0)[0]

    def derivatives(self, k: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(w, dw/dk, d2w/dk2) at k."""
        w, dw, d2w = _core.svi_total_variance(_vector(k, "k"), *self.as_tuple(), 2, 0)
        return w, dw, d2w

    def density(self, k: npt.ArrayLike) -> FloatArray:
        """Gatheral's g(k); the slice has no butterfly arbitrage where g >= 0."""
        return _core.svi_density(_vector(k, "k"), *self.as_tuple(), 0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SabrParams:
    """SABR slice (Hagan et al. 2002 lognormal vol); beta is fixed at calibration."""

    alpha: float
    beta: float
    rho: float
    nu: float

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "rho", "nu"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"sabr: {name} must be finite (got {v!r})")
        if not self.alpha > 0.0:
            raise ValueError(f"sabr: alpha must be > 0 (got {self.alpha!r})")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"sabr: beta must be in [0, 1] (got {self.beta!r})")
        if not abs(self.rho) < 1.0:
            raise ValueError(f"sabr: rho must be in (-1, 1) (got {self.rho!r})")
        if self.nu < 0.0:
            raise ValueError(f"sabr: nu must be >= 0 (got {self.nu!r})")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.alpha, self.beta, self.rho, self.nu)

    def vol(self, F: npt.ArrayLike, K: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Lognormal implied vol at forward F, strike K, expiry T (broadcast, flattened)."""
        f, k, t = np.broadcast_arrays(_vector(F, "F"), _vector(K, "K"), _vector(T, "T"))
        return _core.sabr_vol(f, k, t, *self.as_tuple(), 0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def params_from_dict(model: str, data: dict[str, Any]) -> SviParams | SabrParams:
    if model == "svi":
        return SviParams(*(float(data[n]) for n in ("a", "b", "rho", "m", "sigma")))
    if model == "sabr":
        return SabrParams(*(float(data[n]) for n in ("alpha", "beta", "rho", "nu")))
    raise ValueError(f"model must be 'svi' or 'sabr' (got {quote(model)})")


# ---------------------------------------------------------------------------------- SVI fit
def _svi_inner(
    k: FloatArray, w: FloatArray, m: FloatArray, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Zeliade's inner step, batched over candidate (m, sigma) pairs (arrays of shape (G,)):
    for fixed (m, sigma), w = a + d y + c sqrt(y^2 + 1) with y = (k - m) / sigma is linear in
    (a, d, c); solved by the normal equations, then projected onto c > 0, |d| <= c.
    Returns the SSE in total variance (G,) and the coefficients (G, 3)."""
    y = (k[None, :] - m[:, None]) / sigma[:, None]
    X = np.stack([np.ones_like(y), y, np.sqrt(y * y + 1.0)], axis=2)  # (G, n, 3)
    A = np.einsum("gni,gnj->gij", X, X)
    rhs = np.einsum("gni,n->gi", X, w)
    ridge = 1e-13 * np.trace(A, axis1=1, axis2=2)[:, None, None] * np.eye(3)  # degenerate y
    coef = np.linalg.solve(A + ridge, rhs[..., None])[..., 0]
    c = np.maximum(coef[:, 2], 1e-12)
    d = np.clip(coef[:, 1], -_RHO_MAX * c, _RHO_MAX * c)
    coef = np.stack([coef[:, 0], d, c], axis=1)
    sse = np.sum((np.einsum("gni,gi->gn", X, coef) - w[None, :]) ** 2, axis=1)
    return sse, coef


def _svi_from_inner(m: float, sigma: float, a: float, d: float, c: float) -> FloatArray:
    """(a', b, rho, m, sigma) with a' = a + b sigma sqrt(1 - rho^2) >= 0 the minimum of w."""
    b = c / sigma
    rho = d / c
    a_min = max(a + b * sigma * math.sqrt(1.0 - rho * rho), 0.0)
    return np.array([a_min, b, rho, m, sigma])


def fit_svi(k: FloatArray, vol: FloatArray, T: float) -> SviParams:
    """Raw-SVI fit to implied vols at log-moneyness k (at least 5 points), least squares in vol.

    Quasi-explicit starts (Zeliade 2009: on a grid of (m, sigma) the other three parameters are
    solved linearly in total variance), then a bounded trust-region polish of all five parameters
    in implied vol with an analytic Jacobian from the best grid point (at most _MAX_NFEV
    evaluations); when that leaves an RMSE above 1e-5 the next distinct grid points (up to
    three starts) are polished too."""
    if k.size < 5:
        raise ValueError(f"svi fit needs at least 5 quotes per expiry (got {k.size})")
    w = vol * vol * T
    k_lo, k_hi = float(k.min()), float(k.max())
    span = max(k_hi - k_lo, 1e-3)
    mm, ss = np.meshgrid(np.linspace(k_lo, k_hi, 13), np.geomspace(5e-3 * span, 2.0 * span, 12))
    grid_m, grid_s = mm.ravel(), ss.ravel()
    sse, coef = _svi_inner(k, w, grid_m, grid_s)
    order = np.argsort(sse)

    def unpack(x: FloatArray) -> tuple[float, float, float, float, float, float]:
        a_min, b, rho, m, sigma = (float(v) for v in x)
        s = math.sqrt(max(1.0 - rho * rho, 0.0))
        return a_min - b * sigma * s, b, rho, m, sigma, s

    def model_vol(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        a, b, rho, m, sigma, _ = unpack(x)
        xk = k - m
        r = np.sqrt(xk * xk + sigma * sigma)
        wm = np.maximum(a + b * (rho * xk + r), 1e-300)
        return np.sqrt(wm / T), xk, r

    def residuals(x: FloatArray) -> FloatArray:
        return model_vol(x)[0] - vol

    def jacobian(x: FloatArray) -> FloatArray:
        _, b, rho, _, sigma, s = unpack(x)
        v, xk, r = model_vol(x)
        s_safe = max(s, 1e-12)
        dw = np.stack(
            [
                np.ones_like(xk),
                rho * xk + r - sigma * s,
                b * xk + b * sigma * rho / s_safe,
                -b * (rho + xk / r),
                b * sigma / r - b * s,
            ],
            axis=1,
        )
        return dw / (2.0 * T * v)[:, None]

    lower = np.array([0.0, 0.0, -_RHO_MAX, k_lo - 2.0 * span, 1e-6])
    upper = np.array([np.inf, np.inf, _RHO_MAX, k_hi + 2.0 * span, np.inf])
    best = None
    tried: list[tuple[float, float]] = []
    for j in order:
        m0, s0 = float(grid_m[j]), float(grid_s[j])
        if any(abs(m0 - m1) < 0.2 * span and 0.5 < s0 / s1 < 2.0 for m1, s1 in tried):
            continue  # a start too close to one already polished
        tried.append((m0, s0))
        x0 = _svi_from_inner(m0, s0, *(float(v) for v in coef[j]))
        sol = least_squares(
            residuals,
            np.clip(x0, lower + 1e-12, upper - 1e-12),
            jac=jacobian,
            bounds=(lower, upper),
            method="trf",
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=_MAX_NFEV,
        )
        if best is None or sol.cost < best.cost:
            best = sol
        # good enough (RMSE in vol below 1e-5) or three distinct basins tried
        if best.cost < 0.5 * k.size * 1e-10 or len(tried) == 3:
            break
    assert best is not None
    sol = best
    a, b, rho, m, sigma, _ = unpack(sol.x)
    return SviParams(a=a, b=b, rho=rho, m=m, sigma=sigma)


# ---------------------------------------------------------------------------------- SABR fit
def fit_sabr(F: float, K: FloatArray, vol: FloatArray, T: float, beta: float) -> SabrParams:
    """SABR fit (beta fixed; alpha, rho, nu by bounded least squares in vol, three rho starts)."""
    if K.size < 3:
        raise ValueError(f"sabr fit needs at least 3 quotes per expiry (got {K.size})")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1] (got {beta!r})")
    f = np.full(K.shape, F)
    t = np.full(K.shape, T)
    atm_vol = float(np.interp(0.0, *_sorted(np.log(K / F), vol)))
    alpha0 = atm_vol * F ** (1.0 - beta)

    def residuals(x: FloatArray) -> FloatArray:
        model = _core.sabr_vol(f, K, t, float(x[0]), beta, float(x[1]), float(x[2]), 0)
        return np.where(np.isfinite(model), model - vol, 10.0)

    lower = np.array([1e-10, -_RHO_MAX, 0.0])
    upper = np.array([np.inf, _RHO_MAX, np.inf])
    best = None
    for rho0 in (-0.5, 0.0, 0.5):
        sol = least_squares(
            residuals,
            np.array([alpha0, rho0, 0.5]),
            bounds=(lower, upper),
            method="trf",
            jac="3-point",
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=_MAX_NFEV,
        )
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    alpha, rho, nu = (float(v) for v in best.x)
    return SabrParams(alpha=alpha, beta=beta, rho=rho, nu=nu)


def _sorted(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    order = np.argsort(x)
    return x[order], y[order]
