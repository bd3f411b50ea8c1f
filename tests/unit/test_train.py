"""Model training (tradecore.inference.train, `tradecore train`): a tiny surrogate really trains
and its ONNX export matches torch and beats a trivial baseline; the signal model, trained on
the real LOBSTER day, beats the naive baselines out of sample; runs are deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tradecore.inference.train import Artifacts, common, register
from tradecore.inference.train.signal import FEATURES, SignalConfig, features, find_files
from tradecore.inference.train.surrogate import HEADS, INPUTS, Domain, SurrogateConfig, targets

from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
pytest.importorskip("onnxscript", reason="the train extra (onnxscript) is not installed")

from tradecore.inference.onnx import OnnxEngine  # noqa: E402
from tradecore.inference.train.signal import train_signal  # noqa: E402
from tradecore.inference.train.surrogate import train_surrogate  # noqa: E402

TINY = SurrogateConfig(
    samples=20_000, epochs=5, hidden=32, layers=3, head_hidden=16, grid=(7, 5, 4, 2, 2)
)


@pytest.fixture(scope="module")
def surrogate(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return train_surrogate(TINY, tmp_path_factory.mktemp("surrogate"))


@pytest.fixture(scope="module")
def goog() -> tuple[Path, Path]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return d / GOOG.format("message"), d / GOOG.format("orderbook")


@pytest.fixture(scope="module")
def signal(goog: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return train_signal(SignalConfig(epochs=6), *goog, tmp_path_factory.mktemp("signal"))


def test_surrogate_writes_the_files_and_a_dynamic_batch_fp32_model(surrogate: Artifacts) -> None:
    for f in (surrogate.model_file, surrogate.metrics_file, surrogate.lineage_file):
        assert f.is_file()
    engine = OnnxEngine(surrogate.model_file)
    meta = engine.metadata
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [
        ("inputs", "FP32", (-1, len(INPUTS)))
    ]
    assert [(t.name, t.shape) for t in meta.outputs] == [(h, (-1,)) for h in HEADS]
    ref = np.load(surrogate.reference_file)
    # Any batch size gives the reference sample's outputs row for row.
    for rows in (slice(0, 1), slice(3, 10), slice(None)):
        out = engine.run({"inputs": ref["inputs"][rows]})
        for h in HEADS:
            np.testing.assert_allclose(out[h], ref[h][rows], rtol=0, atol=1e-6)
    lineage = json.loads(surrogate.lineage_file.read_text())
    assert lineage["seed"] == 0 and lineage["data"]["samples"] == TINY.samples
    assert lineage["hyperparameters"]["epochs"] == TINY.epochs
    assert lineage["inputs"] == list(INPUTS) and lineage["outputs"] == list(HEADS)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    if head.returncode == 0:  # a checkout: the commit the run's code came from
        assert lineage["code_version"].startswith(head.stdout.strip())


def test_exported_models_carry_no_local_paths(surrogate: Artifacts) -> None:
    """The exporter's per-node provenance (stack traces with this checkout's paths) is
    stripped: the file depends only on the weights and the graph."""
    import onnx

    data = surrogate.model_file.read_bytes()
    assert str(Path(__file__).resolve().parents[2]).encode() not in data
    model = onnx.load_from_string(data)
    assert not any(n.metadata_props for n in model.graph.node)


def test_surrogate_onnx_equals_torch_and_every_head_beats_the_trivial_baseline(
    surrogate: Artifacts,
) -> None:
    m = json.loads(surrogate.metrics_file.read_text())
    assert m["onnx_vs_torch_max_abs"] < 1e-4
    assert m["grid_points"] == int(np.prod(TINY.grid)) * 2
    for h in HEADS:
        assert m["heads"][h]["mean_abs"] < 0.8 * m["baseline_training_mean"][h]["mean_abs"], h
    assert m["heads"]["price"]["rel_points"] > 0


def test_surrogate_errors_are_against_the_analytic_kernel(surrogate: Artifacts) -> None:
    """The reported errors are recomputed from the exported model and the kernel."""
    grid = TINY.domain.grid(TINY.grid)
    out = common.onnx_outputs(surrogate.model_file, grid.astype(np.float32))
    true = targets(grid)
    m = surrogate.metrics
    for i, h in enumerate(HEADS):
        err = np.abs(out[h].astype(np.float64) - true[:, i])
        assert m["heads"][h]["max_abs"] == pytest.approx(float(err.max()), rel=1e-9)


def test_surrogate_training_is_deterministic_for_a_seed(
    surrogate: Artifacts, tmp_path: Path
) -> None:
    again = train_surrogate(TINY, tmp_path)
    assert again.metrics["train_loss_per_epoch"] == surrogate.metrics["train_loss_per_epoch"]
    for h in HEADS:
        np.testing.assert_array_equal(again.reference[h], surrogate.reference[h])
    assert again.model_file.read_bytes() == surrogate.model_file.read_bytes()


def test_surrogate_targets_are_the_european_kernel_in_strike_units() -> None:
    from tradecore.pricing import european

    x = Domain().sample(50, np.random.default_rng(1))
    k = 250.0
    got = targets(x)
    w = np.where(x[:, 5] > 0, "call", "put")
    ref = european(x[:, 0] * k, k, x[:, 1], x[:, 3], x[:, 4], x[:, 2], w, greeks="first")
    np.testing.assert_allclose(got[:, 0], ref["price"] / k, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 1], ref["delta"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 2], ref["gamma"] * k, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 3], ref["vega"] / k, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 4], ref["theta"] / k, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"epochs": 0}, "epochs"), ({"weighting": "gradnorm"}, "weighting"), ({"lr": 0.0}, "lr")],
)
def test_surrogate_config_names_the_bad_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        SurrogateConfig(**kwargs)


def test_signal_beats_the_naive_baselines_out_of_sample(signal: Artifacts) -> None:
    m = signal.metrics
    model, base = m["model"], m["baselines"]
    for name in ("majority", "persistence"):
        assert model["log_loss"] < base[name]["log_loss"], name
        assert model["auc"] > base[name]["auc"], name
        assert model["balanced_accuracy"] > base[name]["balanced_accuracy"], name
        assert model["accuracy"] > base[name]["accuracy"], name
    assert m["onnx_vs_torch_max_abs"] < 1e-5
    rows = m["rows"]
    assert rows["train"] + rows["test"] + rows["unchanged_dropped"] <= rows["events"]


def test_signal_trains_before_and_tests_after_the_split(signal: Artifacts) -> None:
    data = signal.lineage["data"]
    h = signal.lineage["hyperparameters"]["horizon"]
    assert data["train_events"][1] + 1 == data["test_events"][0]
    assert data["train_time"][1] <= data["test_time"][0]
    # training rows whose label would reach into the test part are dropped
    assert signal.metrics["rows"]["train"] <= data["train_events"][1] + 1 - h


def test_signal_features_use_no_future_events(goog: tuple[Path, Path], tmp_path: Path) -> None:
    """The features of the first n events are the same when the file stops after them."""
    n = 5000
    msg, book = goog
    for src in (msg, book):
        lines = src.read_bytes().splitlines(keepends=True)[:n]
        (tmp_path / src.name).write_bytes(b"".join(lines))
    full = features(msg, book, horizon=20)
    cut = features(*find_files(tmp_path), horizon=20)
    assert cut.x.shape == (n, len(FEATURES))
    np.testing.assert_array_equal(cut.x, full.x[:n])


def test_register_stores_the_run_in_the_model_registry(
    signal: Artifacts, surrogate: Artifacts, tmp_path: Path
) -> None:
    from tradecore import store
    from tradecore.inference.registry import ModelRegistry

    with store.connect(store.default_dsn(tmp_path, "models")) as db:
        reg = ModelRegistry(tmp_path / "models", db)
        assert register(reg, signal, actor="test") == 1
        assert register(reg, surrogate) == 1
        info = reg.version("signal", 1)
        assert info.file_name == "model.onnx"
        assert info.path.read_bytes() == signal.model_file.read_bytes()
        lin = info.lineage
        assert lin.data_source == f"LOBSTER {GOOG.format('message')}"
        assert (lin.data_start, lin.data_end) == ("2012-06-21T13:30:00Z", "2012-06-21T18:29:12Z")
        assert lin.seed == 0 and lin.params["horizon"] == 20
        assert lin.code_version == (signal.lineage["code_version"] or "")
        assert info.metrics["model.auc"] == signal.metrics["model"]["auc"]
        assert info.metrics["baselines.persistence.log_loss"] > info.metrics["model.log_loss"]
        ref = reg.reference("signal", 1)
        for key, value in signal.reference.items():
            np.testing.assert_array_equal(ref[key], value)
        sur = reg.version("surrogate", 1)
        assert sur.metrics["heads.gamma.max_abs"] == surrogate.metrics["heads"]["gamma"]["max_abs"]
        assert sur.lineage.params["samples"] == TINY.samples
        assert sur.lineage.data_source == "tradecore.pricing.european (K = 1)"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradecore_services.mesh.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def test_cli_trains_the_signal_model(goog: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "sig"
    r = _cli("signal", "--data", str(goog[0].parent), "--epochs", "1", "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["out"] == str(out) and set(summary["model"]) >= {"auc", "log_loss"}
    names = {p.name for p in out.iterdir()}
    assert names == {"model.onnx", "metrics.json", "lineage.json", "reference.npz"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("surrogate", "--epochs", "0"), "--epochs: must be >= 1"),
        (("signal", "--seed", "x"), "--seed: not an integer"),
        (("signal", "--data", "/nonexistent/lobster"), "data: need one LOBSTER"),
        (("signal",), "data: give --data DIR or set TRADECORE_LOBSTER_DIR"),
        (("gradient",), "invalid choice: 'gradient'"),
    ],
)
def test_cli_bad_input_exits_2_naming_it(args: tuple[str, ...], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRADECORE_LOBSTER_DIR"}
    r = subprocess.run(
        [sys.executable, "-m", "tradecore_services.mesh.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_the_library_imports_without_torch() -> None:
    code = (
        "import sys, tradecore, tradecore.pricing, tradecore.inference, "
        "tradecore.inference.train.surrogate, tradecore.inference.train.signal; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_cli_without_the_train_extra_says_what_to_install(tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import name` raise ImportError, as when it is absent.
    code = (
        "import sys; sys.modules['torch'] = None; "
        "from tradecore_services.mesh.cli import main; "
        f"sys.exit(main(['train', 'surrogate', '--out', {str(tmp_path)!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "training needs the train extra: pip install -e '.[train]'" in r.stderr
    assert not any(tmp_path.iterdir())


def test_cli_register_without_a_mesh_keeps_the_files_and_exits_3(
    goog: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sig"
    data = tmp_path / "data"
    r = _cli(
        *("--data-dir", str(data), "signal", "--data", str(goog[0].parent)),
        *("--epochs", "1", "--out", str(out), "--register"),
    )
    assert r.returncode == 3, r.stderr
    assert "tradecore model register: the mesh is not running" in r.stderr
    assert (out / "model.onnx").is_file() and (out / "reference.npz").is_file()
