"""European BSM / Black-76 prices and Greeks through third order against independent references.

References: mpmath at 50 digits (prices from the definition, Greeks as numerical derivatives of
those prices, so conventions and signs are checked too), QuantLib-Python away from its known
tail faults, textbook values (Haug, Hull), put-call parity and shape properties (hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp
import numpy as np
import pytest
import tradecore
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from tradecore.pricing import ALL_GREEKS, BLACK76_GREEKS, FIRST_ORDER_GREEKS, black76, european

mp.mp.dps = 50

# Each Greek as (orders of the derivative in (S, K, T, r, q, sigma), sign).
DERIVATIVES: dict[str, tuple[tuple[int, ...], int]] = {
    "delta": ((1, 0, 0, 0, 0, 0), 1),
    "gamma": ((2, 0, 0, 0, 0, 0), 1),
    "vega": ((0, 0, 0, 0, 0, 1), 1),
    "theta": ((0, 0, 1, 0, 0, 0), -1),
    "rho": ((0, 0, 0, 1, 0, 0), 1),
    "phi": ((0, 0, 0, 0, 1, 0), 1),
    "vanna": ((1, 0, 0, 0, 0, 1), 1),
    "charm": ((1, 0, 1, 0, 0, 0), -1),
    "vomma": ((0, 0, 0, 0, 0, 2), 1),
    "speed": ((3, 0, 0, 0, 0, 0), 1),
    "color": ((2, 0, 1, 0, 0, 0), -1),
    "zomma": ((2, 0, 0, 0, 0, 1), 1),
    "ultima": ((0, 0, 0, 0, 0, 3), 1),
    "veta": ((0, 0, 1, 0, 0, 1), -1),
    "dual_delta": ((0, 1, 0, 0, 0, 0), 1),
    "dual_gamma": ((0, 2, 0, 0, 0, 0), 1),
}


def mp_price(S: mp.mpf, K: mp.mpf, T: mp.mpf, r: mp.mpf, q: mp.mpf, v: mp.mpf, w: int) -> mp.mpf:
    s = v * mp.sqrt(T)
    d1 = (mp.log(S / K) + (r - q) * T) / s + s / 2
    d2 = d1 - s
    return w * (S * mp.exp(-q * T) * mp.ncdf(w * d1) - K * mp.exp(-r * T) * mp.ncdf(w * d2))


def mp_black76(F: mp.mpf, K: mp.mpf, T: mp.mpf, r: mp.mpf, v: mp.mpf, w: int) -> mp.mpf:
    return mp.exp(-r * T) * mp_price(F, K, T, mp.mpf(0), mp.mpf(0), v, w)


def mp_greeks(
    price: Callable[..., mp.mpf], args: tuple[float, ...], names: list[str]
) -> dict[str, float]:
    x = tuple(mp.mpf(a) for a in args)
    out = {"price": float(price(*x))}
    for name in names:
        if name == "elasticity":
            out[name] = float(mp.diff(price, x, (1, 0, 0, 0, 0, 0)) * x[0] / price(*x))
            continue
        orders, sign = DERIVATIVES[name]
        out[name] = float(sign * mp.diff(price, x, orders))
    return out


def check_close(got: float, ref: float, rtol: float, what: str, scale: float = 0.0) -> None:
    assert abs(got - ref) <= rtol * (abs(ref) + scale), f"{what}: got {got!r}, want {ref!r}"


CASES = [
    # S, K, T, r, q, sigma
    (100.0, 100.0, 1.0, 0.05, 0.02, 0.2),
    (100.0, 130.0, 0.5, 0.03, 0.0, 0.25),
    (100.0, 70.0, 2.0, -0.01, 0.03, 0.35),  # negative rate, q > r
    (50.0, 55.0, 1.0 / 365.0, 0.04, 0.01, 0.3),  # one day
    (100.0, 100.0, 30.0, 0.02, 0.01, 0.15),  # thirty years
    (100.0, 180.0, 0.25, 0.05, 0.0, 0.2),  # deep OTM call / deep ITM put
    (100.0, 40.0, 0.25, 0.05, 0.0, 0.2),  # deep ITM call / deep OTM put
    (100.0, 300.0, 0.1, 0.01, 0.0, 0.1),  # far out of the money: price ~1e-200
    (100.0, 105.0, 5.0, -0.005, 0.04, 0.6),
    (1.0, 1.3, 0.02, 0.1, 0.12, 0.05),  # q > r, low vol, short expiry
]


def random_cases(n: int, seed: int) -> list[tuple[float, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        T = float(np.exp(rng.uniform(np.log(1 / 365), np.log(30))))
        v = float(rng.uniform(0.05, 1.0))
        K = float(100 * np.exp(rng.uniform(-3, 3) * v * np.sqrt(T)))
        out.append((100.0, K, T, float(rng.uniform(-0.02, 0.1)), float(rng.uniform(0, 0.08)), v))
    return out


@pytest.mark.parametrize("case", CASES + random_cases(12, 7))
@pytest.mark.parametrize("w", [1, -1])
def test_every_greek_matches_mpmath(case: tuple[float, ...], w: int) -> None:
    S, K, T, r, q, v = case
    got = european(S, K, T, r, q, v, "call" if w > 0 else "put", greeks="all")
    ref = mp_greeks(lambda *a: mp_price(*a, w), case, [*DERIVATIVES, "elasticity"])
    price = ref["price"]
    for name, want in ref.items():
        # Relative 1e-10; the scale covers Greeks that cross zero (a sum of terms of the size of
        # the price's own sensitivities).
        check_close(
            float(got[name]), want, 1e-10, f"{name} {case} w={w}", 1e-6 * abs(price) + 1e-300
        )


@pytest.mark.parametrize("case", CASES + random_cases(6, 11))
@pytest.mark.parametrize("w", [1, -1])
def test_black76_matches_mpmath(case: tuple[float, ...], w: int) -> None:
    F, K, T, r, _, v = case
    got = black76(F, K, T, r, v, "call" if w > 0 else "put")
    assert set(got) == {"price", *BLACK76_GREEKS}
    args = (F, K, T, r, 0.0, v)
    ref = mp_greeks(
        lambda F, K, T, r, q, v: mp_black76(F, K, T, r, v, w), args,
        [g for g in DERIVATIVES if g != "phi"] + ["elasticity"],
    )  # fmt: skip
    for name, want in ref.items():
        check_close(
            float(got[name]), want, 1e-10, f"b76 {name} {case}", 1e-6 * abs(ref["price"]) + 1e-300
        )


def test_deep_out_of_the_money_prices_keep_relative_accuracy() -> None:
    # Prices from ~1e-10 down to ~1e-250 of the spot: no cancellation, no tail loss.
    K = np.array([150.0, 200.0, 300.0, 500.0, 1000.0, 3000.0])
    got = european(100.0, K, 0.5, 0.01, 0.0, 0.15, "call", greeks="first")
    for k, p, d in zip(K, got["price"], got["delta"], strict=True):
        args = tuple(mp.mpf(a) for a in (100.0, k, 0.5, 0.01, 0.0, 0.15))
        want = mp_price(*args, 1)
        # The fast path keeps ~2e-12 at worst where it does not recompute (see european.hpp).
        assert want > 0 and abs(p - float(want)) <= 3e-12 * float(want), (k, p, want)
        rest = args[1:]
        want_d = mp.diff(lambda s, rest=rest: mp_price(s, *rest, 1), args[0])
        assert abs(d - float(want_d)) <= 1e-12 * float(want_d), (k, d, want_d)


def test_recomputed_prices_of_the_fast_path_match_mpmath() -> None:
    # Rows of a random book whose closed-form price cancels (price << S e^{-qT} N(d1) +
    # K e^{-rT} N(d2)) are recomputed from the normalised Black form in a vector pass (an
    # erfcx pair whose difference is taken without cancellation): every one against mpmath.
    rng = np.random.default_rng(11)
    n = 20_000
    S, K = rng.uniform(50, 150, n), rng.uniform(50, 150, n)
    T, v = rng.uniform(0.01, 3, n), rng.uniform(0.03, 0.8, n)
    r, q = rng.uniform(-0.01, 0.08, n), rng.uniform(0, 0.05, n)
    w = np.where(rng.random(n) < 0.5, 1, -1)
    s = v * np.sqrt(T)
    d1 = (np.log(S / K) + (r - q) * T) / s + s / 2
    d2 = d1 - s
    a1 = S * np.exp(-q * T) * ndtr(w * d1)
    a2 = K * np.exp(-r * T) * ndtr(w * d2)
    naive = w * (a1 - a2)
    pick = np.flatnonzero(
        (naive * 4096 < (a1 + a2) * (1 + 0.5 * d1 * d1)) & (np.abs(d1) < 20) & (np.abs(d2) < 20)
    )
    assert pick.size > 100
    pick = pick[:: max(1, pick.size // 120)]
    got = european(S[pick], K[pick], T[pick], r[pick], q[pick], v[pick], w[pick], greeks="first")
    for i, p in zip(pick, got["price"], strict=True):
        args = tuple(mp.mpf(float(a[i])) for a in (S, K, T, r, q, v))
        want = mp_price(*args, int(w[i]))
        # The inputs' own rounding moves the price by ~h^2 ulps (h = ln(F/K)/(sigma sqrt T)).
        h = float(abs(mp.log(args[0] / args[1]) + (args[3] - args[4]) * args[2]) / float(s[i]))
        tol = (4 + h * h) * 4 * 2.2e-16
        assert abs(p / float(want) - 1) <= tol, (i, p, want, h)


def test_fast_first_order_path_agrees_with_the_all_greeks_path() -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    S = rng.uniform(50, 150, n)
    K = rng.uniform(50, 150, n)
    T = rng.uniform(0.01, 5, n)
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0, 0.06, n)
    v = rng.uniform(0.05, 0.9, n)
    ty = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    first = european(S, K, T, r, q, v, ty, greeks="first")
    allg = european(S, K, T, r, q, v, ty, greeks="all")
    assert set(first) == {"price", *FIRST_ORDER_GREEKS}
    assert set(allg) == {"price", *ALL_GREEKS}
    for name in first:
        a, b = first[name], allg[name]
        assert np.all(np.abs(a - b) <= 1e-12 * (np.abs(b) + 1e-9 * S)), name


def test_quantlib_agrees_away_from_the_tails() -> None:
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    rng = np.random.default_rng(5)
    for _ in range(40):
        days = int(rng.integers(7, 3650))
        T = days / 365.0
        S, v = 100.0, float(rng.uniform(0.1, 0.6))
        K = float(S * np.exp(rng.uniform(-1.5, 1.5) * v * np.sqrt(T)))
        r, q = float(rng.uniform(-0.01, 0.08)), float(rng.uniform(0, 0.06))
        w = 1 if rng.random() < 0.5 else -1
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(S)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), v, dc)),
        )
        opt = ql.VanillaOption(
            ql.PlainVanillaPayoff(ql.Option.Call if w > 0 else ql.Option.Put, K),
            ql.EuropeanExercise(today + days),
        )
        opt.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        got = european(S, K, T, r, q, v, "call" if w > 0 else "put", greeks="first")
        want = {
            "price": opt.NPV(), "delta": opt.delta(), "gamma": opt.gamma(), "vega": opt.vega(),
            "theta": opt.theta(), "rho": opt.rho(), "phi": opt.dividendRho(),
        }  # fmt: skip
        for name, value in want.items():
            check_close(float(got[name]), value, 1e-8, f"QuantLib {name}", 1e-8 * S)


@pytest.mark.parametrize(
    ("args", "model", "name", "want", "tol"),
    [
        # Haug (2007), generalised BSM call: S=60, K=65, T=0.25, r=b=0.08, sigma=0.3.
        ((60.0, 65.0, 0.25, 0.08, 0.0, 0.3, "call"), "bsm", "price", 2.1334, 5e-5),
        # Hull, Options Futures & Other Derivatives: S=42, K=40, r=10%, sigma=20%, 6 months.
        ((42.0, 40.0, 0.5, 0.1, 0.0, 0.2, "call"), "bsm", "price", 4.76, 5e-3),
        ((42.0, 40.0, 0.5, 0.1, 0.0, 0.2, "put"), "bsm", "price", 0.81, 5e-3),
        # Haug, Black-76: F=19, K=19, T=0.75, r=10%, sigma=28% (call = put).
        ((19.0, 19.0, 0.75, 0.1, 0.0, 0.28, "call"), "black76", "price", 1.7011, 5e-5),
        ((19.0, 19.0, 0.75, 0.1, 0.0, 0.28, "put"), "black76", "price", 1.7011, 5e-5),
        # Haug delta example (futures option, b=0): S=105, K=100, T=0.5, r=10%, sigma=36%.
        ((105.0, 100.0, 0.5, 0.1, 0.0, 0.36, "call"), "black76", "delta", 0.5946, 5e-5),
        ((105.0, 100.0, 0.5, 0.1, 0.0, 0.36, "put"), "black76", "delta", -0.3566, 5e-5),
        # Haug gamma example: S=55, K=60, T=0.75, r=b=10%, sigma=30%.
        ((55.0, 60.0, 0.75, 0.1, 0.0, 0.3, "call"), "bsm", "gamma", 0.0278, 5e-5),
    ],
)
def test_textbook_values(
    args: tuple[float, ...], model: str, name: str, want: float, tol: float
) -> None:
    S, K, T, r, q, v, kind = args
    got = european(S, K, T, r, q, v, kind, greeks="all", model=model)  # type: ignore[arg-type]
    assert abs(float(got[name]) - want) <= tol


def test_put_call_parity() -> None:
    rng = np.random.default_rng(9)
    n = 10_000
    S, K = rng.uniform(20, 200, n), rng.uniform(20, 200, n)
    T, v = rng.uniform(1 / 365, 30, n), rng.uniform(0.02, 1.5, n)
    r, q = rng.uniform(-0.02, 0.1, n), rng.uniform(0, 0.1, n)
    c = european(S, K, T, r, q, v, "call")
    p = european(S, K, T, r, q, v, "put")
    fwd = S * np.exp(-q * T) - K * np.exp(-r * T)
    scale = S + K
    assert np.all(np.abs(c["price"] - p["price"] - fwd) <= 1e-13 * scale)
    assert np.all(np.abs(c["delta"] - p["delta"] - np.exp(-q * T)) <= 1e-13)
    for g in ("gamma", "vega", "vanna", "vomma", "speed", "zomma", "ultima", "veta", "color",
              "dual_gamma"):  # fmt: skip
        assert np.allclose(c[g], p[g], rtol=1e-12, atol=1e-14 * scale), g


def test_black76_equals_bsm_with_the_forward_as_spot_and_q_equal_r() -> None:
    F, K, T, r, v = 105.0, np.array([80.0, 100.0, 130.0]), 0.8, 0.04, 0.3
    a = black76(F, K, T, r, v, "call")
    b = european(F, K, T, r, r, v, "call")
    for g in ("price", "delta", "gamma", "vega", "theta", "vanna", "charm", "vomma", "color",
              "veta", "speed", "zomma", "ultima"):  # fmt: skip
        assert np.allclose(a[g], b[g], rtol=1e-13, atol=1e-15), g
    assert np.allclose(a["rho"], -T * a["price"], rtol=1e-14)


def test_expired_options_and_api_errors() -> None:
    got = european([90.0, 100.0, 110.0], 100.0, 0.0, 0.05, 0.0, 0.2, "call", greeks="all")
    assert got["price"].tolist() == [0.0, 0.0, 10.0]
    assert got["delta"].tolist() == [0.0, 0.5, 1.0]
    assert got["dual_delta"].tolist() == [-0.0, -0.5, -1.0]
    assert got["gamma"].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"sigma\[1\]"):
        european(100.0, 100.0, 1.0, 0.0, 0.0, [0.2, -0.1], "call")
    with pytest.raises(ValueError, match="greeks"):
        european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "call", greeks=["phi", "nope"])
    with pytest.raises(ValueError, match="greeks"):
        black76(100.0, 100.0, 1.0, 0.0, 0.2, "call", greeks=["phi"])
    with pytest.raises(ValueError, match="q must be 0"):
        european(100.0, 100.0, 1.0, 0.0, 0.01, 0.2, "call", model="black76")
    with pytest.raises(ValueError, match="model"):
        european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "call", model="heston")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shapes"):
        european([100.0, 90.0], [1.0, 2.0, 3.0], 1.0, 0.0, 0.0, 0.2, "call")


def test_out_buffers_are_written_in_place_for_higher_greeks() -> None:
    n = 100
    S = np.linspace(80, 120, n)
    out = {g: np.empty(n) for g in ("price", "vomma", "color")}
    res = european(S, 100.0, 1.0, 0.03, 0.01, 0.25, "put", greeks=["vomma", "color"], out=out)
    assert res["vomma"] is not out["vomma"] or np.shares_memory(res["vomma"], out["vomma"])
    assert np.shares_memory(res["color"], out["color"])
    ref = european(S, 100.0, 1.0, 0.03, 0.01, 0.25, "put")
    assert np.array_equal(out["color"], ref["color"])


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    S=st.floats(1.0, 1000.0), k=st.floats(-2.0, 2.0), T=st.floats(1 / 365, 30.0),
    r=st.floats(-0.05, 0.15), q=st.floats(0.0, 0.15), v=st.floats(0.01, 2.0),
    put=st.booleans(),
)  # fmt: skip
def test_shape_properties(
    S: float, k: float, T: float, r: float, q: float, v: float, put: bool
) -> None:
    kind = "put" if put else "call"
    Ks = S * np.exp(k * v * np.sqrt(T)) * np.array([0.99, 1.0, 1.01])  # equally spaced
    p = european(S, Ks, T, r, q, v, kind, greeks="none")["price"]
    scale = 1e-13 * (S + Ks.max())
    # Monotone in strike (calls fall, puts rise) and convex in strike.
    if put:
        assert p[0] <= p[1] + scale and p[1] <= p[2] + scale
    else:
        assert p[0] + scale >= p[1] and p[1] + scale >= p[2]
    assert p[0] - 2 * p[1] + p[2] >= -4 * scale
    # Increasing in vol; vega and gamma non-negative.
    pv = european(S, Ks[1], T, r, q, [v, v * 1.01], kind, greeks=["vega", "gamma"])
    assert pv["price"][1] + scale >= pv["price"][0]
    assert np.all(pv["vega"] >= 0) and np.all(pv["gamma"] >= 0)


@pytest.mark.cuda
@pytest.mark.skipif(
    not tradecore.cuda_available(), reason="no usable CUDA device (cuda_available() is False)"
)
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    args = (
        rng.uniform(50, 150, n), rng.uniform(50, 150, n), rng.uniform(1 / 365, 10, n),
        rng.uniform(-0.01, 0.08, n), rng.uniform(0, 0.05, n), rng.uniform(0.05, 1.0, n),
        np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8),
    )  # fmt: skip
    cpu = european(*args, greeks="all")
    gpu = european(*args, greeks="all", device="cuda")
    for g in cpu:
        assert np.allclose(gpu[g], cpu[g], rtol=1e-11, atol=1e-13 * 100), g
    f = black76(*args[:4], args[5], args[6], device="cuda")
    assert np.allclose(
        f["price"], black76(*args[:4], args[5], args[6])["price"], rtol=1e-11, atol=1e-11
    )


def test_cuda_unavailable_raises_tradecore_error() -> None:
    if tradecore.cuda_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(tradecore.TradecoreError):
        european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "call", device="cuda")
