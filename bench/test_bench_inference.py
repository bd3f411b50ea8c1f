"""Issue 13: in-process inference of a surrogate-sized MLP (5 inputs → 3×64 ReLU → 3 outputs,
FP32) at batch 1 and batch 256.

Peers in the same run: onnxruntime called directly on the same model (the overhead of our
validation and API), and the analytic kernel the surrogate stands in for
(``tradecore.pricing``: European price, delta and vega of the same number of options) — the
cost a network hop to a model server has to be weighed against. Besides pytest-benchmark's
statistics, each case times ``LOOP`` single calls and records p50/p99 in its extra_info
(``python bench/summarize.py`` prints them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tradecore import pricing
from tradecore.inference import DynamicBatcher, OnnxEngine
from tradecore.inference.session import Model

from tests.inference_models import mlp

LOOP = 20_000
SURROGATE = mlp(n_in=5, hidden=(64, 64, 64), n_out=3, seed=13)
RESULTS: dict[str, dict[str, float]] = {}


def percentiles(fn: Callable[[], object], n: int = LOOP) -> dict[str, float]:
    """p50/p99/p99.9 of ``n`` single calls in µs (after a tenth as many warm-up calls)."""
    for _ in range(n // 10):
        fn()
    times = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        times[i] = clock() - t0
    p50, p99, p999 = np.percentile(times, [50, 99, 99.9]) / 1e3
    return {"p50_us": float(p50), "p99_us": float(p99), "p99_9_us": float(p999)}


def record(benchmark: Any, key: str, fn: Callable[[], object]) -> None:
    stats = percentiles(fn)
    RESULTS[key] = stats
    benchmark.extra_info.update(stats)
    peer = RESULTS.get(key.split(":")[0] + ":ort")
    if peer is not None and key.endswith(":ours"):
        benchmark.extra_info["p50_overhead_us"] = stats["p50_us"] - peer["p50_us"]
        benchmark.extra_info["p50_ratio_vs_ort"] = stats["p50_us"] / peer["p50_us"]


@pytest.fixture(scope="module")
def ort_session() -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(SURROGATE.onnx_bytes, opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def model() -> Model:
    m = Model(OnnxEngine(SURROGATE.onnx_bytes, name="surrogate"))
    m.warmup()
    return m


def features(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, 5)).astype(np.float32)


def options(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {
        "S": rng.uniform(80, 120, n),
        "K": rng.uniform(80, 120, n),
        "T": rng.uniform(0.05, 2.0, n),
        "r": rng.uniform(0.0, 0.05, n),
        "q": rng.uniform(0.0, 0.03, n),
        "sigma": rng.uniform(0.1, 0.5, n),
    }


@pytest.mark.parametrize("n", [1, 256])
def test_onnxruntime_direct(benchmark: Any, ort_session: Any, n: int) -> None:
    benchmark.group = f"inference-batch-{n}"
    x = features(n)
    out = benchmark(ort_session.run, ["y"], {"x": x})
    np.testing.assert_allclose(out[0], SURROGATE(x), rtol=1e-4, atol=1e-5)
    record(benchmark, f"{n}:ort", lambda: ort_session.run(["y"], {"x": x}))


@pytest.mark.parametrize("n", [1, 256])
def test_in_process_api(benchmark: Any, model: Model, ort_session: Any, n: int) -> None:
    benchmark.group = f"inference-batch-{n}"
    x = features(n)
    out = benchmark(lambda: model.predict(x=x))
    np.testing.assert_array_equal(out["y"], ort_session.run(["y"], {"x": x})[0])
    record(benchmark, f"{n}:ours", lambda: model.predict(x=x))


@pytest.mark.parametrize("n", [1, 256])
def test_dynamic_batcher_one_caller(benchmark: Any, n: int) -> None:
    """One caller through the batcher: validation, the hand-over to the model's thread and
    back (a batch of one request each time)."""
    benchmark.group = f"inference-batch-{n}"
    batcher = DynamicBatcher(OnnxEngine(SURROGATE.onnx_bytes, name="surrogate"))
    x = features(n)
    try:
        out = benchmark(lambda: batcher.infer({"x": x}))
        np.testing.assert_allclose(out["y"], SURROGATE(x), rtol=1e-4, atol=1e-5)
        record(benchmark, f"{n}:batcher", lambda: batcher.infer({"x": x}))
    finally:
        batcher.close()


def test_dynamic_batcher_eight_callers(benchmark: Any) -> None:
    """Eight threads each sending batch-1 requests: inferences per second and executions per
    inference (how much the batcher gathers)."""
    benchmark.group = "inference-batch-1-concurrent"
    executions = []
    batcher = DynamicBatcher(
        OnnxEngine(SURROGATE.onnx_bytes, name="surrogate"),
        max_batch_size=64,
        on_stats=lambda s: executions.append(s.requests),
    )
    x = features(1)
    per_thread = 2_000

    def burst() -> None:
        def caller() -> None:
            for _ in range(per_thread):
                batcher.infer({"x": x})

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        benchmark.pedantic(burst, rounds=3, iterations=1)
        requests = sum(executions)
        benchmark.extra_info["inferences_per_s"] = 8 * per_thread / benchmark.stats.stats.median
        benchmark.extra_info["requests_per_execution"] = requests / len(executions)
    finally:
        batcher.close()


@pytest.mark.parametrize("n", [1, 256])
def test_analytic_price_delta_vega(benchmark: Any, n: int) -> None:
    """The closed form the surrogate approximates, on as many options."""
    benchmark.group = f"inference-batch-{n}"
    o = options(n)
    if n == 1:
        args = tuple(float(o[k][0]) for k in ("S", "K", "T", "r", "q", "sigma"))

        def call() -> object:
            return pricing.european_row(*args, 1, ("price", "delta", "vega"))

    else:

        def call() -> object:
            return pricing.european(
                o["S"], o["K"], o["T"], o["r"], o["q"], o["sigma"], "call", ["delta", "vega"]
            )

    benchmark(call)
    record(benchmark, f"{n}:analytic", call)
