"""DynamicBatcher: batches of concurrent requests on the real ONNX Runtime engine.

To make the batching deterministic without timing, ``Held`` wraps an engine so that its run
waits for the test to open a gate: requests submitted while the worker is held pile up in the
queue, and the next batch takes them all."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pytest
from tradecore.errors import PreconditionError, ResourceExhaustedError
from tradecore.inference import Engine, ModelMetadata, OnnxEngine, Tensors
from tradecore.inference.batching import BatchStats, DynamicBatcher

from tests.inference_models import lookup, mlp, two_inputs

MLP = mlp()


class Held:
    """An engine whose runs wait while the gate is closed (``entered`` is set once a run is
    waiting)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls = 0

    @property
    def metadata(self) -> ModelMetadata:
        return self.engine.metadata

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def run(self, inputs: Mapping[str, npt.NDArray[np.generic]]) -> Tensors:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(30)
        return self.engine.run(inputs)

    def warmup(self) -> None:
        self.engine.warmup()

    def close(self) -> None:
        self.engine.close()


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 5)).astype(np.float32)


def expected(x: np.ndarray) -> np.ndarray:
    return MLP(x)


def occupy(batcher: DynamicBatcher, held: Held) -> object:
    """Hold the worker inside a run of one request; returns that request's future."""
    held.hold()
    first = batcher.submit({"x": rows(1, 99)})
    assert held.entered.wait(30)
    return first


@pytest.fixture
def stats() -> list[BatchStats]:
    return []


def test_concurrent_callers_each_get_their_own_rows(stats: list[BatchStats]) -> None:
    engine = OnnxEngine(MLP.onnx_bytes)
    batcher = DynamicBatcher(
        engine, max_batch_size=64, max_queue_delay_us=500, on_stats=stats.append
    )
    failures: list[str] = []
    results: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def caller(t: int) -> None:
        for i in range(40):
            x = rows(1 + (t * 7 + i) % 5, seed=t * 1000 + i)
            try:
                results[(t, i)] = (x, batcher.infer({"x": x}, timeout_s=30)["y"])
            except Exception as exc:  # collected: an assert in a thread would be lost
                failures.append(repr(exc))

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    batcher.close()
    assert failures == []
    assert len(results) == 320
    for x, y in results.values():
        assert y.shape == (len(x), 3)
        # Each caller's rows equal an unbatched run of its own input.
        np.testing.assert_allclose(y, engine.run({"x": x})["y"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert sum(s.requests for s in stats) == 320
    assert sum(s.rows for s in stats) == sum(len(x) for x, _ in results.values())
    assert all(s.ok and s.rows <= 64 and len(s.queue_ns) == s.requests for s in stats)


def test_queued_requests_of_different_sizes_run_as_one_batch(stats: list[BatchStats]) -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes))
    batcher = DynamicBatcher(held, max_batch_size=16, on_stats=stats.append)
    occupy(batcher, held)
    inputs = [rows(n, seed=n) for n in (1, 4, 2, 3)]
    futures = [batcher.submit({"x": x}) for x in inputs]
    assert batcher.queued() == 4
    held.gate.set()
    for x, f in zip(inputs, futures, strict=True):
        np.testing.assert_allclose(f.result(30)["y"], expected(x), rtol=1e-5, atol=1e-6)
    batcher.close()
    assert [(s.requests, s.rows) for s in stats] == [(1, 1), (4, 10)]
    assert held.calls == 2


def test_a_batch_takes_no_more_rows_than_its_limit(stats: list[BatchStats]) -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes))
    batcher = DynamicBatcher(held, max_batch_size=4, on_stats=stats.append)
    occupy(batcher, held)
    inputs = [rows(n, seed=n) for n in (3, 2, 2, 6)]
    futures = [batcher.submit({"x": x}) for x in inputs]
    held.gate.set()
    for x, f in zip(inputs, futures, strict=True):
        np.testing.assert_allclose(f.result(30)["y"], expected(x), rtol=1e-5, atol=1e-6)
    batcher.close()
    # 3 alone (3 + 2 > 4), 2 + 2, then 6 alone (larger than the limit but within the model's).
    assert [s.rows for s in stats] == [1, 3, 4, 6]


def test_several_inputs_and_outputs_are_split_back() -> None:
    batcher = DynamicBatcher(OnnxEngine(two_inputs()), max_queue_delay_us=1000)
    futures = []
    for n in (1, 3, 2):
        a = np.full((n, 3), float(n), np.float32)
        futures.append((n, batcher.submit({"a": a, "k": np.arange(n, dtype=np.int64)})))
    for n, f in futures:
        out = f.result(30)
        np.testing.assert_array_equal(out["s"], 3.0 * n + np.arange(n))
        np.testing.assert_array_equal(out["a2"], np.full((n, 3), 2.0 * n))
    batcher.close()


def test_a_model_that_does_not_batch_runs_each_request_alone(stats: list[BatchStats]) -> None:
    fixed = mlp(batch=2)
    batcher = DynamicBatcher(OnnxEngine(fixed.onnx_bytes), on_stats=stats.append)
    assert batcher.max_batch_size == 0
    xs = [rows(2, seed=s) for s in range(5)]
    futures = [batcher.submit({"x": x}) for x in xs]
    for x, f in zip(xs, futures, strict=True):
        np.testing.assert_allclose(f.result(30)["y"], fixed(x), rtol=1e-5, atol=1e-6)
    batcher.close()
    assert [s.requests for s in stats] == [1] * 5


def test_queue_full_is_refused_at_once() -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes, name="surrogate"))
    batcher = DynamicBatcher(held, max_queue_size=2)
    occupy(batcher, held)
    queued = [batcher.submit({"x": rows(1, s)}) for s in range(2)]
    with pytest.raises(ResourceExhaustedError) as info:
        batcher.submit({"x": rows(1, 5)})
    assert str(info.value) == (
        "model 'surrogate' version 1: queue full (2 requests waiting); retry later"
    )
    held.gate.set()
    for f in queued:
        assert f.result(30)["y"].shape == (1, 3)
    batcher.close()


def test_invalid_input_fails_in_the_callers_thread() -> None:
    batcher = DynamicBatcher(OnnxEngine(MLP.onnx_bytes))
    with pytest.raises(ValueError, match="input tensor 'x': shape \\[1, 4\\]"):
        batcher.submit({"x": np.zeros((1, 4), np.float32)})
    with pytest.raises(ValueError, match="input tensor 'x': contains NaN"):
        batcher.infer({"x": np.full((1, 5), np.nan, np.float32)})
    batcher.close()


def test_a_request_past_its_deadline_times_out_and_never_runs(stats: list[BatchStats]) -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes, name="surrogate"))
    batcher = DynamicBatcher(held, on_stats=stats.append)
    occupy(batcher, held)
    with pytest.raises(
        TimeoutError, match=r"model 'surrogate' version 1: no result within 0\.05 s"
    ):
        batcher.infer({"x": rows(1, 1)}, timeout_s=0.05)
    assert batcher.queued() == 0  # the abandoned request left the queue
    late = batcher.submit({"x": rows(1, 2)}, timeout_s=0.05)
    assert not late.done()
    threading.Event().wait(0.1)  # let its deadline pass while the worker is still held
    held.gate.set()
    with pytest.raises(TimeoutError, match="waited in the queue past its deadline"):
        late.result(30)
    batcher.close()
    assert [s.requests for s in stats] == [1]  # only the request that held the worker ran
    with pytest.raises(ValueError, match="timeout_s: positive or None"):
        DynamicBatcher(held, timeout_s=0)


def test_async_submit_and_timeout() -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes))
    batcher = DynamicBatcher(held, max_queue_delay_us=200)

    async def main() -> None:
        xs = [rows(1 + i % 3, seed=i) for i in range(30)]
        outs = await asyncio.gather(*(batcher.infer_async({"x": x}) for x in xs))
        for x, out in zip(xs, outs, strict=True):
            np.testing.assert_allclose(out["y"], expected(x), rtol=1e-5, atol=1e-6)
        held.hold()
        first = asyncio.ensure_future(batcher.infer_async({"x": rows(1, 1)}))
        while not held.entered.is_set():
            await asyncio.sleep(0.001)
        with pytest.raises(TimeoutError, match=r"no result within 0\.05 s"):
            await batcher.infer_async({"x": rows(1, 2)}, timeout_s=0.05)
        assert batcher.queued() == 0  # the timed-out request left the queue
        held.gate.set()
        assert (await first)["y"].shape == (1, 3)

    asyncio.run(main())
    batcher.close()


def test_a_failing_batch_fails_only_the_request_at_fault(stats: list[BatchStats]) -> None:
    held = Held(OnnxEngine(lookup(10), name="table"))
    batcher = DynamicBatcher(held, on_stats=stats.append)
    held.hold()
    first = batcher.submit({"i": np.array([0], np.int64)})
    assert held.entered.wait(30)
    good1 = batcher.submit({"i": np.array([1, 2], np.int64)})
    bad = batcher.submit({"i": np.array([3, 20], np.int64)})
    good2 = batcher.submit({"i": np.array([9], np.int64)})
    held.gate.set()
    np.testing.assert_array_equal(first.result(30)["y"], [[0, 1]])
    np.testing.assert_array_equal(good1.result(30)["y"], [[2, 3], [4, 5]])
    np.testing.assert_array_equal(good2.result(30)["y"], [[18, 19]])
    with pytest.raises(ValueError, match=r"model 'table': .*out of data bounds"):
        bad.result(30)
    batcher.close()
    # The batch of three failed, then each of its requests ran alone.
    assert [(s.requests, s.ok, s.rerun) for s in stats] == [
        (1, True, False),
        (3, False, True),
        (1, True, False),
        (1, False, False),
        (1, True, False),
    ]


def test_close_drains_or_fails_what_is_queued() -> None:
    held = Held(OnnxEngine(MLP.onnx_bytes, name="surrogate"))
    batcher = DynamicBatcher(held)
    occupy(batcher, held)
    drained = batcher.submit({"x": rows(1, 1)})
    held.gate.set()
    batcher.close(drain=True)
    assert drained.result(0)["y"].shape == (1, 3)
    with pytest.raises(PreconditionError, match="model 'surrogate' version 1: the batcher is"):
        batcher.submit({"x": rows(1, 1)})

    batcher = DynamicBatcher(held)
    occupy(batcher, held)
    dropped = batcher.submit({"x": rows(1, 2)})
    closing = threading.Thread(target=batcher.close, kwargs={"drain": False})
    closing.start()
    held.gate.set()
    closing.join(30)
    assert not closing.is_alive()
    with pytest.raises(PreconditionError, match="shut down before the request ran"):
        dropped.result(0)


def test_a_failing_stats_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    def hook(stats: BatchStats) -> None:
        raise RuntimeError("metrics down")

    batcher = DynamicBatcher(OnnxEngine(MLP.onnx_bytes, name="surrogate"), on_stats=hook)
    x = rows(2, 3)
    for _ in range(2):
        np.testing.assert_allclose(batcher.infer({"x": x})["y"], expected(x), rtol=1e-5, atol=1e-6)
    batcher.close()
    assert "on_stats hook failed for model surrogate" in caplog.text


def test_arguments_are_checked() -> None:
    engine = OnnxEngine(MLP.onnx_bytes, max_batch_size=32)
    with pytest.raises(ValueError, match="max_batch_size: at most the model's 32, got 33"):
        DynamicBatcher(engine, max_batch_size=33)
    with pytest.raises(ValueError, match="max_batch_size: at least 0"):
        DynamicBatcher(engine, max_batch_size=-1)
    with pytest.raises(ValueError, match="max_queue_delay_us: at least 0"):
        DynamicBatcher(engine, max_queue_delay_us=-1)
    with pytest.raises(ValueError, match="max_queue_size: at least 1"):
        DynamicBatcher(engine, max_queue_size=0)
