"""tradecore.inference.monitor: the live recorder behind the monitoring page."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
from tradecore.errors import ResourceExhaustedError
from tradecore.inference.monitor import (
    BINS,
    LATENCY_RESOLUTION,
    PERCENTILES,
    MonitorRecorder,
    latency_bin,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def series(snap: dict, model: str, role: str = "champion") -> dict:
    (m,) = [m for m in snap["models"] if m["name"] == model]
    (s,) = [s for s in m["series"] if s["role"] == role]
    return s


def test_percentiles_match_numpy_nearest_rank_within_bin_resolution() -> None:
    rng = np.random.default_rng(7)
    clock = Clock()
    rec = MonitorRecorder(clock=clock)
    # Latencies over five decades (3 µs .. 0.3 s) in one bucket and spread over many.
    samples = np.exp(rng.uniform(np.log(3e-6), np.log(0.3), 20_000))
    for i, x in enumerate(samples):
        clock.t = 1000.0 + (i % 5) * 0.1  # all in bucket 1000
        rec.record_inference("m", "1", "champion", float(x), 1)
    s = series(rec.snapshot(), "m")
    want = np.percentile(samples, PERCENTILES, method="inverted_cdf")
    got = [s["window"]["latency"][f"p{q:g}"] for q in PERCENTILES]
    bucket = [s["buckets"][f"p{q:g}"][0] for q in PERCENTILES]
    assert got == bucket
    for g, w in zip(got, want, strict=True):
        assert abs(g - w) <= LATENCY_RESOLUTION * w * (1 + 1e-12)
    assert s["window"]["latency"]["min"] == samples.min()
    assert s["window"]["latency"]["max"] == samples.max()
    assert s["window"]["latency"]["mean"] == pytest.approx(samples.mean(), rel=1e-9)


def test_percentiles_per_bucket_each_from_its_own_samples() -> None:
    rng = np.random.default_rng(3)
    clock = Clock(50.0)
    rec = MonitorRecorder(clock=clock)
    per_bucket = []
    for b in range(4):
        xs = rng.lognormal(-7 + b, 0.5, 500)
        per_bucket.append(xs)
        clock.t = 50.0 + b + 0.5
        for x in xs:
            rec.record_inference("m", "1", "champion", float(x), 2)
    s = series(rec.snapshot(), "m")
    assert s["buckets"]["t"] == [50.0, 51.0, 52.0, 53.0]
    for i, xs in enumerate(per_bucket):
        for q in PERCENTILES:
            w = float(np.percentile(xs, q, method="inverted_cdf"))
            assert abs(s["buckets"][f"p{q:g}"][i] - w) <= LATENCY_RESOLUTION * w * (1 + 1e-12)
        assert s["buckets"]["latency_max"][i] == xs.max()
    # the window's percentiles are those of all the samples together
    allx = np.concatenate(per_bucket)
    w99 = float(np.percentile(allx, 99, method="inverted_cdf"))
    assert abs(s["window"]["latency"]["p99"] - w99) <= LATENCY_RESOLUTION * w99 * (1 + 1e-12)


def test_latency_bins_cover_the_range_and_clamp_outside_it() -> None:
    assert latency_bin(0.0) == 0
    assert latency_bin(1e-9) == 0
    assert latency_bin(1e6) == BINS - 1
    prev = -1
    for x in np.geomspace(2.0**-20, 127.9, 5000):
        b = latency_bin(float(x))
        assert prev <= b < BINS
        prev = b
    # a latency outside the bins is still reported as observed (percentiles clamp to min/max)
    rec = MonitorRecorder(clock=Clock())
    rec.record_inference("m", "1", "", 0.0, 1)
    rec.record_inference("m", "1", "", 500.0, 1)
    lat = series(rec.snapshot(), "m", "")["window"]["latency"]
    assert lat["min"] == 0.0 and lat["max"] == 500.0
    assert lat["p50"] == 0.0 and lat["p99"] == 500.0


def test_counts_errors_batches_and_rates() -> None:
    clock = Clock(10.0)
    rec = MonitorRecorder(clock=clock)
    rec.record_inference("m", "2", "challenger", 0.001, 8)
    rec.record_inference("m", "2", "challenger", 0.003, 32)
    rec.record_inference("m", "2", "challenger", 0.5, 16, ok=False)
    clock.t = 11.5
    rec.record_inference("m", "2", "challenger", 0.002, 4, ok=False)
    s = series(rec.snapshot(), "m", "challenger")
    b = s["buckets"]
    assert b["t"] == [10.0, 11.0]
    assert b["count"] == [3, 1]
    assert b["errors"] == [1, 1]
    assert b["rows"] == [40, 0]
    assert b["batch_mean"] == [20.0, None]  # statistics of the successful calls only
    assert b["batch_max"] == [32, None]
    assert b["latency_max"] == [0.003, None] and b["p50"][1] is None
    w = s["window"]
    assert (w["count"], w["errors"], w["rows"]) == (4, 2, 40)
    assert w["error_rate"] == 0.5
    assert w["requests_per_s"] == pytest.approx(4 / 1.5)
    assert w["rows_per_s"] == pytest.approx(40 / 1.5)
    assert w["batch_max"] == 32


def test_bucket_rollover_reuses_slots_and_forgets_the_old_window() -> None:
    clock = Clock(0.0)
    rec = MonitorRecorder(bucket_s=1.0, window_s=10.0, clock=clock)
    for t in range(10):
        clock.t = t + 0.5
        rec.record_inference("m", "1", "champion", 0.001 * (t + 1), t + 1)
    s = series(rec.snapshot(), "m")
    assert s["buckets"]["t"] == [float(t) for t in range(10)]
    # t=12.5: buckets 0..2 leave the window; bucket 12 reuses bucket 2's slot
    clock.t = 12.5
    rec.record_inference("m", "1", "champion", 0.5, 100)
    s = series(rec.snapshot(), "m")
    assert s["buckets"]["t"] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 12.0]
    assert s["buckets"]["count"] == [1] * 8
    assert s["buckets"]["batch_max"][-1] == 100
    assert s["buckets"]["latency_max"][-1] == 0.5
    assert s["window"]["count"] == 8
    assert s["window"]["latency"]["min"] == pytest.approx(0.004)
    # much later: nothing left in the window, the series is still listed
    clock.t = 100.0
    s = series(rec.snapshot(), "m")
    assert s["buckets"]["t"] == []
    assert s["window"]["count"] == 0 and s["window"]["latency"]["p99"] is None


def test_since_returns_the_changes_after_a_previous_snapshot() -> None:
    clock = Clock(20.2)
    rec = MonitorRecorder(clock=clock)
    rec.record_inference("m", "1", "champion", 0.001, 1)
    first = rec.snapshot()
    assert first["next_since"] == 20.0
    clock.t = 20.7
    rec.record_inference("m", "1", "champion", 0.001, 1)
    clock.t = 22.1
    rec.record_inference("m", "1", "champion", 0.001, 1)
    rec.record_drift("m", "1", "x0", "psi", 0.3, True, t=15.0)  # an older window, recorded now
    upd = rec.snapshot(since=first["next_since"])
    s = series(upd, "m")
    assert upd["since"] == 20.0
    assert s["buckets"]["t"] == [20.0, 22.0]
    assert s["buckets"]["count"] == [2, 1]  # bucket 20 again, complete now
    (d,) = upd["models"][0]["drift"]
    assert d["t"] == [15.0]
    # the bucket current at the last snapshot comes again, and so does what was recorded in it
    clock.t = 23.5
    later = rec.snapshot(since=upd["next_since"])
    assert series(later, "m")["buckets"]["t"] == [22.0]
    assert later["models"][0]["drift"][0]["t"] == [15.0]
    quiet = rec.snapshot(since=later["next_since"])
    assert series(quiet, "m")["buckets"]["t"] == []
    assert quiet["models"][0]["drift"][0]["t"] == []


def test_drift_points_by_feature_bounded_and_windowed() -> None:
    clock = Clock(0.0)
    rec = MonitorRecorder(window_s=60.0, max_drift_points=5, clock=clock)
    for i in range(8):
        clock.t = float(i)
        for f in ("x0", "x1"):
            rec.record_drift("m", "1", f, "ks", 0.1 * i, i > 5)
    m = rec.snapshot()["models"][0]
    assert m["series"] == []
    assert [(d["feature"], d["test"]) for d in m["drift"]] == [("x0", "ks"), ("x1", "ks")]
    d = m["drift"][0]
    assert d["t"] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert d["score"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert d["drifted"] == [False, False, False, True, True]
    clock.t = 65.5  # points recorded before 5.5 left the window
    assert rec.snapshot()["models"][0]["drift"][0]["t"] == [6.0, 7.0]


def test_concurrent_recording_loses_nothing() -> None:
    rec = MonitorRecorder()
    threads, per = 8, 5000
    barrier = threading.Barrier(threads)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(per):
            rec.record_inference("m", "1", "champion", 1e-4 * (1 + i % 50), 1 + k, ok=i % 10 != 0)
            if i % 500 == 0:
                rec.snapshot()  # readers alongside the writers
        rec.record_drift("m", "1", f"x{k}", "ks", 0.1, False)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s = series(rec.snapshot(), "m")
    w = s["window"]
    assert w["count"] == threads * per
    assert sum(s["buckets"]["count"]) == threads * per
    assert w["errors"] == threads * per // 10
    assert w["rows"] == sum((1 + k) * (per - per // 10) for k in range(threads))
    assert len(rec.snapshot()["models"][0]["drift"]) == threads


def test_snapshot_is_strict_json_and_filters_by_model() -> None:
    rec = MonitorRecorder(clock=Clock())
    rec.record_inference("b", "1", "champion", 0.002, 3, ok=False)  # a bucket with no latency
    rec.record_inference("a", "7", "shadow", 0.002, 3)
    snap = rec.snapshot()
    text = json.dumps(snap, allow_nan=False)
    assert json.loads(text) == snap
    assert snap["schema"] == "tradecore.monitor/1"
    assert [m["name"] for m in snap["models"]] == ["a", "b"]
    assert [m["name"] for m in rec.snapshot(model="b")["models"]] == ["b"]
    assert rec.snapshot(model="zzz")["models"] == []
    assert rec.models() == ["a", "b"]
    rec.remove("a")
    assert rec.models() == ["b"]


def test_series_order_champion_first() -> None:
    rec = MonitorRecorder(clock=Clock())
    for version, role in (("3", "shadow"), ("2", "challenger"), ("1", "champion"), ("9", "")):
        rec.record_inference("m", version, role, 0.001, 1)
    roles = [s["role"] for s in rec.snapshot()["models"][0]["series"]]
    assert roles == ["champion", "challenger", "shadow", ""]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.record_inference("m", "1", "leader", 0.1, 1), "role"),
        (lambda r: r.record_inference("", "1", "", 0.1, 1), "model"),
        (lambda r: r.record_inference("m", 1, "", 0.1, 1), "version"),
        (lambda r: r.record_inference("m", "1", "", math.nan, 1), "latency_s"),
        (lambda r: r.record_inference("m", "1", "", -0.1, 1), "latency_s"),
        (lambda r: r.record_inference("m", "1", "", math.inf, 1), "latency_s"),
        (lambda r: r.record_inference("m", "1", "", "0.1", 1), "latency_s"),
        (lambda r: r.record_inference("m", "1", "", 0.1, -1), "batch_size"),
        (lambda r: r.record_inference("m", "1", "", 0.1, 1.5), "batch_size"),
        (lambda r: r.record_drift("m", "1", "x", "ks", math.nan, False), "score"),
        (lambda r: r.record_drift("m", "1", "", "ks", 0.1, False), "feature"),
        (lambda r: r.record_drift("m", "1", "x", "", 0.1, False), "test"),
        (lambda r: r.record_drift("m", "1", "x", "ks", 0.1, False, t=math.inf), "t"),
        (lambda r: r.snapshot(since=math.nan), "since"),
        (lambda r: MonitorRecorder(bucket_s=0), "bucket_s"),
        (lambda r: MonitorRecorder(window_s=0.5), "window_s"),
        (lambda r: MonitorRecorder(max_series=0), "max_series"),
    ],
)
def test_bad_arguments_name_the_field(call, field: str) -> None:  # type: ignore[no-untyped-def]
    rec = MonitorRecorder(clock=Clock())
    with pytest.raises(ValueError, match=f"^{field}:"):
        call(rec)
    assert rec.models() == []


def test_series_and_drift_series_are_capped() -> None:
    rec = MonitorRecorder(max_series=2, max_drift_series=1, clock=Clock())
    rec.record_inference("m", "1", "champion", 0.1, 1)
    rec.record_inference("m", "2", "challenger", 0.1, 1)
    with pytest.raises(ResourceExhaustedError, match="at most 2"):
        rec.record_inference("m", "3", "shadow", 0.1, 1)
    rec.record_inference("m", "1", "champion", 0.1, 1)  # an existing series still records
    rec.record_drift("m", "1", "x0", "ks", 0.1, False)
    with pytest.raises(ResourceExhaustedError, match="at most 1 drift"):
        rec.record_drift("m", "1", "x1", "ks", 0.1, False)
