"""Traffic policies: the canary split, shadow mirroring that never changes the answer, the A/B
significance tests against scipy.stats, and policies that survive a restart."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats
from tradecore import store
from tradecore.errors import NotFoundError
from tradecore.inference.registry import ModelRegistry
from tradecore.inference.rollout import PolicyKind, Router, TrafficPolicy, bucket


@pytest.fixture
def db(tmp_path: Path) -> Iterator[store.Store]:
    with store.connect(store.default_dsn(tmp_path, "models")) as s:
        yield s


def setup(tmp_path: Path, db: store.Store, *, max_pending: int = 100_000) -> Router:
    """Model ``m`` with versions 1 (champion) and 2."""
    reg = ModelRegistry(tmp_path / "models", db)
    if not reg.models():
        reg.register("m", b"v1", file_name="m.onnx")
        reg.register("m", b"v2", file_name="m.onnx")
        reg.set_alias("m", "champion", 1, actor="t")
    return Router(reg, db, max_pending=max_pending)


def test_canary_split_is_within_the_binomial_interval_and_sticky(
    tmp_path: Path, db: store.Store
) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.CANARY, challenger=2, percent=10), actor="t")
    n, p = 20_000, 0.10
    ids = [f"req-{i}" for i in range(n)]
    served = [router.route("m", i).served for i in ids]
    k = served.count(2)
    assert set(served) == {1, 2}
    # 99.99 % two-sided binomial interval (z = 3.89)
    half = 3.89 * math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) <= half, (k, n * p, half)
    # a retried request hits the same version; the report counts every routing
    assert [router.route("m", i).served for i in ids[:500]] == served[:500]
    arms = {(a.arm, a.version): a.requests for a in router.report("m").arms}
    assert arms == {
        ("champion", 1): n - k + served[:500].count(1),
        ("challenger", 2): k + served[:500].count(2),
    }
    # another seed splits the same ids otherwise, in the same proportion
    router.set_policy(
        "m", TrafficPolicy(PolicyKind.CANARY, challenger=2, percent=10, seed=99), actor="t"
    )
    other = [router.route("m", i).served for i in ids]
    assert other != served and abs(other.count(2) - n * p) <= half
    # the hash is spread evenly over [0, 100)
    buckets = np.array([bucket("m", 0, i) for i in ids])
    assert buckets.min() >= 0 and buckets.max() < 100
    counts = np.histogram(buckets, bins=10, range=(0, 100))[0]
    assert stats.chisquare(counts).pvalue > 1e-4


def test_none_and_a_promoted_challenger_serve_the_champion(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db)
    assert {router.route("m", f"r{i}").served for i in range(200)} == {1}
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=50), actor="t")
    router.registry.set_alias("m", "champion", 2, actor="t")
    d = router.route("m", "r1")
    assert (d.served, d.shadow, d.arm) == (2, None, "champion")


Answer = Mapping[str, npt.NDArray[np.float64]]


def run_factory(
    log: list[int], challenger: str
) -> tuple[Callable[[int], Awaitable[Answer]], dict[int, Answer]]:
    answers: dict[int, Answer] = {
        1: {"y": np.array([1.0, 2.0, 3.0]), "p": np.array([0.5])},
        2: {"y": np.array([1.0, 2.5, 3.0]), "p": np.array([0.5])},
    }

    async def run(version: int) -> Answer:
        log.append(version)
        if version == 2 and challenger == "raise":
            raise RuntimeError("challenger crashed")
        if version == 2 and challenger == "slow":
            await asyncio.sleep(0.05)
        return answers[version]

    return run, answers


@pytest.mark.parametrize("challenger", ["differs", "raise", "slow"])
def test_shadow_never_changes_the_served_answer(
    tmp_path: Path, db: store.Store, challenger: str
) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.SHADOW, challenger=2, percent=100), actor="t")
    log: list[int] = []
    run, answers = run_factory(log, challenger)

    async def main() -> list[object]:
        out: list[object] = []
        for i in range(50):
            decision, answer = await router.serve("m", f"r{i}", run)
            assert (decision.served, decision.shadow, decision.arm) == (1, 2, "champion")
            out.append(answer)
        await router.drain()
        return out

    answers_seen = asyncio.run(main())
    assert all(a is answers[1] for a in answers_seen)
    assert log.count(1) == 50 and log.count(2) == 50
    shadow = router.report("m").shadow
    assert shadow is not None and (shadow.champion, shadow.shadow, shadow.mirrored) == (1, 2, 50)
    if challenger == "raise":
        assert (shadow.failed, shadow.compared) == (50, 0)
        return
    assert (shadow.failed, shadow.compared, shadow.agreement) == (0, 50, 0.0)
    by = {o.output: o for o in shadow.outputs}
    assert by["y"].mean_abs_diff == pytest.approx(0.5 / 3) and by["y"].max_abs_diff == 0.5
    assert by["y"].agreement == 0.0
    assert (by["p"].mean_abs_diff, by["p"].agreement) == (0.0, 1.0)


def test_shadow_comparison_counts_shape_and_nan_disagreements(
    tmp_path: Path, db: store.Store
) -> None:
    router = setup(tmp_path, db)
    router.set_policy(
        "m", TrafficPolicy(PolicyKind.SHADOW, challenger=2, percent=100, tolerance=0.1), actor="t"
    )
    d = router.route("m", "a")
    assert router.record_shadow(d, {"y": np.array([1.0])}, {"y": np.array([1.05])})
    assert not router.record_shadow(d, {"y": np.array([1.0])}, {"y": np.array([1.0, 2.0])})
    assert not router.record_shadow(d, {"y": np.array([1.0])}, {"y": np.array([np.nan])})
    assert router.record_shadow(d, {"y": np.array([np.nan])}, {"y": np.array([np.nan])})
    assert not router.record_shadow(d, {"y": np.array([1.0])}, {"z": np.array([1.0])})
    shadow = router.report("m").shadow
    assert shadow is not None and shadow.compared == 5 and shadow.agreement == pytest.approx(0.4)
    by = {o.output: o for o in shadow.outputs}
    assert math.isfinite(by["y"].max_abs_diff) and by["y"].max_abs_diff == pytest.approx(0.05)


def test_shadow_mirrors_the_given_share(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.SHADOW, challenger=2, percent=25), actor="t")
    mirrored = sum(router.route("m", f"r{i}").shadow == 2 for i in range(10_000))
    assert abs(mirrored - 2500) <= 3.89 * math.sqrt(10_000 * 0.25 * 0.75)


def feed(router: Router, n: int, draw: dict[int, object]) -> dict[int, list[float]]:
    """Route n requests and report an outcome for each from its version's sampler."""
    seen: dict[int, list[float]] = {1: [], 2: []}
    for i in range(n):
        d = router.route("m", f"req-{i}")
        value = float(draw[d.served]())  # type: ignore[operator]
        assert router.record_outcome(f"req-{i}", value).served == d.served
        seen[d.served].append(value)
    return seen


def test_ab_welch_test_matches_scipy_and_detects_a_real_difference(
    tmp_path: Path, db: store.Store
) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=50), actor="t")
    rng = np.random.default_rng(1)
    seen = feed(router, 4000, {1: lambda: rng.normal(0.0, 1.0), 2: lambda: rng.normal(0.2, 2.0)})
    report = router.report("m")
    welch = report.welch
    assert welch is not None and welch.ready
    ref = stats.ttest_ind(seen[2], seen[1], equal_var=False)
    assert welch.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert welch.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert welch.df == pytest.approx(ref.df, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert welch.ci_low == pytest.approx(ci.low, rel=1e-9)
    assert welch.ci_high == pytest.approx(ci.high, rel=1e-9)
    assert welch.significant and welch.p_value < 0.001
    assert report.proportions is None  # the outcomes are not 0/1
    arms = {a.arm: a for a in report.arms}
    assert arms["challenger"].outcomes == len(seen[2])
    assert arms["challenger"].mean == pytest.approx(np.mean(seen[2]))
    assert arms["challenger"].std == pytest.approx(np.std(seen[2], ddof=1))


def test_ab_tests_raise_no_false_alarm_on_equal_arms(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=30), actor="t")
    rng = np.random.default_rng(7)
    seen = feed(router, 3000, {1: lambda: rng.normal(1.0, 1.0), 2: lambda: rng.normal(1.0, 1.0)})
    welch = router.report("m").welch
    assert welch is not None and welch.ready
    ref = stats.ttest_ind(seen[2], seen[1], equal_var=False)
    assert welch.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert not welch.significant and welch.ci_low < 0 < welch.ci_high


@pytest.mark.parametrize(
    ("rate_a", "rate_b", "significant"), [(0.10, 0.14, True), (0.1, 0.1, False)]
)
def test_two_proportion_test_matches_scipy(
    tmp_path: Path, db: store.Store, rate_a: float, rate_b: float, significant: bool
) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=50), actor="t")
    rng = np.random.default_rng(3)
    seen = feed(router, 8000, {1: lambda: rng.random() < rate_a, 2: lambda: rng.random() < rate_b})
    test = router.report("m").proportions
    assert test is not None and test.ready and test.test == "two_proportion_z"
    table = [
        [sum(seen[1]), len(seen[1]) - sum(seen[1])],
        [sum(seen[2]), len(seen[2]) - sum(seen[2])],
    ]
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert test.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert test.p_value == pytest.approx(p, rel=1e-6)
    assert test.significant is significant
    assert test.difference == pytest.approx(np.mean(seen[2]) - np.mean(seen[1]))


def test_tests_wait_for_enough_outcomes(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db)
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=50), actor="t")
    welch = router.report("m").welch
    assert welch is not None and not welch.ready and "2 outcomes" in welch.note


def test_policies_survive_a_restart(tmp_path: Path) -> None:
    dsn = store.default_dsn(tmp_path, "models")
    with store.connect(dsn) as db:
        router = setup(tmp_path, db)
        router.set_policy(
            "m",
            TrafficPolicy(PolicyKind.CANARY, challenger=2, percent=5, seed=3),
            actor="alice",
            reason="try v2",
        )
        before = [router.route("m", f"r{i}").served for i in range(2000)]
        rec = router.policy("m")
    with store.connect(dsn) as db:
        router = setup(tmp_path, db)
        assert router.policy("m") == rec
        assert [router.route("m", f"r{i}").served for i in range(2000)] == before
        router.set_policy("m", TrafficPolicy(), actor="bob", reason="done")
        assert [(p.policy.kind, p.actor) for p in router.policy_history("m")] == [
            (PolicyKind.CANARY, "alice"),
            (PolicyKind.NONE, "bob"),
        ]


def test_outcomes_are_taken_once_and_only_for_experiments(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db, max_pending=10)
    router.route("m", "plain")
    with pytest.raises(NotFoundError, match="request_id"):
        router.record_outcome("plain", 1.0)
    router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=2, percent=50), actor="t")
    for i in range(11):
        router.route("m", f"r{i}")
    with pytest.raises(NotFoundError, match="request_id"):
        router.record_outcome("r0", 1.0)  # forgotten: older than the last 10
    router.record_outcome("r1", 1.0)
    with pytest.raises(NotFoundError, match="request_id"):
        router.record_outcome("r1", 1.0)
    with pytest.raises(ValueError, match=r"^value"):
        router.record_outcome("r2", float("nan"))
    with pytest.raises(ValueError, match=r"^request_id"):
        router.route("m", "")


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"kind": "CANARY", "challenger": 2, "percent": 0}, "percent"),
        ({"kind": "AB", "challenger": 2, "percent": 100}, "percent"),
        ({"kind": "SHADOW", "challenger": 2, "percent": 101}, "percent"),
        ({"kind": "CANARY", "percent": 10}, "challenger"),
        ({"kind": "NONE", "challenger": 2}, "challenger"),
        ({"kind": "BLUE", "challenger": 2, "percent": 10}, "kind"),
        ({"kind": "AB", "challenger": 2, "percent": float("nan")}, "percent"),
        ({"kind": "AB", "challenger": 2, "percent": 10, "alpha": 1.5}, "alpha"),
        ({"kind": "AB", "challenger": 2, "percent": 10, "seed": -1}, "seed"),
        ({"kind": "SHADOW", "challenger": 2, "percent": 10, "tolerance": -1}, "tolerance"),
    ],
)
def test_bad_policies_name_the_field(policy: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        TrafficPolicy(**policy)  # type: ignore[arg-type]


def test_set_policy_checks_the_challenger(tmp_path: Path, db: store.Store) -> None:
    router = setup(tmp_path, db)
    with pytest.raises(ValueError, match=r"^challenger: version 1 is the champion"):
        router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=1, percent=5), actor="t")
    with pytest.raises(NotFoundError, match="no version 9"):
        router.set_policy("m", TrafficPolicy(PolicyKind.AB, challenger=9, percent=5), actor="t")
    with pytest.raises(NotFoundError, match="'other'"):
        router.set_policy("other", TrafficPolicy(), actor="t")
    with pytest.raises(ValueError, match=r"^actor"):
        router.set_policy("m", TrafficPolicy(), actor=" ")
    assert router.policy("m") is None and router.policy_history("m") == []
