"""Drift monitoring in the running mesh: a model version registered with reference data is
watched as it serves; a window of shifted inputs raises a DriftAlert on ``model.drift.<model>``
naming the shifted features, a window like the reference raises none, and the scores are on the
monitoring page's API."""

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.request
from pathlib import Path

import nats
import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
from tradecore.subjects import model_drift_subject
from tradecore_api.events.v1 import inference_pb2

from tests.inference_models import small_mlp
from tests.integration.test_inference_rollout_mesh import cli
from tests.mesh import Mesh

NAME = "drifty"
ROWS = 10_000  # the service's default window (TRADECORE_INFERENCE_DRIFT_WINDOW_ROWS)
BATCH = 2_000


def reference(rng: np.random.Generator) -> tuple[bytes, ort.InferenceSession]:
    sess = ort.InferenceSession(small_mlp(1.0), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((5_000, 4)).astype(np.float32)
    (y,) = sess.run(["y"], {"x": x})
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue(), sess


def send(client: grpcclient.InferenceServerClient, x: np.ndarray) -> None:
    for i in range(0, len(x), BATCH):
        part = x[i : i + BATCH]
        t = grpcclient.InferInput("x", list(part.shape), "FP32")
        t.set_data_from_numpy(part)
        client.infer(NAME, [t])


def test_a_shifted_window_raises_a_drift_alert_and_a_quiet_one_does_not(
    mesh: Mesh, tmp_path: Path
) -> None:
    rng = np.random.default_rng(8)
    npz, _ = reference(rng)
    (tmp_path / "ref.npz").write_bytes(npz)
    (tmp_path / "m.onnx").write_bytes(small_mlp(1.0))
    cli(
        mesh, "register", NAME, str(tmp_path / "m.onnx"), "--reference",
        str(tmp_path / "ref.npz"), "--config", f"max_batch_size={BATCH}",
    )  # fmt: skip
    alerts: list[inference_pb2.DriftAlert] = []

    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)

        async def on(msg: object) -> None:
            alerts.append(inference_pb2.DriftAlert.FromString(msg.data))  # type: ignore[attr-defined]

        await nc.subscribe(model_drift_subject(NAME), cb=on)
        await nc.flush()
        client = grpcclient.InferenceServerClient(str(mesh.inference))
        try:
            # a window like the reference: no alert
            await asyncio.to_thread(send, client, rng.standard_normal((ROWS, 4)).astype(np.float32))
            # a window with feature 2 shifted by two standard deviations: an alert
            shifted = rng.standard_normal((ROWS, 4)).astype(np.float32)
            shifted[:, 2] += 2.0
            await asyncio.to_thread(send, client, shifted)
            deadline = time.monotonic() + 60
            while not alerts:
                assert time.monotonic() < deadline, "no drift alert"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # nothing else is coming
        finally:
            client.close()
            await nc.close()

    asyncio.run(go())
    # One alert: the shifted window's (the quiet window of this seed raised none; a false
    # alarm has probability alpha per window, measured in tests/unit/test_drift.py).
    (alert,) = alerts
    assert (alert.model, alert.version) == (NAME, 1)
    drifted = {(r.feature, r.test) for r in alert.results if r.drifted}
    tests = ("ks", "chi2", "psi", "wasserstein", "jensenshannon")
    assert {("x[2]", t) for t in tests} <= drifted, drifted
    # The unshifted inputs are far from the shifted one (under BH a marginal one may still be
    # called drifted next to three features that truly moved: x[2] and both outputs).
    ks = {r.feature: r.statistic for r in alert.results if r.test == "ks"}
    assert ks["x[2]"] > 0.5 and max(ks[f] for f in ("x[0]", "x[1]", "x[3]")) < 0.05, ks
    # the page's API has the scores of both windows
    with urllib.request.urlopen(
        urllib.request.Request(
            f"http://{mesh.gateway}/monitor/api/snapshot?model={NAME}",
            headers=mesh.auth_headers(),
        ),
        timeout=30,
    ) as r:
        snap = json.loads(r.read())
    text = json.dumps(snap)
    assert "x[2]" in text and "drift" in text
