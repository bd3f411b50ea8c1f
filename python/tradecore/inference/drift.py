"""Drift detection: windows of a model's inputs and outputs against a reference sample stored
with the model version.

:class:`DriftDetector` prepares the reference once (each numeric feature sorted, its
reference-quantile bin edges and bin counts, its moments, a row sample for MMD; each categorical
feature's categories and counts) so that :meth:`DriftDetector.check` of a window costs only the
window's work: one C++ pass per numeric feature (``tradecore._core.drift_compare``: a radix sort
of the window's column and one merge walk with the sorted reference giving the KS statistic and
the Wasserstein-1 distance, then the bin counts; OpenMP over features, GIL released).

Tests (per feature unless said otherwise; ``statistic`` / ``p_value`` / default threshold):

==================  ===================================================  ===========================
``ks``              two-sample Kolmogorov-Smirnov D, p-value from the    p < 0.05 after correction
                    asymptotic Kolmogorov distribution at √(nm/(n+m))·D
``chi2``            chi-square test of homogeneity of the 2 x k table    p < 0.05 after correction
                    (reference and window counts over the reference
                    quantile bins, or over the categories plus one bin
                    for categories the reference lacks)
``psi``             population stability index over the same bins        PSI > 0.2
                    (bin shares floored at 1e-4)
``wasserstein``     Wasserstein-1 distance (the feature's units)         W1 > 0.1 reference std devs
``jensenshannon``   Jensen-Shannon distance of the bin shares            > 0.1
                    (natural log, as ``scipy.spatial.distance``)
``mmd``             linear-time MMD² of all numeric features together    p < 0.05 (one-sided normal)
                    (feature ``"*"``; standardized by the reference,
                    RBF kernel with the median-heuristic bandwidth),
                    on up to ``mmd_max_rows`` evenly spaced rows
==================  ===================================================  ===========================

Categorical features (declared by name) take ``chi2``, ``psi`` and ``jensenshannon``. The
p-values of one test across the features are corrected together (``correction``:
Benjamini-Hochberg ``"bh"``, ``"bonferroni"`` or ``"none"``). A feature drifted when any of
its tests did; the window drifted when at least ``max(1, ceil(drift_share x features))``
features did, or the joint MMD test did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from tradecore import _core
from tradecore.errors import NotFoundError, quote
from tradecore.inference.types import ModelVersion

__all__ = [
    "CATEGORICAL_TESTS",
    "CORRECTIONS",
    "DEFAULT_THRESHOLDS",
    "JOINT",
    "P_VALUE_TESTS",
    "TESTS",
    "DriftDetector",
    "DriftMonitor",
    "DriftReport",
    "TestResult",
    "WindowRange",
    "adjust_p_values",
    "reference_of",
    "tensor_features",
]

TESTS: tuple[str, ...] = ("ks", "chi2", "psi", "wasserstein", "jensenshannon", "mmd")
CATEGORICAL_TESTS: frozenset[str] = frozenset({"chi2", "psi", "jensenshannon"})
P_VALUE_TESTS: frozenset[str] = frozenset({"ks", "chi2", "mmd"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "mmd": 0.05,
    "psi": 0.2,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}
CORRECTIONS: tuple[str, ...] = ("bh", "bonferroni", "none")
Correction = Literal["bh", "bonferroni", "none"]
JOINT = "*"  # the feature name of the multivariate (MMD) test's result
PSI_FLOOR = 1e-4  # bin shares below this count as this in the PSI (an empty bin is not infinite)
BANDWIDTH_ROWS = 1000  # reference rows whose pairwise distances give the MMD bandwidth
_FORMAT = 1  # of a saved reference

Data = Mapping[str, npt.ArrayLike] | npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test of one feature in one window. ``p_value`` and ``adjusted_p_value`` (after the
    correction across features) are None for the distance tests; ``threshold`` is what the
    statistic (distances) or the adjusted p-value was compared with (for ``wasserstein`` in the
    feature's units: the configured number of reference standard deviations)."""

    __test__ = False  # not a pytest class

    feature: str
    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class WindowRange:
    """Where a window lies in its stream: rows ``[first_row, first_row + rows)`` counted from
    the monitor's start, received from ``start_time_ns`` to ``end_time_ns`` (ns since the epoch,
    0 when unknown)."""

    first_row: int = 0
    rows: int = 0
    start_time_ns: int = 0
    end_time_ns: int = 0


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The tests of one window. ``results`` is ordered by test (in the detector's order), then
    by feature."""

    results: tuple[TestResult, ...]
    window: WindowRange
    drifted: bool
    drifted_features: tuple[str, ...]
    features: int

    def result(self, feature: str, test: str) -> TestResult:
        """The result of ``test`` on ``feature`` (KeyError when it was not run)."""
        for r in self.results:
            if r.feature == feature and r.test == test:
                return r
        raise KeyError((feature, test))

    def by_test(self, test: str) -> dict[str, TestResult]:
        """The results of one test by feature."""
        return {r.feature: r for r in self.results if r.test == test}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "window": {
                "first_row": self.window.first_row,
                "rows": self.window.rows,
                "start_time_ns": self.window.start_time_ns,
                "end_time_ns": self.window.end_time_ns,
            },
            "drifted": self.drifted,
            "drifted_features": list(self.drifted_features),
            "features": self.features,
            "results": [
                {
                    "feature": r.feature,
                    "test": r.test,
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "adjusted_p_value": r.adjusted_p_value,
                    "threshold": r.threshold,
                    "drifted": r.drifted,
                }
                for r in self.results
            ],
        }


def adjust_p_values(p: npt.ArrayLike, correction: str) -> npt.NDArray[np.float64]:
    """Adjusted p-values of one family: Benjamini-Hochberg step-up (``"bh"``), Bonferroni, or
    unchanged (``"none"``); a hypothesis is rejected at level α when its adjusted value is
    below α."""
    pv = np.asarray(p, dtype=np.float64)
    k = pv.size
    if correction == "none" or k == 0:
        return pv.copy()
    if correction == "bonferroni":
        return np.minimum(pv * k, 1.0)
    if correction == "bh":
        order = np.argsort(pv, kind="stable")
        scaled = pv[order] * k / np.arange(1, k + 1)
        adj_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(k)
        out[order] = np.minimum(adj_sorted, 1.0)
        return out
    raise ValueError(
        f"correction must be one of {', '.join(CORRECTIONS)} (got {quote(correction)})"
    )


def tensor_features(tensors: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[Any]]:
    """The feature columns of a batch of tensors (first dimension: the batch): a tensor of shape
    ``(b,)`` is the feature ``name``, one of shape ``(b, k, ...)`` the features ``name[0]`` ..
    ``name[K-1]`` of its rows flattened to K values (views, no copy where the layout allows)."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, value in tensors.items():
        a = np.asarray(value)
        if a.ndim == 0:
            raise ValueError(f"{name}: a tensor needs a batch dimension (got a scalar)")
        if a.ndim == 1:
            out[name] = a
            continue
        flat = a.reshape(a.shape[0], -1)
        for i in range(flat.shape[1]):
            out[f"{name}[{i}]"] = flat[:, i]
    return out


def _columns(
    data: Data, names: Sequence[str] | None, what: str
) -> tuple[list[str], list[npt.NDArray[Any]]]:
    """The named 1-D columns of ``data`` (a mapping, or a 2-D array with ``names``) and their
    common length checked; ValueError naming ``what`` and the feature otherwise."""
    if isinstance(data, Mapping):
        keys = [str(k) for k in data]
        cols = [np.asarray(v) for v in data.values()]
        if names is not None:
            missing = [n for n in names if n not in data]
            if missing:
                raise ValueError(f"{what}: feature {quote(missing[0])} is missing")
            extra = [k for k in keys if k not in set(names)]
            if extra:
                raise ValueError(f"{what}: unknown feature {quote(extra[0])}")
            cols = [np.asarray(data[n]) for n in names]
            keys = list(names)
    else:
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise ValueError(
                f"{what}: expected a mapping of columns or a 2-D array (rows x features)"
            )
        if names is None:
            raise ValueError(f"{what}: a 2-D array needs feature_names")
        if arr.shape[1] != len(names):
            raise ValueError(f"{what}: {arr.shape[1]} columns for {len(names)} feature names")
        keys = list(names)
        cols = [arr[:, j] for j in range(arr.shape[1])]
    if not keys:
        raise ValueError(f"{what}: no features")
    for k, c in zip(keys, cols, strict=True):
        if c.ndim != 1:
            raise ValueError(f"{what}: feature {quote(k)} must be 1-D (got shape {c.shape})")
    n = cols[0].shape[0]
    for k, c in zip(keys, cols, strict=True):
        if c.shape[0] != n:
            raise ValueError(
                f"{what}: feature {quote(k)} has {c.shape[0]} rows, {quote(keys[0])} has {n}"
            )
    return keys, cols


def _numeric(col: npt.NDArray[Any], what: str, name: str) -> npt.NDArray[Any]:
    """A float64 or float32 column for the kernels (others converted)."""
    if col.dtype in (np.float64, np.float32):
        return col
    if col.dtype.kind in "biuf":
        return col.astype(np.float64)
    raise ValueError(
        f"{what}: feature {quote(name)} is not numeric (dtype {col.dtype}); declare it categorical"
    )


def _check_bad(bad: npt.NDArray[np.int64], names: Sequence[str], what: str) -> None:
    hit = np.flatnonzero(bad >= 0)
    if hit.size:
        j = int(hit[0])
        raise ValueError(
            f"{what}: feature {quote(names[j])} row {int(bad[j])} is not a finite number"
        )


def _first_bad_rows(cols: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.int64]:
    """Per column the first row holding NaN or an infinity, else -1."""
    out = np.full(len(cols), -1, dtype=np.int64)
    for j, c in enumerate(cols):
        ok = np.isfinite(c)
        if not ok.all():
            out[j] = int(np.argmin(ok))
    return out


def _categories(col: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A categorical column as numbers or text (object arrays become str)."""
    return col.astype(str) if col.dtype.kind in "OSU" else col


def _chi2(
    ref: npt.NDArray[np.int64], win: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chi-square statistics and p-values of the 2 x k homogeneity tables (one per row of the
    count arrays); bins empty in both samples are left out (dof = non-empty bins - 1)."""
    r = ref.astype(np.float64)
    w = win.astype(np.float64)
    m = r.sum(axis=1, keepdims=True)
    n = w.sum(axis=1, keepdims=True)
    col = r + w
    nz = col > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        er = col * m / (m + n)
        ew = col * n / (m + n)
        terms = np.where(nz, (r - er) ** 2 / er + (w - ew) ** 2 / ew, 0.0)
    stat = terms.sum(axis=1)
    dof = nz.sum(axis=1) - 1
    p = np.where(dof > 0, special.chdtrc(np.maximum(dof, 1), stat), 1.0)
    return np.where(dof > 0, stat, 0.0), p


def _shares(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    c = counts.astype(np.float64)
    return np.asarray(c / c.sum(axis=1, keepdims=True), dtype=np.float64)


def _psi(pr: npt.NDArray[np.float64], pw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a = np.maximum(pr, PSI_FLOOR)
    b = np.maximum(pw, PSI_FLOOR)
    return np.asarray(((b - a) * np.log(b / a)).sum(axis=1), dtype=np.float64)


def _jensenshannon(
    pr: npt.NDArray[np.float64], pw: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    mid = (pr + pw) / 2.0
    js = (special.rel_entr(pr, mid).sum(axis=1) + special.rel_entr(pw, mid).sum(axis=1)) / 2.0
    return np.asarray(np.sqrt(np.maximum(js, 0.0)), dtype=np.float64)


@dataclass
class _Reference:
    """What a window is compared with (all derived from the reference sample once)."""

    rows: int
    numeric: list[str]
    categorical: list[str]
    sorted: npt.NDArray[np.float64]  # numeric features x rows, each row sorted
    edges: npt.NDArray[np.float64]  # numeric features x (bins - 1)
    counts: npt.NDArray[np.int64]  # numeric features x bins
    std: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    mmd_sample: npt.NDArray[np.float64]  # rows x numeric features (evenly spaced reference rows)
    gamma: float
    categories: list[npt.NDArray[Any]] = field(default_factory=list)
    category_counts: list[npt.NDArray[np.int64]] = field(default_factory=list)  # k + 1 (unseen)


class DriftDetector:
    """Drift tests of windows against a reference sample.

    ``reference``: a mapping of feature name to 1-D column, or a 2-D array (rows x features)
    with ``feature_names``. ``categorical``: the names of categorical features (any dtype; the
    others must be numeric). ``tests``: a subset of :data:`TESTS`; ``thresholds``: overrides of
    :data:`DEFAULT_THRESHOLDS`; ``correction``: ``"bh"``, ``"bonferroni"`` or ``"none"``;
    ``bins``: reference-quantile bins of a numeric feature for ``chi2``, ``psi`` and
    ``jensenshannon``; ``mmd_max_rows``: the rows of the reference and of a window the MMD test
    samples; ``threads``: OpenMP threads of the kernels (0: all)."""

    def __init__(
        self,
        reference: Data,
        feature_names: Sequence[str] | None = None,
        *,
        categorical: Iterable[str] = (),
        tests: Iterable[str] = TESTS,
        thresholds: Mapping[str, float] | None = None,
        correction: str = "bh",
        bins: int = 10,
        drift_share: float = 0.0,
        mmd_max_rows: int = 100_000,
        threads: int = 0,
    ) -> None:
        self.tests = tuple(dict.fromkeys(tests))
        for t in self.tests:
            if t not in TESTS:
                raise ValueError(f"tests: {quote(t)} is not one of {', '.join(TESTS)}")
        if not self.tests:
            raise ValueError("tests: at least one test is needed")
        if correction not in CORRECTIONS:
            raise ValueError(
                f"correction must be one of {', '.join(CORRECTIONS)} (got {quote(correction)})"
            )
        self.correction = correction
        self.thresholds = dict(DEFAULT_THRESHOLDS)
        for k, v in (thresholds or {}).items():
            if k not in TESTS:
                raise ValueError(f"thresholds: {quote(k)} is not one of {', '.join(TESTS)}")
            fv = float(v)
            if not math.isfinite(fv) or fv < 0 or (k in P_VALUE_TESTS and fv > 1):
                raise ValueError(
                    f"thresholds[{k}] must be a finite number >= 0 (<= 1 for a p-value)"
                )
            self.thresholds[k] = fv
        if not (isinstance(bins, int) and 2 <= bins <= 1000):
            raise ValueError(f"bins must be an integer in [2, 1000] (got {quote(bins)})")
        if not (0.0 <= drift_share <= 1.0):
            raise ValueError(f"drift_share must be in [0, 1] (got {quote(drift_share)})")
        if not (isinstance(mmd_max_rows, int) and mmd_max_rows >= 4):
            raise ValueError(f"mmd_max_rows must be an integer >= 4 (got {quote(mmd_max_rows)})")
        self.bins = bins
        self.drift_share = float(drift_share)
        self.mmd_max_rows = mmd_max_rows
        self.threads = int(threads)
        names, cols = _columns(reference, feature_names, "reference")
        if len(set(names)) != len(names):
            raise ValueError("reference: feature names must be unique")
        if JOINT in names:
            raise ValueError(f"reference: {JOINT!r} is reserved (the joint MMD test)")
        cat = list(dict.fromkeys(categorical))
        for c in cat:
            if c not in names:
                raise ValueError(f"categorical: {quote(c)} is not a feature of the reference")
        if cols[0].shape[0] < 2:
            raise ValueError("reference: needs at least 2 rows")
        self.feature_names: tuple[str, ...] = tuple(names)
        self._ref = self._prepare(names, cols, set(cat))

    # ------------------------------------------------------------------ reference
    def _prepare(self, names: list[str], cols: list[npt.NDArray[Any]], cat: set[str]) -> _Reference:
        m = int(cols[0].shape[0])
        numeric = [n for n in names if n not in cat]
        categorical = [n for n in names if n in cat]
        by_name = dict(zip(names, cols, strict=True))
        nc = [_numeric(by_name[n], "reference", n) for n in numeric]
        q = np.arange(1, self.bins) / self.bins
        if nc:
            srt, bad = _core.drift_sort_columns(nc, self.threads)
            _check_bad(bad, numeric, "reference")
            # Quantiles by linear interpolation between order statistics (numpy's default).
            pos = q * (m - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, m - 1)
            frac = pos - lo
            edges = np.ascontiguousarray(srt[:, lo] + frac * (srt[:, hi] - srt[:, lo]))
            counts = _core.drift_bin_counts(srt, edges, self.threads)
            mean = srt.mean(axis=1)
            std = srt.std(axis=1)
            take = np.linspace(0, m - 1, min(m, self.mmd_max_rows)).astype(np.int64)
            sample = np.column_stack([np.asarray(c[take], dtype=np.float64) for c in nc])
        else:
            srt = np.empty((0, m))
            edges = np.empty((0, self.bins - 1))
            counts = np.empty((0, self.bins), dtype=np.int64)
            mean = std = np.empty(0)
            sample = np.empty((0, 0))
        ref = _Reference(
            rows=m,
            numeric=numeric,
            categorical=categorical,
            sorted=srt,
            edges=edges,
            counts=counts,
            std=std,
            mean=mean,
            mmd_sample=sample,
            gamma=1.0,
        )
        ref.gamma = self._bandwidth(ref)
        for n in categorical:
            col = _categories(by_name[n])
            try:
                cats, cnt = np.unique(col, return_counts=True)
            except TypeError:
                raise ValueError(
                    f"reference: feature {quote(n)} mixes incomparable values"
                ) from None
            ref.categories.append(cats)
            ref.category_counts.append(np.append(cnt, 0).astype(np.int64))
        return ref

    @staticmethod
    def _inv_scale(ref: _Reference) -> npt.NDArray[np.float64]:
        return np.where(ref.std > 0, 1.0 / np.where(ref.std > 0, ref.std, 1.0), 1.0)

    def _bandwidth(self, ref: _Reference) -> float:
        """γ of the RBF kernel exp(-γ |a - b|²) by the median heuristic: σ = the median
        distance between standardized reference rows, γ = 1 / (2σ²)."""
        s = ref.mmd_sample
        if s.shape[1] == 0 or s.shape[0] < 2:
            return 1.0
        take = np.linspace(0, s.shape[0] - 1, min(s.shape[0], BANDWIDTH_ROWS)).astype(np.int64)
        z = (s[take] - ref.mean) * self._inv_scale(ref)
        sq = (z * z).sum(axis=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        iu = np.triu_indices(len(take), k=1)
        med = float(np.median(np.maximum(d2[iu], 0.0)))
        return 1.0 / (2.0 * med) if med > 0 else 1.0

    # ------------------------------------------------------------------ properties
    @property
    def reference_rows(self) -> int:
        return self._ref.rows

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(self._ref.numeric)

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(self._ref.categorical)

    @property
    def min_rows(self) -> int:
        """The fewest rows a window may have (4 with the MMD test: two pairs)."""
        return 4 if "mmd" in self.tests and self._ref.numeric else 1

    # ------------------------------------------------------------------ check
    def check(self, window: Data, window_range: WindowRange | None = None) -> DriftReport:
        """The tests of one window (same features as the reference; ValueError naming the
        feature for a missing, unknown, non-numeric or non-finite one)."""
        names, cols = _columns(window, self.feature_names, "window")
        n = int(cols[0].shape[0])
        if n < self.min_rows:
            raise ValueError(f"window: needs at least {self.min_rows} rows (got {n})")
        ref = self._ref
        by_name = dict(zip(names, cols, strict=True))
        wr = window_range if window_range is not None else WindowRange(rows=n)
        stats: dict[str, dict[str, float]] = {t: {} for t in self.tests}
        pvals: dict[str, dict[str, float]] = {t: {} for t in self.tests if t in P_VALUE_TESTS}
        thresholds: dict[tuple[str, str], float] = {}
        m = ref.rows
        if ref.numeric:
            nc = [_numeric(by_name[f], "window", f) for f in ref.numeric]
            if set(self.tests) <= {"mmd"}:  # no per-feature test: only the finiteness check
                _check_bad(_first_bad_rows(nc), ref.numeric, "window")
                ks = w1 = np.empty(0)
                counts = np.empty((0, self.bins), dtype=np.int64)
            else:
                ks, w1, counts, bad = _core.drift_compare(nc, ref.sorted, ref.edges, self.threads)
                _check_bad(bad, ref.numeric, "window")
            if "ks" in self.tests:
                en = m * n / (m + n)
                p = special.kolmogorov(np.sqrt(en) * ks)
                for f, s, pv in zip(ref.numeric, ks, p, strict=True):
                    stats["ks"][f] = float(s)
                    pvals["ks"][f] = float(pv)
            if "wasserstein" in self.tests:
                for f, s, sd in zip(ref.numeric, w1, ref.std, strict=True):
                    stats["wasserstein"][f] = float(s)
                    thresholds[(f, "wasserstein")] = self.thresholds["wasserstein"] * float(sd)
            self._binned(ref.numeric, ref.counts, counts, stats, pvals)
            if "mmd" in self.tests:
                pairs = min(ref.mmd_sample.shape[0], n, self.mmd_max_rows) // 2
                mean, var, pairs, _, _ = _core.drift_mmd_linear(
                    [ref.mmd_sample[:, j] for j in range(ref.mmd_sample.shape[1])],
                    nc,
                    ref.mean,
                    self._inv_scale(ref),
                    ref.gamma,
                    pairs,
                    self.threads,
                )
                if var > 0:
                    p_mmd = float(special.ndtr(-mean / math.sqrt(var / pairs)))
                else:
                    p_mmd = 0.0 if mean > 0 else 1.0
                stats["mmd"][JOINT] = float(mean)
                pvals["mmd"][JOINT] = p_mmd
        if ref.categorical:
            rc, wc = [], []
            k_max = max(len(c) for c in ref.categories) + 1
            for f, cats, cnt in zip(
                ref.categorical, ref.categories, ref.category_counts, strict=True
            ):
                col = _categories(by_name[f])
                try:
                    idx = np.searchsorted(cats, col)
                    idx_c = np.minimum(idx, len(cats) - 1)
                    seen = cats[idx_c] == col
                except (TypeError, np.exceptions.DTypePromotionError):
                    raise ValueError(
                        f"window: feature {quote(f)} holds values not comparable with the "
                        f"reference's categories ({cats.dtype})"
                    ) from None
                idx = np.where(seen, idx_c, len(cats))
                wcount = np.bincount(idx, minlength=len(cats) + 1)
                # Pad to a common width: extra bins are empty in both samples (no effect).
                rc.append(np.pad(cnt, (0, k_max - cnt.size)))
                wc.append(np.pad(wcount, (0, k_max - wcount.size)))
            self._binned(ref.categorical, np.array(rc), np.array(wc), stats, pvals)
        return self._report(stats, pvals, thresholds, wr)

    def _binned(
        self,
        features: list[str],
        rc: npt.NDArray[np.int64],
        wc: npt.NDArray[np.int64],
        stats: dict[str, dict[str, float]],
        pvals: dict[str, dict[str, float]],
    ) -> None:
        if "chi2" in self.tests:
            s, p = _chi2(rc, wc)
            for f, sv, pv in zip(features, s, p, strict=True):
                stats["chi2"][f] = float(sv)
                pvals["chi2"][f] = float(pv)
        if "psi" in self.tests or "jensenshannon" in self.tests:
            pr, pw = _shares(rc), _shares(wc)
            if "psi" in self.tests:
                for f, v in zip(features, _psi(pr, pw), strict=True):
                    stats["psi"][f] = float(v)
            if "jensenshannon" in self.tests:
                for f, v in zip(features, _jensenshannon(pr, pw), strict=True):
                    stats["jensenshannon"][f] = float(v)

    def _report(
        self,
        stats: dict[str, dict[str, float]],
        pvals: dict[str, dict[str, float]],
        thresholds: dict[tuple[str, str], float],
        wr: WindowRange,
    ) -> DriftReport:
        results: list[TestResult] = []
        drifted_features: set[str] = set()
        joint = False
        for t in self.tests:
            feats = list(stats[t])
            if t in P_VALUE_TESTS:
                p = np.array([pvals[t][f] for f in feats])
                adj = adjust_p_values(p, self.correction)
                alpha = self.thresholds[t]
                for f, pv, av in zip(feats, p, adj, strict=True):
                    d = bool(av < alpha)
                    results.append(TestResult(f, t, stats[t][f], float(pv), float(av), alpha, d))
                    if d:
                        if f == JOINT:
                            joint = True
                        else:
                            drifted_features.add(f)
            else:
                for f in feats:
                    th = thresholds.get((f, t), self.thresholds[t])
                    d = bool(stats[t][f] > th)
                    results.append(TestResult(f, t, stats[t][f], None, None, th, d))
                    if d:
                        drifted_features.add(f)
        nf = len(self.feature_names)
        need = max(1, math.ceil(self.drift_share * nf))
        ordered = tuple(f for f in self.feature_names if f in drifted_features)
        return DriftReport(
            results=tuple(results),
            window=wr,
            drifted=joint or len(ordered) >= need,
            drifted_features=ordered,
            features=nf,
        )

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write the prepared reference and the configuration to ``path`` (``.npz``)."""
        ref = self._ref
        config = {
            "format": _FORMAT,
            "feature_names": list(self.feature_names),
            "numeric": ref.numeric,
            "categorical": ref.categorical,
            "rows": ref.rows,
            "tests": list(self.tests),
            "thresholds": self.thresholds,
            "correction": self.correction,
            "bins": self.bins,
            "drift_share": self.drift_share,
            "mmd_max_rows": self.mmd_max_rows,
            "gamma": ref.gamma,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "config": np.array(json.dumps(config)),
            "sorted": ref.sorted,
            "edges": ref.edges,
            "counts": ref.counts,
            "std": ref.std,
            "mean": ref.mean,
            "mmd_sample": ref.mmd_sample,
        }
        for i, (cats, cnt) in enumerate(zip(ref.categories, ref.category_counts, strict=True)):
            arrays[f"categories_{i}"] = cats
            arrays[f"category_counts_{i}"] = cnt
        p = Path(path)
        with p.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        return p

    @classmethod
    def load(cls, path: str | Path, *, threads: int = 0) -> DriftDetector:
        """A detector from a file written by :meth:`save` (NotFoundError when there is none)."""
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"no drift reference at {p}")
        with np.load(p, allow_pickle=False) as z:
            config = json.loads(str(z["config"]))
            if config.get("format") != _FORMAT:
                raise ValueError(f"{p}: unknown drift reference format {config.get('format')!r}")
            ref = _Reference(
                rows=int(config["rows"]),
                numeric=list(config["numeric"]),
                categorical=list(config["categorical"]),
                sorted=z["sorted"],
                edges=z["edges"],
                counts=z["counts"],
                std=z["std"],
                mean=z["mean"],
                mmd_sample=z["mmd_sample"],
                gamma=float(config["gamma"]),
            )
            for i in range(len(ref.categorical)):
                ref.categories.append(z[f"categories_{i}"])
                ref.category_counts.append(z[f"category_counts_{i}"])
        self = cls.__new__(cls)
        self.tests = tuple(config["tests"])
        self.thresholds = {k: float(v) for k, v in config["thresholds"].items()}
        self.correction = config["correction"]
        self.bins = int(config["bins"])
        self.drift_share = float(config["drift_share"])
        self.mmd_max_rows = int(config["mmd_max_rows"])
        self.threads = int(threads)
        self.feature_names = tuple(config["feature_names"])
        self._ref = ref
        return self

    @classmethod
    def for_version(cls, version: ModelVersion, **options: Any) -> DriftDetector:
        """The detector of a model version against the reference data registered with it
        (:func:`reference_of`); ``categorical`` defaults to the comma-separated feature names
        of the version's ``drift_categorical`` config entry, the other ``options`` are the
        constructor's."""
        if "categorical" not in options:
            raw = version.config.get("drift_categorical", "")
            options["categorical"] = [c.strip() for c in raw.split(",") if c.strip()]
        return cls(reference_of(version), **options)


def reference_of(version: ModelVersion) -> dict[str, npt.NDArray[Any]]:
    """The feature columns of the reference data stored with a model version (the registry's
    ``.npz`` of tensor name to array, named by ``config["reference"]``), flattened by
    :func:`tensor_features`; NotFoundError when the version has none."""
    path = version.config.get("reference")
    if not path or not Path(path).is_file():
        raise NotFoundError(
            f"version: model {version.name!r} version {version.version} has no reference data"
        )
    with np.load(path, allow_pickle=False) as npz:
        return tensor_features({k: npz[k] for k in npz.files})


class DriftMonitor:
    """Rows in, a report per full window out.

    A window closes after ``window_rows`` rows (a batch that crosses the boundary is split) or,
    with ``window_seconds``, once a batch arrives at or after the window's start plus that
    duration (the window then holds the rows before that batch) or :meth:`poll` is called
    then. Either or both may be set. A window closed by time with fewer rows than the detector
    needs (:attr:`DriftDetector.min_rows`) is dropped and counted in :attr:`skipped`."""

    def __init__(
        self,
        detector: DriftDetector,
        *,
        window_rows: int | None = None,
        window_seconds: float | None = None,
    ) -> None:
        if window_rows is None and window_seconds is None:
            raise ValueError("window_rows or window_seconds must be set")
        if window_rows is not None and not (
            isinstance(window_rows, int) and window_rows >= detector.min_rows
        ):
            raise ValueError(f"window_rows must be an integer >= {detector.min_rows}")
        if window_seconds is not None and not (
            math.isfinite(window_seconds) and window_seconds > 0
        ):
            raise ValueError("window_seconds must be a positive number")
        self.detector = detector
        self.window_rows = window_rows
        self.window_ns = None if window_seconds is None else int(window_seconds * 1e9)
        self.skipped = 0
        self._chunks: list[list[npt.NDArray[Any]]] = []
        self._rows = 0  # in the open window
        self._first_row = 0  # of the open window, counted from the start
        self._start_ns = 0  # of the open window (0: no row yet)
        self._end_ns = 0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def add(self, rows: Data, time_ns: int) -> list[DriftReport]:
        """Append a batch received at ``time_ns`` (ns since the epoch) and return the reports
        of the windows it closed."""
        _, cols = _columns(rows, self.detector.feature_names, "rows")
        reports = self.poll(time_ns)
        n = int(cols[0].shape[0])
        start = 0
        while start < n:
            take = n - start
            if self.window_rows is not None:
                take = min(take, self.window_rows - self._rows)
            if self._rows == 0:
                self._start_ns = time_ns
            self._chunks.append([c[start : start + take] for c in cols])
            self._rows += take
            self._end_ns = time_ns
            start += take
            if self.window_rows is not None and self._rows >= self.window_rows:
                reports.extend(self._close())
        return reports

    def poll(self, now_ns: int) -> list[DriftReport]:
        """Close the open window when its time is up at ``now_ns``."""
        if self.window_ns is None or self._rows == 0:
            return []
        if now_ns - self._start_ns >= self.window_ns:
            return self._close()
        return []

    def flush(self) -> list[DriftReport]:
        """Close the open window now, whatever its size (dropped when below the minimum)."""
        return self._close() if self._rows else []

    def _close(self) -> list[DriftReport]:
        chunks, rows = self._chunks, self._rows
        wr = WindowRange(self._first_row, rows, self._start_ns, self._end_ns)
        self._chunks, self._rows = [], 0
        self._first_row += rows
        if rows < self.detector.min_rows:
            self.skipped += 1
            return []
        names = self.detector.feature_names
        window = {
            f: chunks[0][j] if len(chunks) == 1 else np.concatenate([c[j] for c in chunks])
            for j, f in enumerate(names)
        }
        return [self.detector.check(window, wr)]
