"""Training of the project's models (the ``train`` extra: torch, onnx, onnxscript).

- :mod:`~tradecore.inference.train.surrogate`: a multi-task surrogate of the European pricing
  kernel (price, delta, gamma, vega, theta heads).
- :mod:`~tradecore.inference.train.signal`: a short-horizon mid-price direction model on the
  order book's microstructure features over LOBSTER data.

Each run is deterministic for its seed and writes ``model.onnx``, ``metrics.json``,
``lineage.json`` and ``reference.npz`` (see :class:`~tradecore.inference.train.common.Artifacts`).
torch is imported only when a model is trained; this package imports without it.
"""

from __future__ import annotations

from tradecore.inference.train.common import (
    Artifacts,
    register,
    registry_lineage,
    registry_metrics,
)

__all__ = ["Artifacts", "register", "registry_lineage", "registry_metrics"]
