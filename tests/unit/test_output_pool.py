"""Large output columns come from a bounded pool of freed blocks (no page faults on reuse)."""

from __future__ import annotations

import gc

import numpy as np
from tradecore import _core, pricing

N = 400_000  # 3.2 MB columns: pooled (>= 1 MiB)


def _args() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(5)
    return (
        np.full(N, 100.0),
        rng.uniform(80.0, 120.0, N),
        np.full(N, 0.5),
        np.full(N, 0.03),
        np.full(N, 0.01),
        np.full(N, 0.25),
    )


def test_a_freed_column_is_reused_by_the_next_call() -> None:
    args = _args()
    first = pricing.european(*args, "call", greeks=[])
    price = first["price"].copy()
    address = first["price"].__array_interface__["data"][0]
    del first
    gc.collect()
    kept = _core.output_pool_kept_bytes()
    assert kept >= N * 8
    again = pricing.european(*args, "call", greeks=[])
    assert _core.output_pool_kept_bytes() < kept  # taken from the pool, not from the OS
    assert again["price"].__array_interface__["data"][0] == address  # the latest freed first
    np.testing.assert_array_equal(again["price"], price)  # every element written again
    assert again["price"].flags.owndata is False and again["price"].flags.writeable


def test_columns_outlive_their_call_and_hold_their_values() -> None:
    args = _args()
    kept = [pricing.european(*args, "put", greeks="first") for _ in range(3)]
    addresses = {r[k].__array_interface__["data"][0] for r in kept for k in r}
    assert len(addresses) == 3 * 7  # live columns never share a block
    for r in kept[1:]:
        for k in r:
            np.testing.assert_array_equal(r[k], kept[0][k])


def test_the_pool_keeps_at_most_256_mib() -> None:
    args = _args()
    many = [pricing.european(*args, "call", greeks="all") for _ in range(12)]  # ~600 MB live
    del many
    gc.collect()
    assert _core.output_pool_kept_bytes() <= 256 << 20


def test_small_batches_are_plain_numpy_arrays() -> None:
    out = pricing.european(100.0, np.linspace(80, 120, 1000), 0.5, 0.03, 0.0, 0.2, "call")
    assert out["price"].flags.owndata
