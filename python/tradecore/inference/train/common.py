"""What both trainers share: deterministic torch, ONNX export checked against torch, lineage,
the files a training run writes, and the hand-over of those files to a model registry.

torch is imported inside the functions that need it, never at module import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

    from tradecore.inference.registry import Lineage, ModelRegistry

FloatArray = npt.NDArray[np.float64]
MODEL_FILE = "model.onnx"
METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"
REFERENCE_FILE = "reference.npz"
# The ONNX opset the models are exported at (ONNX Runtime >= 1.20 runs it).
OPSET = 18


def require_torch() -> None:
    """Raise ImportError naming the extra to install when torch (or onnxscript) is missing."""
    try:
        import onnxscript  # noqa: F401  (the exporter torch.onnx.export(dynamo=True) needs)
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"training needs the train extra: pip install -e '.[train]' ({exc})"
        ) from None


def deterministic(seed: int) -> None:
    """Seed torch and make it deterministic on one thread: the same seed gives the same
    weights, bit for bit, on the same machine and torch build."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the checkout this code runs from (with ``-dirty`` when it has changes),
    or None outside a git checkout."""
    where = start or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = head.stdout.strip()
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter warns about its own deprecated internals and logs the torchvision
    operators it skips; none of it concerns the exported model."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_names: Sequence[str],
) -> None:
    """Export ``module`` (one FP32 input [batch, k], outputs [batch] each) to ``path`` with a
    dynamic batch dimension, through torch's dynamo exporter, without the exporter's
    provenance metadata."""
    import torch

    module.eval()
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter():
        program = torch.onnx.export(
            module,
            (example,),
            None,
            dynamo=True,
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
        assert program is not None
    import onnx

    # Drop the exporter's provenance (per-node stack traces with this checkout's paths, the
    # exported program's signature): the file then depends only on the graph and the weights.
    model = program.model_proto
    for node in model.graph.node:
        del node.metadata_props[:]
    del model.graph.metadata_props[:]
    del model.metadata_props[:]
    onnx.save_model(model, str(path))


def onnx_outputs(path: Path, inputs: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[Any]]:
    """Run the exported model on ONNX Runtime (through :class:`OnnxEngine`)."""
    from tradecore.inference.onnx import OnnxEngine

    engine = OnnxEngine(path)
    try:
        name = engine.metadata.inputs[0].name
        return {k: np.asarray(v) for k, v in engine.run({name: inputs}).items()}
    finally:
        engine.close()


@dataclass(frozen=True, slots=True)
class Artifacts:
    """The files of one training run (all in ``out_dir``) and what they hold."""

    name: str
    out_dir: Path
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    reference: dict[str, npt.NDArray[Any]] = field(repr=False)

    @property
    def model_file(self) -> Path:
        return self.out_dir / MODEL_FILE

    @property
    def metrics_file(self) -> Path:
        return self.out_dir / METRICS_FILE

    @property
    def lineage_file(self) -> Path:
        return self.out_dir / LINEAGE_FILE

    @property
    def reference_file(self) -> Path:
        return self.out_dir / REFERENCE_FILE


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def registry_metrics(artifacts: Artifacts) -> dict[str, float]:
    """The run's metrics as the registry keeps them: every finite number of metrics.json by
    its dotted path (``heads.price.max_abs``, ``model.auc``, ``baselines.persistence.auc``);
    lists (the loss per epoch, ranges) are left to metrics.json."""
    flat: dict[str, Any] = {}
    _flatten("", artifacts.metrics, flat)
    return {
        k: float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def registry_lineage(artifacts: Artifacts) -> Lineage:
    """The run's lineage as the registry's :class:`Lineage`: data source and range, code
    version, seed, and the hyper-parameters (text, numbers and booleans; others as text)."""
    from tradecore.inference.registry import Lineage

    lin = artifacts.lineage
    data = lin.get("data", {})
    params: dict[str, str | int | float | bool] = {}
    for k, v in lin.get("hyperparameters", {}).items():
        params[k] = v if isinstance(v, str | int | float | bool) else json.dumps(_jsonable(v))
    return Lineage(
        data_source=str(data.get("source", "")),
        data_start=str(data.get("start", "")),
        data_end=str(data.get("end", "")),
        code_version=lin.get("code_version") or "",
        seed=lin.get("seed"),
        params=params,
    )


def register(
    registry: ModelRegistry, artifacts: Artifacts, *, description: str = "", actor: str = ""
) -> int:
    """Register a run as a new version of its model (``surrogate`` or ``signal``) in
    ``registry``: the ONNX file, lineage, metrics and reference sample. Returns the version."""
    return registry.register(
        artifacts.name,
        artifacts.model_file,
        lineage=registry_lineage(artifacts),
        metrics=registry_metrics(artifacts),
        reference=artifacts.reference,
        description=description,
        actor=actor,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_artifacts(
    name: str,
    out_dir: Path,
    *,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    reference: dict[str, npt.NDArray[Any]],
    code_version: str | None,
) -> Artifacts:
    """Write metrics.json, lineage.json and reference.npz beside the already exported
    model.onnx; lineage gets the run's time and ``code_version`` (:func:`git_commit` read when
    the run started: the code that ran)."""
    lineage = {
        "model": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version,
        **lineage,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(_jsonable(metrics), indent=2) + "\n")
    (out_dir / LINEAGE_FILE).write_text(json.dumps(_jsonable(lineage), indent=2) + "\n")
    np.savez_compressed(out_dir / REFERENCE_FILE, **reference)  # type: ignore[arg-type]
    return Artifacts(name, out_dir, metrics, lineage, reference)
