from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tradecore.curve import RateCurve
from tradecore.pricing import european

TIMES = np.array([0.25, 0.5, 1.0, 2.0, 5.0, 10.0])
ZEROS = np.array([0.030, 0.032, 0.035, 0.037, 0.040, 0.041])
NSS = (0.045, -0.015, 0.02, -0.012, 1.2, 9.0)

CURVES = {
    "flat": RateCurve.flat(0.025),
    "linear_zero": RateCurve.from_points(TIMES, ZEROS),
    "log_discount": RateCurve.from_points(TIMES, ZEROS, "log_discount"),
    "nss": RateCurve.nelson_siegel_svensson(*NSS),
}


@pytest.mark.parametrize("name", list(CURVES))
def test_discount_is_exp_minus_zero_times_t(name: str) -> None:
    c = CURVES[name]
    T = np.linspace(0.0, 15.0, 61)
    np.testing.assert_allclose(c.discount(T), np.exp(-c.zero_rate(T) * T), rtol=1e-15)
    assert float(c.discount(0.0)) == 1.0


@pytest.mark.parametrize("name", list(CURVES))
def test_forwards_are_consistent_with_discounts(name: str) -> None:
    c = CURVES[name]
    T1, T2, T3 = np.array([0.1, 0.7, 3.0]), np.array([0.4, 1.5, 7.0]), np.array([1.0, 4.0, 12.0])
    f12 = c.forward(T1, T2)
    np.testing.assert_allclose(c.discount(T2), c.discount(T1) * np.exp(-f12 * (T2 - T1)), 1e-14)
    # forwards compose: f13 (T3 - T1) = f12 (T2 - T1) + f23 (T3 - T2)
    lhs = c.forward(T1, T3) * (T3 - T1)
    rhs = f12 * (T2 - T1) + c.forward(T2, T3) * (T3 - T2)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13)
    np.testing.assert_allclose(c.forward(0.0, T2), c.zero_rate(T2), rtol=1e-13)


def test_flat_curve() -> None:
    c = CURVES["flat"]
    np.testing.assert_array_equal(c.zero_rate([0.0, 1.0, 30.0]), 0.025)
    np.testing.assert_allclose(c.forward(1.0, 2.0), 0.025, rtol=1e-14)


def test_linear_zero_interpolation_and_flat_extrapolation() -> None:
    c = CURVES["linear_zero"]
    np.testing.assert_array_equal(c.zero_rate(TIMES), ZEROS)
    assert float(c.zero_rate(1.5)) == pytest.approx(0.036, rel=1e-14)
    assert float(c.zero_rate(0.0)) == ZEROS[0]
    assert float(c.zero_rate(30.0)) == ZEROS[-1]


def test_log_discount_interpolation_has_piecewise_flat_forwards() -> None:
    c = CURVES["log_discount"]
    np.testing.assert_allclose(c.zero_rate(TIMES), ZEROS, rtol=1e-15)
    seg = c.forward(2.0, 5.0)
    want = (ZEROS[4] * 5.0 - ZEROS[3] * 2.0) / 3.0
    assert float(seg) == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(c.forward([2.0, 2.5, 4.0], [2.5, 4.0, 5.0]), want, rtol=1e-12)
    # before the first pillar z = z_1; after the last the last forward continues
    np.testing.assert_allclose(c.zero_rate([0.0, 0.1]), ZEROS[0], rtol=1e-15)
    last = (ZEROS[-1] * 10.0 - ZEROS[-2] * 5.0) / 5.0
    np.testing.assert_allclose(c.forward([10.0, 12.0], [12.0, 20.0]), last, rtol=1e-12)


def test_nss_limits_and_values() -> None:
    b0, b1, b2, b3, t1, t2 = NSS
    c = CURVES["nss"]
    assert float(c.zero_rate(0.0)) == pytest.approx(b0 + b1, rel=1e-14)
    assert float(c.zero_rate(1e-9)) == pytest.approx(b0 + b1, rel=1e-8)
    assert float(c.zero_rate(1e6)) == pytest.approx(b0, rel=1e-4)
    T = 3.0
    x1, x2 = T / t1, T / t2
    L1, L2 = (1 - math.exp(-x1)) / x1, (1 - math.exp(-x2)) / x2
    want = b0 + b1 * L1 + b2 * (L1 - math.exp(-x1)) + b3 * (L2 - math.exp(-x2))
    assert float(c.zero_rate(T)) == pytest.approx(want, rel=1e-14)


def test_nss_fit_recovers_parameters() -> None:
    T = np.concatenate([np.linspace(0.1, 2.0, 12), np.linspace(2.5, 30.0, 24)])
    z = CURVES["nss"].zero_rate(T)
    fit = RateCurve.fit_nelson_siegel_svensson(T, z)
    assert fit.kind == "nss" and fit.nss is not None
    got = (fit.nss.beta0, fit.nss.beta1, fit.nss.beta2, fit.nss.beta3, fit.nss.tau1, fit.nss.tau2)
    np.testing.assert_allclose(got, NSS, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.zero_rate(T), z, atol=1e-13)


def test_vectorised_shapes() -> None:
    c = CURVES["log_discount"]
    T = np.linspace(0.5, 8.0, 12).reshape(3, 4)
    assert c.zero_rate(T).shape == (3, 4)
    assert c.discount(T).shape == (3, 4)
    assert c.forward(T, T + 1.0).shape == (3, 4)
    assert c.forward(1.0, T + 1.0).shape == (3, 4)


@pytest.mark.parametrize("name", list(CURVES))
def test_round_trip_through_a_plain_dict(name: str) -> None:
    c = CURVES[name]
    back = RateCurve.from_dict(json.loads(json.dumps(c.to_dict())))
    T = np.linspace(0.0, 20.0, 41)
    np.testing.assert_array_equal(back.zero_rate(T), c.zero_rate(T))
    assert back.to_dict() == c.to_dict()


def test_curve_feeds_the_pricer_as_the_zero_rate_to_expiry() -> None:
    c = CURVES["linear_zero"]
    T = np.array([0.5, 1.5, 4.0])
    price = european(100.0, 100.0, T, c.zero_rate(T), 0.0, 0.2, "call", greeks="none")["price"]
    put = european(100.0, 100.0, T, c.zero_rate(T), 0.0, 0.2, "put", greeks="none")["price"]
    # put-call parity with the curve's discount factors: C - P = S - K D(T)
    np.testing.assert_allclose(price - put, 100.0 - 100.0 * c.discount(T), atol=1e-12)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: RateCurve.flat(float("inf")), "r must be finite"),
        (lambda: RateCurve.from_points([1.0, 1.0], [0.01, 0.02]), "strictly increasing"),
        (lambda: RateCurve.from_points([0.0, 1.0], [0.01, 0.02]), "times must be > 0"),
        (lambda: RateCurve.from_points([1.0, 2.0], [0.01]), "zero_rates has 1 values"),
        (lambda: RateCurve.from_points([], []), "at least one pillar"),
        (lambda: RateCurve.from_points([1.0], [float("nan")]), r"zero_rates\[0\]"),
        (lambda: RateCurve.from_points([1.0], [0.01], "cubic"), "interpolation"),  # type: ignore[arg-type]
        (lambda: RateCurve.nelson_siegel_svensson(0.04, 0, 0, 0, -1.0, 2.0), "tau1 must be > 0"),
        (lambda: RateCurve.fit_nelson_siegel_svensson([1, 2, 3], [0.01] * 3), "at least 6"),
        (lambda: RateCurve.from_dict({"kind": "spline"}), "kind"),
    ],
)
def test_invalid_construction(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


def test_invalid_queries() -> None:
    c = CURVES["nss"]
    with pytest.raises(ValueError, match=r"T\[1\] must be finite and >= 0"):
        c.zero_rate([1.0, -0.5])
    with pytest.raises(ValueError, match=r"T2\[0\] must be > T1\[0\]"):
        c.forward(2.0, 1.0)
    with pytest.raises(ValueError, match="T must be numeric"):
        c.discount("soon")
