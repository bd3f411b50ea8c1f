"""The risk kernels' random stream: Philox 4x32-10 and the normals keyed by (seed, path, factor)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats
from tradecore import _core, risk
from tradecore.errors import TradecoreError

# Random123's known-answer vectors for philox4x32 with 10 rounds (its tests/kat_vectors).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

SEED = 20261205
# 1M draws: sample statistics have standard errors of about 1e-3; the bounds below are 5-6
# standard errors, and the seed is fixed, so the checks are deterministic yet would catch a
# biased, mis-scaled or correlated stream.
PATHS, FACTORS = 250_000, 4


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    return risk.normals(SEED, PATHS, FACTORS)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_block_matches_random123(
    counter: tuple[int, ...], key: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert tuple(_core.philox4x32_10(list(counter), list(key))) == expected


def test_normals_shape_dtype_and_finite(draws: np.ndarray) -> None:
    assert draws.shape == (PATHS, FACTORS)
    assert draws.dtype == np.float64
    assert draws.flags.c_contiguous
    assert np.isfinite(draws).all()


def test_normals_moments(draws: np.ndarray) -> None:
    z = draws.ravel()
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)  # excess kurtosis


def test_normals_distribution(draws: np.ndarray) -> None:
    # Kolmogorov-Smirnov against N(0, 1) on the whole sample and on every factor's column.
    assert stats.kstest(draws.ravel(), "norm").pvalue > 1e-4
    for j in range(FACTORS):
        assert stats.kstest(draws[:, j], "norm").pvalue > 1e-4


def test_normals_independent_across_factors_and_paths(draws: np.ndarray) -> None:
    # Factors 0/1 share a Box-Muller pair, 1/2 come from different blocks: both uncorrelated,
    # and so are the squares (a dependence that a plain correlation would miss).
    bound = 5 / np.sqrt(PATHS)
    corr = np.corrcoef(draws, rowvar=False)
    assert np.all(np.abs(corr[np.triu_indices(FACTORS, 1)]) < bound)
    sq = np.corrcoef(draws**2, rowvar=False)
    assert np.all(np.abs(sq[np.triu_indices(FACTORS, 1)]) < bound)
    lag = np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]  # consecutive paths
    assert abs(lag) < bound


def test_same_key_same_number_whatever_the_split() -> None:
    whole = risk.normals(SEED, 1000, 7, first_path=(1 << 32) - 500)
    parts = [
        risk.normals(SEED, 1, 7, first_path=(1 << 32) - 500),
        risk.normals(SEED, 499, 7, first_path=(1 << 32) - 499, threads=1),
        risk.normals(SEED, 500, 7, first_path=1 << 32, threads=3),
    ]
    np.testing.assert_array_equal(np.vstack(parts), whole)
    # A factor's value does not depend on how many factors are drawn.
    np.testing.assert_array_equal(risk.normals(SEED, 1000, 3, (1 << 32) - 500), whole[:, :3])
    for threads in (1, 2, 5):
        np.testing.assert_array_equal(
            risk.normals(SEED, 1000, 7, (1 << 32) - 500, threads=threads), whole
        )


def test_last_path_is_reachable() -> None:
    last = risk.normals(SEED, 1, 2, first_path=(1 << 64) - 1)
    assert np.isfinite(last).all()
    np.testing.assert_array_equal(risk.normals(SEED, 2, 2, (1 << 64) - 2)[1], last[0])


def test_different_seeds_differ() -> None:
    a = risk.normals(1, 100, 4)
    b = risk.normals(2, 100, 4)
    c = risk.normals((1 << 32) + 1, 100, 4)  # the seed's high word is part of the key
    d = risk.normals((1 << 64) - 1, 100, 4)
    for x, y in [(a, b), (a, c), (a, d), (b, c)]:
        assert not np.any(x == y)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1 << 64}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"paths": 0}, "paths"),
        ({"paths": "10"}, "paths"),
        ({"factors": 0}, "factors"),
        ({"factors": -3}, "factors"),
        ({"paths": 1 << 20, "factors": 1 << 8}, "paths * factors"),
        ({"first_path": -1}, "first_path"),
        ({"first_path": (1 << 64) - 1, "paths": 2}, "first_path"),
        ({"threads": -1}, "threads"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"seed": 1, "paths": 10, "factors": 2, **kwargs}
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        risk.normals(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1, 0, 0, 2), "paths"),
        ((1, 0, 2, 0), "factors"),
        ((1, 0, 1 << 20, 1 << 8), "paths * factors"),
        ((1, (1 << 64) - 1, 2, 1), "first_path"),
    ],
)
def test_kernel_validates_on_its_own(args: tuple[int, int, int, int], field: str) -> None:
    # The binding checks before allocating, so a direct _core call cannot overrun either.
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        _core.philox_normals(*args)


def test_device_must_be_cpu_or_cuda() -> None:
    with pytest.raises(ValueError, match=r"^device:"):
        risk.normals(1, 10, 2, device="gpu")  # type: ignore[arg-type]


@pytest.mark.skipif(_core.cuda_available(), reason="checks the no-GPU error")
def test_cuda_without_a_device_raises_tradecore_error() -> None:
    with pytest.raises(TradecoreError, match="CUDA is not available"):
        risk.normals(1, 10, 2, device="cuda")


@pytest.mark.skipif(not _core.cuda_available(), reason="needs a CUDA device")
def test_cuda_normals_match_the_cpu() -> None:
    # Odd factors (the last pair half used), paths across the 2^32 boundary of the counter word.
    first = (1 << 32) - 3000
    cpu = risk.normals(SEED, 6000, 5, first)
    gpu = risk.normals(SEED, 6000, 5, first, device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=1e-300)
    # The GPU's own split invariance is exact.
    tail = risk.normals(SEED, 3000, 5, first + 3000, device="cuda")
    np.testing.assert_array_equal(tail, gpu[3000:])
