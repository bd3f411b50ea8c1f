"""Monte-Carlo VaR and ES: scenario generation fused with full revaluation (C++/OpenMP, or CUDA).

Horizon model (docs/api.md, "Risk: Monte-Carlo VaR"): at ``h = horizon_days / 252`` years each
underlying is ``S exp(-sigma^2 h / 2 + sigma sqrt(h) Z)``, ``Z = L z`` correlated standard
normals (``L`` the Cholesky factor of the book's correlation, repaired when it is not positive
definite; ``z`` the Philox normals of :func:`tradecore.risk.normals` for factors ``0..n-1``, so
the scenarios are ``normals(seed, paths, n) @ L.T``); volatilities and the rate are unchanged
unless volatility shocks are asked for; options are revalued with time to expiry ``T - h``
(intrinsic value when that is not above zero). Loss = value now - value at the horizon; VaR at
confidence ``c`` is the c-quantile of the loss (the ``ceil(c N)``-th smallest of ``N`` paths),
ES the mean loss at or beyond it (:func:`tradecore.risk.result.var_es`, with the same standard
errors).

European options are revalued analytically in the kernel. American options are priced once per
option on a grid of log-spots (with volatility shocks: log-spots x log-vols) at ``T - h`` (ALO
with the tree fallback, :func:`tradecore.pricing.american`) and interpolated (cubic in ln S and
ln sigma, linear in S beyond the spot grid); the interpolation error, measured against exact
repricing at every grid midpoint, is reported in currency (``details["interpolation_error"]``,
the sum over positions of ``|units|`` times the instrument's largest midpoint error).

Every run also computes the delta-gamma(-vega-theta) loss on the same scenarios
(``details["delta_gamma_var"]``): ``-(theta h + sum_u delta_u dS_u + gamma_u dS_u^2 / 2
[+ vega_u dsigma_u])`` from the book's Greeks aggregated per underlying, so the gap to full
revaluation shows how non-linear the book is.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore import _core, cuda_available
from tradecore.pricing import DOMAIN, american, european
from tradecore.risk.book import (
    KIND_AMERICAN,
    KIND_EQUITY,
    KIND_EUROPEAN,
    Book,
    cholesky_factor,
)
from tradecore.risk.result import VaRResult

FloatArray = npt.NDArray[np.float64]

#: Trading days per year: the horizon is ``horizon_days / TRADING_DAYS`` years.
TRADING_DAYS = 252.0
#: The longest horizon accepted (ten years of trading days).
MAX_HORIZON_DAYS = 252.0 * 10
#: The most paths of one run (2^26).
MAX_PATHS = int(_core.MC_MAX_PATHS)
#: The most portfolio x path losses of one batch (2^26).
MAX_LOSSES = int(_core.MC_MAX_LOSSES)
#: Student-t degrees of freedom: 0 (normal shocks) or 3..MAX_DOF.
MAX_DOF = int(_core.MC_MAX_DOF)
#: Nodes of an American option's log-spot grid.
GRID_NODES = 129
#: The grid covers ln S_h within this many standard deviations sigma sqrt(h) (normal shocks;
#: Student-t shocks: their quantile at 1 - 1e-6, at most GRID_MAX_SD); beyond it the value is
#: extrapolated linearly in S (deep in or out of the money, where the price is nearly linear).
GRID_SD = 8.0
GRID_MAX_SD = 40.0
#: With volatility shocks: nodes of the log-volatility axis, covering +-GRID_VOL_SD standard
#: deviations nu sqrt(h) of ln sigma_h (inside the pricing domain; flat beyond).
GRID_VOL_NODES = 33
GRID_VOL_SD = 8.0

_U64 = 1 << 64
# Grid ends are kept this far (in log) inside the pricing domain, so exp() of an end stays in it.
_EDGE = 1e-9
# McKind codes of the kernel (tradecore/risk/montecarlo.hpp).
_MC_EQUITY, _MC_EUROPEAN, _MC_GRID, _MC_INTRINSIC = 0, 1, 2, 3

Method = Literal["full", "delta_gamma"]
Device = Literal["cpu", "cuda", "auto"]


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: expected an integer, got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__}") from None


def _number(name: str, value: object) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x!r}")
    return x


def _per_underlying(name: str, value: npt.ArrayLike, n: int, lo: float, hi: float) -> FloatArray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or {n} numbers") from None
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(
            f"{name}: expected a number or {n} numbers (one per underlying), got shape {a.shape}"
        )
    for i, v in enumerate(a):
        if not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name}[{i}]: must be finite and in [{lo:g}, {hi:g}], got {v!r}")
    return a


@dataclass(frozen=True)
class _Settings:
    confidence: float
    horizon_days: float
    paths: int
    seed: int
    method: Method
    dof: int
    vol_of_vol: FloatArray | None
    spot_vol_correlation: FloatArray | None
    gpu: bool
    threads: int
    first_path: int = 0

    @property
    def horizon(self) -> float:
        return self.horizon_days / TRADING_DAYS


def _settings(
    n: int,
    confidence: float,
    horizon_days: float,
    paths: int,
    seed: int,
    method: str,
    student_t_dof: int,
    vol_of_vol: npt.ArrayLike | None,
    spot_vol_correlation: npt.ArrayLike | None,
    device: str,
    threads: int,
    first_path: int = 0,
) -> _Settings:
    c = _number("confidence", confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence: must be in (0, 1), got {c!r}")
    days = _number("horizon_days", horizon_days)
    if not 0.0 < days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days: must be > 0 and <= {MAX_HORIZON_DAYS:g}, got {days!r}")
    p = _integer("paths", paths)
    if not 1 <= p <= MAX_PATHS:
        raise ValueError(f"paths: must be in [1, {MAX_PATHS}], got {p}")
    s = _integer("seed", seed)
    if not 0 <= s < _U64:
        raise ValueError(f"seed: must be in [0, 2^64), got {s}")
    first = _integer("first_path", first_path)
    if first < 0 or first + p > _U64:
        raise ValueError(f"first_path: must be >= 0 with first_path + paths <= 2^64, got {first}")
    if method not in ("full", "delta_gamma"):
        raise ValueError(f"method: must be 'full' or 'delta_gamma', got {method!r}")
    dof = _integer("student_t_dof", student_t_dof)
    if dof != 0 and not 3 <= dof <= MAX_DOF:
        raise ValueError(f"student_t_dof: must be 0 (normal) or in [3, {MAX_DOF}], got {dof}")
    vov = None if vol_of_vol is None else _per_underlying("vol_of_vol", vol_of_vol, n, 0.0, 10.0)
    svc = None
    if spot_vol_correlation is not None:
        if vov is None:
            raise ValueError("spot_vol_correlation: needs vol_of_vol")
        svc = _per_underlying("spot_vol_correlation", spot_vol_correlation, n, -1.0, 1.0)
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device: must be 'cpu', 'cuda' or 'auto', got {device!r}")
    t = _integer("threads", threads)
    if t < 0:
        raise ValueError(f"threads: must be >= 0, got {t}")
    gpu = device == "cuda" or (device == "auto" and cuda_available())
    return _Settings(c, days, p, s, method, dof, vov, svc, gpu, t, first)  # type: ignore[arg-type]


def _same_market(books: Sequence[Book]) -> None:
    b0 = books[0]
    for i, b in enumerate(books[1:], start=1):
        if not isinstance(b, Book):
            raise ValueError(f"books[{i}]: expected a Book, got {type(b).__name__}")
        same = (
            b.symbols == b0.symbols
            and b.rate == b0.rate
            and np.array_equal(b.spot, b0.spot)
            and np.array_equal(b.volatility, b0.volatility)
            and np.array_equal(b.dividend_yield, b0.dividend_yield)
            and np.array_equal(b.correlation, b0.correlation)
        )
        if not same:
            raise ValueError(f"books[{i}]: market differs from books[0] (one market per batch)")


@dataclass
class _Instruments:
    underlying: npt.NDArray[np.int32]
    kind: npt.NDArray[np.int8]
    option_type: npt.NDArray[np.int8]
    strike: FloatArray
    expiry: FloatArray
    value_now: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    grid_offset: npt.NDArray[np.int64]
    grid_size: npt.NDArray[np.int32]
    grid_x0: FloatArray
    grid_dx: FloatArray
    grid_vsize: npt.NDArray[np.int32]
    grid_y0: FloatArray
    grid_dy: FloatArray
    grid_values: FloatArray
    #: Largest interpolation error per unit (American grids; 0 elsewhere).
    grid_error: FloatArray


def _grid_sd(dof: int) -> float:
    if dof == 0:
        return GRID_SD
    from scipy import stats  # only here: keeps scipy.stats out of `import tradecore.risk`

    q = float(stats.t.ppf(1.0 - 1e-6, dof)) * math.sqrt((dof - 2) / dof)
    return min(max(q, GRID_SD), GRID_MAX_SD)


def _inside(lo: float, hi: float, lower: float, upper: float) -> tuple[float, float]:
    """The log-range [lo, hi] cut to [ln lower, ln upper] (the pricing domain, _EDGE inside),
    at least 1e-3 wide (a range wholly outside the domain becomes its nearest end)."""
    a, b = math.log(lower) + _EDGE, math.log(upper) - _EDGE
    lo, hi = min(max(lo, a), b), min(max(hi, a), b)
    if hi - lo < 1e-3:
        lo, hi = (lo, lo + 1e-3) if lo + 1e-3 <= b else (hi - 1e-3, hi)
    return lo, hi


def _cubic_midpoints(g: FloatArray) -> FloatArray:
    """The kernel's cubic interpolation at the midpoint of every grid interval."""
    n = g.shape[-1]
    m = np.arange(n - 1)
    j = np.clip(m, 1, n - 3)
    f = m + 0.5 - j
    fm, fm2, fp = f - 1.0, f - 2.0, f + 1.0
    out: FloatArray = (
        -f * fm * fm2 / 6.0 * g[..., j - 1]
        + 0.5 * fp * fm * fm2 * g[..., j]
        - 0.5 * fp * f * fm2 * g[..., j + 1]
        + fp * f * fm / 6.0 * g[..., j + 2]
    )
    return out


def _instruments(book: Book, keys: FloatArray, st: _Settings) -> _Instruments:
    """Prices now, Greeks and (American) grids of the distinct instruments, the rows of
    ``keys`` (underlying, kind, option type, strike, expiry)."""
    m = keys.shape[0]
    u = keys[:, 0].astype(np.int32)
    kind = keys[:, 1].astype(np.int8)
    otype = keys[:, 2].astype(np.int8)
    strike = np.ascontiguousarray(keys[:, 3])
    expiry = np.ascontiguousarray(keys[:, 4])
    S = book.spot[u]
    sig = book.volatility[u]
    q = book.dividend_yield[u]
    r = book.rate
    h = st.horizon
    value = S.copy()
    delta = np.ones(m)
    gamma = np.zeros(m)
    vega = np.zeros(m)
    theta = np.zeros(m)
    code = np.full(m, _MC_EQUITY, dtype=np.int8)
    offset = np.zeros(m, dtype=np.int64)
    size = np.zeros(m, dtype=np.int32)
    x0 = np.zeros(m)
    dx = np.zeros(m)
    err = np.zeros(m)
    grids: list[FloatArray] = []
    live = expiry - h >= DOMAIN.expiry_min
    for k in (KIND_EUROPEAN, KIND_AMERICAN):
        idx = np.flatnonzero(kind == k)
        if idx.size == 0:
            continue
        args = (S[idx], strike[idx], expiry[idx], r, q[idx], sig[idx], otype[idx])
        g = european(*args, "first") if k == KIND_EUROPEAN else american(*args, greeks=True)
        value[idx] = g["price"]
        delta[idx] = g["delta"]
        gamma[idx] = g["gamma"]
        vega[idx] = g["vega"]
        theta[idx] = g["theta"]
        code[idx] = np.where(
            live[idx], _MC_EUROPEAN if k == KIND_EUROPEAN else _MC_GRID, _MC_INTRINSIC
        )
    vsize = np.ones(m, dtype=np.int32)
    y0 = np.zeros(m)
    dy = np.zeros(m)
    am = np.flatnonzero(code == _MC_GRID)
    at = 0
    for i in am:
        # Log-spot nodes (and midpoints) around the horizon's median, +-sd sigma sqrt(h).
        G = GRID_NODES
        half = _grid_sd(st.dof) * sig[i] * math.sqrt(h)
        centre = math.log(S[i]) - 0.5 * sig[i] ** 2 * h
        # Inside the pricing domain (beyond it the kernel extrapolates linearly in S).
        lo, hi = _inside(centre - half, centre + half, DOMAIN.spot_min, DOMAIN.spot_max)
        step = (hi - lo) / (G - 1)
        xs = lo + 0.5 * step * np.arange(2 * G - 1)
        # Log-vol nodes with volatility shocks: +-GRID_VOL_SD nu sqrt(h) around the median,
        # inside the pricing domain.
        nu = 0.0 if st.vol_of_vol is None else float(st.vol_of_vol[u[i]])
        vhalf = GRID_VOL_SD * nu * math.sqrt(h)
        c = math.log(sig[i]) - 0.5 * nu * nu * h
        if vhalf > 1e-6:
            ylo, yhi = _inside(c - vhalf, c + vhalf, DOMAIN.vol_min, DOMAIN.vol_max)
            Gy = GRID_VOL_NODES
            ystep = (yhi - ylo) / (Gy - 1)
            ys = ylo + 0.5 * ystep * np.arange(2 * Gy - 1)
        else:  # (almost) no vol shock: one row at the median volatility
            Gy, ylo, ystep = 1, 0.0, 0.0
            ys = np.array([c if st.vol_of_vol is not None else math.log(sig[i])])
        # Nodes and midpoints priced in one call: (2 Gy - 1) x (2 G - 1) points (Gy = 1: one row).
        fine = american(
            np.exp(xs)[None, :],
            strike[i],
            expiry[i] - h,
            r,
            q[i],
            np.exp(ys)[:, None],
            otype[i],
            greeks=False,
        )["price"]
        nodes = np.ascontiguousarray(fine[::2, ::2])
        e = np.max(np.abs(_cubic_midpoints(nodes) - fine[::2, 1::2]))
        if Gy > 1:
            e = max(
                e,
                float(np.max(np.abs(_cubic_midpoints(nodes.T).T - fine[1::2, ::2]))),
                float(
                    np.max(np.abs(_cubic_midpoints(_cubic_midpoints(nodes).T).T - fine[1::2, 1::2]))
                ),
            )
        err[i] = e
        offset[i] = at
        size[i] = G
        x0[i] = lo
        dx[i] = step
        vsize[i] = Gy
        y0[i] = ylo
        dy[i] = ystep
        grids.append(nodes.ravel())
        at += G * Gy
    return _Instruments(
        u,
        code,
        otype,
        strike,
        expiry,
        value,
        delta,
        gamma,
        vega,
        theta,
        offset,
        size,
        x0,
        dx,
        vsize,
        y0,
        dy,
        np.concatenate(grids) if grids else np.zeros(1),
        err,
    )


@dataclass(frozen=True)
class _Run:
    full: FloatArray | None  # portfolios x paths losses (when kept)
    dg: FloatArray | None
    full_stats: FloatArray | None  # portfolios x (var, es, var_se, es_se)
    dg_stats: FloatArray
    value: FloatArray  # per portfolio
    interpolation_error: FloatArray
    repaired: bool
    repair_distance: float


def _run(books: Sequence[Book], st: _Settings, full: bool, keep: bool) -> _Run:
    b0 = books[0]
    n = b0.n_underlyings
    chol = cholesky_factor(b0.correlation)
    vols = st.vol_of_vol is not None
    # Distinct instruments over every book (rows of underlying, kind, type, strike, expiry;
    # 0 for an equity's option fields), in sorted order; positions refer to them.
    eq = np.concatenate([b.kind == KIND_EQUITY for b in books])
    rows = np.column_stack(
        [
            np.concatenate([b.underlying for b in books]).astype(np.float64),
            np.concatenate([b.kind for b in books]).astype(np.float64),
            np.concatenate([b.option_type for b in books]).astype(np.float64),
            np.where(eq, 0.0, np.concatenate([b.strike for b in books])),
            np.where(eq, 0.0, np.concatenate([b.expiry for b in books])),
        ]
    )
    keys, inverse = np.unique(rows, axis=0, return_inverse=True)
    instrument = inverse.reshape(-1).astype(np.int32)
    ins = _instruments(b0, keys, st)
    P = len(books)
    portfolio = np.concatenate(
        [np.full(b.n_positions, i, dtype=np.int32) for i, b in enumerate(books)]
    )
    units = np.concatenate([b.units for b in books])
    # Per-portfolio sensitivities aggregated per underlying, the book's value and grid error.
    cell = portfolio.astype(np.int64) * n + ins.underlying[instrument]

    def total(index: npt.NDArray[np.integer], w: FloatArray, size: int) -> FloatArray:
        return np.bincount(index, w, minlength=size).astype(np.float64)

    dg_delta = total(cell, units * ins.delta[instrument], P * n)
    dg_gamma = total(cell, units * ins.gamma[instrument], P * n)
    dg_vega = total(cell, units * ins.vega[instrument], P * n)
    dg_theta = total(portfolio, units * ins.theta[instrument], P)
    value = total(portfolio, units * ins.value_now[instrument], P)
    interp = total(portfolio, np.abs(units) * ins.grid_error[instrument], P)
    lf, ld, sf, sd = _core.monte_carlo(
        b0.spot,
        b0.volatility,
        b0.dividend_yield,
        float(b0.rate),
        chol.factor,
        st.vol_of_vol,
        st.spot_vol_correlation,
        ins.underlying,
        ins.kind,
        ins.option_type,
        ins.strike,
        ins.expiry,
        ins.value_now,
        ins.grid_offset,
        ins.grid_size,
        ins.grid_x0,
        ins.grid_dx,
        ins.grid_vsize,
        ins.grid_y0,
        ins.grid_dy,
        ins.grid_values,
        instrument,
        portfolio,
        units,
        P,
        dg_delta,
        dg_gamma,
        dg_vega if vols else None,
        dg_theta,
        st.horizon,
        st.seed,
        st.first_path,
        st.paths,
        st.dof,
        full,
        True,
        st.confidence,
        keep,
        st.threads,
        st.gpu,
    )
    return _Run(lf, ld, sf, sd, value, interp, chol.repaired, chol.repair_distance)


def _results(run: _Run, st: _Settings) -> list[VaRResult]:
    out = []
    for p in range(run.dg_stats.shape[0]):
        dg = run.dg_stats[p]
        if st.method == "full":
            assert run.full_stats is not None
            main = run.full_stats[p]
            name = "monte_carlo"
        else:
            main = dg
            name = "delta_gamma"
        details: dict[str, float | int | str | bool] = {
            "delta_gamma_var": float(dg[0]),
            "delta_gamma_es": float(dg[1]),
            "delta_gamma_var_stderr": float(dg[2]),
            "delta_gamma_es_stderr": float(dg[3]),
            "correlation_repaired": run.repaired,
            "repair_distance": run.repair_distance,
            "interpolation_error": float(run.interpolation_error[p]),
            "student_t_dof": st.dof,
            "vol_shocks": st.vol_of_vol is not None,
            "seed": st.seed,
        }
        out.append(
            VaRResult(
                method=name,
                confidence=st.confidence,
                horizon_days=st.horizon_days,
                var=float(main[0]),
                expected_shortfall=float(main[1]),
                var_stderr=float(main[2]),
                es_stderr=float(main[3]),
                value=float(run.value[p]),
                scenarios=st.paths,
                device="cuda" if st.gpu else "cpu",
                details=details,
            )
        )
    return out


def _check_book(name: str, book: object) -> Book:
    if not isinstance(book, Book):
        raise ValueError(
            f"{name}: expected a Book (tradecore.risk.book_arrays), got {type(book).__name__}"
        )
    return book


def monte_carlo_var(
    book: Book,
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    paths: int = 100_000,
    seed: int = 0,
    method: Method = "full",
    student_t_dof: int = 0,
    vol_of_vol: npt.ArrayLike | None = None,
    spot_vol_correlation: npt.ArrayLike | None = None,
    device: Device = "cpu",
    threads: int = 0,
) -> VaRResult:
    """Monte-Carlo VaR and ES of ``book`` (see the module docstring for the model).

    ``method="full"`` revalues every position on every path (method ``"monte_carlo"`` in the
    result); ``"delta_gamma"`` reports the delta-gamma(-vega-theta) approximation on the same
    scenarios and skips the full revaluation. ``student_t_dof`` (0 or 3..MAX_DOF) draws
    multivariate Student-t shocks with unit variance. ``vol_of_vol`` (per underlying, or one
    number; per year) shocks the volatilities, correlated with the spot by
    ``spot_vol_correlation``. The same seed gives the same result on any thread count;
    ``device="cuda"`` runs on the GPU (``"auto"``: the GPU when one is present). Every invalid
    argument raises ValueError naming it.
    """
    b = _check_book("book", book)
    st = _settings(
        b.n_underlyings,
        confidence,
        horizon_days,
        paths,
        seed,
        method,
        student_t_dof,
        vol_of_vol,
        spot_vol_correlation,
        device,
        threads,
    )
    return _results(_run([b], st, st.method == "full", False), st)[0]


def monte_carlo_var_batch(
    books: Sequence[Book],
    *,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    paths: int = 100_000,
    seed: int = 0,
    method: Method = "full",
    student_t_dof: int = 0,
    vol_of_vol: npt.ArrayLike | None = None,
    spot_vol_correlation: npt.ArrayLike | None = None,
    device: Device = "cpu",
    threads: int = 0,
) -> list[VaRResult]:
    """:func:`monte_carlo_var` of many books over one market on the same scenarios (each
    distinct instrument is priced once per path, whichever books hold it). The books must share
    the market (symbols, spots, volatilities, dividends, rate, correlation); ``len(books) *
    paths <= MAX_LOSSES``. Book ``i``'s result is what :func:`monte_carlo_var` gives it alone."""
    if isinstance(books, Book) or not isinstance(books, Sequence) or len(books) == 0:
        raise ValueError("books: expected a non-empty list of Book")
    b0 = _check_book("books[0]", books[0])
    _same_market(books)
    st = _settings(
        b0.n_underlyings,
        confidence,
        horizon_days,
        paths,
        seed,
        method,
        student_t_dof,
        vol_of_vol,
        spot_vol_correlation,
        device,
        threads,
    )
    if len(books) * st.paths > MAX_LOSSES:
        raise ValueError(
            f"books: len(books) * paths must be <= {MAX_LOSSES}, got {len(books)} * {st.paths}"
        )
    return _results(_run(books, st, st.method == "full", False), st)


def simulate_losses(
    book: Book,
    *,
    horizon_days: float = 1.0,
    paths: int = 100_000,
    seed: int = 0,
    first_path: int = 0,
    student_t_dof: int = 0,
    vol_of_vol: npt.ArrayLike | None = None,
    spot_vol_correlation: npt.ArrayLike | None = None,
    device: Device = "cpu",
    threads: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """The per-path losses ``(full revaluation, delta-gamma)`` of paths ``first_path ..
    first_path + paths - 1`` of the run :func:`monte_carlo_var` makes with the same arguments
    (for tests and diagnostics)."""
    b = _check_book("book", book)
    st = _settings(
        b.n_underlyings,
        0.5,
        horizon_days,
        paths,
        seed,
        "full",
        student_t_dof,
        vol_of_vol,
        spot_vol_correlation,
        device,
        threads,
        first_path,
    )
    run = _run([b], st, True, True)
    assert run.full is not None and run.dg is not None
    return run.full[0], run.dg[0]


__all__ = [
    "GRID_NODES",
    "MAX_DOF",
    "MAX_HORIZON_DAYS",
    "MAX_LOSSES",
    "MAX_PATHS",
    "TRADING_DAYS",
    "monte_carlo_var",
    "monte_carlo_var_batch",
    "simulate_losses",
]
