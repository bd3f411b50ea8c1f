"""VaR backtests: Kupiec POF against MathWorks' varbacktest example, Christoffersen on a
hand-counted sequence, the Basel 250-day 99 % traffic-light table, and bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats
from tradecore.risk.backtest import backtest_var


def test_kupiec_pof_reproduces_mathworks_varbacktest_example() -> None:
    # MathWorks Risk Management Toolbox, varbacktest.pof example (VaRBacktestData):
    # Normal95: 1043 observations, 57 failures -> LRatioPOF 0.46147, PValuePOF 0.49694;
    # Normal99: 17 failures -> 3.5118, 0.060933 (rejected at a 90 % test level).
    r = backtest_var(observations=1043, failures=57, confidence=0.95, test_level=0.99)
    assert r.kupiec_pof.statistic == pytest.approx(0.46147, abs=5e-6)
    assert r.kupiec_pof.p_value == pytest.approx(0.49694, abs=5e-6)
    assert r.kupiec_pof.available and not r.kupiec_pof.reject
    assert r.expected_failures == pytest.approx(52.15)
    assert r.traffic_light == "GREEN"
    r99 = backtest_var(observations=1043, failures=17, confidence=0.99, test_level=0.90)
    assert r99.kupiec_pof.statistic == pytest.approx(3.5118, abs=5e-5)
    assert r99.kupiec_pof.p_value == pytest.approx(0.060933, abs=5e-7)
    assert r99.kupiec_pof.reject
    # From counts alone there is no hit sequence: no independence test.
    assert not r.christoffersen_independence.available
    assert not r.conditional_coverage.available
    assert math.isnan(r.christoffersen_independence.statistic)


@pytest.mark.parametrize(
    ("failures", "zone"),
    [(f, "GREEN") for f in range(5)]
    + [(f, "YELLOW") for f in range(5, 10)]
    + [(f, "RED") for f in (10, 11, 15, 250)],
)
def test_basel_traffic_light_table(failures: int, zone: str) -> None:
    r = backtest_var(observations=250, failures=failures, confidence=0.99)
    assert r.traffic_light == zone
    assert r.cumulative_probability == pytest.approx(stats.binom.cdf(failures, 250, 0.01))


def _loglik(counts: dict[str, int], probs: dict[str, float]) -> float:
    return sum(n * math.log(probs[k]) for k, n in counts.items() if n)


def test_christoffersen_independence_on_a_hand_counted_sequence() -> None:
    hits = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    # Transitions by hand: 0->0: 10, 0->1: 3, 1->0: 3, 1->1: 3 (19 transitions).
    n00, n01, n10, n11 = 10, 3, 3, 3
    pi0, pi1, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 19
    alt = _loglik(
        {"00": n00, "01": n01, "10": n10, "11": n11},
        {"00": 1 - pi0, "01": pi0, "10": 1 - pi1, "11": pi1},
    )
    null = (n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
    expected_ind = -2 * (null - alt)
    x, n, p = 6, 20, 0.05
    expected_pof = -2 * (
        (n - x) * math.log(1 - p)
        + x * math.log(p)
        - (n - x) * math.log(1 - x / n)
        - x * math.log(x / n)
    )
    r = backtest_var(hits=hits, confidence=0.95)
    assert (r.observations, r.failures) == (20, 6)
    assert r.christoffersen_independence.statistic == pytest.approx(expected_ind, rel=1e-12)
    assert r.christoffersen_independence.p_value == pytest.approx(
        stats.chi2.sf(expected_ind, 1), rel=1e-12
    )
    assert r.kupiec_pof.statistic == pytest.approx(expected_pof, rel=1e-12)
    cc = expected_pof + expected_ind
    assert r.conditional_coverage.statistic == pytest.approx(cc, rel=1e-12)
    assert r.conditional_coverage.p_value == pytest.approx(stats.chi2.sf(cc, 2), rel=1e-12)
    assert r.conditional_coverage.reject  # 6 of 20 at 95 %, clustered


def test_independence_with_no_consecutive_failures_uses_zero_log_terms() -> None:
    hits = [0] * 30
    hits[5] = hits[17] = 1
    r = backtest_var(hits=hits, confidence=0.95)
    # n11 = 0: pi1 = 0 and the 0 * log 0 terms vanish.
    n00, n01, n10 = 25, 2, 2
    pi0, pi = n01 / (n00 + n01), 2 / 29
    alt = n00 * math.log(1 - pi0) + n01 * math.log(pi0)
    null = (n00 + n10) * math.log(1 - pi) + n01 * math.log(pi)
    assert r.christoffersen_independence.statistic == pytest.approx(-2 * (null - alt), rel=1e-12)
    assert math.isfinite(r.conditional_coverage.p_value)


def test_pnl_and_var_series_count_a_failure_when_the_loss_exceeds_var() -> None:
    pnl = np.array([-1.0, -2.5, 3.0, -2.0, -0.1])
    var = np.array([2.0, 2.0, 2.0, 2.0, 0.05])
    # Losses 1, 2.5, -3, 2, 0.1: failures on day 1 (2.5 > 2) and day 4 (0.1 > 0.05); a loss
    # equal to VaR (day 3) is not a failure.
    r = backtest_var(pnl=pnl, var=var, confidence=0.9)
    assert (r.observations, r.failures) == (5, 2)
    same = backtest_var(hits=[False, True, False, False, True], confidence=0.9)
    assert same == r


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"observations": 100, "failures": 3, "confidence": 1.0}, "confidence"),
        ({"observations": 100, "failures": 3, "confidence": 0.0}, "confidence"),
        ({"observations": 100, "failures": 3, "confidence": math.nan}, "confidence"),
        ({"observations": 100, "failures": 101, "confidence": 0.99}, "failures"),
        ({"observations": 0, "failures": 0, "confidence": 0.99}, "observations"),
        ({"observations": 100, "failures": -1, "confidence": 0.99}, "failures"),
        ({"observations": 100.5, "failures": 1, "confidence": 0.99}, "observations"),
        ({"observations": 100, "confidence": 0.99}, "failures"),
        ({"pnl": [1.0, 2.0], "confidence": 0.99}, "var"),
        ({"pnl": [1.0, 2.0], "var": [1.0], "confidence": 0.99}, "var"),
        ({"pnl": [1.0, math.nan], "var": [1.0, 1.0], "confidence": 0.99}, "pnl[1]"),
        ({"pnl": [], "var": [], "confidence": 0.99}, "pnl"),
        ({"hits": [0, 2], "confidence": 0.99}, "hits[1]"),
        ({"hits": [0, 1], "observations": 2, "failures": 1, "confidence": 0.99}, "pnl"),
        ({"confidence": 0.99}, "pnl"),
        ({"hits": [0, 1], "confidence": 0.99, "test_level": 1.5}, "test_level"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field) + "[:.]"):
        backtest_var(**kwargs)  # type: ignore[arg-type]
