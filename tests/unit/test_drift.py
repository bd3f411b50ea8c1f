"""tradecore.inference.drift against scipy: statistics equal on the same samples, power on
shifted samples, false alarms on unshifted ones within a binomial bound, the corrections, the
streaming windows and the stored reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance
from tradecore import _core
from tradecore.errors import NotFoundError
from tradecore.inference.drift import (
    JOINT,
    DriftDetector,
    DriftMonitor,
    adjust_p_values,
    reference_of,
    tensor_features,
)
from tradecore.inference.types import ModelVersion


def _samples(seed: int, n_ref: int = 4000, n_win: int = 3000, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    ref = {
        "normal": rng.normal(size=n_ref),
        "expo": rng.exponential(2.0, size=n_ref),
        "ints": rng.integers(0, 20, size=n_ref),  # numeric with ties
        "f32": rng.normal(size=n_ref).astype(np.float32),
    }
    win = {
        "normal": rng.normal(shift, 1.0, size=n_win),
        "expo": rng.exponential(2.0, size=n_win) + 2.0 * shift,  # shift in std devs
        "ints": rng.integers(0, 20, size=n_win) + round(shift * 4),
        "f32": (rng.normal(size=n_win) + shift).astype(np.float32),
    }
    return ref, win


def _bins(ref: np.ndarray, bins: int) -> np.ndarray:
    return np.quantile(ref, np.arange(1, bins) / bins)


def _hist(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)


@pytest.mark.parametrize("shift", [0.0, 0.2])
def test_statistics_equal_scipy(shift: float) -> None:
    ref, win = _samples(1, shift=shift)
    det = DriftDetector(ref, bins=10)
    rep = det.check(win)
    m, n = 4000, 3000
    for f in ref:
        r = np.asarray(ref[f], dtype=np.float64)
        w = np.asarray(win[f], dtype=np.float64)
        ks = stats.ks_2samp(r, w, method="asymp")
        got = rep.result(f, "ks")
        assert got.statistic == pytest.approx(ks.statistic, abs=1e-15)
        # The asymptotic Kolmogorov law at sqrt(en) D against scipy's kstwo at round(en).
        assert got.p_value == pytest.approx(
            stats.kstwobign.sf(np.sqrt(m * n / (m + n)) * ks.statistic), rel=1e-12
        )
        assert got.p_value == pytest.approx(ks.pvalue, abs=0.02)
        assert rep.result(f, "wasserstein").statistic == pytest.approx(
            stats.wasserstein_distance(r, w), rel=1e-10
        )
        edges = _bins(r, 10)
        hr, hw = _hist(r, edges), _hist(w, edges)
        keep = (hr + hw) > 0
        chi = stats.chi2_contingency(np.vstack([hr, hw])[:, keep], correction=False)
        assert rep.result(f, "chi2").statistic == pytest.approx(chi.statistic, rel=1e-10)
        assert rep.result(f, "chi2").p_value == pytest.approx(chi.pvalue, rel=1e-8, abs=1e-300)
        pr, pw = hr / m, hw / n
        assert rep.result(f, "jensenshannon").statistic == pytest.approx(
            distance.jensenshannon(pr, pw), rel=1e-10, abs=1e-12
        )
        a, b = np.maximum(pr, 1e-4), np.maximum(pw, 1e-4)
        assert rep.result(f, "psi").statistic == pytest.approx(
            float(((b - a) * np.log(b / a)).sum()), rel=1e-10, abs=1e-15
        )


def test_kernel_ks_wasserstein_with_ties_and_negative_zero() -> None:
    rng = np.random.default_rng(3)
    u = np.sort(rng.integers(-5, 5, size=777).astype(np.float64))
    v = np.sort(np.concatenate([rng.integers(-3, 8, size=500).astype(np.float64), [-0.0, 0.0]]))
    ks, w1 = _core.drift_ks_wasserstein_sorted(u, v)
    assert ks == pytest.approx(stats.ks_2samp(u, v).statistic, abs=1e-15)
    assert w1 == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12)
    for seed in range(30):  # runs of equal values within and across the samples, unequal sizes
        g = np.random.default_rng(seed)
        u = np.sort(g.integers(0, 1 + seed % 7, size=g.integers(1, 300)).astype(np.float64))
        v = np.sort(g.integers(0, 1 + seed % 5, size=g.integers(1, 300)).astype(np.float64))
        ks, w1 = _core.drift_ks_wasserstein_sorted(u, v)
        assert ks == pytest.approx(stats.ks_2samp(u, v).statistic, abs=1e-15), seed
        assert w1 == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12, abs=1e-15), seed
    s, bad = _core.drift_sort_columns([np.array([0.0, -0.0, -1.0, 3.0])])
    assert bad.tolist() == [-1]
    assert s.tolist() == [[-1.0, 0.0, 0.0, 3.0]]
    assert not np.signbit(s[0, 1])


def test_categorical_chi2_equals_scipy_with_unseen_category() -> None:
    rng = np.random.default_rng(5)
    ref = {"c": rng.choice(["a", "b", "c"], size=3000, p=[0.5, 0.3, 0.2])}
    win = {"c": rng.choice(["a", "b", "c", "new"], size=2000, p=[0.4, 0.3, 0.2, 0.1])}
    det = DriftDetector(ref, categorical=["c"])
    assert det.tests == ("ks", "chi2", "psi", "wasserstein", "jensenshannon", "mmd")
    rep = det.check(win)
    assert {r.test for r in rep.results} == {"chi2", "psi", "jensenshannon"}
    cats = ["a", "b", "c", "new"]
    hr = np.array([np.sum(ref["c"] == k) for k in cats])
    hw = np.array([np.sum(win["c"] == k) for k in cats])
    chi = stats.chi2_contingency(np.vstack([hr, hw]), correction=False)
    got = rep.result("c", "chi2")
    assert got.statistic == pytest.approx(chi.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(chi.pvalue, rel=1e-8, abs=1e-300)
    assert got.drifted and rep.drifted and rep.drifted_features == ("c",)
    assert rep.result("c", "jensenshannon").statistic == pytest.approx(
        distance.jensenshannon(hr / hr.sum(), hw / hw.sum()), rel=1e-10
    )


def test_power_on_shifted_samples() -> None:
    for seed in range(20):
        ref, win = _samples(100 + seed, shift=0.25)
        rep = DriftDetector(ref, tests=["ks", "chi2", "psi", "wasserstein"]).check(win)
        for f in ref:
            assert rep.result(f, "ks").drifted, f
            assert rep.result(f, "chi2").drifted, f
            assert rep.result(f, "wasserstein").drifted, f
        assert rep.drifted


def test_distances_flag_a_large_shift_only() -> None:
    tests = ["psi", "jensenshannon", "wasserstein"]
    for seed in range(10):
        ref, same = _samples(300 + seed, shift=0.0)
        _, moved = _samples(300 + seed, shift=1.0)
        assert not DriftDetector(ref, tests=tests).check(same).drifted
        rep = DriftDetector(ref, tests=tests).check(moved)
        for f in ref:
            for t in tests:
                assert rep.result(f, t).drifted, (f, t)


def test_mmd_power_on_a_joint_shift() -> None:
    # The linear-time statistic uses each row once, so it needs more rows than the others.
    detected = 0
    for seed in range(20):
        rng = np.random.default_rng(200 + seed)
        ref = rng.normal(size=(20_000, 5))
        win = rng.normal(0.3, 1.0, size=(20_000, 5))
        rep = DriftDetector(ref, [f"x{i}" for i in range(5)], tests=["mmd"]).check(win)
        detected += rep.result(JOINT, "mmd").drifted
    assert detected >= 18


@pytest.mark.parametrize("test", ["ks", "chi2", "mmd"])
def test_false_alarm_rate_on_unshifted_data(test: str) -> None:
    """Per-test rejections at α = 0.05 over 200 seeds of unshifted data (one feature, no
    correction) stay below the 0.999 quantile of Binomial(200, 0.05)."""
    trials, alpha = 200, 0.05
    bound = stats.binom.ppf(0.999, trials, alpha)
    alarms = 0
    for seed in range(trials):
        rng = np.random.default_rng(10_000 + seed)
        det = DriftDetector(
            {"x": rng.normal(size=2000)}, tests=[test], correction="none", mmd_max_rows=2000
        )
        rep = det.check({"x": rng.normal(size=1500)})
        alarms += rep.drifted
    assert alarms <= bound
    assert alarms >= 1  # the test is not dead either (expected 10)


def test_corrections_match_definitions() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005])
    assert adjust_p_values(p, "none").tolist() == p.tolist()
    assert np.allclose(adjust_p_values(p, "bonferroni"), np.minimum(p * 5, 1))
    assert np.allclose(
        adjust_p_values(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values(p, "holm")


def test_correction_changes_decisions_across_features() -> None:
    # 20 unshifted features and one slightly shifted: without correction some of the 20 are
    # flagged by chance at a loose threshold; Bonferroni keeps only the shifted one.
    rng = np.random.default_rng(11)
    ref = {f"f{i}": rng.normal(size=3000) for i in range(20)}
    win = {f"f{i}": rng.normal(size=3000) for i in range(20)}
    ref["s"] = rng.normal(size=3000)
    win["s"] = rng.normal(0.3, 1.0, size=3000)
    loose = {"ks": 0.5}
    none = DriftDetector(ref, tests=["ks"], thresholds=loose, correction="none").check(win)
    bonf = DriftDetector(ref, tests=["ks"], thresholds=loose, correction="bonferroni").check(win)
    bh = DriftDetector(ref, tests=["ks"], thresholds=loose, correction="bh").check(win)
    assert len(none.drifted_features) > 1
    assert bonf.drifted_features == ("s",)
    assert "s" in bh.drifted_features
    assert len(bonf.drifted_features) <= len(bh.drifted_features) <= len(none.drifted_features)
    r = bonf.result("f0", "ks")
    assert r.adjusted_p_value == pytest.approx(min(1.0, r.p_value * 21))


def test_drift_share_sets_the_overall_decision() -> None:
    ref, win = _samples(2, shift=0.0)
    win = dict(win)
    win["normal"] = win["normal"] + 1.0
    one = DriftDetector(ref, tests=["ks"]).check(win)
    half = DriftDetector(ref, tests=["ks"], drift_share=0.5).check(win)
    assert one.drifted_features == half.drifted_features == ("normal",)
    assert one.drifted and not half.drifted


def test_two_d_array_and_mapping_agree() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(2000, 3))
    win = rng.normal(size=(1000, 3))
    names = ["a", "b", "c"]
    a = DriftDetector(ref, names).check(win)
    b = DriftDetector({n: ref[:, i] for i, n in enumerate(names)}).check(
        {n: np.asfortranarray(win)[:, i] for i, n in enumerate(names)}
    )
    assert [(r.feature, r.test, r.statistic, r.p_value) for r in a.results] == [
        (r.feature, r.test, r.statistic, r.p_value) for r in b.results
    ]


def test_bad_input_names_the_feature() -> None:
    ref, win = _samples(6)
    det = DriftDetector(ref)
    bad = dict(win)
    bad["expo"] = bad["expo"].copy()
    bad["expo"][17] = np.nan
    with pytest.raises(ValueError, match=r"'expo' row 17 is not a finite number"):
        det.check(bad)
    with pytest.raises(ValueError, match=r"'expo' row 17 is not a finite number"):
        DriftDetector(ref, tests=["mmd"]).check(bad)  # no sort: its own finiteness check
    with pytest.raises(ValueError, match=r"feature 'ints' is missing"):
        det.check({k: v for k, v in win.items() if k != "ints"})
    with pytest.raises(ValueError, match=r"unknown feature 'zz'"):
        det.check({**win, "zz": win["normal"]})
    with pytest.raises(ValueError, match=r"'expo' has 3000 rows, 'normal' has 5"):
        det.check({**win, "normal": win["normal"][:5]})
    with pytest.raises(ValueError, match="at least 4 rows"):
        det.check({k: v[:3] for k, v in win.items()})
    with pytest.raises(ValueError, match="not numeric"):
        det.check({**win, "ints": np.array(["x"] * 3000)})
    with pytest.raises(ValueError, match=r"reference: feature 'a' row 1"):
        DriftDetector({"a": np.array([1.0, np.inf, 2.0])})
    with pytest.raises(ValueError, match="tests"):
        DriftDetector(ref, tests=["kl"])
    with pytest.raises(ValueError, match="categorical"):
        DriftDetector(ref, categorical=["nope"])
    with pytest.raises(ValueError, match=r"thresholds\[ks\]"):
        DriftDetector(ref, thresholds={"ks": 2.0})


def test_constant_feature_has_no_nan() -> None:
    det = DriftDetector({"k": np.ones(100), "x": np.arange(100.0)})
    rep = det.check({"k": np.ones(50), "x": np.arange(50.0)})
    for r in rep.results:
        assert np.isfinite(r.statistic)
        assert r.p_value is None or np.isfinite(r.p_value)
    assert rep.result("k", "chi2").p_value == 1.0
    moved = det.check({"k": np.full(50, 2.0), "x": np.arange(50.0)})
    assert moved.result("k", "ks").drifted and moved.result("k", "wasserstein").drifted


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    ref = {"x": rng.normal(size=1000), "c": rng.choice(["u", "v"], size=1000).astype(object)}
    win = {"x": rng.normal(0.5, 1, size=800), "c": rng.choice(["u", "v", "w"], size=800)}
    det = DriftDetector(ref, categorical=["c"], correction="bonferroni", bins=7)
    with pytest.raises(NotFoundError):
        DriftDetector.load(tmp_path / "none.npz")
    again = DriftDetector.load(det.save(tmp_path / "prepared.npz"))
    assert again.bins == 7 and again.correction == "bonferroni"
    assert det.check(win).to_dict() == again.check(win).to_dict()


def test_for_version_reads_the_registered_reference(tmp_path: Path) -> None:
    # The registry stores a version's reference as an .npz of tensor name -> array and names
    # it in ModelVersion.config["reference"].
    rng = np.random.default_rng(12)
    path = tmp_path / "ref.npz"
    np.savez(path, x=rng.normal(size=(500, 2)), side=rng.integers(0, 3, size=500))
    version = ModelVersion(
        name="m",
        version=3,
        path=tmp_path / "m.onnx",
        platform="onnxruntime_onnx",
        config={"reference": str(path), "drift_categorical": "side"},
    )
    det = DriftDetector.for_version(version, tests=["ks", "chi2"])
    assert det.feature_names == ("x[0]", "x[1]", "side")
    assert det.categorical_features == ("side",)
    assert set(reference_of(version)) == {"x[0]", "x[1]", "side"}
    rep = det.check(
        {
            "x[0]": rng.normal(size=100),
            "x[1]": rng.normal(size=100),
            "side": rng.integers(0, 3, size=100),
        }
    )
    assert rep.result("side", "chi2").p_value is not None
    with pytest.raises(NotFoundError, match="has no reference data"):
        DriftDetector.for_version(
            ModelVersion(name="m", version=4, path=path, platform="onnxruntime_onnx")
        )


def test_tensor_features_flattens_a_batch() -> None:
    out = tensor_features({"x": np.arange(12.0).reshape(3, 2, 2), "y": np.arange(3)})
    assert list(out) == ["x[0]", "x[1]", "x[2]", "x[3]", "y"]
    assert out["x[3]"].tolist() == [3.0, 7.0, 11.0]


def test_monitor_windows_by_count_split_batches() -> None:
    rng = np.random.default_rng(9)
    det = DriftDetector({"x": rng.normal(size=500)}, tests=["ks"])
    mon = DriftMonitor(det, window_rows=100)
    data = rng.normal(size=350)
    reports = []
    for i, size in enumerate([30, 120, 50, 150]):
        start = sum([30, 120, 50, 150][:i])
        reports += mon.add({"x": data[start : start + size]}, time_ns=1000 + i)
    assert [r.window.first_row for r in reports] == [0, 100, 200]
    assert [r.window.rows for r in reports] == [100, 100, 100]
    assert [(r.window.start_time_ns, r.window.end_time_ns) for r in reports] == [
        (1000, 1001),
        (1001, 1002),
        (1003, 1003),
    ]
    direct = det.check({"x": data[100:200]})
    assert reports[1].result("x", "ks").statistic == direct.result("x", "ks").statistic
    assert mon.pending_rows == 50
    last = mon.flush()
    assert len(last) == 1 and last[0].window.first_row == 300 and last[0].window.rows == 50


def test_monitor_windows_by_time() -> None:
    rng = np.random.default_rng(10)
    det = DriftDetector({"x": rng.normal(size=500)})
    mon = DriftMonitor(det, window_seconds=1.0)
    s = 1_000_000_000
    assert mon.add({"x": rng.normal(size=10)}, time_ns=0) == []
    assert mon.add({"x": rng.normal(size=10)}, time_ns=s // 2) == []
    assert mon.poll(s - 1) == []
    out = mon.add({"x": rng.normal(size=2)}, time_ns=s)  # closes [0, 1 s) with 20 rows
    assert len(out) == 1 and out[0].window.rows == 20 and out[0].window.end_time_ns == s // 2
    out = mon.poll(2 * s)  # 2 rows: below the detector's minimum of 4, dropped
    assert out == [] and mon.skipped == 1 and mon.pending_rows == 0
    both = DriftMonitor(det, window_rows=8, window_seconds=1.0)
    assert len(both.add({"x": rng.normal(size=20)}, time_ns=0)) == 2
    assert len(both.poll(s)) == 1  # the 4 rows left, closed by time
    with pytest.raises(ValueError, match="window_rows or window_seconds"):
        DriftMonitor(det)
    with pytest.raises(ValueError, match="window_rows"):
        DriftMonitor(det, window_rows=2)


def test_for_version_through_the_model_registry(tmp_path: Path) -> None:
    """A reference registered with a version (the real registry on chDB) is what the version's
    detector compares with."""
    from tradecore import store
    from tradecore.inference.registry import ModelRegistry

    rng = np.random.default_rng(13)
    src = tmp_path / "m.onnx"
    src.write_bytes(b"not parsed by the registry")
    with store.connect(store.default_dsn(tmp_path, "models")) as db:
        registry = ModelRegistry(tmp_path / "models", db)
        v = registry.register(
            "pricer",
            src,
            reference={"x": rng.normal(size=(2000, 3)), "price": rng.normal(size=2000)},
            actor="test",
        )
        version = registry.resolve("pricer", str(v))
    det = DriftDetector.for_version(version, tests=["ks"])
    assert det.feature_names == ("x[0]", "x[1]", "x[2]", "price")
    window = tensor_features({"x": rng.normal(size=(500, 3)), "price": rng.normal(2, 1, size=500)})
    assert det.check(window).drifted_features == ("price",)
