"""services/inference/drift_watch.py against a real nats-server: a drifted window publishes a
DriftAlert on model.drift.<model>, a quiet one publishes nothing, the retrain hook runs once per
cooldown (a callable and the configured command line), bad batches do not stop the worker."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import numpy as np
import pytest
from nats.aio.msg import Msg
from tradecore.inference.drift import DriftDetector, DriftReport
from tradecore.subjects import model_drift_subject
from tradecore_api.events.v1 import inference_pb2
from tradecore_services.common.bus import Bus
from tradecore_services.inference.drift_watch import (
    CommandHook,
    DriftWatch,
    DriftWatchSettings,
)
from tradecore_services.mesh.components import nats_server_path

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 30.0  # an upper bound for an alert to arrive, not a timing assertion
ROWS = 400


@pytest.fixture
def nats_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_path(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def _detector(seed: int) -> DriftDetector:
    rng = np.random.default_rng(seed)
    return DriftDetector(
        {"x[0]": rng.normal(size=3000), "x[1]": rng.normal(size=3000), "y": rng.normal(size=3000)},
        tests=["ks", "wasserstein"],
    )


def _batch(
    rng: np.random.Generator, shift: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return (
        {"x": rng.normal(shift, 1.0, size=(ROWS, 2))},
        {"y": rng.normal(size=ROWS)},
    )


async def _subscribe(url: str, subject: str) -> tuple[nats.NATS, asyncio.Queue[Msg]]:
    nc = await nats.connect(url)
    got: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        await got.put(msg)

    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    return nc, got


async def _alert(got: asyncio.Queue[Msg]) -> inference_pb2.DriftAlert:
    msg = await asyncio.wait_for(got.get(), WAIT_S)
    alert = inference_pb2.DriftAlert()
    alert.ParseFromString(msg.data)
    assert msg.headers and msg.headers.get("x-request-id")
    return alert


async def _watch(url: str, **kwargs: object) -> tuple[Bus, DriftWatch]:
    bus = Bus(url, "drift-test")
    await bus.start()
    await asyncio.wait_for(bus.connected.wait(), WAIT_S)
    watch = DriftWatch(bus, window_rows=ROWS, **kwargs)  # type: ignore[arg-type]
    await watch.start()
    return bus, watch


def test_alert_published_and_retrain_debounced(nats_url: str) -> None:
    calls: list[tuple[str, int, DriftReport]] = []

    async def main() -> None:
        nc, got = await _subscribe(nats_url, model_drift_subject("pricer"))
        bus, watch = await _watch(
            nats_url, retrain=lambda m, v, r: calls.append((m, v, r)), cooldown_s=3600.0
        )
        try:
            watch.watch("pricer", 2, _detector(1))
            rng = np.random.default_rng(2)
            watch.record("pricer", 2, *_batch(rng, 0.0))  # quiet window: no alert
            watch.record("other", 1, *_batch(rng, 5.0))  # not watched: ignored
            watch.record("pricer", 2, *_batch(rng, 1.0))  # drifted (x only)
            first = await _alert(got)
            watch.record("pricer", 2, *_batch(rng, 1.0))  # drifted again, within the cooldown
            second = await _alert(got)
        finally:
            await watch.stop()
            await bus.stop()
            await nc.close()
        assert got.empty()
        assert (first.model, first.version, first.first_row, first.rows) == (
            "pricer",
            2,
            ROWS,
            ROWS,
        )
        assert first.drifted and list(first.drifted_features) == ["x[0]", "x[1]"]
        assert first.features == 3 and first.sequence == 1 and second.sequence == 2
        assert second.first_row == 2 * ROWS
        assert first.retrain_triggered and not second.retrain_triggered
        ks = {r.feature: r for r in first.results if r.test == "ks"}
        assert ks["x[0]"].drifted and not ks["y"].drifted
        assert ks["y"].HasField("p_value") and ks["y"].HasField("adjusted_p_value")
        w = [r for r in first.results if r.test == "wasserstein"]
        assert w and not any(r.HasField("p_value") for r in w)
        assert first.start_time_ns > 0 and first.end_time_ns >= first.start_time_ns
        assert [(m, v) for m, v, _ in calls] == [("pricer", 2)]
        assert calls[0][2].drifted_features == ("x[0]", "x[1]")

    asyncio.run(main())


def test_retrain_command_without_cooldown_and_bad_batches(nats_url: str, tmp_path: Path) -> None:
    out = tmp_path / "retrain.log"
    script = (
        "import os, pathlib; p = pathlib.Path(os.environ['OUT']);"
        "p.open('a').write(os.environ['TRADECORE_DRIFT_MODEL'] + ' '"
        " + os.environ['TRADECORE_DRIFT_VERSION'] + ' '"
        " + os.environ['TRADECORE_DRIFT_FEATURES'] + chr(10))"
    )
    settings = DriftWatchSettings.from_env(
        {
            "TRADECORE_INFERENCE_RETRAIN": f'env OUT={out} {sys.executable} -c "{script}"',
            "TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S": "0",
            "TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS": str(ROWS),
        }
    )
    assert isinstance(settings.retrain_hook(), CommandHook)

    async def main() -> None:
        nc, got = await _subscribe(nats_url, model_drift_subject("sig"))
        bus = Bus(nats_url, "drift-test")
        await bus.start()
        await asyncio.wait_for(bus.connected.wait(), WAIT_S)
        watch = DriftWatch.from_settings(bus, settings)
        await watch.start()
        assert watch.cooldown_s == 0 and watch.window_rows == ROWS
        try:
            watch.watch("sig", 7, _detector(3))
            rng = np.random.default_rng(4)
            bad_x, bad_y = _batch(rng, 1.0)
            bad_x["x"][3, 1] = np.nan  # the window holding it is not tested, and logged
            watch.record("sig", 7, bad_x, bad_y)
            watch.record("sig", 7, {"x": np.zeros((ROWS, 2))}, {"x[0]": np.zeros(ROWS)})  # clash
            for _ in range(2):
                watch.record("sig", 7, *_batch(rng, 1.0))
            alerts = [await _alert(got), await _alert(got)]
        finally:
            await watch.stop()
            await bus.stop()
            await nc.close()
        assert watch.failed_windows == 2  # the non-finite window and the name clash
        assert [a.retrain_triggered for a in alerts] == [True, True]
        assert [a.first_row for a in alerts] == [ROWS, 2 * ROWS]
        assert isinstance(watch.retrain, CommandHook)
        assert watch.retrain.wait(WAIT_S) == [0, 0]
        assert out.read_text().splitlines() == ["sig 7 x[0],x[1]"] * 2

    asyncio.run(main())


def test_settings_from_env() -> None:
    s = DriftWatchSettings.from_env({})
    assert (s.retrain, s.cooldown_s, s.window_rows, s.window_seconds) == ("off", 3600.0, 10000, 0.0)
    assert s.retrain_hook() is None
    with pytest.raises(ValueError, match="TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S"):
        DriftWatchSettings.from_env({"TRADECORE_INFERENCE_RETRAIN_COOLDOWN_S": "soon"})
    with pytest.raises(ValueError, match="cannot both be 0"):
        DriftWatchSettings.from_env({"TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS": "0"})
