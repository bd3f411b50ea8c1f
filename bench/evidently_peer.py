"""Evidently's drift tests on the data of bench/test_bench_drift.py, run in Evidently's own
environment (a separate venv: Evidently 0.7 does not import under pandas 3, which the project
uses), called by the bench as a subprocess.

``python bench/evidently_peer.py REF.npy CUR.npy NUMERIC CATEGORICAL`` loads the two arrays
(rows x features; the first NUMERIC columns numeric, the next CATEGORICAL categorical codes),
runs Evidently's stat tests the way its ``ValueDrift`` runs them for every column (numeric:
``ks``, ``psi``, ``wasserstein``, ``jensenshannon``; categorical: ``chisquare``, ``psi``,
``jensenshannon``; Evidently has no chi-square for numeric columns, and its ``mmd`` builds the
full kernel matrix, so it is left out) and prints one JSON line: the wall and CPU time of the
tests (the pandas Series made from the arrays outside it), the tests run, and the drift scores.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests import get_stattest
from evidently.legacy.core import ColumnType

NUMERIC_TESTS = ("ks", "psi", "wasserstein", "jensenshannon")
CATEGORICAL_TESTS = ("chisquare", "psi", "jensenshannon")


def main() -> None:
    ref_path, cur_path, numeric, categorical = sys.argv[1:5]
    ref = np.load(ref_path, mmap_mode="r")
    cur = np.load(cur_path, mmap_mode="r")
    n_num, n_cat = int(numeric), int(categorical)
    cols = []
    for j in range(n_num + n_cat):
        kind = ColumnType.Numerical if j < n_num else ColumnType.Categorical
        if kind is ColumnType.Numerical:
            cols.append((j, kind, pd.Series(np.array(ref[:, j])), pd.Series(np.array(cur[:, j]))))
        else:
            r = pd.Series(np.array(ref[:, j]).astype(np.int64))
            c = pd.Series(np.array(cur[:, j]).astype(np.int64))
            cols.append((j, kind, r, c))
    scores: dict[str, float] = {}
    runs = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for j, kind, r, c in cols:
        tests = NUMERIC_TESTS if kind is ColumnType.Numerical else CATEGORICAL_TESTS
        for name in tests:
            st = get_stattest(r, c, kind.value if hasattr(kind, "value") else kind, name)
            res = st(r, c, kind, None)
            scores[f"{j}:{name}"] = float(res.drift_score)
            runs += 1
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    out = {"seconds": elapsed, "cpu_seconds": cpu, "tests": runs, "rows": int(cur.shape[0])}
    print(json.dumps({**out, "scores": scores}))


if __name__ == "__main__":
    main()
