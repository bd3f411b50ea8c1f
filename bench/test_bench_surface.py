"""Volatility-surface benchmarks: fit time per expiry and vol(K, T) query throughput.

Peers measured in the same run: a naive bounded least-squares SVI fit (scipy, numeric Jacobian,
generic start), a pure-numpy evaluation of the same surface query, QuantLib's sabrVolatility.
Run: python -m pytest bench/test_bench_surface.py --benchmark-only
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.optimize import least_squares
from tradecore._smile import fit_sabr, fit_svi
from tradecore.pricing import european
from tradecore.surface import (
    OptionChain,
    SabrParams,
    SliceFit,
    SviParams,
    VolSurface,
    _implied_vols,
    fit_surface,
)

S, R, Q = 100.0, 0.03, 0.01
TRUE = SviParams(a=0.030, b=0.15, rho=-0.50, m=0.05, sigma=0.30)
K_LOG = np.linspace(-0.7, 0.5, 25)
EXPIRIES = np.array([0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
N_QUERIES = 1_000_000


def _slice_params(T: float) -> SviParams:
    return SviParams(a=0.02 * T + 0.002, b=0.1 + 0.02 * T, rho=-0.4, m=0.02, sigma=0.2)


@pytest.fixture(scope="module")
def surface() -> VolSurface:
    slices = [SliceFit(float(T), S * math.exp((R - Q) * T), _slice_params(T)) for T in EXPIRIES]
    return VolSurface.from_slices("svi", slices, spot=S)


@pytest.fixture(scope="module")
def queries() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.uniform(60.0, 140.0, N_QUERIES), rng.uniform(0.01, 4.0, N_QUERIES)


def test_svi_fit_per_expiry(benchmark: Any) -> None:
    vol = np.sqrt(TRUE.total_variance(K_LOG))
    got = benchmark(fit_svi, K_LOG, vol, 1.0)
    np.testing.assert_allclose(got.as_tuple(), TRUE.as_tuple(), atol=1e-8)


def test_svi_fit_naive_peer(benchmark: Any) -> None:
    """Peer: bounded least squares on the raw parameters from a generic start."""
    vol = np.sqrt(TRUE.total_variance(K_LOG))

    def fit() -> np.ndarray:
        def residuals(x: np.ndarray) -> np.ndarray:
            a, b, rho, m, s = x
            w = a + b * (rho * (K_LOG - m) + np.sqrt((K_LOG - m) ** 2 + s * s))
            return np.sqrt(np.maximum(w, 1e-12)) - vol

        sol = least_squares(
            residuals,
            [0.04, 0.1, 0.0, 0.0, 0.1],
            bounds=([-1, 0, -0.999, -2, 1e-4], [1, 5, 0.999, 2, 5]),
        )
        return np.asarray(sol.x)

    x = benchmark(fit)
    benchmark.extra_info["max_param_error"] = float(np.max(np.abs(x - TRUE.as_tuple())))


def test_sabr_fit_per_expiry(benchmark: Any) -> None:
    p = SabrParams(0.25, 0.7, -0.35, 0.6)
    F = 101.0
    K = F * np.exp(np.linspace(-0.5, 0.4, 19))
    vol = p.vol(F, K, 1.0)
    got = benchmark(fit_sabr, F, K, vol, 1.0, 0.7)
    np.testing.assert_allclose(got.as_tuple(), p.as_tuple(), atol=1e-6)


def test_fit_surface_8_expiries(benchmark: Any) -> None:
    """Whole chain: 8 expiries x 25 strikes x call+put (IVs, parity forwards, fits, checks)."""
    K_all, T_all, types, prices = [], [], [], []
    for T in EXPIRIES:
        F = S * math.exp((R - Q) * T)
        K = F * np.exp(K_LOG * math.sqrt(T))
        vol = np.sqrt(_slice_params(T).total_variance(np.log(K / F)) / T)
        for typ in ("call", "put"):
            K_all.append(K)
            T_all.append(np.full(K.size, T))
            types += [typ] * K.size
            prices.append(european(S, K, T, R, Q, vol, typ, greeks="none")["price"])
    chain = OptionChain.from_quotes(
        np.concatenate(K_all),
        np.concatenate(T_all),
        np.array(types),
        mid=np.concatenate(prices),
        spot=S,
        rate=R,
        dividend=Q,
    )
    s = benchmark(fit_surface, chain)
    assert s.diagnostics.arbitrage_free
    benchmark.extra_info["quotes"] = int(chain.strike.size)


def test_implied_vols_10k(benchmark: Any) -> None:
    rng = np.random.default_rng(3)
    n = 10_000
    F, T = np.full(n, 100.0), rng.uniform(0.05, 2.0, n)
    vol = rng.uniform(0.1, 0.8, n)
    K = F * np.exp(rng.uniform(-1.0, 1.0, n) * vol * np.sqrt(T))
    codes = np.where(K >= F, 1, -1).astype(np.int8)
    D = np.exp(-R * T)
    price = european(F, K, T, R, R, vol, codes, greeks="none")["price"]
    got = benchmark(_implied_vols, price, F, K, T, D, codes)
    np.testing.assert_allclose(got, vol, rtol=1e-9)


@pytest.mark.parametrize("threads", [1, 0])
def test_vol_query_1m(benchmark: Any, surface: VolSurface, queries: Any, threads: int) -> None:
    K, T = queries
    benchmark(surface.vol, K, T, threads=threads)


def _numpy_surface_vol(surface: VolSurface, K: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Peer: the same query (interior and both extrapolations) in vectorised numpy."""
    t_s = surface.expiries
    k = np.log(K / surface.forward(T))
    w = np.stack([s.total_variance(k) for s in surface.slices])  # every slice at every k
    hi = np.clip(np.searchsorted(t_s, T), 1, t_s.size - 1)
    lo = hi - 1
    cols = np.arange(T.size)
    w_lo, w_hi = w[lo, cols], w[hi, cols]
    theta = (T - t_s[lo]) / (t_s[hi] - t_s[lo])
    slope = np.maximum((w_hi - w_lo) / (t_s[hi] - t_s[lo]), 0.0)
    total = np.where(
        t_s[0] >= T,
        w[0] * T / t_s[0],
        np.where(t_s[-1] <= T, w[-1] + (T - t_s[-1]) * slope, w_lo + theta * (w_hi - w_lo)),
    )
    return np.sqrt(np.where(t_s[0] >= T, w[0] / t_s[0], total / np.maximum(T, 1e-300)))


def test_vol_query_1m_numpy_peer(benchmark: Any, surface: VolSurface, queries: Any) -> None:
    K, T = queries
    got = benchmark(_numpy_surface_vol, surface, K, T)
    np.testing.assert_allclose(got, surface.vol(K, T), rtol=1e-12)


def test_sabr_vol_1m(benchmark: Any) -> None:
    p = SabrParams(0.3, 0.6, -0.35, 0.7)
    K = np.linspace(50.0, 200.0, N_QUERIES)
    benchmark(p.vol, 105.0, K, 1.5)


def test_sabr_vol_quantlib_peer_10k(benchmark: Any) -> None:
    ql = pytest.importorskip("QuantLib")
    K = np.linspace(50.0, 200.0, 10_000).tolist()

    def run() -> list[float]:
        return [ql.sabrVolatility(k, 105.0, 1.5, 0.3, 0.6, 0.7, -0.35) for k in K]

    benchmark(run)
