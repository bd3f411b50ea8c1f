"""Zero-rate curves: continuously compounded zero rates z(T), discount factors and forwards.

A :class:`RateCurve` is immutable and vectorised: every query takes a scalar or an array of
times in years and returns a float64 array of the same shape.

* ``RateCurve.flat(r)``: z(T) = r.
* ``RateCurve.from_points(times, zero_rates, interpolation=...)``:
  ``"linear_zero"`` interpolates z linearly in T and holds it flat outside the pillars;
  ``"log_discount"`` interpolates ln D(T) = -z(T) T linearly in T (piecewise-flat instantaneous
  forwards) through the origin, so before the first pillar z = z_1 and after the last pillar the
  last segment's forward rate continues.
* ``RateCurve.nelson_siegel_svensson(beta0, beta1, beta2, beta3, tau1, tau2)`` and
  ``RateCurve.fit_nelson_siegel_svensson(times, zero_rates)``.

Identities: ``discount(T) = exp(-zero_rate(T) * T)`` and
``forward(T1, T2) = (z(T2) T2 - z(T1) T1) / (T2 - T1)`` (continuously compounded).

Using a curve where a rate is taken: the pricing kernels take a constant rate per option to its
expiry, which is exactly the zero rate to that expiry, e.g.
``european(S, K, T, r=curve.zero_rate(T), q=q, sigma=sigma, option_type="call")``;
:class:`tradecore.surface.OptionChain` accepts a curve directly as its ``rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

FloatArray = npt.NDArray[np.float64]
CurveKind = Literal["flat", "points", "nss"]
Interpolation = Literal["linear_zero", "log_discount"]

_INTERPOLATIONS: tuple[str, ...] = ("linear_zero", "log_discount")


def _times(value: npt.ArrayLike, name: str) -> FloatArray:
    try:
        t = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    bad = ~np.isfinite(t) | (t < 0.0)
    if bad.any():
        idx = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name}[{idx}] must be finite and >= 0 (got {t.ravel()[idx]!r})")
    return t


def _nss_loadings(t: FloatArray, tau1: float, tau2: float) -> FloatArray:
    """The four NSS factor loadings at times t (limit values at t = 0), shape t.shape + (4,)."""

    def slope(x: FloatArray) -> FloatArray:
        safe = np.where(x > 1e-8, x, 1.0)
        return np.where(x > 1e-8, -np.expm1(-safe) / safe, 1.0 - 0.5 * x)

    x1, x2 = t / tau1, t / tau2
    s1, s2 = slope(x1), slope(x2)
    return np.stack([np.ones_like(t), s1, s1 - np.exp(-x1), s2 - np.exp(-x2)], axis=-1)


@dataclass(frozen=True, slots=True)
class NssParams:
    """Nelson-Siegel-Svensson parameters (zero rates continuously compounded, taus in years)."""

    beta0: float
    beta1: float
    beta2: float
    beta3: float
    tau1: float
    tau2: float

    def __post_init__(self) -> None:
        for name in ("beta0", "beta1", "beta2", "beta3", "tau1", "tau2"):
            v = getattr(self, name)
            if not np.isfinite(v):
                raise ValueError(f"{name} must be finite (got {v!r})")
        for name in ("tau1", "tau2"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)!r})")


@dataclass(frozen=True, slots=True, eq=False)
class RateCurve:
    """A zero-rate curve; build it with :meth:`flat`, :meth:`from_points` or the NSS methods."""

    kind: CurveKind
    times: FloatArray = field(default_factory=lambda: np.zeros(0))
    zero_rates: FloatArray = field(default_factory=lambda: np.zeros(0))
    interpolation: Interpolation = "linear_zero"
    nss: NssParams | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def flat(cls, r: float) -> RateCurve:
        """A constant zero rate ``r`` (continuously compounded)."""
        if not np.isfinite(r):
            raise ValueError(f"r must be finite (got {r!r})")
        return cls(kind="flat", times=np.zeros(1), zero_rates=np.array([float(r)]))

    @classmethod
    def from_points(
        cls,
        times: npt.ArrayLike,
        zero_rates: npt.ArrayLike,
        interpolation: Interpolation = "linear_zero",
    ) -> RateCurve:
        """Pillars (times > 0, strictly increasing) and their zero rates (see the module doc)."""
        t = _times(times, "times").ravel().copy()
        z = np.asarray(zero_rates, dtype=np.float64).ravel().copy()
        if t.size == 0:
            raise ValueError("times must hold at least one pillar")
        if z.shape != t.shape:
            raise ValueError(f"zero_rates has {z.size} values for {t.size} times")
        if not np.isfinite(z).all():
            raise ValueError(
                f"zero_rates[{int(np.flatnonzero(~np.isfinite(z))[0])}] must be finite"
            )
        if (t <= 0.0).any() or (np.diff(t) <= 0.0).any():
            raise ValueError("times must be > 0 and strictly increasing")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS} (got {interpolation!r})"
            )
        t.flags.writeable = False
        z.flags.writeable = False
        return cls(kind="points", times=t, zero_rates=z, interpolation=interpolation)

    @classmethod
    def nelson_siegel_svensson(
        cls, beta0: float, beta1: float, beta2: float, beta3: float, tau1: float, tau2: float
    ) -> RateCurve:
        """z(T) = b0 + b1 L(T/t1) + b2 (L(T/t1) - e^(-T/t1)) + b3 (L(T/t2) - e^(-T/t2)),
        with L(x) = (1 - e^(-x)) / x."""
        return cls(kind="nss", nss=NssParams(beta0, beta1, beta2, beta3, tau1, tau2))

    @classmethod
    def fit_nelson_siegel_svensson(
        cls, times: npt.ArrayLike, zero_rates: npt.ArrayLike
    ) -> RateCurve:
        """Least-squares NSS fit to zero-rate points (at least 6, times > 0).

        For each (tau1, tau2) on a log grid the betas are linear (solved exactly); the best grid
        point (tau1 < tau2) starts a Levenberg-Marquardt polish of all six parameters (taus in
        log space, so they stay > 0)."""
        t = _times(times, "times").ravel()
        z = np.asarray(zero_rates, dtype=np.float64).ravel()
        if z.shape != t.shape:
            raise ValueError(f"zero_rates has {z.size} values for {t.size} times")
        if t.size < 6:
            raise ValueError(f"times: an NSS fit needs at least 6 points (got {t.size})")
        if not np.isfinite(z).all():
            raise ValueError("zero_rates must be finite")
        grid = np.geomspace(0.05, 30.0, 25)
        best: tuple[float, float, float, FloatArray] | None = None
        for i, tau1 in enumerate(grid):
            for tau2 in grid[i + 1 :]:
                X = _nss_loadings(t, float(tau1), float(tau2))
                beta, *_ = np.linalg.lstsq(X, z, rcond=None)
                sse = float(np.sum((X @ beta - z) ** 2))
                if best is None or sse < best[0]:
                    best = (sse, float(tau1), float(tau2), np.asarray(beta, dtype=np.float64))
        assert best is not None
        _, tau1, tau2, beta = best
        x0 = np.concatenate([beta, np.log([tau1, tau2])])

        def residuals(x: FloatArray) -> FloatArray:
            tt1, tt2 = np.exp(x[4]), np.exp(x[5])
            return _nss_loadings(t, tt1, tt2) @ x[:4] - z

        sol = least_squares(residuals, x0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
        x = sol.x if sol.cost <= 0.5 * best[0] + 1e-300 else x0
        b0, b1, b2, b3 = (float(v) for v in x[:4])
        tt1, tt2 = float(np.exp(x[4])), float(np.exp(x[5]))
        return cls.nelson_siegel_svensson(b0, b1, b2, b3, tt1, tt2)

    # ------------------------------------------------------------------ queries
    def zero_rate(self, T: npt.ArrayLike) -> FloatArray:
        """Continuously compounded zero rate to time T (years, >= 0)."""
        t = _times(T, "T")
        if self.kind == "flat":
            return np.full(t.shape, self.zero_rates[0])
        if self.kind == "nss":
            p = self.nss
            assert p is not None
            coef = np.array([p.beta0, p.beta1, p.beta2, p.beta3])
            return np.asarray(_nss_loadings(t, p.tau1, p.tau2) @ coef, dtype=np.float64)
        pt, pz = self.times, self.zero_rates
        if self.interpolation == "linear_zero":
            return np.interp(t, pt, pz)
        # log_discount: y(T) = z(T) T is linear between (0, 0) and the pillars
        y_p = np.concatenate([[0.0], pz * pt])
        t_p = np.concatenate([[0.0], pt])
        y = np.interp(t, t_p, y_p)
        last_fwd = (y_p[-1] - y_p[-2]) / (t_p[-1] - t_p[-2])
        y = np.where(t > pt[-1], y_p[-1] + (t - pt[-1]) * last_fwd, y)
        safe = np.where(t > 0.0, t, 1.0)
        return np.asarray(np.where(t > 0.0, y / safe, pz[0]), dtype=np.float64)

    def discount(self, T: npt.ArrayLike) -> FloatArray:
        """Discount factor exp(-z(T) T)."""
        t = _times(T, "T")
        return np.exp(-self.zero_rate(t) * t)

    def forward(self, T1: npt.ArrayLike, T2: npt.ArrayLike) -> FloatArray:
        """Continuously compounded forward rate between T1 and T2 (T2 > T1, broadcast)."""
        t1, t2 = np.broadcast_arrays(_times(T1, "T1"), _times(T2, "T2"))
        if (t2 <= t1).any():
            idx = int(np.flatnonzero((t2 <= t1).ravel())[0])
            raise ValueError(f"T2[{idx}] must be > T1[{idx}]")
        y1 = self.zero_rate(t1) * t1
        y2 = self.zero_rate(t2) * t2
        return np.asarray((y2 - y1) / (t2 - t1), dtype=np.float64)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) that :meth:`from_dict` turns back into this curve."""
        if self.kind == "flat":
            return {"kind": "flat", "rate": float(self.zero_rates[0])}
        if self.kind == "nss":
            p = self.nss
            assert p is not None
            return {
                "kind": "nss",
                "beta0": p.beta0,
                "beta1": p.beta1,
                "beta2": p.beta2,
                "beta3": p.beta3,
                "tau1": p.tau1,
                "tau2": p.tau2,
            }
        return {
            "kind": "points",
            "times": [float(v) for v in self.times],
            "zero_rates": [float(v) for v in self.zero_rates],
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateCurve:
        kind = data.get("kind")
        if kind == "flat":
            return cls.flat(float(data["rate"]))
        if kind == "nss":
            return cls.nelson_siegel_svensson(
                *(float(data[n]) for n in ("beta0", "beta1", "beta2", "beta3", "tau1", "tau2"))
            )
        if kind == "points":
            return cls.from_points(data["times"], data["zero_rates"], data["interpolation"])
        raise ValueError(f"kind must be 'flat', 'points' or 'nss' (got {kind!r})")


__all__ = ["CurveKind", "Interpolation", "NssParams", "RateCurve"]
