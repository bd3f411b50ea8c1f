"""Row validation of request columns with messages naming ``<list>[i].<field>``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Check = tuple[str, FloatArray, npt.NDArray[np.bool_] | None, str]


def check_rows(list_name: str, checks: Sequence[Check]) -> None:
    """Raise ValueError for the first row (then the first field in ``checks`` order) whose value
    is not finite or fails its rule. Each check is ``(field, column, ok, rule)``; ``ok`` None
    means finite is enough and ``rule`` is then the whole rule (e.g. ``"must be finite"``)."""
    first: tuple[int, int] | None = None
    for order, (_, column, ok, _) in enumerate(checks):
        good = np.isfinite(column) if ok is None else np.isfinite(column) & ok
        bad = np.flatnonzero(~good)
        if bad.size and (first is None or int(bad[0]) < first[0]):
            first = (int(bad[0]), order)
    if first is None:
        return
    row, order = first
    field, column, ok, rule = checks[order]
    text = rule if ok is None else f"must be finite and {rule}"
    raise ValueError(f"{list_name}[{row}].{field} {text} (got {float(column[row])!r})")


def check_count(list_name: str, n: int, limit: int, what: str) -> None:
    if n > limit:
        raise ValueError(f"{list_name}: {n} {what} exceed the limit of {limit} per call")
