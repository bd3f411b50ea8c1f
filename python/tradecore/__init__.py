"""Tradecore: a low-latency options trading core.

The package is a library: it works without any server running and never imports gRPC.
Kernels live in the compiled ``tradecore._core`` module (C++, optional CUDA).
"""

from __future__ import annotations

from tradecore import _core
from tradecore.errors import TradecoreError

__version__: str = getattr(_core, "__version__", "0.0.0")


def cuda_available() -> bool:
    """True when CUDA kernels are compiled in and a usable GPU is present (never raises)."""
    return bool(_core.cuda_available())


def cuda_info() -> str:
    """A one-line description of the GPU, or of why there is none."""
    return str(_core.cuda_describe())


__all__ = ["TradecoreError", "__version__", "cuda_available", "cuda_info"]
