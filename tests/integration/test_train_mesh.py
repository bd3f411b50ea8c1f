"""`tradecore train signal --register`: a run trained on the real LOBSTER day becomes the next
version of model ``signal`` in the running mesh's registry, with its lineage, metrics and
reference sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.mesh import Mesh
from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

pytest.importorskip("torch", reason="the train extra (torch) is not installed")
pytest.importorskip("onnxscript", reason="the train extra (onnxscript) is not installed")


def test_train_register_adds_a_version_with_lineage_metrics_and_reference(
    mesh: Mesh, tmp_path: Path
) -> None:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    out = tmp_path / "signal"
    args = ("signal", "--data", str(d), "--epochs", "1", "--out", str(out), "--register")
    proc = mesh.run("train", *args, "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    trained, registered = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(trained)["out"] == str(out)
    version = json.loads(registered)["version"]
    show = mesh.run("model", "show", "signal")
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    (v,) = [x for x in doc["versions"] if x["version"] == version]
    metrics = json.loads((out / "metrics.json").read_text())
    lineage = json.loads((out / "lineage.json").read_text())
    assert v["metrics"]["model.auc"] == pytest.approx(metrics["model"]["auc"])
    assert v["lineage"]["data_start"] == lineage["data"]["start"] == "2012-06-21T13:30:00Z"
    assert v["lineage"]["params"]["horizon"] == 20
    assert v["lineage"]["code_version"] == (lineage["code_version"] or "")
    ref = np.load(out / "reference.npz")
    assert v["reference_sha256"] and ref["features"].shape == (512, 19)
