"""(a) Batch European price + first-order Greeks over 1,000,000 options.

Peers in the same run: a vectorised numpy/scipy implementation and a QuantLib-Python loop
(timed on a subsample and scaled per option). Ratios are in each result's extra_info.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.special import ndtr
from tradecore import pricing

N = 1_000_000
QL_SAMPLE = 20_000


@pytest.fixture(scope="module")
def book() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {
        "S": rng.uniform(50, 150, N),
        "K": rng.uniform(50, 150, N),
        "T": rng.uniform(0.02, 3.0, N),
        "r": rng.uniform(-0.01, 0.08, N),
        "q": rng.uniform(0.0, 0.05, N),
        "sigma": rng.uniform(0.05, 0.8, N),
        "w": np.where(rng.random(N) < 0.5, 1, -1).astype(np.int8),
    }


def numpy_bsm(S, K, T, r, q, v, w):  # type: ignore[no-untyped-def]
    sq = np.sqrt(T)
    vs = v * sq
    d1 = (np.log(S / K) + (r - q + 0.5 * v * v) * T) / vs
    d2 = d1 - vs
    dq, dr = np.exp(-q * T), np.exp(-r * T)
    N1, N2 = ndtr(w * d1), ndtr(w * d2)
    n1 = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    return {
        "price": w * (S * dq * N1 - K * dr * N2),
        "delta": w * dq * N1,
        "gamma": dq * n1 / (S * vs),
        "vega": S * dq * n1 * sq,
        "theta": -S * dq * n1 * v / (2 * sq) - w * r * K * dr * N2 + w * q * S * dq * N1,
        "rho": w * K * T * dr * N2,
        "phi": -w * S * T * dq * N1,
    }


RESULTS: dict[str, float] = {}


def _per_option(benchmark: pytest.FixtureRequest, n: int) -> float:
    return float(benchmark.stats.stats.median) / n * 1e9  # type: ignore[attr-defined]


@pytest.mark.benchmark(group="european-1M")
def test_numpy_vectorised(benchmark, book) -> None:  # type: ignore[no-untyped-def]
    w = book["w"].astype(np.float64)
    out = benchmark(
        numpy_bsm, book["S"], book["K"], book["T"], book["r"], book["q"], book["sigma"], w
    )
    RESULTS["numpy"] = _per_option(benchmark, N)
    benchmark.extra_info["ns_per_option"] = RESULTS["numpy"]
    ours = pricing.european(
        book["S"], book["K"], book["T"], book["r"], book["q"], book["sigma"], book["w"]
    )
    np.testing.assert_allclose(ours["price"], out["price"], rtol=1e-8, atol=1e-10)


@pytest.mark.benchmark(group="european-1M")
def test_quantlib_loop(benchmark) -> None:  # type: ignore[no-untyped-def]
    ql = pytest.importorskip("QuantLib")
    rng = np.random.default_rng(1)
    rows = [
        (
            rng.uniform(50, 150),
            rng.uniform(50, 150),
            rng.uniform(0.02, 3),
            0.03,
            0.01,
            rng.uniform(0.05, 0.8),
            ql.Option.Call if rng.random() < 0.5 else ql.Option.Put,
        )
        for _ in range(QL_SAMPLE)
    ]

    def loop() -> float:
        acc = 0.0
        for S, K, T, r, q, v, kind in rows:
            c = ql.BlackCalculator(
                ql.PlainVanillaPayoff(kind, K),
                S * math.exp((r - q) * T),
                v * math.sqrt(T),
                math.exp(-r * T),
            )
            acc += (
                c.value()
                + c.delta(S)
                + c.gamma(S)
                + c.vega(T)
                + c.theta(S, T)
                + c.rho(T)
                + c.dividendRho(T)
            )
        return acc

    benchmark.pedantic(loop, rounds=3, iterations=1)
    RESULTS["quantlib"] = _per_option(benchmark, QL_SAMPLE)
    benchmark.extra_info["ns_per_option"] = RESULTS["quantlib"]
    benchmark.extra_info["sample"] = QL_SAMPLE


@pytest.mark.benchmark(group="european-1M")
@pytest.mark.parametrize("buffers", ["fresh", "reused"])
def test_tradecore(benchmark, book, buffers: str) -> None:  # type: ignore[no-untyped-def]
    out = {k: np.empty(N) for k in pricing.EUROPEAN_OUTPUTS} if buffers == "reused" else None
    args = (book["S"], book["K"], book["T"], book["r"], book["q"], book["sigma"], book["w"])
    benchmark(lambda: pricing.european(*args, out=out))
    ns = _per_option(benchmark, N)
    benchmark.extra_info["ns_per_option"] = ns
    if "numpy" not in RESULTS:  # keep the ratio meaningful when run alone
        w = book["w"].astype(np.float64)
        t0 = time.perf_counter()
        numpy_bsm(*args[:6], w)
        RESULTS["numpy"] = (time.perf_counter() - t0) / N * 1e9
    benchmark.extra_info["speedup_vs_numpy"] = RESULTS["numpy"] / ns
    if "quantlib" in RESULTS:
        benchmark.extra_info["speedup_vs_quantlib"] = RESULTS["quantlib"] / ns


# The documented option-type forms beside the int8 codes (same book, same run). The "ratio" is
# the string path's time over the int8 path's: the goal is <= 1.10.
TYPE_FORMS = ["int8", "str <U4", "str upper", "bytes S4", "object", "list"]


def _types(book: dict[str, np.ndarray], form: str) -> object:
    words = np.where(book["w"] > 0, "call", "put")
    return {
        "int8": book["w"],
        "str <U4": words,
        "str upper": np.char.upper(words),
        "bytes S4": words.astype("S4"),
        "object": words.astype(object),
        "list": words.tolist(),
    }[form]


@pytest.mark.benchmark(group="european-1M-option-types")
@pytest.mark.parametrize("form", TYPE_FORMS)
def test_tradecore_option_type_forms(benchmark, book, form: str) -> None:  # type: ignore[no-untyped-def]
    types = _types(book, form)
    args = (book["S"], book["K"], book["T"], book["r"], book["q"], book["sigma"])
    out = benchmark(lambda: pricing.european(*args, types, greeks="first"))
    ns = _per_option(benchmark, N)
    RESULTS[f"types:{form}"] = ns
    benchmark.extra_info["ns_per_option"] = ns
    if form != "int8" and "types:int8" in RESULTS:
        benchmark.extra_info["ratio_vs_int8"] = ns / RESULTS["types:int8"]
    if "numpy" in RESULTS:
        benchmark.extra_info["speedup_vs_numpy"] = RESULTS["numpy"] / ns
    print(f"\neuropean first-order, option_type {form}: {ns:.1f} ns/option", benchmark.extra_info)
    np.testing.assert_array_equal(
        out["price"], pricing.european(*args, book["w"], "first")["price"]
    )
