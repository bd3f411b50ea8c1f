"""``tradecore train surrogate|signal``: train a model offline and write its files.

    tradecore train surrogate [--out DIR] [--seed N] [--epochs N] [--samples N] [--json]
                              [--register]
    tradecore train signal [--data DIR] [--out DIR] [--seed N] [--epochs N] [--horizon N]
                           [--json] [--register]

Each run writes ``model.onnx``, ``metrics.json``, ``lineage.json`` and ``reference.npz`` into
``--out`` (default ``models/<model>``) and prints the metrics (one JSON object with
``--json``). The signal model reads the one LOBSTER message/orderbook pair in ``--data``
(default ``$TRADECORE_LOBSTER_DIR``). ``--register`` then registers the run as the next version
of the model (``surrogate``/``signal``) with the running mesh's model registry, as ``tradecore
model register`` does (the mesh flags and ``--target`` come before the model, as for
``tradecore model``), and prints the registered version. Needs the train extra (``pip install
-e '.[train]'``). Exit status: 0 trained (and registered), 2 bad input or the extra missing,
and with ``--register`` those of ``tradecore model register`` (1 refused, 3 the mesh is not
running); the message on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradecore.inference.train import Artifacts

LOBSTER_DIR_ENV = "TRADECORE_LOBSTER_DIR"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .cli import _add_mesh_args
    from .config import MeshConfig

    ap = argparse.ArgumentParser(prog="tradecore train", description=__doc__.split("\n")[0])
    _add_mesh_args(ap, MeshConfig.from_env())
    ap.add_argument("--target", default="", help="InferenceService host:port (default: mesh)")
    sub = ap.add_subparsers(dest="model", required=True)
    sur = sub.add_parser("surrogate", help="multi-task surrogate of the European pricer")
    sig = sub.add_parser("signal", help="mid-price direction model on LOBSTER book features")
    for p in (sur, sig):
        p.add_argument("--out", type=Path, default=None, help="output directory")
        p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
        p.add_argument("--epochs", type=_positive, default=None, help="training epochs")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument(
            "--register", action="store_true", help="register the run with the mesh's registry"
        )
        p.add_argument(
            "--alias",
            default="",
            help="with --register: point this alias at the new version (e.g. challenger)",
        )
    sur.add_argument("--samples", type=_positive, default=None, help="training samples")
    sig.add_argument(
        "--data", type=Path, default=None, help=f"LOBSTER directory (default ${LOBSTER_DIR_ENV})"
    )
    sig.add_argument("--horizon", type=_positive, default=None, help="label horizon (events)")
    return ap


def register_args(ns: argparse.Namespace, artifacts: Artifacts) -> list[str]:
    """The ``tradecore model`` arguments that register ``artifacts`` with the mesh ``ns``
    names."""
    from tradecore.inference.train import registry_lineage, registry_metrics

    from .config import settings

    mesh = [a for s in settings() for a in (s.flag, str(getattr(ns, s.key)))]
    lin = registry_lineage(artifacts)
    args = [*mesh, "--target", ns.target, "register", artifacts.name, str(artifacts.model_file)]
    args += ["--reference", str(artifacts.reference_file), "--code-version", lin.code_version]
    args += ["--data-source", lin.data_source, "--data-start", lin.data_start]
    args += ["--data-end", lin.data_end]
    if lin.seed is not None:
        args += ["--seed", str(lin.seed)]
    for k, v in lin.params.items():
        args += ["--param", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    for k, m in registry_metrics(artifacts).items():
        args += ["--metric", f"{k}={m!r}"]
    if ns.alias:
        args += ["--alias", ns.alias]
    return args


def _train(ns: argparse.Namespace) -> tuple[Artifacts, dict[str, Any]]:
    # Arguments and data are checked before torch is imported (train_* import it).
    out = ns.out if ns.out is not None else Path("models") / ns.model
    chosen = {k: v for k, v in (("epochs", ns.epochs),) if v is not None}
    if ns.model == "surrogate":
        from tradecore.inference.train.surrogate import SurrogateConfig, train_surrogate

        if ns.samples is not None:
            chosen["samples"] = ns.samples
        artifacts = train_surrogate(SurrogateConfig(seed=ns.seed, **chosen), out)
        summary = {
            "heads": artifacts.metrics["heads"],
            "onnx_vs_torch_max_abs": artifacts.metrics["onnx_vs_torch_max_abs"],
        }
    else:
        from tradecore.inference.train.signal import SignalConfig, find_files, train_signal

        env = os.environ.get(LOBSTER_DIR_ENV)
        data = ns.data or (Path(env) if env else None)
        if data is None:
            raise ValueError(f"data: give --data DIR or set {LOBSTER_DIR_ENV}")
        if ns.horizon is not None:
            chosen["horizon"] = ns.horizon
        messages, book = find_files(data)
        artifacts = train_signal(SignalConfig(seed=ns.seed, **chosen), messages, book, out)
        summary = {k: artifacts.metrics[k] for k in ("rows", "model", "baselines")}
    return artifacts, summary


def train_main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    if ns.alias and not ns.register:
        print(f"tradecore train {ns.model}: error: --alias needs --register", file=sys.stderr)
        return 2
    try:
        artifacts, summary = _train(ns)
    except (ValueError, ImportError) as exc:
        print(f"tradecore train {ns.model}: error: {exc}", file=sys.stderr)
        return 2
    out = artifacts.out_dir
    if ns.json:
        print(json.dumps({"out": str(out), **summary}))
    else:
        print(f"{ns.model}: model.onnx, metrics.json, lineage.json, reference.npz in {out}")
        print(json.dumps(summary, indent=2))
    if ns.register:
        from .model_cli import model_main

        sys.stdout.flush()
        return model_main(register_args(ns, artifacts))
    return 0
