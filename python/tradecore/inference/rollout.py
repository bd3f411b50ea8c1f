"""Traffic policies between a model's champion and a challenger version, and what they measure.

* ``NONE``: every request gets the champion (the version a request without a version
  resolves to: the ``champion`` alias, else the highest version).
* ``CANARY``: ``percent`` of requests get the challenger.
* ``AB``: ``percent`` of requests get the challenger (B), the rest the champion (A); outcomes
  reported back with :meth:`Router.record_outcome` are compared by a significance test.
* ``SHADOW``: the caller always gets the champion's answer; ``percent`` of requests are also
  run on the challenger (:meth:`Router.serve`), whose answer is discarded after it is compared
  with the champion's (mean and largest absolute difference per output, agreement).

Routing is a pure function of (model, policy seed, request id): the first 8 bytes of
SHA-256 over them, as a fraction of 2^64, below ``percent``/100 picks the challenger. A retried
request (same id) hits the same version, and the split is the same on every replica.

Policies are persisted in the table ``model_traffic_policies`` (append-only: every change
with who, when and why; the latest per model applies), so a restart keeps them. The
measurements (requests per arm, outcomes, shadow comparisons) are kept in memory from the
moment the policy was set: a new policy starts a new experiment, and a restart starts the
measurements again.

Significance: outcomes are kept as running sufficient statistics per arm (count, mean, sum of
squared deviations: Welford), so memory does not grow with traffic. The report gives Welch's
t-test of the difference in means (p-value from Student's t with Welch-Satterthwaite degrees
of freedom) and, when every outcome is 0 or 1, the two-proportion z-test (pooled variance).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from tradecore.errors import NotFoundError, quote
from tradecore.inference.registry import ModelRegistry, validate_model_name
from tradecore.store import Migration, Store

POLICY_TABLE = "model_traffic_policies"

MIGRATIONS = (
    Migration(
        1303,
        "model_traffic_policies",
        (
            f"""CREATE TABLE IF NOT EXISTS {POLICY_TABLE} (
                seq UInt64,
                name String,
                policy String,
                time_ns Int64,
                actor String,
                reason String
            ) ENGINE = MergeTree ORDER BY (name, seq)""",
        ),
    ),
)

DEFAULT_ALPHA = 0.05
DEFAULT_TOLERANCE = 1e-6
# Requests routed to an experiment remembered for their outcome, oldest forgotten first.
DEFAULT_MAX_PENDING = 100_000
# Shadow runs in flight at once per router; more are dropped (and counted) so the challenger's
# load never backs up the champion.
DEFAULT_MAX_SHADOW_INFLIGHT = 64


class PolicyKind(enum.StrEnum):
    NONE = "NONE"
    CANARY = "CANARY"
    SHADOW = "SHADOW"
    AB = "AB"


@dataclass(frozen=True)
class TrafficPolicy:
    """``challenger``: the version that gets ``percent`` of requests (CANARY, AB) or mirrors
    them (SHADOW); ``seed`` salts the routing hash; ``alpha``: the significance level of the
    A/B test; ``tolerance``: the absolute difference under which a shadow output agrees."""

    kind: PolicyKind = PolicyKind.NONE
    challenger: int = 0
    percent: float = 0.0
    seed: int = 0
    alpha: float = DEFAULT_ALPHA
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", PolicyKind(self.kind))
        except ValueError:
            raise ValueError(
                f"kind: one of {', '.join(k.value for k in PolicyKind)}, got {quote(self.kind)}"
            ) from None
        for name in ("percent", "alpha", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: a number, got {quote(value)}")
            if not math.isfinite(value):
                raise ValueError(f"{name}: must be finite, got {value}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 1 << 64
        ):
            raise ValueError(f"seed: an integer in 0..2^64-1, got {quote(self.seed)}")
        if isinstance(self.challenger, bool) or not isinstance(self.challenger, int):
            raise ValueError(f"challenger: a version number, got {quote(self.challenger)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: in (0, 1), got {self.alpha}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance: >= 0, got {self.tolerance}")
        if self.kind == PolicyKind.NONE:
            if self.challenger or self.percent:
                raise ValueError("challenger: a NONE policy has no challenger or percent")
            return
        if self.challenger < 1:
            raise ValueError(f"challenger: a {self.kind} policy needs a challenger version >= 1")
        if self.kind == PolicyKind.SHADOW:
            if not 0 < self.percent <= 100:
                raise ValueError(
                    f"percent: the share of requests mirrored, in (0, 100], got {self.percent}"
                )
        elif not 0 < self.percent < 100:
            raise ValueError(
                f"percent: the challenger's share of requests, in (0, 100), got {self.percent} "
                "(to send every request to one version, move the champion alias)"
            )

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "kind": self.kind.value}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrafficPolicy:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class PolicyRecord:
    """A policy as set: by whom, when, why."""

    name: str
    policy: TrafficPolicy
    seq: int
    time_ns: int
    actor: str
    reason: str


@dataclass(frozen=True)
class RouteDecision:
    """Which version serves a request (``served``) and which one, if any, mirrors it
    (``shadow``). ``arm`` is ``champion`` or ``challenger``: the arm ``served`` belongs to."""

    name: str
    request_id: str
    served: int
    shadow: int | None
    arm: str
    kind: PolicyKind


@dataclass
class _Running:
    """Welford's running count, mean and sum of squared deviations; whether all were 0/1."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    binary: bool = True

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        if x not in (0.0, 1.0):
            self.binary = False

    @property
    def var(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan


@dataclass(frozen=True)
class ArmStats:
    arm: str
    version: int
    requests: int
    outcomes: int
    mean: float
    std: float


@dataclass(frozen=True)
class TestResult:
    """``difference`` = challenger mean − champion mean; ``ci_low``/``ci_high`` its
    (1 − alpha) confidence interval. ``ready`` is False (with the reason in ``note``) until
    each arm has at least two outcomes and some variance."""

    test: str
    ready: bool
    statistic: float = math.nan
    df: float = math.nan
    p_value: float = math.nan
    alpha: float = DEFAULT_ALPHA
    significant: bool = False
    difference: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    note: str = ""


def welch_test(a: _Running, b: _Running, alpha: float) -> TestResult:
    """Welch's unequal-variance t-test of mean(b) − mean(a), two-sided."""
    if a.n < 2 or b.n < 2:
        return TestResult("welch_t", False, alpha=alpha, note="each arm needs >= 2 outcomes")
    va, vb = a.var / a.n, b.var / b.n
    se2 = va + vb
    diff = b.mean - a.mean
    if se2 <= 0:
        return TestResult(
            "welch_t", False, alpha=alpha, difference=diff, note="the outcomes have no variance"
        )
    se = math.sqrt(se2)
    t = diff / se
    df = se2 * se2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    p = float(2 * special.stdtr(df, -abs(t)))
    q = float(special.stdtrit(df, 1 - alpha / 2))
    return TestResult(
        "welch_t", True, t, df, p, alpha, p < alpha, diff, diff - q * se, diff + q * se
    )


def two_proportion_test(a: _Running, b: _Running, alpha: float) -> TestResult:
    """The two-proportion z-test (pooled variance) of rate(b) − rate(a), two-sided; the
    interval uses the unpooled (Wald) standard error."""
    if a.n < 2 or b.n < 2:
        return TestResult(
            "two_proportion_z", False, alpha=alpha, note="each arm needs >= 2 outcomes"
        )
    pa, pb = a.mean, b.mean
    pooled = (pa * a.n + pb * b.n) / (a.n + b.n)
    se2 = pooled * (1 - pooled) * (1 / a.n + 1 / b.n)
    diff = pb - pa
    if se2 <= 0:
        return TestResult(
            "two_proportion_z",
            False,
            alpha=alpha,
            difference=diff,
            note="the outcomes have no variance",
        )
    z = diff / math.sqrt(se2)
    p = float(2 * special.ndtr(-abs(z)))
    q = float(special.ndtri(1 - alpha / 2))
    wald = math.sqrt(pa * (1 - pa) / a.n + pb * (1 - pb) / b.n)
    return TestResult(
        "two_proportion_z",
        True,
        z,
        math.nan,
        p,
        alpha,
        p < alpha,
        diff,
        diff - q * wald,
        diff + q * wald,
    )


@dataclass
class _OutputDiff:
    compared: int = 0
    agreed: int = 0
    elements: int = 0
    abs_sum: float = 0.0
    abs_max: float = 0.0


@dataclass(frozen=True)
class OutputComparison:
    output: str
    compared: int
    mean_abs_diff: float
    max_abs_diff: float
    agreement: float


@dataclass(frozen=True)
class ShadowStats:
    """``mirrored``: requests sent to the shadow; ``compared``: answers compared; ``failed``:
    shadow runs that raised; ``dropped``: mirrors skipped because too many were in flight;
    ``agreement``: the share of compared requests whose every output agreed."""

    champion: int
    shadow: int
    mirrored: int
    compared: int
    failed: int
    dropped: int
    agreement: float
    outputs: tuple[OutputComparison, ...]


@dataclass(frozen=True)
class RolloutReport:
    name: str
    policy: PolicyRecord | None
    since_ns: int
    champion: int
    arms: tuple[ArmStats, ...]
    welch: TestResult | None
    proportions: TestResult | None
    shadow: ShadowStats | None


@dataclass
class _Experiment:
    """What is measured under one policy of one model."""

    epoch: int
    since_ns: int
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    outcomes: dict[tuple[str, int], _Running] = field(default_factory=dict)
    mirrored: dict[tuple[int, int], int] = field(default_factory=dict)
    shadow_failed: dict[tuple[int, int], int] = field(default_factory=dict)
    shadow_dropped: dict[tuple[int, int], int] = field(default_factory=dict)
    shadow_compared: dict[tuple[int, int], int] = field(default_factory=dict)
    shadow_agreed: dict[tuple[int, int], int] = field(default_factory=dict)
    outputs: dict[tuple[int, int], dict[str, _OutputDiff]] = field(default_factory=dict)


def bucket(name: str, seed: int, request_id: str) -> float:
    """The request's place in [0, 100): SHA-256 of (model, seed, request id) as a fraction."""
    digest = hashlib.sha256(f"{name}\x00{seed}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / float(1 << 64) * 100.0


def _count(d: dict[Any, int], key: Any) -> None:
    d[key] = d.get(key, 0) + 1


class Router:
    """Routes requests of each model by its traffic policy and measures the outcome.

    ``route``, ``record_*``, ``serve`` and ``report`` never touch the store (memory only);
    ``set_policy`` writes the policy to the store first. One thread at a time may call
    ``set_policy`` (the store's calls are not concurrent); the rest are thread-safe."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: Store,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_shadow_inflight: int = DEFAULT_MAX_SHADOW_INFLIGHT,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending: >= 1, got {max_pending}")
        self.registry = registry
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._policies: dict[str, PolicyRecord] = {}
        self._experiments: dict[str, _Experiment] = {}
        self._pending: OrderedDict[str, tuple[str, int, str, int]] = OrderedDict()
        self._max_pending = max_pending
        self._max_shadow = max_shadow_inflight
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._epoch = 0
        store.migrate(MIGRATIONS)
        for seq, name, policy, time_ns, actor, reason in self.store.query_rows(
            f"SELECT seq, name, policy, time_ns, actor, reason FROM {POLICY_TABLE} ORDER BY seq"
        ):
            rec = PolicyRecord(
                str(name), TrafficPolicy.from_json(str(policy)), int(seq), int(time_ns),
                str(actor), str(reason),
            )  # fmt: skip
            self._policies[rec.name] = rec
            self._seq = max(self._seq, rec.seq)
        for name in self._policies:
            self._new_experiment(name, self._policies[name].time_ns)

    def _new_experiment(self, name: str, since_ns: int) -> None:
        self._epoch += 1
        self._experiments[name] = _Experiment(self._epoch, since_ns)

    # -- policies ----------------------------------------------------------------------------

    def set_policy(
        self, name: str, policy: TrafficPolicy, *, actor: str, reason: str = ""
    ) -> PolicyRecord:
        """Apply ``policy`` to ``name`` from now on (persisted first); starts a new experiment.
        The challenger must be a registered version other than the current champion."""
        if not isinstance(policy, TrafficPolicy):
            raise ValueError(f"policy: a TrafficPolicy, got {quote(policy)}")
        if not isinstance(actor, str) or not actor.strip():
            raise ValueError("actor: must not be empty")
        if not isinstance(reason, str):
            raise ValueError(f"reason: must be text, got {quote(reason)}")
        validate_model_name(name)
        if policy.kind != PolicyKind.NONE:
            self.registry.version(name, policy.challenger)
            champion = self.registry.default_version(name)
            if policy.challenger == champion:
                raise ValueError(
                    f"challenger: version {policy.challenger} is the champion of {name!r}"
                )
        else:
            self.registry.versions(name)  # NotFoundError for an unknown model
        with self._lock:
            rec = PolicyRecord(name, policy, self._seq + 1, self._clock(), actor, reason)
            self.store.insert(
                POLICY_TABLE,
                [(rec.seq, name, policy.to_json(), rec.time_ns, actor, reason)],
                ["seq", "name", "policy", "time_ns", "actor", "reason"],
            )
            self._seq = rec.seq
            self._policies[name] = rec
            self._new_experiment(name, rec.time_ns)
            return rec

    def policy(self, name: str) -> PolicyRecord | None:
        """The policy in force for ``name`` (None: never set, so NONE)."""
        validate_model_name(name)
        with self._lock:
            return self._policies.get(name)

    def policy_history(self, name: str) -> list[PolicyRecord]:
        validate_model_name(name)
        rows = self.store.query_rows(
            f"SELECT seq, name, policy, time_ns, actor, reason FROM {POLICY_TABLE} "
            "WHERE name = {n:String} ORDER BY seq",
            {"n": name},
        )
        return [
            PolicyRecord(str(r[1]), TrafficPolicy.from_json(str(r[2])), int(r[0]), int(r[3]),
                         str(r[4]), str(r[5]))
            for r in rows
        ]  # fmt: skip

    # -- routing -----------------------------------------------------------------------------

    def route(self, name: str, request_id: str) -> RouteDecision:
        """The version that serves ``request_id`` and the shadow version, if any."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("request_id: must not be empty (routing is by request id)")
        champion = self.registry.default_version(name)
        with self._lock:
            rec = self._policies.get(name)
            policy = rec.policy if rec is not None else TrafficPolicy()
            exp = self._experiments.get(name)
            if exp is None:
                self._new_experiment(name, self._clock())
                exp = self._experiments[name]
            served, shadow, arm = champion, None, "champion"
            # A challenger that has since become the champion is simply the champion.
            if policy.kind != PolicyKind.NONE and policy.challenger != champion:
                inside = bucket(name, policy.seed, request_id) < policy.percent
                if inside and policy.kind == PolicyKind.SHADOW:
                    shadow = policy.challenger
                elif inside:
                    served, arm = policy.challenger, "challenger"
            _count(exp.requests, (arm, served))
            if policy.kind in (PolicyKind.CANARY, PolicyKind.AB):
                self._pending[request_id] = (name, exp.epoch, arm, served)
                self._pending.move_to_end(request_id)
                while len(self._pending) > self._max_pending:
                    self._pending.popitem(last=False)
            return RouteDecision(name, request_id, served, shadow, arm, policy.kind)

    def record_outcome(self, request_id: str, value: float) -> RouteDecision:
        """The outcome of a request routed under a CANARY or AB policy (once per request)."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("request_id: must not be empty")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"value: a number, got {quote(value)}")
        if not math.isfinite(value):
            raise ValueError(f"value: must be finite, got {value}")
        with self._lock:
            entry = self._pending.pop(request_id, None)
            if entry is None:
                raise NotFoundError(
                    f"request_id: {quote(request_id)} was not routed by a CANARY or AB policy, "
                    f"already has its outcome, or is older than the last {self._max_pending} "
                    "routed requests"
                )
            name, epoch, arm, served = entry
            exp = self._experiments.get(name)
            rec = self._policies.get(name)
            kind = rec.policy.kind if rec is not None else PolicyKind.NONE
            if exp is not None and exp.epoch == epoch:
                exp.outcomes.setdefault((arm, served), _Running()).add(float(value))
            return RouteDecision(name, request_id, served, None, arm, kind)

    # -- shadow ------------------------------------------------------------------------------

    def record_shadow(
        self,
        decision: RouteDecision,
        served: Mapping[str, npt.ArrayLike],
        shadow: Mapping[str, npt.ArrayLike],
    ) -> bool:
        """Compare the shadow's outputs with the served ones; True when every output agreed.
        An output missing on one side, or of another shape, disagrees."""
        if decision.shadow is None:
            raise ValueError("decision: the request was not mirrored (no shadow version)")
        with self._lock:
            rec = self._policies.get(decision.name)
            tol = rec.policy.tolerance if rec is not None else DEFAULT_TOLERANCE
        key = (decision.served, decision.shadow)
        diffs: list[tuple[str, bool, int, float, float]] = []
        for out in sorted(set(served) | set(shadow)):
            if out not in served or out not in shadow:
                diffs.append((out, False, 0, 0.0, 0.0))
                continue
            a = np.asarray(served[out])
            b = np.asarray(shadow[out])
            if a.shape != b.shape or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
                same = a.shape == b.shape and bool(np.array_equal(a, b))
                diffs.append((out, same, 0, 0.0, 0.0))
                continue
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            with np.errstate(invalid="ignore"):
                d = np.abs(a64 - b64)
            # Equal values (infinities included) and NaN on both sides at the same place
            # agree; NaN on one side only does not.
            d[(a64 == b64) | (np.isnan(a64) & np.isnan(b64))] = 0.0
            # The differences' mean and maximum are over finite ones; any other (NaN on one
            # side, an infinity against a number) counts only as a disagreement.
            ok = np.isfinite(d)
            finite = d[ok]
            agree = bool(ok.all()) and bool(np.all(finite <= tol))
            total = float(finite.sum())
            peak = float(finite.max()) if finite.size else 0.0
            diffs.append((out, agree, int(finite.size), total, peak))
        everything = all(same for _, same, _, _, _ in diffs)
        with self._lock:
            exp = self._experiments.get(decision.name)
            if exp is None:
                return everything
            _count(exp.shadow_compared, key)
            if everything:
                _count(exp.shadow_agreed, key)
            per = exp.outputs.setdefault(key, {})
            for out, same, n, total, peak in diffs:
                o = per.setdefault(out, _OutputDiff())
                o.compared += 1
                o.agreed += same
                o.elements += n
                o.abs_sum += total
                o.abs_max = max(o.abs_max, peak)
        return everything

    def _shadow_count(self, decision: RouteDecision, which: str) -> None:
        assert decision.shadow is not None
        with self._lock:
            exp = self._experiments.get(decision.name)
            if exp is not None:
                _count(getattr(exp, which), (decision.served, decision.shadow))

    async def serve(
        self,
        name: str,
        request_id: str,
        run: Callable[[int], Awaitable[Mapping[str, npt.ArrayLike]]],
    ) -> tuple[RouteDecision, Mapping[str, npt.ArrayLike]]:
        """Route the request, ``await run(served version)`` and return its answer. Under a
        SHADOW policy the shadow version is run afterwards in a task of its own, compared and
        recorded; its answer, its errors and its time never reach the caller."""
        decision = self.route(name, request_id)
        answer = await run(decision.served)
        if decision.shadow is not None:
            if len(self._shadow_tasks) >= self._max_shadow:
                self._shadow_count(decision, "shadow_dropped")
            else:
                self._shadow_count(decision, "mirrored")
                task = asyncio.get_running_loop().create_task(
                    self._mirror(decision, answer, run), name=f"shadow-{name}-{request_id}"
                )
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)
        return decision, answer

    async def _mirror(
        self,
        decision: RouteDecision,
        answer: Mapping[str, npt.ArrayLike],
        run: Callable[[int], Awaitable[Mapping[str, npt.ArrayLike]]],
    ) -> None:
        assert decision.shadow is not None
        try:
            shadow_answer = await run(decision.shadow)
            self.record_shadow(decision, answer, shadow_answer)
        except asyncio.CancelledError:
            raise
        except Exception:  # the shadow's failure is measured, never raised to the caller
            self._shadow_count(decision, "shadow_failed")

    async def drain(self) -> None:
        """Wait for the shadow runs in flight (at shutdown, before the engines close)."""
        while self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)

    # -- report ------------------------------------------------------------------------------

    def report(self, name: str) -> RolloutReport:
        """What was measured under the policy in force since it was set."""
        champion = self.registry.default_version(name)
        with self._lock:
            rec = self._policies.get(name)
            exp = self._experiments.get(name)
            if exp is None:
                return RolloutReport(name, rec, 0, champion, (), None, None, None)
            arms: list[ArmStats] = []
            for arm, version in sorted(set(exp.requests) | set(exp.outcomes)):
                r = exp.outcomes.get((arm, version), _Running())
                arms.append(
                    ArmStats(
                        arm,
                        version,
                        exp.requests.get((arm, version), 0),
                        r.n,
                        r.mean if r.n else math.nan,
                        math.sqrt(r.var) if r.n > 1 else math.nan,
                    )
                )
            welch = proportions = None
            if rec is not None and rec.policy.kind in (PolicyKind.CANARY, PolicyKind.AB):
                a = _merge(v for (arm, _), v in exp.outcomes.items() if arm == "champion")
                b = _merge(v for (arm, _), v in exp.outcomes.items() if arm == "challenger")
                welch = welch_test(a, b, rec.policy.alpha)
                if a.n and b.n and a.binary and b.binary:
                    proportions = two_proportion_test(a, b, rec.policy.alpha)
            shadow = None
            if rec is not None and rec.policy.kind == PolicyKind.SHADOW:
                key = (champion, rec.policy.challenger)
                compared = exp.shadow_compared.get(key, 0)
                outputs = tuple(
                    OutputComparison(
                        out,
                        o.compared,
                        o.abs_sum / o.elements if o.elements else math.nan,
                        o.abs_max,
                        o.agreed / o.compared if o.compared else math.nan,
                    )
                    for out, o in sorted(exp.outputs.get(key, {}).items())
                )
                shadow = ShadowStats(
                    champion,
                    rec.policy.challenger,
                    exp.mirrored.get(key, 0),
                    compared,
                    exp.shadow_failed.get(key, 0),
                    exp.shadow_dropped.get(key, 0),
                    exp.shadow_agreed.get(key, 0) / compared if compared else math.nan,
                    outputs,
                )
            return RolloutReport(name, rec, exp.since_ns, champion, tuple(arms), welch,
                                 proportions, shadow)  # fmt: skip


def _merge(parts: Iterable[_Running]) -> _Running:
    """Chan et al.'s pairwise combination of running statistics (an arm whose version changed
    when the champion alias moved mid-experiment)."""
    out = _Running()
    for p in parts:
        if p.n == 0:
            continue
        n = out.n + p.n
        delta = p.mean - out.mean
        out.m2 += p.m2 + delta * delta * out.n * p.n / n
        out.mean += delta * p.n / n
        out.n = n
        out.binary = out.binary and p.binary
    return out


__all__ = [
    "MIGRATIONS",
    "ArmStats",
    "OutputComparison",
    "PolicyKind",
    "PolicyRecord",
    "RolloutReport",
    "RouteDecision",
    "Router",
    "ShadowStats",
    "TestResult",
    "TrafficPolicy",
    "bucket",
    "two_proportion_test",
    "welch_test",
]
