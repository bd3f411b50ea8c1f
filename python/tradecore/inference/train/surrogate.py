"""A multi-task surrogate of the European (Black-Scholes-Merton) kernel: one network, shared
layers, one head per output (price, delta, gamma, vega, theta), trained on prices and Greeks
from :func:`tradecore.pricing.european` and weighted by homoscedastic uncertainty (Kendall, Gal
and Cipolla 2018: each head's loss scaled by a learned exp(-s) plus s/2).

Everything is in units of the strike (K = 1): the model takes FP32 ``inputs[batch, 6]`` =
(moneyness S/K, expiry T in years, volatility, rate, dividend yield, option type +1 call / -1
put) and returns ``price`` = V/K, ``delta`` = dV/dS, ``gamma`` = K d2V/dS2, ``vega`` =
dV/dsigma / K and ``theta`` = -dV/dT / K, each FP32 [batch] (V(S, K) = K V(S/K, 1) turns them
back into money). The input normalisation (log-moneyness, sqrt T, sigma sqrt T, d1, then
standardisation) and the output scaling are part of the exported graph.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tradecore.inference.train import common
from tradecore.pricing import european

if TYPE_CHECKING:
    pass

NAME = "surrogate"
INPUT_NAME = "inputs"
INPUTS: tuple[str, ...] = ("moneyness", "expiry", "volatility", "rate", "dividend", "option_type")
HEADS: tuple[str, ...] = ("price", "delta", "gamma", "vega", "theta")
# Heads whose relative error is reported, where the true value is at least this (K units).
REL_FLOOR: dict[str, float] = {"price": 1e-3, "gamma": 1e-2, "vega": 1e-3}


@dataclass(frozen=True, slots=True)
class Domain:
    """The inputs the surrogate is trained and evaluated on (bounds inclusive)."""

    moneyness: tuple[float, float] = (0.8, 1.25)
    expiry: tuple[float, float] = (0.05, 2.0)
    volatility: tuple[float, float] = (0.1, 0.6)
    rate: tuple[float, float] = (-0.01, 0.08)
    dividend: tuple[float, float] = (0.0, 0.05)

    def sample(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        """``n`` random inputs: log-uniform moneyness, expiry uniform in sqrt T (denser at the
        short end, where the Greeks bend most), the rest uniform, calls and puts alike."""
        (m0, m1), (t0, t1) = self.moneyness, self.expiry
        m = np.exp(rng.uniform(math.log(m0), math.log(m1), n))
        t = rng.uniform(math.sqrt(t0), math.sqrt(t1), n) ** 2
        v = rng.uniform(*self.volatility, n)
        r = rng.uniform(*self.rate, n)
        q = rng.uniform(*self.dividend, n)
        w = rng.choice(np.array([1.0, -1.0]), n)
        return np.stack([m, t, v, r, q, w], axis=1)

    def grid(self, shape: tuple[int, int, int, int, int]) -> npt.NDArray[np.float64]:
        """A regular grid (moneyness log-spaced, expiry spaced in sqrt T), both option types:
        ``shape`` points per input along moneyness, expiry, vol, rate, dividend."""
        nm, nt, nv, nr, nq = shape
        (m0, m1), (t0, t1) = self.moneyness, self.expiry
        axes = [
            np.exp(np.linspace(math.log(m0), math.log(m1), nm)),
            np.linspace(math.sqrt(t0), math.sqrt(t1), nt) ** 2,
            np.linspace(*self.volatility, nv),
            np.linspace(*self.rate, nr),
            np.linspace(*self.dividend, nq),
            np.array([1.0, -1.0]),
        ]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([a.ravel() for a in mesh], axis=1)


def targets(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The analytic kernel's outputs (HEADS order, K = 1) for inputs laid out as INPUTS."""
    codes = np.where(x[:, 5] > 0, 1, -1).astype(np.int8)
    out = european(x[:, 0], 1.0, x[:, 1], x[:, 3], x[:, 4], x[:, 2], codes, greeks=list(HEADS[1:]))
    return np.stack([out[h] for h in HEADS], axis=1)


@dataclass(frozen=True, slots=True)
class SurrogateConfig:
    seed: int = 0
    samples: int = 400_000  # training set size (fresh draws from the domain)
    epochs: int = 60
    batch_size: int = 512
    hidden: int = 128  # width of the shared layers
    layers: int = 4  # shared layers
    head_hidden: int = 64  # one hidden layer per head
    lr: float = 2e-3  # Adam, cosine-annealed to lr / 100
    weighting: str = "uncertainty"  # "uncertainty" (Kendall et al.) or "equal"
    grid: tuple[int, int, int, int, int] = (17, 12, 9, 3, 3)  # held-out evaluation grid
    reference_rows: int = 512
    domain: Domain = field(default_factory=Domain)

    def __post_init__(self) -> None:
        if self.weighting not in ("uncertainty", "equal"):
            raise ValueError(f"weighting: 'uncertainty' or 'equal', got {self.weighting!r}")
        for name in ("samples", "epochs", "batch_size", "hidden", "layers", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")


def _errors(pred: npt.NDArray[np.float64], true: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Per-head absolute (and, above REL_FLOOR, relative) errors."""
    out: dict[str, Any] = {}
    for i, h in enumerate(HEADS):
        err = np.abs(pred[:, i] - true[:, i])
        e: dict[str, Any] = {
            "max_abs": float(err.max()),
            "mean_abs": float(err.mean()),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "true_range": [float(true[:, i].min()), float(true[:, i].max())],
        }
        if h in REL_FLOOR:
            sel = np.abs(true[:, i]) >= REL_FLOOR[h]
            rel = err[sel] / np.abs(true[sel, i])
            e["rel_floor"] = REL_FLOOR[h]
            e["rel_points"] = int(sel.sum())
            e["max_rel"] = float(rel.max()) if rel.size else None
            e["mean_rel"] = float(rel.mean()) if rel.size else None
        out[h] = e
    return out


def train_surrogate(cfg: SurrogateConfig, out_dir: Path) -> common.Artifacts:
    """Generate data, train, export ``model.onnx`` and write the metrics, lineage and
    reference sample into ``out_dir``; the errors are those of the exported ONNX model against
    the analytic kernel on the held-out grid."""
    common.require_torch()
    import torch

    code_version = common.git_commit()
    common.deterministic(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    x_np = cfg.domain.sample(cfg.samples, rng)
    y_np = targets(x_np)
    x = torch.from_numpy(x_np.astype(np.float32))
    y = torch.from_numpy(y_np.astype(np.float32))
    from tradecore.inference.train.nets import SurrogateNet

    net = SurrogateNet(x, y, cfg.hidden, cfg.layers, cfg.head_hidden)
    log_vars = torch.zeros(len(HEADS), requires_grad=cfg.weighting == "uncertainty")
    params = list(net.parameters()) + ([log_vars] if log_vars.requires_grad else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    steps_per_epoch = math.ceil(cfg.samples / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.epochs * steps_per_epoch, eta_min=cfg.lr / 100
    )
    y_std = (y - net.y_mean) / net.y_std
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[float] = []
    net.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(cfg.samples, generator=gen)
        total = 0.0
        for k in range(steps_per_epoch):
            idx = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            per_head = ((net.standardized(x[idx]) - y_std[idx]) ** 2).mean(dim=0)
            # Kendall et al.: sum_i exp(-s_i) L_i / 2 + s_i / 2 (s_i = 0 fixed: equal weights).
            loss = (0.5 * torch.exp(-log_vars) * per_head + 0.5 * log_vars).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += float(per_head.detach().sum()) * len(idx)
        history.append(total / cfg.samples)
    train_s = time.perf_counter() - t0
    net.eval()

    out_dir.mkdir(parents=True, exist_ok=True)
    example = x[:2]
    common.export_onnx(net, example, out_dir / common.MODEL_FILE, INPUT_NAME, HEADS)

    grid = cfg.domain.grid(cfg.grid)
    grid32 = grid.astype(np.float32)
    true = targets(grid)
    onnx_out = common.onnx_outputs(out_dir / common.MODEL_FILE, grid32)
    pred = np.stack([onnx_out[h].astype(np.float64) for h in HEADS], axis=1)
    with torch.no_grad():
        torch_pred = torch.stack(net(torch.from_numpy(grid32)), dim=1).numpy()
    baseline = np.broadcast_to(y_np.mean(axis=0), true.shape)
    metrics: dict[str, Any] = {
        "kernel": "tradecore.pricing.european (Black-Scholes-Merton)",
        "grid_points": len(grid),
        "heads": _errors(pred, true),
        "baseline_training_mean": _errors(baseline, true),
        "onnx_vs_torch_max_abs": float(np.abs(pred - torch_pred).max()),
        "head_weights": dict(zip(HEADS, torch.exp(-log_vars).tolist(), strict=True)),
        "train_loss_per_epoch": history,
        "train_seconds": train_s,
    }
    ref_x = cfg.domain.sample(cfg.reference_rows, np.random.default_rng(cfg.seed + 1))
    ref_x32 = ref_x.astype(np.float32)
    ref_out = common.onnx_outputs(out_dir / common.MODEL_FILE, ref_x32)
    reference = {INPUT_NAME: ref_x32, **{h: ref_out[h] for h in HEADS}}
    d = cfg.domain
    lineage: dict[str, Any] = {
        "data": {
            "source": "tradecore.pricing.european (K = 1)",
            "samples": cfg.samples,
            "domain": asdict(d),
            "sampling": "log-uniform moneyness, uniform sqrt(expiry), uniform vol/rate/dividend,"
            " calls and puts alike",
            "evaluation_grid": [*list(cfg.grid), 2],
        },
        "seed": cfg.seed,
        "inputs": list(INPUTS),
        "outputs": list(HEADS),
        "hyperparameters": {
            k: v for k, v in asdict(cfg).items() if k not in ("domain", "seed", "grid")
        },
        "torch": torch.__version__,
    }
    return common.write_artifacts(
        NAME,
        out_dir,
        metrics=metrics,
        lineage=lineage,
        reference=reference,
        code_version=code_version,
    )
