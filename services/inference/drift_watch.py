"""Drift watch: windows of each served model version's inputs and outputs tested against the
reference stored with the version, a ``DriftAlert`` on ``model.drift.<model>`` for a window
that drifted, and an optional retrain hook.

The inference path calls :meth:`DriftWatch.record` with each request's tensors: for a watched
version it only appends them to a bounded list (a full list drops the batch and counts it in
``dropped``), so the request pays for no test and, below WAKE_AT batches, not even for waking
the worker, which takes what is pending every DRAIN_S. The worker flattens the batches into
feature columns (:func:`tradecore.inference.drift.tensor_features`), feeds the version's
:class:`~tradecore.inference.drift.DriftMonitor` and, for each window it closes, runs the
tests (C++ kernels, GIL released), publishes the alert through the service's :class:`Bus`
(on its event loop) and starts the retrain hook, at most once per ``cooldown_s`` per model.

Configuration (:meth:`DriftWatchSettings.from_env`):

=========================================  ========  =============================================
variable                                   default   meaning
=========================================  ========  =============================================
TRADECORE_INFERENCE_RETRAIN                off       ``off``, or a command line started (not
                                                     waited for) on an alert, with
                                                     TRADECORE_DRIFT_MODEL, TRADECORE_DRIFT_VERSION
                                                     and TRADECORE_DRIFT_FEATURES in its
                                                     environment
TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S     3600      the least time between two retrain starts of
                                                     one model
TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS      10000     rows per window (0: by time only)
TRADECORE_INFERENCE_DRIFT_WINDOW_S         0         seconds per window (0: by rows only)
=========================================  ========  =============================================
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

import numpy.typing as npt
from tradecore.inference.drift import DriftDetector, DriftMonitor, DriftReport, tensor_features
from tradecore.subjects import model_drift_subject, validate_token
from tradecore_api.events.v1 import inference_pb2
from tradecore_services.common import nats_rpc
from tradecore_services.common.bus import Bus

log = logging.getLogger("tradecore.inference.drift")

RetrainHook = Callable[[str, int, DriftReport], None]
POLL_S = 0.5  # how often the worker closes windows whose time is up when no batch arrives
MAX_PENDING = 1024  # batches queued for the worker before record() drops
DRAIN_S = 0.02  # the worker takes the pending batches at least this often
WAKE_AT = 64  # pending batches that wake the worker at once


class CommandHook:
    """A retrain hook that starts a command line (not waiting for it) with the model, version
    and drifted features in its environment; finished runs are reaped at the next start."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("TRADECORE_INFERENCE_RETRAIN: the command line is empty")
        self._running: list[subprocess.Popen[bytes]] = []

    def __call__(self, model: str, version: int, report: DriftReport) -> None:
        self._running = [p for p in self._running if p.poll() is None]
        env = {
            **os.environ,
            "TRADECORE_DRIFT_MODEL": model,
            "TRADECORE_DRIFT_VERSION": str(version),
            "TRADECORE_DRIFT_FEATURES": ",".join(report.drifted_features),
        }
        self._running.append(subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL))

    def wait(self, timeout: float) -> list[int]:
        """Wait for the runs started so far (each up to ``timeout`` s); their exit codes."""
        codes = [p.wait(timeout) for p in self._running]
        self._running = []
        return codes


@dataclass(frozen=True, slots=True)
class DriftWatchSettings:
    """The watch's settings from ``TRADECORE_INFERENCE_*`` (see the module docstring)."""

    retrain: str = "off"
    cooldown_s: float = 3600.0
    window_rows: int = 10_000
    window_seconds: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DriftWatchSettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(name, str(default))
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number (got {raw!r})") from None
            if not (value >= 0 and value != float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0 (got {raw!r})")
            return value

        rows = number("TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS", 10_000)
        if rows != int(rows):
            raise ValueError("TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS must be a whole number")
        s = cls(
            retrain=env.get("TRADECORE_INFERENCE_RETRAIN", "off").strip() or "off",
            cooldown_s=number("TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S", 3600.0),
            window_rows=int(rows),
            window_seconds=number("TRADECORE_INFERENCE_DRIFT_WINDOW_S", 0.0),
        )
        if s.window_rows == 0 and s.window_seconds == 0:
            raise ValueError(
                "TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS and TRADECORE_INFERENCE_DRIFT_WINDOW_S "
                "cannot both be 0"
            )
        return s

    def retrain_hook(self) -> RetrainHook | None:
        """The configured hook: None for ``off``, else a :class:`CommandHook`."""
        return None if self.retrain.lower() == "off" else CommandHook(self.retrain)


def alert_of(
    model: str, version: int, report: DriftReport, *, retrain: bool, sequence: int
) -> inference_pb2.DriftAlert:
    """The DriftAlert event of one window's report."""
    w = report.window
    alert = inference_pb2.DriftAlert(
        model=model,
        version=version,
        first_row=w.first_row,
        rows=w.rows,
        start_time_ns=w.start_time_ns,
        end_time_ns=w.end_time_ns,
        drifted=report.drifted,
        drifted_features=list(report.drifted_features),
        features=report.features,
        retrain_triggered=retrain,
        event_time_ns=time.time_ns(),
        sequence=sequence,
    )
    for r in report.results:
        res = alert.results.add(
            feature=r.feature,
            test=r.test,
            statistic=r.statistic,
            threshold=r.threshold,
            drifted=r.drifted,
        )
        if r.p_value is not None:
            res.p_value = r.p_value
        if r.adjusted_p_value is not None:
            res.adjusted_p_value = r.adjusted_p_value
    return alert


class DriftWatch:
    """The drift monitors of the served model versions, tested off the request path.

    ``retrain``: called as ``retrain(model, version, report)`` on the worker thread for a
    drifted window, unless it was called for the same model less than ``cooldown_s`` ago.
    ``publish_all``: publish a DriftAlert for every window (``drifted`` false for the quiet
    ones) instead of only for those that drifted."""

    def __init__(
        self,
        bus: Bus,
        *,
        window_rows: int | None = 10_000,
        window_seconds: float | None = None,
        retrain: RetrainHook | None = None,
        cooldown_s: float = 3600.0,
        publish_all: bool = False,
        max_pending: int = MAX_PENDING,
        on_report: Callable[[str, int, DriftReport], None] | None = None,
    ) -> None:
        if window_rows is None and window_seconds is None:
            raise ValueError("window_rows or window_seconds must be set")
        if not cooldown_s >= 0:
            raise ValueError("cooldown_s must be >= 0")
        self.bus = bus
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self.retrain = retrain
        self.cooldown_s = float(cooldown_s)
        self.publish_all = publish_all
        #: Called with every tested window (drifted or not) on the worker thread, e.g. to
        #: plot the scores on the monitoring page; its failures are logged, never raised.
        self.on_report = on_report
        self.dropped = 0  # batches record() could not queue
        self.failed_windows = 0  # windows whose tests raised (logged)
        self.alerts = 0
        self._max_pending = max_pending
        self._pending: deque[tuple[str, int, object, object, int]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._monitors: dict[tuple[str, int], DriftMonitor] = {}
        self._lock = threading.Lock()
        self._last_retrain: dict[str, float] = {}
        self._sequence: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        bus: Bus,
        settings: DriftWatchSettings,
        on_report: Callable[[str, int, DriftReport], None] | None = None,
    ) -> DriftWatch:
        return cls(
            bus,
            on_report=on_report,
            window_rows=settings.window_rows or None,
            window_seconds=settings.window_seconds or None,
            retrain=settings.retrain_hook(),
            cooldown_s=settings.cooldown_s,
        )

    # ------------------------------------------------------------------ registration
    def watch(self, model: str, version: int, detector: DriftDetector) -> None:
        """Monitor ``model`` ``version`` against ``detector`` (replacing any earlier one)."""
        validate_token("model", model)
        monitor = DriftMonitor(
            detector, window_rows=self.window_rows, window_seconds=self.window_seconds
        )
        with self._lock:
            self._monitors[(model, int(version))] = monitor

    def unwatch(self, model: str, version: int) -> None:
        with self._lock:
            self._monitors.pop((model, int(version)), None)

    def watching(self, model: str, version: int) -> bool:
        with self._lock:
            return (model, int(version)) in self._monitors

    # ------------------------------------------------------------------ the request path
    def record(
        self,
        model: str,
        version: int,
        inputs: Mapping[str, npt.ArrayLike],
        outputs: Mapping[str, npt.ArrayLike],
    ) -> None:
        """Queue one batch of a watched version's inputs and outputs (arrays the caller no
        longer changes); returns at once, and at once too for a version nobody watches."""
        if (model, version) not in self._monitors:
            return
        pending = self._pending
        if len(pending) >= self._max_pending:
            self.dropped += 1
            return
        pending.append((model, version, inputs, outputs, time.time_ns()))
        if len(pending) >= WAKE_AT:
            self._wake.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="drift-watch", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(thread.join)
        self._thread = None

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        polled = time.monotonic()
        while True:
            # Every DRAIN_S while a version is watched (no wake-up per request), else only to
            # close windows by time.
            self._wake.wait(DRAIN_S if self._monitors else POLL_S)
            self._wake.clear()
            stopping = self._stopping  # what was recorded before stop() is still taken
            while self._pending:
                self._take(*self._pending.popleft())
            if stopping:
                return
            if time.monotonic() - polled >= POLL_S:
                polled = time.monotonic()
                self._poll()

    def _take(self, model: str, version: int, inputs: object, outputs: object, t: int) -> None:
        """One recorded batch into its version's monitor; the windows it closes handled."""
        with self._lock:
            monitor = self._monitors.get((model, version))
        if monitor is None:
            return
        try:
            features = tensor_features(inputs)  # type: ignore[arg-type]
            out = tensor_features(outputs)  # type: ignore[arg-type]
            clash = features.keys() & out.keys()
            if clash:
                raise ValueError(f"{sorted(clash)[0]!r} is both an input and an output")
            features.update(out)
            reports = monitor.add(features, t)
        except ValueError as exc:
            self.failed_windows += 1
            log.warning("drift %s v%s: batch not monitored: %s", model, version, exc)
            return
        for report in reports:
            self._handle(model, version, report)

    def _poll(self) -> None:
        now = time.time_ns()
        with self._lock:
            monitors = list(self._monitors.items())
        for (model, version), monitor in monitors:
            try:
                reports = monitor.poll(now)
            except ValueError as exc:
                self.failed_windows += 1
                log.warning("drift %s v%s: window not tested: %s", model, version, exc)
                continue
            for report in reports:
                self._handle(model, version, report)

    def _handle(self, model: str, version: int, report: DriftReport) -> None:
        if self.on_report is not None:
            try:
                self.on_report(model, version, report)
            except Exception:
                log.exception("drift %s v%s: the report callback failed", model, version)
        retrain = False
        if report.drifted and self.retrain is not None:
            now = time.monotonic()
            last = self._last_retrain.get(model)
            if last is None or now - last >= self.cooldown_s:
                self._last_retrain[model] = now
                retrain = True
                try:
                    self.retrain(model, version, report)
                except Exception:
                    log.exception("drift %s v%s: the retrain hook failed", model, version)
        if not (report.drifted or self.publish_all):
            return
        seq = self._sequence.get(model, 0) + 1
        self._sequence[model] = seq
        alert = alert_of(model, version, report, retrain=retrain, sequence=seq)
        if report.drifted:
            self.alerts += 1
            log.warning(
                "drift %s v%s: rows %d-%d drifted (%s)",
                model,
                version,
                report.window.first_row,
                report.window.first_row + report.window.rows - 1,
                ", ".join(report.drifted_features) or "joint",
            )
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(
            self._publish(model_drift_subject(model), alert.SerializeToString()), loop
        )
        fut.add_done_callback(_log_failure)

    async def _publish(self, subject: str, data: bytes) -> None:
        nc = self.bus.nc
        if nc is None:
            log.warning("drift alert on %s not published: NATS not connected yet", subject)
            return
        await nats_rpc.publish(nc, subject, data)


def _log_failure(fut: Future[None]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("drift alert not published: %s", exc)
