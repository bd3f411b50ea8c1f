"""Implied-volatility surfaces: raw-SVI or SABR slices per expiry, fitted to an option chain.

Conventions: k = ln(K / F(T)) is log-moneyness against the forward of the expiry, w = vol^2 T is
total implied variance, times are in years and rates continuously compounded.

Fitting (:func:`fit_surface`): per expiry a forward (given, from put-call parity where calls and
puts share strikes, else spot * exp((r - q) T)), implied vols of the out-of-the-money quote at
each strike (the in-the-money one only where a strike has no OTM quote), then a raw-SVI or a SABR
(beta fixed) fit per expiry. The fit reports the RMSE in vol per expiry and the arbitrage found on
a dense k grid: butterfly (Gatheral's density g(k) < 0) and calendar (w decreasing in T at
fixed k).

Queries (:meth:`VolSurface.vol`): k = ln(K / F(T)) with ln F linear in T between the slices'
forwards (anchored at the spot at T = 0 when known); total variance linear in T at fixed k between
expiries; before the first expiry w grows linearly from 0 (the first slice's vol); after the last
expiry the last interval's forward variance continues (floored at 0; with one slice: flat vol).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore._smile import SabrParams, SviParams, fit_sabr, fit_svi, params_from_dict
from tradecore.chain import OptionChain, SliceQuotes, prepare_slices
from tradecore.errors import quote
from tradecore.pricing.european import european

FloatArray = npt.NDArray[np.float64]
Model = Literal["svi", "sabr"]
ViolationKind = Literal["butterfly", "calendar"]

# Tolerances of the arbitrage checks (below them a negative value is rounding noise).
BUTTERFLY_TOL = 1e-9
CALENDAR_TOL = 1e-10


@dataclass(frozen=True, slots=True)
class SliceFit:
    """One expiry of a surface: its forward, fitted parameters and fit quality."""

    expiry: float
    forward: float
    params: SviParams | SabrParams
    rmse: float | None = None  # RMSE in implied vol over the quotes fitted (None: not fitted)
    n_quotes: int = 0
    k_min: float = 0.0  # range of quoted log-moneyness
    k_max: float = 0.0

    def total_variance(self, k: npt.ArrayLike) -> FloatArray:
        kk = np.asarray(k, dtype=np.float64).reshape(-1)
        if isinstance(self.params, SviParams):
            return self.params.total_variance(kk)
        v = self.params.vol(self.forward, self.forward * np.exp(kk), self.expiry)
        return v * v * self.expiry


@dataclass(frozen=True, slots=True)
class ArbitrageViolation:
    """An arbitrage found: kind, the (later) expiry, the k of the worst point of the region and
    the offending value there (g(k) for butterfly, w(k, T_i) - w(k, T_(i-1)) for calendar)."""

    kind: ViolationKind
    expiry: float
    k: float
    value: float


@dataclass(frozen=True, slots=True)
class SurfaceDiagnostics:
    rmse_by_expiry: dict[float, float] = field(default_factory=dict)
    violations: tuple[ArbitrageViolation, ...] = ()
    dropped_quotes: int = 0  # quotes with no implied vol (price outside the no-arbitrage bounds)

    @property
    def arbitrage_free(self) -> bool:
        return not self.violations


@dataclass(frozen=True, slots=True, eq=False)
class VolSurface:
    """A fitted surface (immutable). Build with :func:`fit_surface` or :meth:`from_slices`."""

    model: Model
    slices: tuple[SliceFit, ...]
    spot: float | None = None
    diagnostics: SurfaceDiagnostics = field(default_factory=SurfaceDiagnostics)

    def __post_init__(self) -> None:
        if self.model not in ("svi", "sabr"):
            raise ValueError(f"model must be 'svi' or 'sabr' (got {quote(self.model)})")
        if not self.slices:
            raise ValueError("slices: a surface needs at least one expiry")
        want = SviParams if self.model == "svi" else SabrParams
        for i, s in enumerate(self.slices):
            if not isinstance(s.params, want):
                raise ValueError(f"slices[{i}].params must be {want.__name__}")
        t = self.expiries
        if not (np.isfinite(t).all() and (t > 0).all() and (np.diff(t) > 0).all()):
            raise ValueError("slices: expiries must be finite, > 0 and strictly increasing")
        f = self.forwards
        if not (np.isfinite(f).all() and (f > 0).all()):
            raise ValueError("slices: forwards must be finite and > 0")
        if self.spot is not None and not (math.isfinite(self.spot) and self.spot > 0):
            raise ValueError(f"spot must be finite and > 0 (got {self.spot!r})")

    @classmethod
    def from_slices(
        cls, model: Model, slices: list[SliceFit] | tuple[SliceFit, ...], spot: float | None = None
    ) -> VolSurface:
        """A surface from known slices (sorted by expiry here), with its arbitrage diagnostics."""
        ordered = tuple(sorted(slices, key=lambda s: s.expiry))
        surface = cls(model=model, slices=ordered, spot=spot)
        diag = SurfaceDiagnostics(
            rmse_by_expiry={s.expiry: s.rmse for s in ordered if s.rmse is not None},
            violations=surface.check_arbitrage(),
        )
        return cls(model=model, slices=ordered, spot=spot, diagnostics=diag)

    @property
    def expiries(self) -> FloatArray:
        return np.array([s.expiry for s in self.slices], dtype=np.float64)

    @property
    def forwards(self) -> FloatArray:
        return np.array([s.forward for s in self.slices], dtype=np.float64)

    def _param_matrix(self) -> FloatArray:
        return np.ascontiguousarray([s.params.as_tuple() for s in self.slices], dtype=np.float64)

    def vol(self, K: npt.ArrayLike, T: npt.ArrayLike, *, threads: int = 0) -> FloatArray:
        """Implied vol at strikes K and expiries T (broadcast; see the module doc for the
        interpolation). Raises ValueError for K <= 0, T < 0 or non-finite input."""
        k_arr = np.asarray(K, dtype=np.float64)
        t_arr = np.asarray(T, dtype=np.float64)
        try:
            kb, tb = np.broadcast_arrays(k_arr, t_arr)
        except ValueError:
            raise ValueError(f"K{k_arr.shape} and T{t_arr.shape} do not broadcast") from None
        for name, arr, ok in (("K", kb, kb > 0), ("T", tb, tb >= 0)):
            bad = ~(np.isfinite(arr) & ok)
            if bad.any():
                idx = int(np.flatnonzero(bad.ravel())[0])
                rule = "> 0" if name == "K" else ">= 0"
                raise ValueError(
                    f"{name}[{idx}] must be finite and {rule} (got {arr.ravel()[idx]!r})"
                )
        out = _core.surface_vol(
            self.model,
            self.expiries,
            self.forwards,
            self._param_matrix(),
            0.0 if self.spot is None else self.spot,
            np.ascontiguousarray(kb.reshape(-1)),
            np.ascontiguousarray(tb.reshape(-1)),
            threads,
        )
        return out.reshape(kb.shape)

    def total_variance(self, K: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        v = self.vol(K, T)
        return v * v * np.asarray(T, dtype=np.float64)

    def forward(self, T: npt.ArrayLike) -> FloatArray:
        """The surface's forward curve (ln F linear in T between slices; see the module doc)."""
        t = np.asarray(T, dtype=np.float64)
        times, fwds = self.expiries, self.forwards
        if self.spot is not None:
            times, fwds = np.concatenate([[0.0], times]), np.concatenate([[self.spot], fwds])
        logf = np.log(fwds)
        out = np.interp(t, times, logf)
        if times.size >= 2:
            carry = (logf[-1] - logf[-2]) / (times[-1] - times[-2])
            out = np.where(t > times[-1], logf[-1] + (t - times[-1]) * carry, out)
        return np.exp(out)

    def check_arbitrage(
        self, k_grid: npt.ArrayLike | None = None
    ) -> tuple[ArbitrageViolation, ...]:
        """Butterfly (g(k) < 0 per slice) and calendar (w(k) decreasing across consecutive
        expiries) arbitrage on a dense k grid (default: 801 points over the quoted k range
        widened by half its width each side; [-1, 1] for slices without quotes)."""
        k = _default_grid(self.slices) if k_grid is None else np.asarray(k_grid, np.float64)
        if k.ndim != 1 or k.size < 3 or not np.isfinite(k).all():
            raise ValueError("k_grid must be a finite 1-D array of at least 3 points")
        k = np.sort(k)
        found: list[ArbitrageViolation] = []
        prev_w: FloatArray | None = None
        for s in self.slices:
            g = _density(s, k)
            found += _regions("butterfly", s.expiry, k, g, -BUTTERFLY_TOL)
            w = s.total_variance(k)
            if prev_w is not None:
                found += _regions("calendar", s.expiry, k, w - prev_w, -CALENDAR_TOL)
            prev_w = w
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict; :meth:`from_dict` restores the surface."""
        return {
            "model": self.model,
            "spot": self.spot,
            "slices": [
                {
                    "expiry": s.expiry,
                    "forward": s.forward,
                    "params": s.params.to_dict(),
                    "rmse": s.rmse,
                    "n_quotes": s.n_quotes,
                    "k_min": s.k_min,
                    "k_max": s.k_max,
                }
                for s in self.slices
            ],
            "diagnostics": {
                "rmse_by_expiry": [[t, e] for t, e in self.diagnostics.rmse_by_expiry.items()],
                "violations": [
                    {"kind": v.kind, "expiry": v.expiry, "k": v.k, "value": v.value}
                    for v in self.diagnostics.violations
                ],
                "dropped_quotes": self.diagnostics.dropped_quotes,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolSurface:
        try:
            model = data["model"]
            slices = tuple(
                SliceFit(
                    expiry=float(s["expiry"]),
                    forward=float(s["forward"]),
                    params=params_from_dict(model, s["params"]),
                    rmse=None if s.get("rmse") is None else float(s["rmse"]),
                    n_quotes=int(s.get("n_quotes", 0)),
                    k_min=float(s.get("k_min", 0.0)),
                    k_max=float(s.get("k_max", 0.0)),
                )
                for s in data["slices"]
            )
            d = data.get("diagnostics", {})
            diag = SurfaceDiagnostics(
                rmse_by_expiry={float(t): float(e) for t, e in d.get("rmse_by_expiry", [])},
                violations=tuple(
                    ArbitrageViolation(
                        v["kind"], float(v["expiry"]), float(v["k"]), float(v["value"])
                    )
                    for v in d.get("violations", [])
                ),
                dropped_quotes=int(d.get("dropped_quotes", 0)),
            )
            spot = data.get("spot")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"data: not a surface dict ({quote(exc)})") from None
        return cls(
            model=model, slices=slices, spot=None if spot is None else float(spot), diagnostics=diag
        )


def _default_grid(slices: tuple[SliceFit, ...]) -> FloatArray:
    quoted = [s for s in slices if s.n_quotes > 0]
    lo = min((s.k_min for s in quoted), default=-1.0)
    hi = max((s.k_max for s in quoted), default=1.0)
    width = max(hi - lo, 1e-2)
    return np.linspace(lo - 0.5 * width, hi + 0.5 * width, 801)


def _density(s: SliceFit, k: FloatArray) -> FloatArray:
    if isinstance(s.params, SviParams):
        return s.params.density(k)
    h = 1e-4  # central differences of the SABR total variance
    w, wp, wm = s.total_variance(k), s.total_variance(k + h), s.total_variance(k - h)
    dw, d2w = (wp - wm) / (2 * h), (wp - 2 * w + wm) / (h * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(
            (1 - k * dw / (2 * w)) ** 2 - dw * dw / 4 * (1 / w + 0.25) + d2w / 2, dtype=np.float64
        )


def _regions(
    kind: ViolationKind, expiry: float, k: FloatArray, value: FloatArray, tol: float
) -> list[ArbitrageViolation]:
    """One violation per contiguous run of value < tol (NaN counts as a violation)."""
    bad = ~(value >= tol)
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    out = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        seg = np.where(np.isnan(value[start:stop]), -np.inf, value[start:stop])
        j = start + int(np.argmin(seg))
        out.append(ArbitrageViolation(kind, float(expiry), float(k[j]), float(value[j])))
    return out


def _implied_vols(
    price: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    expiry: FloatArray,
    discount: FloatArray,
    option_type: npt.NDArray[np.int8],
) -> FloatArray:
    """Black implied vols (NaN where the price is outside the no-arbitrage bounds).

    Newton on the BSM price of tradecore.pricing.european (spot = forward, q = r, so the price is
    D * Black(F)), safeguarded by a bisection bracket [1e-8, 20]; vectorised over quotes. The
    one function to swap for tradecore.pricing.implied_vol when it lands."""
    T = expiry
    r = -np.log(discount) / T
    undiscounted = price / discount
    call = option_type > 0
    intrinsic = np.maximum(np.where(call, forward - strike, strike - forward), 0.0)
    upper = np.where(call, forward, strike)
    ok = (undiscounted > intrinsic) & (undiscounted < upper) & np.isfinite(price)
    vol = np.full(price.shape, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return vol
    F, K, t, rr, p, w = forward[idx], strike[idx], T[idx], r[idx], price[idx], option_type[idx]
    lo, hi = np.full(idx.size, 1e-8), np.full(idx.size, 20.0)
    moneyness = np.abs(np.log(F / K))
    sig = np.clip(
        np.where(
            moneyness > 1e-3,
            np.sqrt(2 * moneyness / t),
            np.sqrt(2 * np.pi / t) * p / (F * discount[idx]),
        ),
        0.05,
        3.0,
    )
    active = np.arange(idx.size)
    for _ in range(100):
        a = active
        res = european(F[a], K[a], t[a], rr[a], rr[a], sig[a], w[a], greeks=["vega"])
        diff, vega = res["price"] - p[a], res["vega"]
        hi[a] = np.where(diff > 0, sig[a], hi[a])
        lo[a] = np.where(diff < 0, sig[a], lo[a])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = np.where(diff == 0, sig[a], sig[a] - diff / vega)
        inside = (newton >= lo[a]) & (newton <= hi[a]) & np.isfinite(newton)
        step = np.where(inside, newton, 0.5 * (lo[a] + hi[a]))
        done = (
            (np.abs(step - sig[a]) <= 1e-15 * sig[a])
            | (diff == 0)
            | (hi[a] - lo[a] <= 4e-16 * sig[a])
        )
        sig[a] = step
        active = a[~done]
        if active.size == 0:
            break
    sig[sig >= 20.0 * (1 - 1e-9)] = np.nan
    vol[idx] = sig
    return vol


def fit_surface(
    chain: OptionChain,
    model: Model = "svi",
    *,
    beta: float = 1.0,
    k_grid: npt.ArrayLike | None = None,
    checkpoint: Callable[[int, int], None] | None = None,
) -> VolSurface:
    """Fit a raw-SVI or SABR (``beta`` fixed) slice per expiry of ``chain``.

    Returns the surface with its diagnostics: RMSE in vol per expiry, quotes without an implied
    vol, and the butterfly/calendar violations on ``k_grid`` (see VolSurface.check_arbitrage).
    ``checkpoint(fitted, total)``, when given, is called before each expiry is fitted and once
    at the end (fitted == total); an exception it raises abandons the fit (use it to report
    progress and to stop work nobody waits for any more).
    Raises ValueError for an unknown model or an expiry with too few usable quotes."""
    if model not in ("svi", "sabr"):
        raise ValueError(f"model must be 'svi' or 'sabr' (got {quote(model)})")
    slices: list[SliceFit] = []
    dropped = 0
    prepared = prepare_slices(chain)
    for i, q in enumerate(prepared):
        if checkpoint is not None:
            checkpoint(i, len(prepared))
        vols = _implied_vols(
            q.price,
            np.full(q.strike.shape, q.forward),
            q.strike,
            np.full(q.strike.shape, q.expiry),
            np.full(q.strike.shape, q.discount),
            q.option_type,
        )
        good = np.isfinite(vols)
        dropped += int((~good).sum())
        slices.append(_fit_slice(q, vols[good], good, model, beta))
    if checkpoint is not None:
        checkpoint(len(prepared), len(prepared))
    surface = VolSurface(model=model, slices=tuple(slices), spot=chain.spot)
    diag = SurfaceDiagnostics(
        rmse_by_expiry={s.expiry: float(s.rmse or 0.0) for s in slices},
        violations=surface.check_arbitrage(k_grid),
        dropped_quotes=dropped,
    )
    return VolSurface(model=model, slices=surface.slices, spot=chain.spot, diagnostics=diag)


def _fit_slice(
    q: SliceQuotes, vols: FloatArray, good: npt.NDArray[np.bool_], model: Model, beta: float
) -> SliceFit:
    K = q.strike[good]
    k = np.log(K / q.forward)
    try:
        params: SviParams | SabrParams = (
            fit_svi(k, vols, q.expiry)
            if model == "svi"
            else fit_sabr(q.forward, K, vols, q.expiry, beta)
        )
    except ValueError as exc:
        raise ValueError(f"chain: expiry {q.expiry}: {exc}") from None
    fitted = SliceFit(expiry=q.expiry, forward=q.forward, params=params)
    model_vol = np.sqrt(fitted.total_variance(k) / q.expiry)
    rmse = float(np.sqrt(np.mean((model_vol - vols) ** 2)))
    return SliceFit(q.expiry, q.forward, params, rmse, int(k.size), float(k.min()), float(k.max()))


__all__ = [
    "ArbitrageViolation",
    "Model",
    "OptionChain",
    "SabrParams",
    "SliceFit",
    "SurfaceDiagnostics",
    "SviParams",
    "ViolationKind",
    "VolSurface",
    "fit_surface",
]
