"""Live model statistics for the monitoring page: a thread-safe recorder of inferences and drift
scores in fixed memory.

Each model version that serves in a role (``champion``, ``challenger``, ``shadow`` or ``""``) is
one *series*: a ring of time buckets (``bucket_s`` wide, ``window_s`` long; 1 s over 10 min by
default). A bucket holds the request and error counts, the batch-size sum and maximum, the
latency sum, minimum and maximum, and a log-linear latency histogram (HDR style: 16 sub-bins per
power of two from 2**-20 s to 128 s, 432 bins), so percentiles cost no per-sample storage and
are exact to the bin: a reported percentile is within ``LATENCY_RESOLUTION`` (1/32, the half
width of a bin relative to its lower edge) of the sample of nearest rank, clamped to the bucket's
observed minimum and maximum (the first and last bins, open-ended, report those). A series
takes about ``window_s / bucket_s * 1.8 KiB`` (1 MiB for the defaults) whatever the request
rate; at most ``max_series`` series exist.

Drift scores are points ``(t, score, drifted)`` per (model, version, feature, test), at most
``max_drift_points`` each, dropped when older than the window.

:meth:`MonitorRecorder.snapshot` returns everything as a JSON-able dict (schema in
docs/api.md, "Inference: monitoring page"); ``since`` limits it to what changed after a previous
snapshot, so a live page polls or streams increments. Recording is one lock and a few array
updates (about 1 µs; bench/test_bench_monitor.py measures it).

This module never imports gRPC or aiohttp; the page and its routes are
``tradecore_services.inference.monitor_page``.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from math import frexp
from typing import Any

import numpy as np
import numpy.typing as npt

from tradecore.errors import ResourceExhaustedError, quote

SCHEMA = "tradecore.monitor/1"
ROLES = ("champion", "challenger", "shadow", "")
# The percentiles of each bucket and of the whole window.
PERCENTILES = (50.0, 90.0, 99.0)

# Latency histogram: frexp(x) = (m, e) with x = m * 2**e, m in [0.5, 1). Exponents _E_LO.._E_HI
# are kept ([2**-20, 2**7) seconds), each octave split into _SUB equal sub-bins.
_SUB = 16
_E_LO = -19
_E_HI = 7
BINS = (_E_HI - _E_LO + 1) * _SUB
_LOW = 2.0 ** (_E_LO - 1)
LATENCY_RESOLUTION = 1.0 / (2 * _SUB)


def _bin_edges() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    i = np.arange(BINS)
    base = np.ldexp(1.0, i // _SUB + _E_LO - 1)
    j = i % _SUB
    return base * (1 + j / _SUB), base * (1 + (j + 1) / _SUB)


_LOWER, _UPPER = _bin_edges()
# The value a bin reports: its midpoint (at most LATENCY_RESOLUTION from any value in it,
# relative to the value).
_MID = (_LOWER + _UPPER) / 2


def latency_bin(latency_s: float) -> int:
    """The histogram bin of a latency (values below 2**-20 s in the first, above 128 s in the
    last)."""
    if latency_s < _LOW:
        return 0
    m, e = math.frexp(latency_s)
    if e > _E_HI:
        return BINS - 1
    return (e - _E_LO) * _SUB + int((m + m - 1.0) * _SUB)


def _wall_offset() -> float:
    """What to add to the monotonic clock for wall-clock seconds: taken once, so an NTP step
    cannot move samples into old buckets."""
    return time.time() - time.monotonic()


class _Series:
    """One (model, version, role): parallel arrays indexed by ring slot."""

    __slots__ = (
        "batch_max",
        "count",
        "epoch",
        "errors",
        "first_t",
        "hist",
        "lat_max",
        "lat_min",
        "lat_sum",
        "model",
        "role",
        "rows",
        "version",
    )

    def __init__(self, model: str, version: str, role: str, slots: int, first_t: float) -> None:
        self.model = model
        self.version = version
        self.role = role
        self.first_t = first_t
        # epoch[slot]: the absolute bucket number the slot holds (-1: none yet).
        self.epoch = array("q", [-1]) * slots
        self.count = array("q", [0]) * slots
        self.errors = array("q", [0]) * slots
        self.rows = array("q", [0]) * slots
        self.batch_max = array("q", [0]) * slots
        self.lat_sum = array("d", [0.0]) * slots
        self.lat_min = array("d", [math.inf]) * slots
        self.lat_max = array("d", [0.0]) * slots
        self.hist = array("i", [0]) * (slots * BINS)


_ZERO_ROW = array("i", [0]) * BINS


@dataclass
class _Drift:
    model: str
    version: str
    feature: str
    test: str
    # (t, score, drifted, recorded_at)
    points: deque[tuple[float, float, bool, float]] = field(default_factory=deque)


def _text(name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value) or len(value) > 256:
        raise ValueError(f"{name}: a string of 1..256 characters, got {quote(value)}")
    return value


class MonitorRecorder:
    """Thread-safe live statistics of model inferences and drift scores (see the module doc).

    ``clock`` returns seconds on the wall-clock scale (the default never steps back); every
    time in a snapshot is on it."""

    def __init__(
        self,
        *,
        bucket_s: float = 1.0,
        window_s: float = 600.0,
        max_series: int = 64,
        max_drift_series: int = 1024,
        max_drift_points: int = 600,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not (math.isfinite(bucket_s) and bucket_s > 0):
            raise ValueError(f"bucket_s: a positive number of seconds, got {bucket_s!r}")
        if not (math.isfinite(window_s) and window_s >= bucket_s):
            raise ValueError(f"window_s: at least bucket_s ({bucket_s}), got {window_s!r}")
        slots = round(window_s / bucket_s)
        if slots > 100_000:
            raise ValueError(f"window_s / bucket_s: at most 100000 buckets, got {slots}")
        for name, v in (
            ("max_series", max_series),
            ("max_drift_series", max_drift_series),
            ("max_drift_points", max_drift_points),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: a positive integer, got {v!r}")
        self.bucket_s = float(bucket_s)
        self.slots = slots
        self.window_s = slots * self.bucket_s
        self.max_series = max_series
        self.max_drift_series = max_drift_series
        self.max_drift_points = max_drift_points
        # now = _tick() + _offset: the monotonic clock moved to the wall clock's scale, or the
        # caller's clock as it is (one C call per record in the default case).
        self._tick: Callable[[], float] = clock or time.monotonic
        self._offset = 0.0 if clock else _wall_offset()
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._drift: dict[tuple[str, str, str, str], _Drift] = {}

    def _now(self) -> float:
        return self._tick() + self._offset

    def _new_series(self, model: str, version: str, role: str) -> _Series:
        _text("model", model)
        _text("version", version, empty=True)
        if role not in ROLES:
            raise ValueError(f"role: one of {list(ROLES)}, got {quote(role)}")
        with self._lock:
            s = self._series.get((model, version, role))
            if s is None:
                if len(self._series) >= self.max_series:
                    raise ResourceExhaustedError(
                        f"monitor: at most {self.max_series} (model, version, role) series"
                    )
                s = _Series(model, version, role, self.slots, self._now())
                self._series[(model, version, role)] = s
            return s

    def record_inference(
        self,
        model: str,
        version: str,
        role: str,
        latency_s: float,
        batch_size: int,
        ok: bool = True,
    ) -> None:
        """One inference call of ``batch_size`` rows that took ``latency_s`` seconds. ``ok``
        False counts an error; latency and batch statistics cover the successful calls."""
        try:
            good = 0.0 <= latency_s < math.inf
        except TypeError:
            good = False
        if not good:
            raise ValueError(f"latency_s: a finite number >= 0, got {quote(latency_s)}")
        if not (isinstance(batch_size, int) and batch_size >= 0):
            raise ValueError(f"batch_size: an integer >= 0, got {quote(batch_size)}")
        s = self._series.get((model, version, role))
        if s is None:
            s = self._new_series(model, version, role)
        # latency_bin, inline (a function call is a tenth of the whole cost)
        if latency_s < _LOW:
            k = 0
        else:
            m, e = frexp(latency_s)
            k = BINS - 1 if e > _E_HI else (e - _E_LO) * _SUB + int((m + m - 1.0) * _SUB)
        with self._lock:
            b = int((self._tick() + self._offset) // self.bucket_s)
            slot = b % self.slots
            held = s.epoch[slot]
            if held != b:
                if held > b:  # older than the window (only with a clock that steps back)
                    return
                self._reset(s, slot, b)
            s.count[slot] += 1
            if not ok:
                s.errors[slot] += 1
                return
            s.rows[slot] += batch_size
            if batch_size > s.batch_max[slot]:
                s.batch_max[slot] = batch_size
            s.lat_sum[slot] += latency_s
            if latency_s < s.lat_min[slot]:
                s.lat_min[slot] = latency_s
            if latency_s > s.lat_max[slot]:
                s.lat_max[slot] = latency_s
            s.hist[slot * BINS + k] += 1

    @staticmethod
    def _reset(s: _Series, slot: int, b: int) -> None:
        s.epoch[slot] = b
        s.count[slot] = s.errors[slot] = s.rows[slot] = s.batch_max[slot] = 0
        s.lat_sum[slot] = s.lat_max[slot] = 0.0
        s.lat_min[slot] = math.inf
        s.hist[slot * BINS : (slot + 1) * BINS] = _ZERO_ROW

    def record_drift(
        self,
        model: str,
        version: str,
        feature: str,
        test: str,
        score: float,
        drifted: bool,
        t: float | None = None,
    ) -> None:
        """A drift score of ``feature`` by ``test`` (e.g. ``psi``, ``ks``) at time ``t`` (the
        clock's now when None; e.g. the end of the window the score was computed on)."""
        _text("model", model)
        _text("version", version, empty=True)
        _text("feature", feature)
        _text("test", test)
        if not (isinstance(score, int | float) and math.isfinite(score)):
            raise ValueError(f"score: a finite number, got {quote(score)}")
        if t is not None and not (isinstance(t, int | float) and math.isfinite(t)):
            raise ValueError(f"t: a finite time in seconds, got {quote(t)}")
        key = (model, version, feature, test)
        with self._lock:
            now = self._now()
            d = self._drift.get(key)
            if d is None:
                if len(self._drift) >= self.max_drift_series:
                    raise ResourceExhaustedError(
                        f"monitor: at most {self.max_drift_series} drift series"
                    )
                d = self._drift[key] = _Drift(model, version, feature, test)
            pts = d.points
            pts.append((now if t is None else float(t), float(score), bool(drifted), now))
            while pts and (len(pts) > self.max_drift_points or pts[0][3] < now - self.window_s):
                pts.popleft()

    def remove(self, model: str) -> None:
        """Forget every series and drift score of ``model`` (e.g. when it is unloaded)."""
        with self._lock:
            for key in [k for k in self._series if k[0] == model]:
                del self._series[key]
            for dkey in [k for k in self._drift if k[0] == model]:
                del self._drift[dkey]

    def models(self) -> list[str]:
        with self._lock:
            return sorted({k[0] for k in self._series} | {k[0] for k in self._drift})

    def snapshot(self, since: float | None = None, model: str | None = None) -> dict[str, Any]:
        """The statistics as a JSON-able dict (schema ``tradecore.monitor/1``, docs/api.md).

        ``since`` (seconds on the recorder's clock): only the buckets starting at or after the
        start of its bucket, and the drift points recorded at or after it. Passing a previous
        snapshot's ``next_since`` returns everything that changed since that snapshot (the
        bucket that was current then comes again, complete). ``model``: that model only. The
        per-series ``window`` summary always covers the whole window."""
        if since is not None and not (isinstance(since, int | float) and math.isfinite(since)):
            raise ValueError(f"since: a finite time in seconds, got {quote(since)}")
        copies = []
        drifts = []
        with self._lock:
            now = self._now()
            for s in self._series.values():
                if model is None or s.model == model:
                    copies.append(
                        (
                            s,
                            np.array(s.epoch),
                            np.array(s.count),
                            np.array(s.errors),
                            np.array(s.rows),
                            np.array(s.batch_max),
                            np.array(s.lat_sum),
                            np.array(s.lat_min),
                            np.array(s.lat_max),
                            np.frombuffer(s.hist, dtype=np.intc).reshape(self.slots, BINS).copy(),
                        )
                    )
            for d in self._drift.values():
                if model is None or d.model == model:
                    drifts.append((d, list(d.points)))
        nb = int(now // self.bucket_s)
        first = nb - self.slots + 1
        lo = first if since is None else max(first, int(since // self.bucket_s))
        cut = (now - self.window_s) if since is None else max(now - self.window_s, since)
        by_model: dict[str, dict[str, Any]] = {}

        def entry(name: str) -> dict[str, Any]:
            return by_model.setdefault(name, {"name": name, "series": [], "drift": []})

        for s, epoch, count, errors, rows, bmax, lsum, lmin, lmax, hist in copies:
            ok = count - errors
            in_window = (epoch >= first) & (epoch <= nb) & (count > 0)
            sel = np.flatnonzero(in_window & (epoch >= lo))
            sel = sel[np.argsort(epoch[sel])]
            pct = _percentiles(hist[sel], lmin[sel], lmax[sel])
            okn = ok[sel]
            has = okn > 0
            denom = np.where(has, okn, 1)
            buckets = {
                "t": (epoch[sel] * self.bucket_s).tolist(),
                "count": count[sel].tolist(),
                "errors": errors[sel].tolist(),
                "rows": rows[sel].tolist(),
                "batch_mean": _nullable(rows[sel] / denom, has),
                "batch_max": _nullable(bmax[sel], has),
                "latency_mean": _nullable(lsum[sel] / denom, has),
                "latency_min": _nullable(lmin[sel], has),
                "latency_max": _nullable(lmax[sel], has),
            }
            for q, col in zip(PERCENTILES, pct, strict=True):
                buckets[_pname(q)] = _nullable(col, has)
            w = np.flatnonzero(in_window)
            wh = hist[w].sum(axis=0, keepdims=True, dtype=np.int64)
            n_ok = int(ok[w].sum())
            n = int(count[w].sum())
            wmin = float(lmin[w].min()) if n_ok else math.inf
            wmax = float(lmax[w].max()) if n_ok else 0.0
            wpct = _percentiles(wh, np.array([wmin]), np.array([wmax]))
            span = max(self.bucket_s, now - max(first * self.bucket_s, s.first_t))
            latency: dict[str, float | None] = {
                "mean": float(lsum[w].sum()) / n_ok if n_ok else None,
                "min": wmin if n_ok else None,
                "max": wmax if n_ok else None,
            }
            for q, col in zip(PERCENTILES, wpct, strict=True):
                latency[_pname(q)] = float(col[0]) if n_ok else None
            window = {
                "count": n,
                "errors": int(errors[w].sum()),
                "error_rate": int(errors[w].sum()) / n if n else None,
                "rows": int(rows[w].sum()),
                "requests_per_s": n / span,
                "rows_per_s": int(rows[w].sum()) / span,
                "batch_mean": int(rows[w].sum()) / n_ok if n_ok else None,
                "batch_max": int(bmax[w].max()) if n_ok else None,
                "latency": latency,
            }
            entry(s.model)["series"].append(
                {"version": s.version, "role": s.role, "buckets": buckets, "window": window}
            )
        for d, pts in drifts:
            keep = sorted(
                (p for p in pts if p[3] >= cut and p[3] >= now - self.window_s),
                key=lambda p: p[0],
            )
            entry(d.model)["drift"].append(
                {
                    "version": d.version,
                    "feature": d.feature,
                    "test": d.test,
                    "t": [p[0] for p in keep],
                    "score": [p[1] for p in keep],
                    "drifted": [p[2] for p in keep],
                }
            )
        models = [by_model[k] for k in sorted(by_model)]
        for m in models:
            m["series"].sort(key=lambda x: (ROLES.index(x["role"]), x["version"]))
            m["drift"].sort(key=lambda x: (x["version"], x["feature"], x["test"]))
        return {
            "schema": SCHEMA,
            "now": now,
            "since": lo * self.bucket_s,
            "next_since": nb * self.bucket_s,
            "bucket_s": self.bucket_s,
            "window_s": self.window_s,
            "percentiles": list(PERCENTILES),
            "latency_resolution": LATENCY_RESOLUTION,
            "models": models,
        }


def _pname(q: float) -> str:
    return f"p{q:g}".replace(".", "_")


def _nullable(values: npt.NDArray[Any], has: npt.NDArray[np.bool_]) -> list[Any]:
    return [v if h else None for v, h in zip(values.tolist(), has.tolist(), strict=True)]


def _percentiles(
    hist: npt.NDArray[np.intc], lmin: npt.NDArray[np.float64], lmax: npt.NDArray[np.float64]
) -> list[npt.NDArray[np.float64]]:
    """Per histogram row, each of PERCENTILES by nearest rank: the midpoint of the bin holding
    the sample of rank ceil(q/100 * n) (at least 1), clamped to the row's [min, max]. Rows with
    no samples give NaN (the caller reports None)."""
    rows = hist.shape[0]
    if rows == 0:
        return [np.empty(0) for _ in PERCENTILES]
    cum = np.cumsum(hist, axis=1, dtype=np.int64)
    n = cum[:, -1]
    out = []
    for q in PERCENTILES:
        rank = np.maximum(np.ceil(q / 100.0 * n), 1)
        idx = np.argmax(cum >= rank[:, None], axis=1)
        v = np.clip(_MID[idx], lmin, np.maximum(lmin, lmax))
        # The first and last bins are open-ended (everything below 2**-19 s, above 2**7 s):
        # they report the observed minimum and maximum.
        v = np.where(idx == 0, lmin, np.where(idx == BINS - 1, lmax, v))
        out.append(np.where(n > 0, v, np.nan))
    return out


__all__ = [
    "BINS",
    "LATENCY_RESOLUTION",
    "PERCENTILES",
    "ROLES",
    "SCHEMA",
    "MonitorRecorder",
    "latency_bin",
]
