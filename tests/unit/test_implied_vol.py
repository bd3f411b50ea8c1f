"""Implied volatility: round trips from deep ITM to deep OTM and 1 day to 30 years, tiny prices,
mpmath references, bound violations with their status, and the bounded iteration count."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import tradecore
from tradecore import _core
from tradecore.pricing import IVStatus, european, implied_vol, implied_vol_black76

mp.mp.dps = 50
EPS = np.finfo(float).eps


def grid() -> dict[str, np.ndarray]:
    T = np.array([1 / 365, 7 / 365, 0.1, 0.5, 1.0, 5.0, 30.0])
    v = np.array([0.01, 0.05, 0.2, 0.6, 1.5])
    z = np.array([-8.0, -4.0, -2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0, 4.0, 8.0])  # std devs
    TT, vv, zz = np.meshgrid(T, v, z, indexing="ij")
    TT, vv, zz = TT.ravel(), vv.ravel(), zz.ravel()
    K = 100.0 * np.exp(zz * vv * np.sqrt(TT))
    return {"S": np.full(TT.shape, 100.0), "K": K, "T": TT, "v": vv}


@pytest.mark.parametrize("kind", ["call", "put"])
@pytest.mark.parametrize(("r", "q"), [(0.03, 0.01), (-0.01, 0.04)])
def test_round_trip_over_the_grid(kind: str, r: float, q: float) -> None:
    g = grid()
    got = european(g["S"], g["K"], g["T"], r, q, g["v"], kind, greeks=["vega"])
    price, vega = got["price"], got["vega"]
    res = implied_vol(price, g["S"], g["K"], g["T"], r, q, kind)
    w = 1.0 if kind == "call" else -1.0
    intrinsic = np.maximum(w * (g["S"] * np.exp(-q * g["T"]) - g["K"] * np.exp(-r * g["T"])), 0)
    upper = g["S"] * np.exp(-q * g["T"]) if kind == "call" else g["K"] * np.exp(-r * g["T"])
    ok = res.status == IVStatus.OK
    # NaN only where no vol reproduces the price in double precision: it rounded onto the
    # intrinsic value (no time value left) or onto the upper bound - and the status says which.
    assert np.all(np.isnan(res.vol[~ok]))
    below = res.status == IVStatus.BELOW_INTRINSIC
    above = res.status == IVStatus.ABOVE_UPPER
    assert np.all(ok | below | above)
    # The bounds themselves are known to ~ulps of S e^{-qT} + K e^{-rT} (F - K rounds).
    scale = g["S"] * np.exp(-q * g["T"]) + g["K"] * np.exp(-r * g["T"])
    assert np.all(price[below] <= intrinsic[below] + 8 * EPS * scale[below])
    assert np.all(price[above] >= upper[above] * (1 - 4 * EPS))
    assert ok.mean() > 0.9
    # The vol is as accurate as the inputs allow: |dvol| <= 1e-12 vol + a few ulps of the price
    # and of the forward-strike difference, over vega.
    tol = 1e-12 * g["v"] + 8 * EPS * (price + 0.5 * scale) / np.maximum(vega, 1e-300)
    err = np.abs(res.vol - g["v"])
    bad = ok & (err > tol)
    assert not bad.any(), list(
        zip(g["K"][bad], g["T"][bad], g["v"][bad], res.vol[bad], strict=True)
    )
    assert res.counts["ok"] == int(ok.sum())
    assert res.failed == int((~ok).sum())


def test_tiny_prices_down_to_1e_minus_100_of_spot() -> None:
    S, T, r, q = 100.0, 0.25, 0.02, 0.0
    for rel in (1e-20, 1e-50, 1e-100, 1e-200):
        price = rel * S
        for kind, K in (("call", 400.0), ("put", 25.0), ("call", 101.0)):
            res = implied_vol(price, S, K, T, r, q, kind)
            assert res.status == IVStatus.OK, (rel, kind, K)
            back = european(S, K, T, r, q, res.vol, kind, greeks="none")["price"]
            assert abs(float(back) / price - 1) < 1e-12, (rel, kind, K, float(res.vol))


def mp_call(S: float, K: float, T: float, r: float, q: float, v: mp.mpf) -> mp.mpf:
    s = v * mp.sqrt(T)
    d1 = (mp.log(mp.mpf(S) / K) + (mp.mpf(r) - q) * T) / s + s / 2
    return mp.mpf(S) * mp.exp(-q * mp.mpf(T)) * mp.ncdf(d1) - K * mp.exp(-r * mp.mpf(T)) * mp.ncdf(
        d1 - s
    )


@pytest.mark.parametrize(
    ("K", "T", "v"),
    [(100.0, 1.0, 0.2), (150.0, 0.1, 0.3), (60.0, 2.0, 0.4), (300.0, 0.5, 0.15),
     (101.0, 1 / 365, 0.05), (100.0, 30.0, 0.9), (500.0, 30.0, 0.1)],
)  # fmt: skip
def test_against_mpmath_inversion(K: float, T: float, v: float) -> None:
    S, r, q = 100.0, 0.01, 0.02
    price = float(mp_call(S, K, T, r, q, mp.mpf(v)))  # the double nearest the exact price
    want = mp.findroot(lambda s: mp_call(S, K, T, r, q, s) - price, mp.mpf(v))
    got = float(implied_vol(price, S, K, T, r, q, "call").vol)
    vega = mp.diff(lambda s: mp_call(S, K, T, r, q, s), want)
    tol = 1e-13 * v + 4 * EPS * price / float(vega)
    assert abs(got - float(want)) <= tol


def test_block_solver_matches_mpmath_across_regions() -> None:
    # The batch solver runs rows through a vectorised block solver (scalar solver for the rare
    # rows it hands back): normalised prices from deep out of the money at small vol to near the
    # upper bound, inverted in one batch and checked against mpmath's root of the exact price.
    rng = np.random.default_rng(17)
    n = 160
    x = -(10.0 ** rng.uniform(-6, 1.3, n))  # ln(F/K) <= 0, then calls and puts
    s = 10.0 ** rng.uniform(-3.5, 0.6, n)  # sigma sqrt(T)
    S, T = 100.0, 1.0
    K = S * np.exp(-x)
    w = np.where(rng.random(n) < 0.5, 1, -1)
    price = european(S, K, T, 0.0, 0.0, s, w, greeks="none")["price"]
    res = implied_vol(price, S, K, T, 0.0, 0.0, w)
    checked = 0
    for i in range(n):
        bound = S if w[i] > 0 else K[i]
        if res.status[i] != IVStatus.OK or not 1e-280 < price[i] < 0.999 * bound:
            continue
        Sm, Km, p = mp.mpf(S), mp.mpf(float(K[i])), mp.mpf(float(price[i]))

        def f(v: mp.mpf, Sm: mp.mpf = Sm, Km: mp.mpf = Km, wi: int = int(w[i])) -> mp.mpf:
            d1 = mp.log(Sm / Km) / v + v / 2
            return wi * (Sm * mp.ncdf(wi * d1) - Km * mp.ncdf(wi * (d1 - v)))

        want = mp.findroot(lambda v, p=p: mp.log(f(v) / p), mp.mpf(float(s[i])))
        # 1e-13 relative + a few ulps of the price over vega (the price's own rounding).
        vega = mp.diff(f, want)
        tol = 1e-13 * float(want) + 8 * EPS * float(p / vega)
        assert abs(float(res.vol[i]) - float(want)) <= tol, (i, x[i], s[i], res.vol[i], want)
        checked += 1
    assert checked > 120


def test_bound_violations_have_their_status() -> None:
    S, K, T, r, q = 100.0, 90.0, 1.0, 0.05, 0.01
    lower_call = S * np.exp(-q * T) - K * np.exp(-r * T)
    prices = [lower_call * 0.99, S * np.exp(-q * T), S * 1.5, 0.0, -1.0, np.nan, 5.0, 16.0]
    res = implied_vol(prices, S, K, [T] * 6 + [0.0, T], r, q, "call")
    assert res.status.tolist() == [
        IVStatus.BELOW_INTRINSIC, IVStatus.ABOVE_UPPER, IVStatus.ABOVE_UPPER,
        IVStatus.NON_POSITIVE, IVStatus.NON_POSITIVE, IVStatus.INVALID_INPUT,
        IVStatus.INVALID_INPUT, IVStatus.OK,
    ]  # fmt: skip
    assert np.isnan(res.vol[:7]).all() and np.isfinite(res.vol[7])
    assert res.counts == {
        "ok": 1, "below_intrinsic": 1, "above_upper": 2, "non_positive": 2, "invalid_input": 2,
    }  # fmt: skip
    # Puts: the upper bound is K e^{-rT}, the lower K e^{-rT} - S e^{-qT}.
    put = implied_vol([K * np.exp(-r * T), 1e-3], S, K, T, r, q, "put")
    assert put.status.tolist() == [IVStatus.ABOVE_UPPER, IVStatus.OK]
    bad_inputs = implied_vol(
        5.0, [-1.0, 100.0, 100.0], [90.0, 0.0, 90.0], [1.0, 1.0, np.inf], r, q, "call"
    )
    assert (bad_inputs.status == IVStatus.INVALID_INPUT).all()


def test_black76_round_trip() -> None:
    F, K, T, r = 80.0, np.array([40.0, 70.0, 80.0, 95.0, 160.0]), 0.7, 0.04
    v = 0.35
    for kind in ("call", "put"):
        p = european(F, K, T, r, 0.0, v, kind, greeks="none", model="black76")["price"]
        res = implied_vol_black76(p, F, K, T, r, kind)
        assert (res.status == 0).all()
        assert np.allclose(res.vol, v, rtol=1e-12)


def test_iterations_are_few_and_bounded() -> None:
    its = []
    for x in (-1e-8, -1e-3, -0.05, -0.3, -1.0, -3.0, -10.0, -40.0):
        for s in (1e-3, 0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0):
            b = _core.normalised_black(x, s)
            if not (0 < b < np.exp(x / 2) * (1 - 1e-14)) or b < 1e-300:
                continue
            sv, it = _core.normalised_implied_vol(b, x)
            its.append(it)
            assert abs(sv - s) <= 1e-9 * s, (x, s, sv)
    assert max(its) <= 6
    assert np.mean(its) <= 3.5


def test_argument_errors_raise_value_error() -> None:
    with pytest.raises(ValueError, match="shapes"):
        implied_vol([1.0, 2.0], [100.0, 100.0, 100.0], 100.0, 1.0, 0.0, 0.0, "call")
    with pytest.raises(ValueError, match="option_type"):
        implied_vol(1.0, 100.0, 100.0, 1.0, 0.0, 0.0, "straddle")
    with pytest.raises(ValueError, match="price"):
        implied_vol("abc", 100.0, 100.0, 1.0, 0.0, 0.0, "call")
    with pytest.raises(ValueError, match="model"):
        implied_vol(1.0, 100.0, 100.0, 1.0, 0.0, 0.0, "call", model="sabr")  # type: ignore[arg-type]


def test_shapes_are_kept() -> None:
    p = np.full((3, 4), 5.0)
    res = implied_vol(p, 100.0, 100.0, 1.0, 0.0, 0.0, "call")
    assert res.vol.shape == (3, 4) and res.status.shape == (3, 4) and res.status.dtype == np.int8


@pytest.mark.cuda
@pytest.mark.skipif(
    not tradecore.cuda_available(), reason="no usable CUDA device (cuda_available() is False)"
)
def test_cuda_implied_vol_matches_cpu() -> None:
    g = grid()
    p = european(g["S"], g["K"], g["T"], 0.02, 0.01, g["v"], "put", greeks="none")["price"]
    cpu = implied_vol(p, g["S"], g["K"], g["T"], 0.02, 0.01, "put")
    gpu = implied_vol(p, g["S"], g["K"], g["T"], 0.02, 0.01, "put", device="cuda")
    assert np.array_equal(cpu.status, gpu.status)
    ok = cpu.status == 0
    assert np.allclose(gpu.vol[ok], cpu.vol[ok], rtol=1e-10)


@pytest.mark.parametrize("form", ["<U4", "mixed case letters", "S4", "object", "list"])
def test_string_option_types_equal_codes_bit_for_bit(form: str) -> None:
    rng = np.random.default_rng(5)
    n = 70_001  # above the parallel threshold of the option-type parser
    w = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    S, K, T = 100.0, rng.uniform(60, 140, n), rng.uniform(0.05, 3.0, n)
    price = european(S, K, T, 0.02, 0.01, rng.uniform(0.1, 0.8, n), w, "none")["price"]
    words = np.where(w > 0, "call", "put")
    types: object = {
        "<U4": words,
        "mixed case letters": np.where(w > 0, "c", "P"),
        "S4": words.astype("S4"),
        "object": words.astype(object),
        "list": words.tolist(),
    }[form]
    want = implied_vol(price, S, K, T, 0.02, 0.01, w)
    got = implied_vol(price, S, K, T, 0.02, 0.01, types)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.vol, want.vol)
    np.testing.assert_array_equal(got.status, want.status)
    with pytest.raises(ValueError, match=r"^option_type\[3\] must be 'call' or 'put'"):
        implied_vol(1.0, S, 100.0, 1.0, 0.0, 0.0, ["c", "p", "C", "callput"])
