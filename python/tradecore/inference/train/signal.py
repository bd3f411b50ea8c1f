"""A short-horizon signal: the direction of the mid price over the next ``horizon`` book events,
from microstructure features of the C++ order book replaying a LOBSTER day.

Label: sign of mid[t + horizon] - mid[t] (mid from the LOBSTER orderbook file, the book after
message t); events whose mid does not move over the horizon are dropped (a binary up/down
model; how many were dropped is reported). Split by time: the first ``train_fraction`` of the
day's events train the model (the last ``val_fraction`` of those choose the epoch), the events
after it test it out of sample; the training rows whose horizon reaches into the test part are
dropped. Baselines on the same test rows: the training set's majority class and the
persistence of the last mid change.

Features, each known at event t (FEATURES): depth imbalance over 1, 3 and 5 levels, spread,
log queue sizes at the best bid and ask, order-flow imbalance summed over the last 10 and 50
events, trade-sign imbalance of the last 10 and 50 trades, VPIN, realised volatility, the last
mid change's sign, events since it, the mid change over the last ``horizon`` events, the
current message as add/delete/execution times its side, and the time since the previous
message. With a level-1 file only the best level is fully known: deeper levels hold the orders
the messages revealed, so the 3- and 5-level imbalances see part of the book.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tradecore import lobster
from tradecore.inference.train import common
from tradecore.orderbook import FeatureConfig

if TYPE_CHECKING:
    import torch

NAME = "signal"
INPUT_NAME = "features"
OUTPUT_NAME = "p_up"
FEATURES: tuple[str, ...] = (
    "imbalance_1",
    "imbalance_3",
    "imbalance_5",
    "spread_ticks",
    "log_bid_size",
    "log_ask_size",
    "ofi_10",
    "ofi_50",
    "trade_imbalance_10",
    "trade_imbalance_50",
    "vpin",
    "realized_vol",
    "last_change_sign",
    "log_events_since_change",
    "mid_change_ticks",
    "add_side",
    "delete_side",
    "execution_side",
    "log_gap_us",
)
TICK = 100  # LOBSTER prices are dollars x 10000: one cent


@dataclass(frozen=True, slots=True)
class Dataset:
    x: npt.NDArray[np.float64]  # [events, len(FEATURES)]
    mid: npt.NDArray[np.float64]  # [events], LOBSTER price units
    time_ns: npt.NDArray[np.int64]


def find_files(data_dir: Path) -> tuple[Path, Path]:
    """The one ``*_message_N.csv`` of ``data_dir`` and its ``*_orderbook_N.csv``."""
    found = sorted(data_dir.glob("*_message_*.csv")) if data_dir.is_dir() else []
    if len(found) != 1:
        what = "no directory" if not data_dir.is_dir() else f"{len(found)} message files"
        raise ValueError(f"data: need one LOBSTER *_message_N.csv in {data_dir} ({what})")
    book = found[0].with_name(found[0].name.replace("_message_", "_orderbook_"))
    if not book.is_file():
        raise ValueError(f"data: no orderbook file {book.name} beside {found[0].name}")
    return found[0], book


def _rolling_sum(a: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    c = np.concatenate([[0.0], np.cumsum(a)])
    idx = np.arange(1, len(a) + 1)
    out: npt.NDArray[np.float64] = c[idx] - c[np.maximum(idx - w, 0)]
    return out


def features(messages_path: Path, book_path: Path, horizon: int) -> Dataset:
    """Replay the day through the C++ book and compute FEATURES for every event."""
    msgs = lobster.parse_messages(messages_path)
    levels = lobster.book_depth(book_path)
    rows = lobster.parse_book(book_path, levels)
    runs = {
        (depth, window): lobster.replay(
            msgs,
            rows,
            levels,
            verify=False,
            features=FeatureConfig(depth=depth, trade_window=window),
        ).features
        for depth, window in ((1, 10), (3, 50), (5, 50))
    }
    f1, f3, f5 = runs[(1, 10)], runs[(3, 50)], runs[(5, 50)]
    assert f1 is not None and f3 is not None and f5 is not None
    ask_px, ask_sz, bid_px, bid_sz = (rows[:, i].astype(np.float64) for i in range(4))
    two_sided = (ask_px != lobster.EMPTY_ASK) & (bid_px != lobster.EMPTY_BID)
    mid = np.where(two_sided, 0.5 * (ask_px + bid_px), np.nan)
    n = len(mid)
    dmid = np.diff(mid, prepend=mid[0])
    dmid = np.nan_to_num(dmid)
    # the last non-zero mid change up to t and the events since it
    changed = np.flatnonzero(dmid != 0)
    last = np.full(n, -1)
    last[changed] = changed
    last = np.maximum.accumulate(last)
    last_sign = np.where(last >= 0, np.sign(dmid[np.maximum(last, 0)]), 0.0)
    since = np.where(last >= 0, np.arange(n) - last, np.arange(n) + 1)
    past = np.zeros(n)
    past[horizon:] = mid[horizon:] - mid[:-horizon]
    kind = msgs.type
    side = msgs.direction.astype(np.float64)
    gap_us = np.diff(msgs.time_ns, prepend=msgs.time_ns[0]) / 1e3
    ofi = f1["ofi"]
    cols = {
        "imbalance_1": f1["imbalance"],
        "imbalance_3": f3["imbalance"],
        "imbalance_5": f5["imbalance"],
        "spread_ticks": (ask_px - bid_px) / TICK,
        "log_bid_size": np.log1p(bid_sz),
        "log_ask_size": np.log1p(ask_sz),
        "ofi_10": _rolling_sum(ofi, 10) / 100.0,
        "ofi_50": _rolling_sum(ofi, 50) / 100.0,
        "trade_imbalance_10": f1["trade_imbalance"],
        "trade_imbalance_50": f3["trade_imbalance"],
        "vpin": f1["vpin"],
        "realized_vol": f1["realized_vol"] * 1e4,
        "last_change_sign": last_sign,
        "log_events_since_change": np.log1p(since),
        "mid_change_ticks": np.nan_to_num(past) / TICK,
        "add_side": np.where(kind == 1, side, 0.0),
        "delete_side": np.where((kind == 2) | (kind == 3), side, 0.0),
        "execution_side": np.where((kind == 4) | (kind == 5), side, 0.0),
        "log_gap_us": np.log1p(gap_us),
    }
    x = np.stack([cols[k] for k in FEATURES], axis=1)
    # Undefined values (no trades yet, a one-sided book) read as neutral: 0, VPIN 0.5.
    x[:, FEATURES.index("vpin")] = np.nan_to_num(x[:, FEATURES.index("vpin")], nan=0.5)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return Dataset(x=x, mid=mid, time_ns=msgs.time_ns)


@dataclass(frozen=True, slots=True)
class SignalConfig:
    seed: int = 0
    horizon: int = 20  # events ahead
    train_fraction: float = 0.7  # of the day's events, by time
    val_fraction: float = 0.15  # the end of the training part, for the choice of epoch
    epochs: int = 40
    batch_size: int = 256
    hidden: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    reference_rows: int = 512

    def __post_init__(self) -> None:
        for name in ("horizon", "epochs", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: at least 1, got {getattr(self, name)}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction: in (0, 1), got {self.train_fraction}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction: in (0, 1), got {self.val_fraction}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")


def _auc(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    sp = p[order]
    # average ranks over ties
    starts = np.flatnonzero(np.concatenate([[True], sp[1:] != sp[:-1]]))
    ends = np.concatenate([starts[1:], [len(p)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    pred: npt.NDArray[np.bool_] | None = None,
) -> dict[str, float]:
    """Accuracy and balanced accuracy of the calls ``pred`` (default P(up) >= 0.5), log loss
    and AUC of P(up), against labels 1 (up) / 0 (down)."""
    pred = p >= 0.5 if pred is None else pred
    pos = y == 1
    tpr = float(pred[pos].mean()) if pos.any() else float("nan")
    tnr = float((~pred[~pos]).mean()) if (~pos).any() else float("nan")
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    return {
        "accuracy": float((pred == pos).mean()),
        "balanced_accuracy": 0.5 * (tpr + tnr),
        "log_loss": float(-np.mean(np.where(pos, np.log(pc), np.log1p(-pc)))),
        "auc": _auc(y, p),
    }


def train_signal(
    cfg: SignalConfig, messages_path: Path, book_path: Path, out_dir: Path
) -> common.Artifacts:
    """Build the features and labels, train, export ``model.onnx`` and write the metrics
    (the exported model's, on the out-of-sample part), lineage and reference sample."""
    common.require_torch()
    import torch

    code_version = common.git_commit()
    common.deterministic(cfg.seed)
    t0 = time.perf_counter()
    data = features(messages_path, book_path, cfg.horizon)
    n = len(data.mid)
    h = cfg.horizon
    future = np.full(n, np.nan)
    future[: n - h] = data.mid[h:] - data.mid[: n - h]
    labelled = np.isfinite(future) & np.isfinite(data.mid)
    moved = labelled & (future != 0)
    y_all = (future > 0).astype(np.float64)
    split = int(n * cfg.train_fraction)
    idx = np.arange(n)
    # A training row's label must end before the test part begins.
    train_idx = idx[moved & (idx + h < split)]
    test_idx = idx[moved & (idx >= split)]
    n_val = int(len(train_idx) * cfg.val_fraction)
    fit_idx, val_idx = train_idx[: len(train_idx) - n_val], train_idx[len(train_idx) - n_val :]
    fit_idx = fit_idx[fit_idx + h < val_idx[0]] if n_val else fit_idx
    if min(len(fit_idx), len(test_idx)) < 100 or n_val < 10:
        raise ValueError(
            f"data: too few labelled events ({len(train_idx)} train, {len(test_idx)} test)"
        )

    x32 = data.x.astype(np.float32)
    xt = torch.from_numpy(x32)
    yt = torch.from_numpy(y_all.astype(np.float32))
    from tradecore.inference.train.nets import SignalNet

    net = SignalNet(xt[fit_idx], cfg.hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    fit_t = torch.from_numpy(fit_idx)
    val_t = torch.from_numpy(val_idx)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    val_history: list[float] = []
    for epoch in range(cfg.epochs):
        net.train()
        order = fit_t[torch.randperm(len(fit_t), generator=gen)]
        for k in range(0, len(order), cfg.batch_size):
            b = order[k : k + cfg.batch_size]
            loss = loss_fn(net.logit(xt[b]), yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net.logit(xt[val_t]), yt[val_t]))
        val_history.append(val_loss)
        if best is None or val_loss < best[0]:
            best = (val_loss, epoch + 1, {k: v.clone() for k, v in net.state_dict().items()})
    assert best is not None
    net.load_state_dict(best[2])
    net.eval()
    train_s = time.perf_counter() - t0

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / common.MODEL_FILE
    common.export_onnx(net, xt[:2], model_path, INPUT_NAME, (OUTPUT_NAME,))
    p_test = common.onnx_outputs(model_path, x32[test_idx])[OUTPUT_NAME].astype(np.float64)
    with torch.no_grad():
        p_torch = net(xt[torch.from_numpy(test_idx)]).numpy()
    y_train, y_test = y_all[train_idx], y_all[test_idx]

    up_rate = float(y_train.mean())
    majority = np.full(len(test_idx), up_rate)
    # Persistence: the last mid change continues; its probability is the training set's
    # frequency of an up move after an up (down) change, the prior where there was none.
    last = data.x[:, FEATURES.index("last_change_sign")]

    def after(sign: float) -> float:
        sel = last[train_idx] == sign
        return float(y_train[sel].mean()) if sel.any() else up_rate

    p_up_after = {1.0: after(1.0), -1.0: after(-1.0), 0.0: up_rate}
    persistence_p = np.array([p_up_after[float(s)] for s in last[test_idx]])
    # The calls are the rule's own (up after up, down after down; the majority class before
    # the first change); its probabilities only score log loss and AUC.
    persistence_call = np.where(last[test_idx] != 0, last[test_idx] > 0, up_rate >= 0.5)
    persistence = classification_metrics(y_test, persistence_p, persistence_call)

    def clock(ns: int) -> str:
        s = ns // 1_000_000_000
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"

    metrics: dict[str, Any] = {
        "label": f"sign of the mid change over the next {h} events; unchanged mids dropped",
        "rows": {
            "events": n,
            "train": len(train_idx),
            "fit": len(fit_idx),
            "validation": len(val_idx),
            "test": len(test_idx),
            "unchanged_dropped": int((labelled & (future == 0)).sum()),
            "train_up_rate": up_rate,
            "test_up_rate": float(y_test.mean()),
        },
        "model": classification_metrics(y_test, p_test),
        "baselines": {
            "majority": classification_metrics(y_test, majority),
            "persistence": persistence,
        },
        "best_epoch": best[1],
        "validation_log_loss_per_epoch": val_history,
        "onnx_vs_torch_max_abs": float(np.abs(p_test - p_torch).max()),
        "train_seconds": train_s,
    }
    ref = test_idx[: cfg.reference_rows]
    reference = {
        INPUT_NAME: x32[ref],
        OUTPUT_NAME: common.onnx_outputs(model_path, x32[ref])[OUTPUT_NAME],
    }
    day = lobster.date_from_name(messages_path)

    def utc(row: int) -> str:
        """An event's time as ISO 8601 UTC (needs the trading day from the file name)."""
        if day is None:
            return ""
        ns = lobster.midnight_utc_ns(day) + int(data.time_ns[row])
        when = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
        return when.isoformat().replace("+00:00", "Z")

    lineage: dict[str, Any] = {
        "data": {
            "source": f"LOBSTER {messages_path.name}",
            # the training part's range (the test part follows it)
            "start": utc(0),
            "end": utc(split - 1),
            "messages": messages_path.name,
            "orderbook": book_path.name,
            "events": n,
            "train_events": [0, split - 1],
            "test_events": [split, n - 1],
            "train_time": [clock(int(data.time_ns[0])), clock(int(data.time_ns[split - 1]))],
            "test_time": [clock(int(data.time_ns[split])), clock(int(data.time_ns[-1]))],
        },
        "seed": cfg.seed,
        "inputs": list(FEATURES),
        "outputs": [OUTPUT_NAME],
        "hyperparameters": {k: v for k, v in asdict(cfg).items() if k != "seed"},
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
