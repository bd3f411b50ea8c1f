"""(risk) Monte-Carlo VaR: 100 European options on 10 underlyings x 1M paths, full revaluation and
delta-gamma on the same scenarios, against a chunked numpy/scipy implementation of the same
model in the same run; and portfolios per second for 20-option portfolios at 10k paths.

The numpy peer draws numpy normals, correlates them with the Cholesky factor and prices with
scipy's ndtr, in chunks of 50k paths; it runs at NUMPY_PATHS paths (median of 3 rounds) and the
ratio is per option-path. The CUDA rows run only where a GPU is present.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.special import ndtr
from tradecore import cuda_available
from tradecore.risk import (
    Instrument,
    Market,
    Position,
    Underlying,
    book_arrays,
    cholesky_factor,
    monte_carlo_var,
    monte_carlo_var_batch,
)
from tradecore.risk.book import Book
from tradecore.risk.result import var_es

PATHS = 1_000_000
NUMPY_PATHS = 200_000
CHUNK = 50_000
N_UNDERLYINGS, N_OPTIONS = 10, 100
PORTFOLIOS, PORTFOLIO_OPTIONS, PORTFOLIO_PATHS = 1000, 20, 10_000
H = 1.0 / 252.0
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

RESULTS: dict[str, float] = {}


def _market(rng: np.random.Generator) -> Market:
    unds = tuple(
        Underlying(
            f"U{i}",
            float(rng.uniform(20, 300)),
            float(rng.uniform(0.15, 0.6)),
            float(rng.uniform(0, 0.03)),
        )
        for i in range(N_UNDERLYINGS)
    )
    a = rng.normal(size=(N_UNDERLYINGS, N_UNDERLYINGS + 5))
    c = a @ a.T
    d = np.sqrt(np.diag(c))
    return Market(0.03, unds, c / np.outer(d, d))


def _option(rng: np.random.Generator, market: Market, i: int) -> Instrument:
    u = market.underlyings[i % N_UNDERLYINGS]
    return Instrument(
        u.symbol,
        "option",
        "call" if rng.random() < 0.5 else "put",
        "european",
        float(round(u.spot * rng.uniform(0.7, 1.3), 2)),
        float(rng.uniform(0.05, 2.0)),
    )


@pytest.fixture(scope="module")
def book() -> Book:
    rng = np.random.default_rng(11)
    market = _market(rng)
    positions = [
        Position(
            _option(rng, market, i), float(rng.integers(1, 20) * (1 if rng.random() < 0.6 else -1))
        )
        for i in range(N_OPTIONS)
    ]
    return book_arrays(positions, market)


def numpy_losses(book: Book, paths: int, seed: int) -> np.ndarray:
    """The same model in numpy: numpy normals @ L.T, S_h lognormal, BSM by scipy's ndtr at
    T - h, loss = value now - value at the horizon; CHUNK paths at a time."""
    rng = np.random.default_rng(seed)
    L = cholesky_factor(book.correlation).factor
    u = book.underlying
    K, T, w = book.strike, book.expiry, book.option_type.astype(np.float64)
    q, v, r = book.dividend_yield[u], book.volatility[u], book.rate

    def value(S: np.ndarray, tau: np.ndarray) -> np.ndarray:
        sd = v * np.sqrt(tau)
        d1 = (np.log(S / K) + (r - q) * tau) / sd + 0.5 * sd
        d2 = d1 - sd
        price = w * (S * np.exp(-q * tau) * ndtr(w * d1) - K * np.exp(-r * tau) * ndtr(w * d2))
        return np.asarray(price @ book.units)

    now = value(book.spot[u][None, :], T)[0]
    out = np.empty(paths)
    drift = -0.5 * book.volatility**2 * H
    vol = book.volatility * math.sqrt(H)
    for first in range(0, paths, CHUNK):
        n = min(CHUNK, paths - first)
        z = rng.standard_normal((n, book.n_underlyings)) @ L.T
        S = book.spot * np.exp(drift + vol * z)
        out[first : first + n] = now - value(S[:, u], T - H)
    return out


def _ms(benchmark: pytest.FixtureRequest) -> float:
    return float(benchmark.stats.stats.median) * 1e3  # type: ignore[attr-defined]


@pytest.mark.peer
@pytest.mark.benchmark(group="risk-mc-100x1M")
def test_numpy_chunked(benchmark, book) -> None:  # type: ignore[no-untyped-def]
    losses = benchmark.pedantic(numpy_losses, args=(book, NUMPY_PATHS, 1), rounds=3, iterations=1)
    ns = _ms(benchmark) * 1e6 / (NUMPY_PATHS * N_OPTIONS)
    RESULTS["numpy_ns"] = ns
    benchmark.extra_info["paths"] = NUMPY_PATHS
    benchmark.extra_info["ns_per_option_path"] = ns
    benchmark.extra_info["ms_scaled_to_1M"] = ns * PATHS * N_OPTIONS / 1e6
    # Same model: the same VaR within the two estimates' standard errors.
    ref = var_es(losses, 0.99)
    ours = monte_carlo_var(book, paths=NUMPY_PATHS, seed=1)
    assert abs(ours.var - ref[0]) < 5 * math.hypot(ours.var_stderr, ref[2])


def _numpy_ns(book: Book) -> float:
    if "numpy_ns" not in RESULTS:  # keep the ratio meaningful when run alone
        t0 = time.perf_counter()
        numpy_losses(book, NUMPY_PATHS // 4, 1)
        RESULTS["numpy_ns"] = (time.perf_counter() - t0) * 1e9 / (NUMPY_PATHS // 4 * N_OPTIONS)
    return RESULTS["numpy_ns"]


@pytest.mark.benchmark(group="risk-mc-100x1M")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["full", "delta_gamma"])
def test_tradecore_monte_carlo(benchmark, book, method: str, device: str) -> None:  # type: ignore[no-untyped-def]
    if device == "cuda" and not cuda_available():
        pytest.skip("needs a CUDA device")
    res = benchmark.pedantic(
        lambda: monte_carlo_var(book, paths=PATHS, method=method, device=device),  # type: ignore[arg-type]
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    ms = _ms(benchmark)
    ns = ms * 1e6 / (PATHS * N_OPTIONS)
    benchmark.extra_info["ms"] = ms
    benchmark.extra_info["ns_per_option_path"] = ns
    benchmark.extra_info["speedup_vs_numpy"] = _numpy_ns(book) / ns
    benchmark.extra_info["var"] = res.var
    benchmark.extra_info["var_stderr"] = res.var_stderr
    benchmark.extra_info["delta_gamma_var"] = res.details["delta_gamma_var"]
    RESULTS[f"{method}:{device}:var"] = res.var
    if device == "cuda" and f"{method}:cpu:var" in RESULTS:
        benchmark.extra_info["cpu_gpu_var_rel_diff"] = abs(
            res.var / RESULTS[f"{method}:cpu:var"] - 1.0
        )
    print(f"\nMC {method} {device}: {ms:.1f} ms, {ns:.2f} ns/option-path", benchmark.extra_info)


@pytest.mark.benchmark(group="risk-mc-american-100x1M")
def test_tradecore_monte_carlo_american(benchmark, book) -> None:  # type: ignore[no-untyped-def]
    """The same book with every option American: grids priced per run (ALO), then cubic
    interpolation per path."""
    positions = [
        Position(
            Instrument(
                p.instrument.symbol,
                "option",
                p.instrument.option_type,
                "american",
                p.instrument.strike,
                p.instrument.expiry_years,
            ),
            p.quantity,
        )
        for p in book.positions
    ]
    market = Market(
        book.rate,
        tuple(
            Underlying(s, float(S), float(v), float(q))
            for s, S, v, q in zip(
                book.symbols, book.spot, book.volatility, book.dividend_yield, strict=True
            )
        ),
        book.correlation,
    )
    am = book_arrays(positions, market)
    res = benchmark.pedantic(lambda: monte_carlo_var(am, paths=PATHS), rounds=3, iterations=1)
    ms = _ms(benchmark)
    benchmark.extra_info["ms"] = ms
    benchmark.extra_info["ns_per_option_path"] = ms * 1e6 / (PATHS * N_OPTIONS)
    benchmark.extra_info["interpolation_error"] = res.details["interpolation_error"]
    benchmark.extra_info["var"] = res.var
    assert res.details["interpolation_error"] < 1e-3 * res.var_stderr


def _portfolios(shared: bool) -> list[Book]:
    """PORTFOLIOS books of PORTFOLIO_OPTIONS options over one market: drawn from a listed
    universe of 400 options (shared) or every option distinct."""
    rng = np.random.default_rng(5)
    market = _market(rng)
    universe = [_option(rng, market, i) for i in range(400)]
    books = []
    for _ in range(PORTFOLIOS):
        if shared:
            picks = [universe[int(i)] for i in rng.choice(400, PORTFOLIO_OPTIONS, replace=False)]
        else:
            picks = [
                _option(rng, market, int(rng.integers(N_UNDERLYINGS)))
                for _ in range(PORTFOLIO_OPTIONS)
            ]
        positions = [Position(ins, float(rng.integers(-10, 11) or 1)) for ins in picks]
        books.append(book_arrays(positions, market))
    return books


@pytest.mark.benchmark(group="risk-mc-portfolios")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("universe", ["shared-400", "distinct"])
def test_tradecore_portfolios_per_second(benchmark, universe: str, device: str) -> None:  # type: ignore[no-untyped-def]
    if device == "cuda" and not cuda_available():
        pytest.skip("needs a CUDA device")
    books = _portfolios(universe == "shared-400")
    res = benchmark.pedantic(
        lambda: monte_carlo_var_batch(books, paths=PORTFOLIO_PATHS, device=device),  # type: ignore[arg-type]
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    ms = _ms(benchmark)
    benchmark.extra_info["ms"] = ms
    benchmark.extra_info["portfolios_per_s"] = PORTFOLIOS / (ms / 1e3)
    assert len(res) == PORTFOLIOS and all(math.isfinite(r.var) for r in res)
    print(f"\nbatch {universe} {device}: {ms:.1f} ms, {PORTFOLIOS / (ms / 1e3):.0f} portfolios/s")
