from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tradecore import _core
from tradecore.curve import RateCurve
from tradecore.pricing import european
from tradecore.surface import (
    OptionChain,
    SabrParams,
    SliceFit,
    SviParams,
    VolSurface,
    _implied_vols,
    fit_surface,
)

S, R, Q = 100.0, 0.03, 0.01

SVI_TRUE = {
    0.25: SviParams(a=0.010, b=0.10, rho=-0.40, m=0.02, sigma=0.15),
    1.0: SviParams(a=0.030, b=0.15, rho=-0.50, m=0.05, sigma=0.30),
    2.0: SviParams(a=0.060, b=0.16, rho=-0.45, m=0.08, sigma=0.40),
}
# Axel Vogt's SVI slice: fits the wings, but its density is negative near k = 0.9.
VOGT = SviParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)


def _forward(T: float, rate: float = R) -> float:
    return S * math.exp((rate - Q) * T)


def _chain(
    vols_by_expiry: dict[float, tuple[np.ndarray, np.ndarray]],
    both_types: bool = True,
    rate: float | RateCurve = R,
) -> OptionChain:
    """Calls and puts (or OTM only) priced by BSM at the given (strike, vol) per expiry, with a
    bid/ask spread of 2 % around the model price."""
    K_all, T_all, types, prices = [], [], [], []
    for T, (K, vol) in vols_by_expiry.items():
        r = float(rate.zero_rate(T)) if isinstance(rate, RateCurve) else rate
        F = S * math.exp((r - Q) * T)
        kinds = ["call", "put"] if both_types else [None]
        for kind in kinds:
            typ = np.where(K >= F, "call", "put") if kind is None else np.full(K.size, kind)
            p = european(S, K, T, r, Q, vol, typ, greeks="none")["price"]
            K_all.append(K)
            T_all.append(np.full(K.size, T))
            types.append(typ)
            prices.append(p)
    mid = np.concatenate(prices)
    return OptionChain.from_quotes(
        np.concatenate(K_all),
        np.concatenate(T_all),
        np.concatenate(types),
        bid=mid * 0.99,
        ask=mid * 1.01,
        spot=S,
        rate=rate,
        dividend=Q,
    )


def _svi_quotes(params: dict[float, SviParams], k: np.ndarray) -> dict[float, tuple]:
    out = {}
    for T, p in params.items():
        F = _forward(T)
        out[T] = (F * np.exp(k), np.sqrt(p.total_variance(k) / T))
    return out


def _assert_params(got: SviParams | SabrParams, want: SviParams | SabrParams, tol: float) -> None:
    np.testing.assert_allclose(got.as_tuple(), want.as_tuple(), rtol=0, atol=tol)


# ------------------------------------------------------------------------------ kernels
def test_svi_kernel_derivatives_match_finite_differences() -> None:
    p = SVI_TRUE[1.0]
    k = np.linspace(-1.0, 1.0, 41)
    w, dw, d2w = p.derivatives(k)
    x = k - p.m
    np.testing.assert_allclose(w, p.a + p.b * (p.rho * x + np.sqrt(x * x + p.sigma**2)), 1e-14)
    h = 1e-5
    fd1 = (p.total_variance(k + h) - p.total_variance(k - h)) / (2 * h)
    fd2 = (p.total_variance(k + h) - 2 * w + p.total_variance(k - h)) / h**2
    np.testing.assert_allclose(dw, fd1, atol=1e-9)
    np.testing.assert_allclose(d2w, fd2, atol=2e-5)
    g = p.density(k)
    ref = (1 - k * dw / (2 * w)) ** 2 - dw**2 / 4 * (1 / w + 0.25) + d2w / 2
    np.testing.assert_allclose(g, ref, rtol=1e-13, atol=1e-14)


def test_vogt_density_is_negative_only_near_point_nine() -> None:
    k = np.linspace(-1.5, 2.0, 351)
    g = VOGT.density(k)
    neg = k[g < 0]
    assert neg.size > 0 and neg.min() > 0.6 and neg.max() < 1.3


def test_sabr_kernel_matches_quantlib() -> None:
    ql = pytest.importorskip("QuantLib")
    p = SabrParams(alpha=0.3, beta=0.6, rho=-0.35, nu=0.7)
    F, T = 105.0, 1.5
    K = np.array([60.0, 80.0, 99.0, 105.0, 105.0000001, 120.0, 170.0])
    got = p.vol(F, K, T)
    want = [ql.sabrVolatility(float(k), F, T, p.alpha, p.beta, p.nu, p.rho) for k in K]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sabr_atm_matches_hagan_closed_form() -> None:
    p = SabrParams(alpha=0.2, beta=1.0, rho=-0.3, nu=0.5)
    atm = p.vol(100.0, 100.0, 1.0)[0]
    want = 0.2 * (1 + (0.25 * -0.3 * 0.5 * 0.2 + (2 - 3 * 0.09) / 24 * 0.25) * 1.0)
    assert atm == pytest.approx(want, rel=1e-15)


def test_implied_vols_round_trip_and_bounds() -> None:
    rng = np.random.default_rng(7)
    n = 400
    F = np.full(n, 100.0)
    T = rng.uniform(0.02, 3.0, n)
    vol = rng.uniform(0.05, 1.2, n)
    K = F * np.exp(rng.uniform(-1.5, 1.5, n) * vol * np.sqrt(T))
    r = rng.uniform(-0.01, 0.08, n)
    codes = np.where(K >= F, 1, -1).astype(np.int8)
    price = european(F, K, T, r, r, vol, codes, greeks="none")["price"]
    got = _implied_vols(price, F, K, T, np.exp(-r * T), codes)
    np.testing.assert_allclose(got, vol, rtol=1e-9)
    # below intrinsic, above the upper bound, and zero: no vol
    bad = _implied_vols(
        np.array([4.0, 101.0, 0.0]),
        np.full(3, 100.0),
        np.array([95.0, 90.0, 110.0]),
        np.ones(3),
        np.ones(3),
        np.array([1, 1, 1], dtype=np.int8),
    )
    assert np.isnan(bad).all()


# ------------------------------------------------------------------------------ SVI fits
def test_svi_fit_recovers_parameters_without_arbitrage() -> None:
    chain = _chain(_svi_quotes(SVI_TRUE, np.linspace(-0.7, 0.5, 25)))
    surface = fit_surface(chain, "svi")
    assert [s.expiry for s in surface.slices] == sorted(SVI_TRUE)
    for s in surface.slices:
        _assert_params(s.params, SVI_TRUE[s.expiry], 1e-8)
        assert s.forward == pytest.approx(_forward(s.expiry), rel=1e-12)  # put-call parity
        assert s.n_quotes == 25  # one OTM quote per strike
        assert s.rmse is not None and s.rmse < 1e-12
    assert surface.diagnostics.arbitrage_free
    assert surface.diagnostics.dropped_quotes == 0
    assert set(surface.diagnostics.rmse_by_expiry) == set(SVI_TRUE)


def test_svi_fit_with_otm_quotes_carry_forward_and_rate_curve() -> None:
    curve = RateCurve.from_points([0.5, 1.0, 3.0], [0.02, 0.025, 0.035])
    quotes = {}
    for T, p in SVI_TRUE.items():
        F = S * math.exp((float(curve.zero_rate(T)) - Q) * T)
        k = np.linspace(-0.6, 0.4, 15)
        quotes[T] = (F * np.exp(k), np.sqrt(p.total_variance(k) / T))
    chain = _chain(quotes, both_types=False, rate=curve)  # no call/put pairs: carry forward
    surface = fit_surface(chain)
    for s in surface.slices:
        F = S * math.exp((float(curve.zero_rate(s.expiry)) - Q) * s.expiry)
        assert s.forward == pytest.approx(F, rel=1e-14)
        _assert_params(s.params, SVI_TRUE[s.expiry], 1e-8)


def test_butterfly_arbitrage_is_flagged() -> None:
    chain = _chain(_svi_quotes({1.0: VOGT}, np.linspace(-1.0, 1.6, 40)), both_types=False)
    surface = fit_surface(chain)
    _assert_params(surface.slices[0].params, VOGT, 1e-7)
    found = surface.diagnostics.violations
    assert [(v.kind, v.expiry) for v in found] == [("butterfly", 1.0)]
    assert 0.7 < found[0].k < 1.1 and found[0].value < 0
    assert not surface.diagnostics.arbitrage_free


def test_call_prices_of_vogt_slice_are_not_convex() -> None:
    # the chain itself carries the arbitrage: call prices are concave in strike somewhere
    F = _forward(1.0)
    K = F * np.exp(np.linspace(0.6, 1.2, 61))
    vol = np.sqrt(VOGT.total_variance(np.log(K / F)))
    c = european(S, K, 1.0, R, Q, vol, "call", greeks="none")["price"]
    assert (np.diff(c, 2) < 0).any()


def test_calendar_arbitrage_is_flagged_at_the_later_expiry() -> None:
    params = {
        0.5: SviParams(a=0.02, b=0.10, rho=-0.3, m=0.0, sigma=0.2),
        1.0: SviParams(a=0.0, b=0.20, rho=-0.3, m=0.0, sigma=0.1),  # lower w near the money
    }
    surface = fit_surface(_chain(_svi_quotes(params, np.linspace(-0.6, 0.6, 21))))
    kinds = [(v.kind, v.expiry) for v in surface.diagnostics.violations]
    assert kinds == [("calendar", 1.0)]
    v = surface.diagnostics.violations[0]
    assert abs(v.k) < 0.2 and v.value < 0
    w_diff = params[1.0].total_variance([v.k]) - params[0.5].total_variance([v.k])
    assert v.value == pytest.approx(float(w_diff[0]), rel=1e-6)


# ------------------------------------------------------------------------------ SABR fits
def test_sabr_fit_recovers_parameters() -> None:
    true = {0.5: SabrParams(0.25, 0.7, -0.35, 0.6), 2.0: SabrParams(0.22, 0.7, -0.25, 0.4)}
    quotes = {}
    for T, p in true.items():
        F = _forward(T)
        K = F * np.exp(np.linspace(-0.5, 0.4, 19))
        quotes[T] = (K, p.vol(F, K, T))
    surface = fit_surface(_chain(quotes), "sabr", beta=0.7)
    for s in surface.slices:
        _assert_params(s.params, true[s.expiry], 1e-6)
        assert s.rmse is not None and s.rmse < 1e-8
    assert surface.model == "sabr"


# ------------------------------------------------------------------------------ queries
@pytest.fixture(scope="module")
def svi_surface() -> VolSurface:
    slices = [SliceFit(T, _forward(T), p) for T, p in SVI_TRUE.items()]
    return VolSurface.from_slices("svi", slices, spot=S)


def test_vol_at_slice_expiries_is_the_slice_vol(svi_surface: VolSurface) -> None:
    k = np.linspace(-0.5, 0.5, 11)
    for T, p in SVI_TRUE.items():
        got = svi_surface.vol(_forward(T) * np.exp(k), T)
        np.testing.assert_allclose(got, np.sqrt(p.total_variance(k) / T), rtol=1e-13)


def test_total_variance_is_linear_in_expiry_at_fixed_k(svi_surface: VolSurface) -> None:
    k = np.linspace(-0.5, 0.5, 11)
    for T in (0.4, 0.625, 1.7):
        lo, hi = (0.25, 1.0) if T < 1.0 else (1.0, 2.0)
        theta = (T - lo) / (hi - lo)
        F = svi_surface.forward(T)
        assert float(F) == pytest.approx(_forward(T), rel=1e-13)  # constant carry: ln F linear
        got = svi_surface.total_variance(F * np.exp(k), T)
        want = (1 - theta) * SVI_TRUE[lo].total_variance(k) + theta * SVI_TRUE[hi].total_variance(k)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_extrapolation_in_expiry(svi_surface: VolSurface) -> None:
    k = np.array([-0.3, 0.0, 0.3])
    # before the first expiry (and at T = 0): the first slice's vol at the same k
    first = np.sqrt(SVI_TRUE[0.25].total_variance(k) / 0.25)
    for T in (0.0, 0.1):
        np.testing.assert_allclose(svi_surface.vol(_forward(T) * np.exp(k), T), first, 1e-12)
    # after the last: the last interval's forward variance continues
    T = 3.0
    w1, w2 = SVI_TRUE[1.0].total_variance(k), SVI_TRUE[2.0].total_variance(k)
    want = w2 + (T - 2.0) * (w2 - w1) / 1.0
    got = svi_surface.total_variance(_forward(T) * np.exp(k), T)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # one slice: flat vol in T
    one = VolSurface.from_slices("svi", [SliceFit(1.0, 100.0, SVI_TRUE[1.0])])
    np.testing.assert_allclose(one.vol(110.0, [0.5, 1.0, 4.0]), one.vol(110.0, 1.0), rtol=1e-14)


def test_total_variance_non_decreasing_in_expiry(svi_surface: VolSurface) -> None:
    T = np.linspace(0.01, 4.0, 200)
    for k in (-0.6, 0.0, 0.4):
        w = svi_surface.total_variance(svi_surface.forward(T) * np.exp(k), T)
        assert (np.diff(w) >= -1e-15).all()


def test_vol_broadcasts_shapes(svi_surface: VolSurface) -> None:
    K = np.linspace(80, 120, 5)[:, None]
    T = np.array([0.3, 1.2, 2.5])[None, :]
    v = svi_surface.vol(K, T)
    assert v.shape == (5, 3)
    assert v[2, 1] == pytest.approx(float(svi_surface.vol(K[2, 0], T[0, 1])), rel=1e-15)


def test_sabr_surface_queries_use_sabr_slices() -> None:
    p = SabrParams(0.25, 0.5, -0.3, 0.5)
    surface = VolSurface.from_slices("sabr", [SliceFit(1.0, 100.0, p), SliceFit(2.0, 101.0, p)])
    K = np.array([80.0, 100.0, 130.0])
    np.testing.assert_allclose(surface.vol(K, 1.0), p.vol(100.0, K, 1.0), rtol=1e-14)


def test_surface_round_trips_through_a_plain_dict(svi_surface: VolSurface) -> None:
    chain = _chain(_svi_quotes({1.0: VOGT}, np.linspace(-1.0, 1.6, 30)), both_types=False)
    for surface in (svi_surface, fit_surface(chain)):
        data = json.loads(json.dumps(surface.to_dict()))
        back = VolSurface.from_dict(data)
        assert back.to_dict() == surface.to_dict()
        K, T = np.array([90.0, 100.0, 115.0]), np.array([0.5, 1.0, 1.5])
        np.testing.assert_array_equal(back.vol(K, T), surface.vol(K, T))
        assert back.diagnostics == surface.diagnostics


# ------------------------------------------------------------------------------ invalid input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strike": [100.0, -1.0]}, r"strike\[1\]"),
        ({"expiry": [1.0, 0.0]}, r"expiry\[1\]"),
        ({"option_type": ["call", "straddle"]}, r"option_type\[1\]"),
        ({"bid": [1.0, 3.0], "ask": [2.0, 2.5]}, r"ask\[1\] must be finite and >= bid"),
        ({"bid": None, "ask": None}, "mid"),
        ({"spot": -5.0}, "spot"),
        ({"rate": float("nan")}, "rate"),
        ({"forward": [100.0, 0.0]}, r"forward\[1\]"),
        ({"forward_method": "magic"}, "forward_method"),
    ],
)
def test_chain_rejects_invalid_quotes(kwargs: dict, match: str) -> None:
    args = {
        "strike": [100.0, 110.0],
        "expiry": [1.0, 1.0],
        "option_type": ["call", "call"],
        "bid": [5.0, 2.0],
        "ask": [5.5, 2.5],
        "spot": 100.0,
    }
    args.update(kwargs)
    strike, expiry, option_type = args.pop("strike"), args.pop("expiry"), args.pop("option_type")
    with pytest.raises(ValueError, match=match):
        OptionChain.from_quotes(strike, expiry, option_type, **args)


def test_invalid_parameters_and_queries(svi_surface: VolSurface) -> None:
    with pytest.raises(ValueError, match="b must be >= 0"):
        SviParams(0.01, -0.1, 0.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="rho"):
        SabrParams(0.2, 0.5, 1.0, 0.3)
    with pytest.raises(ValueError, match="svi: sigma"):
        _core.svi_density(np.zeros(3), 0.01, 0.1, 0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="sabr: beta"):
        _core.sabr_vol(np.ones(2), np.ones(2), np.ones(2), 0.2, 1.5, 0.0, 0.3, 0)
    with pytest.raises(ValueError, match="params"):
        _core.surface_vol(
            "svi", np.ones(1), np.ones(1), np.ones((1, 4)), 0.0, np.ones(1), np.ones(1), 0
        )
    with pytest.raises(ValueError, match="model"):
        _core.surface_vol(
            "heston", np.ones(1), np.ones(1), np.ones((1, 5)), 0.0, np.ones(1), np.ones(1), 0
        )
    with pytest.raises(ValueError, match=r"K\[1\]"):
        svi_surface.vol([100.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"T\[0\]"):
        svi_surface.vol(100.0, -1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        VolSurface("svi", (SliceFit(1.0, 100.0, VOGT), SliceFit(1.0, 100.0, VOGT)))
    with pytest.raises(ValueError, match="params must be SviParams"):
        VolSurface("svi", (SliceFit(1.0, 100.0, SabrParams(0.2, 0.5, 0.0, 0.3)),))
    with pytest.raises(ValueError, match="surface dict"):
        VolSurface.from_dict({"model": "svi"})


def test_fit_surface_rejects_bad_model_and_thin_expiries() -> None:
    chain = _chain(_svi_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.2, 0.2, 3)))
    with pytest.raises(ValueError, match="model"):
        fit_surface(chain, "heston")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expiry 1\.0: svi fit needs at least 5"):
        fit_surface(chain, "svi")
    with pytest.raises(ValueError, match="beta"):
        fit_surface(chain, "sabr", beta=2.0)


def test_svi_fit_of_noisy_quotes_reports_the_noise_as_rmse() -> None:
    rng = np.random.default_rng(11)
    quotes = _svi_quotes(SVI_TRUE, np.linspace(-0.7, 0.5, 25))
    noisy = {T: (K, v + 2e-3 * rng.standard_normal(v.size)) for T, (K, v) in quotes.items()}
    surface = fit_surface(_chain(noisy, both_types=False))
    for s in surface.slices:
        assert s.rmse is not None and 5e-4 < s.rmse < 3e-3
        w_fit = s.total_variance(np.array([-0.3, 0.0, 0.3]))
        w_true = SVI_TRUE[s.expiry].total_variance(np.array([-0.3, 0.0, 0.3]))
        np.testing.assert_allclose(w_fit, w_true, rtol=0.05)
