"""Risk kernels' random stream: standard normals keyed by (seed, path, factor).

Every normal is a pure function of ``(seed, path, factor)`` (Philox 4x32-10, counter-based; see
``core/cpp/include/tradecore/risk/philox.hpp``), so a Monte-Carlo run can be split across calls,
threads or devices and still draw the same numbers: ``normals(s, 10, k, first_path=5)`` is
rows 5..14 of ``normals(s, 20, k)``.

The CPU and the GPU compute the same integers and the same Box-Muller formula; the normals then
differ only by their math libraries' log/sin/cos (a few ulp, well within 1e-12 relative). There
is no automatic device choice: which device drew a batch must not depend on its size.
"""

from __future__ import annotations

import operator
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore import _core

#: The most normals (paths * factors) one call returns: 2^27 float64 values, 1 GiB.
MAX_NORMALS = 1 << 27
_U64 = 1 << 64


def _integer(name: str, value: object) -> int:
    """``value`` as an int (Python or numpy integer, not bool), else ValueError naming ``name``."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: expected an integer, got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__}") from None


def normals(
    seed: int,
    paths: int,
    factors: int,
    first_path: int = 0,
    *,
    threads: int = 0,
    device: Literal["cpu", "cuda"] = "cpu",
) -> npt.NDArray[np.float64]:
    """Standard normals, shape ``(paths, factors)``: row ``i`` is path ``first_path + i``.

    ``seed`` is any integer in [0, 2^64); ``paths`` and ``factors`` are >= 1 with
    ``paths * factors <= MAX_NORMALS``; ``first_path + paths <= 2^64``. ``threads`` (0: the
    OpenMP default) changes the speed only, never the values. ``device="cuda"`` draws on the GPU
    (:class:`~tradecore.errors.TradecoreError` when there is none). Invalid
    arguments raise ValueError naming the field.
    """
    s = _integer("seed", seed)
    n = _integer("paths", paths)
    k = _integer("factors", factors)
    first = _integer("first_path", first_path)
    t = _integer("threads", threads)
    if not 0 <= s < _U64:
        raise ValueError(f"seed: must be in [0, 2^64), got {s}")
    if n < 1:
        raise ValueError(f"paths: must be >= 1, got {n}")
    if k < 1:
        raise ValueError(f"factors: must be >= 1, got {k}")
    if n * k > MAX_NORMALS:
        raise ValueError(f"paths * factors: must be <= {MAX_NORMALS}, got {n * k}")
    if first < 0 or first + n > _U64:
        raise ValueError(f"first_path: must be >= 0 with first_path + paths <= 2^64, got {first}")
    if t < 0:
        raise ValueError(f"threads: must be >= 0, got {t}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: must be 'cpu' or 'cuda', got {device!r}")
    return _core.philox_normals(s, first, n, k, t, device == "cuda")


__all__ = ["MAX_NORMALS", "normals"]
