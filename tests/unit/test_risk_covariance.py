"""Covariance estimators against independent computations: numpy.cov, a hand EWMA recursion,
scikit-learn's LedoitWolf (when installed) and a loop transcription of the constant-correlation
formula, GARCH(1,1) parameter recovery, rolling correlation and the breakdown signal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tradecore.risk import covariance
from tradecore.risk.covariance import (
    correlation_breakdown,
    estimate_covariance,
    ewma_variances,
    garch11,
    ledoit_wolf,
    rolling_correlation,
)


def _returns(days: int = 400, n: int = 4, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) * 0.5 + np.eye(n)
    return 0.01 * rng.standard_normal((days, n)) @ a.T + 0.0005


def test_sample_equals_numpy_cov_annualised() -> None:
    r = _returns()
    est = estimate_covariance(r, ["A", "B", "C", "D"], estimator="sample")
    np.testing.assert_allclose(est.covariance, np.cov(r, rowvar=False) * 252, rtol=1e-12)
    np.testing.assert_allclose(est.correlation, np.corrcoef(r, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(est.volatilities, r.std(axis=0, ddof=1) * math.sqrt(252))
    assert est.symbols == ("A", "B", "C", "D") and est.details["observations"] == 400


def test_ewma_equals_a_hand_recursion() -> None:
    r = _returns(days=120, n=3)
    lam = 0.9
    s = r.T @ r / len(r)
    for t in range(len(r)):
        s = lam * s + (1 - lam) * np.outer(r[t], r[t])
    est = estimate_covariance(r, estimator="ewma", ewma_lambda=lam)
    np.testing.assert_allclose(est.covariance, s * 252, rtol=1e-11)
    v = np.empty((len(r) + 1, 3))
    v[0] = (r * r).mean(axis=0)
    for t in range(len(r)):
        v[t + 1] = lam * v[t] + (1 - lam) * r[t] ** 2
    np.testing.assert_allclose(ewma_variances(r, lam), v, rtol=1e-12)
    np.testing.assert_allclose(np.diag(est.covariance), v[-1] * 252, rtol=1e-11)
    assert est.details["ewma_lambda"] == lam


def test_ledoit_wolf_identity_target_matches_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.covariance")
    for days, n in ((60, 10), (300, 5), (40, 30)):
        r = _returns(days, n, seed=days + n)
        ref = sk.LedoitWolf().fit(r)
        est = ledoit_wolf(r, target="identity")
        assert est.details["shrinkage"] == pytest.approx(ref.shrinkage_, rel=1e-9)
        np.testing.assert_allclose(est.covariance, ref.covariance_ * 252, rtol=1e-9)


def _constant_correlation_loops(y: np.ndarray) -> tuple[float, np.ndarray]:
    """Ledoit & Wolf (2004, 'Honey, I shrunk the sample covariance matrix'), Appendix B,
    transcribed term by term with loops."""
    t, n = y.shape
    y = y - y.mean(axis=0)
    s = y.T @ y / t
    sd = np.sqrt(np.diag(s))
    rbar = sum(s[i, j] / (sd[i] * sd[j]) for i in range(n) for j in range(n) if i != j)
    rbar /= n * (n - 1)
    f = np.array(
        [[s[i, i] if i == j else rbar * sd[i] * sd[j] for j in range(n)] for i in range(n)]
    )
    pi = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            pi[i, j] = np.mean((y[:, i] * y[:, j] - s[i, j]) ** 2)
    rho = sum(pi[i, i] for i in range(n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            th_ii = np.mean((y[:, i] ** 2 - s[i, i]) * (y[:, i] * y[:, j] - s[i, j]))
            th_jj = np.mean((y[:, j] ** 2 - s[j, j]) * (y[:, i] * y[:, j] - s[i, j]))
            rho += (
                rbar
                / 2
                * (math.sqrt(s[j, j] / s[i, i]) * th_ii + math.sqrt(s[i, i] / s[j, j]) * th_jj)
            )
    gamma = float(np.sum((f - s) ** 2))
    delta = max(0.0, min((pi.sum() - rho) / gamma / t, 1.0))
    return delta, delta * f + (1 - delta) * s


def test_ledoit_wolf_constant_correlation_matches_the_paper_formula() -> None:
    for days, n in ((50, 6), (250, 4)):
        r = _returns(days, n, seed=3 * days)
        delta, cov = _constant_correlation_loops(r)
        est = ledoit_wolf(r, ["a", "b", "c", "d", "e", "f"][:n])
        assert 0.0 < delta < 1.0
        assert est.details["shrinkage"] == pytest.approx(delta, rel=1e-10)
        np.testing.assert_allclose(est.covariance, cov * 252, rtol=1e-10)


def _simulate_garch(omega: float, alpha: float, beta: float, days: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(days + 500)
    v = omega / (1 - alpha - beta)
    x = np.empty_like(z)
    for t in range(len(z)):
        x[t] = math.sqrt(v) * z[t]
        v = omega + alpha * x[t] ** 2 + beta * v
    return x[500:]


def test_garch11_recovers_simulated_parameters() -> None:
    omega, alpha, beta = 2e-6, 0.08, 0.90
    x = _simulate_garch(omega, alpha, beta, 6000, seed=11)
    fit = garch11(x)
    assert fit.alpha == pytest.approx(alpha, abs=0.025)
    assert fit.beta == pytest.approx(beta, abs=0.03)
    assert fit.omega / (1 - fit.alpha - fit.beta) == pytest.approx(
        omega / (1 - alpha - beta), rel=0.15
    )
    assert fit.alpha + fit.beta < 1.0
    # The conditional variances follow the fitted recursion.
    o, a, b, s2 = fit
    np.testing.assert_allclose(s2[1:], o + a * x[:-1] ** 2 + b * s2[:-1], rtol=1e-10)
    assert fit.forecast == pytest.approx(o + a * x[-1] ** 2 + b * s2[-1], rel=1e-10)


def test_garch_covariance_is_d_r_d_of_the_standardised_residuals() -> None:
    xs = [_simulate_garch(2e-6, 0.1, 0.85, 1500, seed=s) for s in (1, 2)]
    r = np.column_stack([xs[0], 0.6 * xs[0] + 0.8 * xs[1]])
    est = estimate_covariance(r, ["A", "B"], estimator="garch")
    fits = [garch11(r[:, j]) for j in range(2)]
    z = r / np.sqrt(np.column_stack([f.variances for f in fits]))
    d = np.sqrt([f.forecast for f in fits])
    np.testing.assert_allclose(
        est.covariance, np.corrcoef(z, rowvar=False) * np.outer(d, d) * 252, rtol=1e-8
    )
    assert est.details["garch.A.alpha"] == pytest.approx(fits[0].alpha)
    assert est.correlation[0, 1] == pytest.approx(0.6, abs=0.08)


def test_rolling_correlation_equals_per_window_corrcoef(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks: the windows are computed a few at a time.
    monkeypatch.setattr(covariance, "_CHUNK_VALUES", 3 * 25 * 4)
    r = _returns(days=90, n=3)
    r[10:40, 2] = 0.0  # constant over some windows: zero correlation there
    out = rolling_correlation(r, 25)
    assert out.shape == (66, 3, 3)
    for k in range(66):
        w = r[k : k + 25]
        if np.all(w[:, 2] == 0.0):
            np.testing.assert_allclose(
                out[k][:2, :2], np.corrcoef(w[:, :2], rowvar=False), atol=1e-12
            )
            np.testing.assert_array_equal(out[k][2], [0.0, 0.0, 1.0])
        else:
            np.testing.assert_allclose(out[k], np.corrcoef(w, rowvar=False), atol=1e-12)


def test_correlation_breakdown_fires_when_the_regime_changes() -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_normal((400, 2))
    r = np.empty((400, 2))
    r[:, 0] = z[:, 0]
    r[:250, 1] = 0.9 * z[:250, 0] + math.sqrt(1 - 0.81) * z[:250, 1]  # rho 0.9, then 0
    r[250:, 1] = z[250:, 1]
    sig = correlation_breakdown(0.01 * r, 50, threshold=0.3)
    assert sig.end[0] == 99 and sig.end[-1] == 399 and len(sig.change) == 301
    # Both windows inside one regime: quiet. Latest window in the new regime against one in
    # the old: fires.
    calm = sig.breakdown[sig.end < 249]
    assert not calm.any()
    assert sig.breakdown[sig.end == 299].all()
    assert sig.change[sig.end == 299][0] > 0.6
    assert not sig.latest  # 300.. vs 350..: both in the new regime
    assert tuple(sig.pair[0]) == (0, 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: estimate_covariance([[0.1, math.nan], [0.2, 0.1]]),
            r"^returns\[0\]\[1\]: must be finite",
        ),
        (lambda: estimate_covariance([[0.1, 0.2]]), r"^returns: at least 2 days"),
        (lambda: estimate_covariance(np.zeros((5, 2)), ["A"]), r"^symbols: expected 2"),
        (lambda: estimate_covariance(np.zeros((5, 2)), estimator="bogus"), r"^estimator:"),  # type: ignore[arg-type]
        (lambda: estimate_covariance(np.ones((5, 2)), ewma_lambda=1.0), r"^ewma_lambda:"),
        (lambda: estimate_covariance(np.ones((5, 2)), estimator="garch"), r"^returns: at least 30"),
        (lambda: garch11(np.zeros(100)), r"^x: all returns are zero"),
        (lambda: rolling_correlation(np.ones((5, 2)), 6), r"^window: window \(6\) must be <="),
        (lambda: rolling_correlation(np.ones((5, 2)), 1), r"^window: must be >= 2"),
        (
            lambda: rolling_correlation(np.ones((20_000, 50)), 20),
            r"^returns: 19981 windows of 50 x 50",
        ),
        (lambda: correlation_breakdown(np.ones((30, 2)), 20), r"^window: 2 x window \(40\)"),
        (lambda: correlation_breakdown(np.ones((30, 1)), 5), r"^returns: a correlation breakdown"),
        (lambda: correlation_breakdown(np.ones((30, 2)), 5, threshold=0.0), r"^threshold:"),
        (lambda: estimate_covariance("abc"), r"^returns:"),
    ],
)
def test_bad_input_names_the_field(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
