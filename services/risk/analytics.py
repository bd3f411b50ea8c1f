"""The RiskService's stateless methods without a server: each takes the request message (and
the call's remaining deadline), checks and converts it (convert.py), runs the library on the
loop or the CPU pool by its estimated cost, and returns the response message.

Where the work runs (docs/architecture.md, "CPU work and the event loop"): every call's cost is
estimated in nanoseconds before it starts (scenarios x positions x the measured time of one
revaluation: :data:`NS_PATH`, :data:`NS_REVALUE`); up to :data:`INLINE_NS` (about a
millisecond) it runs on the loop, beyond that on the app's CpuPool (threads: the Monte-Carlo
kernel and the pricing kernels behind every revaluation release the GIL). A call whose estimate
exceeds what is left of its deadline is refused with DEADLINE_EXCEEDED before it starts;
requests beyond the hard caps (:class:`Caps`) are INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from tradecore import cuda_available
from tradecore.risk.attribution import attribute_pnl
from tradecore.risk.backtest import BacktestResult, LikelihoodRatioTest, backtest_var
from tradecore.risk.book import KIND_AMERICAN, Book
from tradecore.risk.covariance import correlation_breakdown, estimate_covariance
from tradecore.risk.greeks import DollarGreeks, portfolio_greeks
from tradecore.risk.hedge import propose_hedge
from tradecore.risk.historical import evt_var, historical_var
from tradecore.risk.montecarlo import Device, monte_carlo_var, monte_carlo_var_batch
from tradecore.risk.parametric import cornish_fisher_var, parametric_var
from tradecore.risk.result import VaRResult
from tradecore.risk.stress import (
    StressScenario,
    historical_stress,
    reverse_stress,
    spot_vol_grid,
    stress_test,
)
from tradecore.risk.valuation import revalue
from tradecore_api.risk.v1 import risk_pb2 as pb

from ..common import tracing
from ..common.cpu import CpuPool
from ..common.errors import PreconditionError
from . import convert
from .bars import StoredBars

T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]

#: Estimated nanoseconds a call may take on the event loop (about a millisecond).
INLINE_NS = 1_000_000
#: One option revalued on one Monte-Carlo path, in ns: measured through this service 2.0 ns
#: (full) and 0.35 ns (delta-gamma) per option-path for 100 options x 0.1-1M paths on the 2-core
#: VM (the kernel alone: 2.8 and 0.4 ns under load, docs/benchmarks.md), with a margin.
NS_PATH = {"monte_carlo": 3.0, "delta_gamma": 0.5}
#: Per position of a VaR call, in ns: conversion, validation and the kernels' set-up (measured
#: 8 us per position for Monte Carlo).
NS_SETUP = 8_000.0
#: One European option revalued in one scenario by the pricing kernels (stress, historical),
#: in ns (measured: 60-90 ns for 100 options x 100-1,000 scenarios on the 2-core VM).
NS_REVALUE = 100.0
#: An American option costs this many European ones in an exact revaluation (measured:
#: 1.6-2.0 us against 60-90 ns; less where early exercise is never optimal).
AMERICAN_FACTOR = 20.0
#: The Monte-Carlo kernel prices each American option once on a grid of 257 log-spots (x 65
#: log-vols with volatility shocks) by the exact engine before the paths: ns per grid node.
NS_GRID_NODE = 2_000.0
GRID_NODES = 257
GRID_VOL_NODES = 65
#: One position of a closed-form VaR (parametric, Cornish-Fisher), in ns, set-up included
#: (measured: 3.1 ms for 500 positions).
NS_CLOSED_FORM = 6_000.0
#: One position's Greeks (first and second order), in ns (measured: 2.5 us for 1,000).
NS_GREEKS = 2_500.0
#: Scenarios a reverse stress search revalues (SLSQP iterations x gradient evaluations).
REVERSE_SCENARIOS = 2_000
#: The fixed part of a call (request checks, the result), in ns (measured: 0.45 ms for a
#: one-option Monte-Carlo VaR of 1,000 paths, the smallest run there is).
BASE_NS = 400_000.0
#: Stored-bar history read when a request gives no returns and no lookback_days.
DEFAULT_LOOKBACK_DAYS = 250
DEFAULT_CONFIDENCE = 0.99
DEFAULT_HORIZON_DAYS = 1.0
DEFAULT_PATHS = 100_000
DEFAULT_EWMA_LAMBDA = 0.94
DEFAULT_EVT_THRESHOLD = 0.90
DEFAULT_TEST_LEVEL = 0.95
#: The correlation-breakdown threshold EstimateCovariance applies (largest change of a pairwise
#: correlation between the latest rolling window and the one before).
BREAKDOWN_THRESHOLD = 0.3
#: How a request names the i-th underlying's symbol.
MARKET_SYMBOL = "market.underlyings[{}].symbol"
HISTORICAL_METHODS = ("historical", "filtered_historical", "evt")
SIMULATED_METHODS = ("monte_carlo", "delta_gamma")


@dataclass(frozen=True)
class Caps:
    """Hard limits per call (TRADECORE_RISK_MAX_*): beyond them a request is INVALID_ARGUMENT
    naming the field."""

    max_paths: int = 10_000_000
    max_positions: int = 100_000
    max_books: int = 10_000


@dataclass(frozen=True)
class VaRSettings:
    """A ComputeVaRRequest's settings, checked, with the proto's defaults applied."""

    method: str
    confidence: float
    horizon_days: float
    paths: int
    seed: int
    device: Device
    student_t_dof: int
    vol_of_vol: tuple[float, ...]
    spot_vol_correlation: tuple[float, ...]
    returns: FloatArray
    lookback_days: int
    ewma_lambda: float
    evt_threshold: float


def finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return value


def finite_list(name: str, values: Sequence[float]) -> FloatArray:
    a = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}]: must be finite, got {float(a[i])!r}")
    return a


def _default(value: float, default: float) -> float:
    return default if value == 0.0 else value


def _given(req: pb.ComputeVaRRequest, field: str, at: str, default: float) -> float:
    """An optional field's finite value, or ``default`` when the caller left it unset."""
    if not req.HasField(field):
        return default
    return finite(f"{at}{field}", getattr(req, field))


@contextlib.contextmanager
def named(fields: dict[str, str]) -> Iterator[None]:
    """Re-raise a library ValueError whose message starts with one of ``fields``' keys (the
    library's argument name) with the request's field name instead."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        for lib, ours in fields.items():
            if re.match(rf"{re.escape(lib)}(?=[:\[. ])", text):
                raise ValueError(ours + text[len(lib) :]) from exc
        raise


def var_settings(req: pb.ComputeVaRRequest, caps: Caps, at: str = "") -> VaRSettings:
    """The request's settings with defaults for the fields left unset (confidence 0.99,
    horizon 1 day, paths 100,000, ewma_lambda 0.94, evt_threshold 0.90; an explicit 0 is
    out of range); ``at`` prefixes the field names (a batch's ``settings.``)."""
    method = convert.METHODS.get(req.method)
    if method is None:
        raise ValueError(f"{at}method: unknown VaR method {req.method}")
    device = convert.DEVICES.get(req.device)
    if device is None:
        raise ValueError(f"{at}device: unknown device {req.device}")
    confidence = _given(req, "confidence", at, DEFAULT_CONFIDENCE)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"{at}confidence: must be in (0, 1), got {confidence!r}")
    horizon = _given(req, "horizon_days", at, DEFAULT_HORIZON_DAYS)
    if horizon <= 0.0:
        raise ValueError(f"{at}horizon_days: must be > 0, got {horizon!r}")
    paths = req.paths if req.HasField("paths") else DEFAULT_PATHS
    if paths < 1:
        raise ValueError(f"{at}paths: must be >= 1, got {paths}")
    if method in SIMULATED_METHODS and paths > caps.max_paths:
        raise ValueError(
            f"{at}paths: at most {caps.max_paths} per call (TRADECORE_RISK_MAX_PATHS), "
            f"got {req.paths}"
        )
    if method in SIMULATED_METHODS and device == "cuda" and not cuda_available():
        raise PreconditionError(
            f"{at}device: GPU asked for, but this RiskService has no usable CUDA device "
            "(AUTO runs on the GPU when there is one, else the CPU)"
        )
    lam = _given(req, "ewma_lambda", at, DEFAULT_EWMA_LAMBDA)
    if not 0.0 < lam < 1.0:
        raise ValueError(f"{at}ewma_lambda: must be in (0, 1), got {lam!r}")
    threshold = _given(req, "evt_threshold", at, DEFAULT_EVT_THRESHOLD)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{at}evt_threshold: must be in (0, 1), got {threshold!r}")
    return VaRSettings(
        method=method,
        confidence=confidence,
        horizon_days=horizon,
        paths=paths,
        seed=req.seed,
        device=device,
        student_t_dof=req.student_t_dof,
        vol_of_vol=tuple(finite_list(f"{at}vol_of_vol", req.vol_of_vol).tolist()),
        spot_vol_correlation=tuple(
            finite_list(f"{at}spot_vol_correlation", req.spot_vol_correlation).tolist()
        ),
        returns=finite_list(f"{at}returns", req.returns),
        lookback_days=req.lookback_days,
        ewma_lambda=lam,
        evt_threshold=threshold,
    )


def returns_matrix(
    values: Sequence[float] | FloatArray, n: int, name: str = "returns"
) -> FloatArray:
    """Row-major ``days x n`` daily returns from a flat list."""
    a = np.asarray(values, dtype=np.float64)
    if a.size % n:
        raise ValueError(
            f"{name}: {a.size} values are not whole days of {n} underlyings "
            "(days x underlyings, row-major, in market order)"
        )
    return a.reshape(-1, n)


def american_count(book: Book) -> int:
    return int(np.count_nonzero(book.kind == KIND_AMERICAN))


def option_weight(book: Book) -> float:
    """The book's positions counted in European-option revaluations (exact repricing)."""
    american = american_count(book)
    return float(book.n_positions - american) + AMERICAN_FACTOR * american


def var_cost_ns(books: Sequence[Book], s: VaRSettings, days: int = 0) -> float:
    """Estimated run time of the VaR of ``books`` by ``s``, in ns."""
    if s.method in SIMULATED_METHODS:
        positions = sum(b.n_positions for b in books)
        grid = GRID_NODES * (GRID_VOL_NODES if s.vol_of_vol else 1)
        american = sum(american_count(b) for b in books)
        return (
            BASE_NS
            + NS_SETUP * positions
            + NS_PATH[s.method] * positions * s.paths
            + NS_GRID_NODE * grid * american
        )
    weight = sum(option_weight(b) for b in books)
    if s.method in HISTORICAL_METHODS:
        return BASE_NS + NS_SETUP * weight + NS_REVALUE * weight * max(days, 1)
    return BASE_NS + NS_CLOSED_FORM * weight


def check_deadline(cost_ns: float, time_remaining: float | None, what: str) -> None:
    """TimeoutError (DEADLINE_EXCEEDED) when the estimate exceeds the call's remaining time."""
    if time_remaining is None:
        return
    need = cost_ns / 1e9
    if need > time_remaining:
        raise TimeoutError(
            f"{what}: the run would take about {need:.3g} s, more than the {time_remaining:.3g} s "
            "left of the call's deadline; refused before it started (fewer paths or a longer "
            "deadline)"
        )


def _monte_carlo_settings(s: VaRSettings) -> dict[str, Any]:
    """The library's Monte-Carlo keywords for the request's settings (one book or a batch)."""
    return {
        "confidence": s.confidence,
        "horizon_days": s.horizon_days,
        "paths": s.paths,
        "seed": s.seed,
        "method": "full" if s.method == "monte_carlo" else "delta_gamma",
        "student_t_dof": s.student_t_dof,
        "vol_of_vol": s.vol_of_vol or None,
        "spot_vol_correlation": s.spot_vol_correlation or None,
        "device": s.device,
    }


def run_var(book: Book, s: VaRSettings, returns: FloatArray | None) -> VaRResult:
    """One book's VaR by ``s.method`` (library calls; on the pool for a heavy run)."""
    if s.method in SIMULATED_METHODS:
        return monte_carlo_var(book, **_monte_carlo_settings(s))
    if s.method in ("parametric", "cornish_fisher"):
        fn = parametric_var if s.method == "parametric" else cornish_fisher_var
        return fn(book, confidence=s.confidence, horizon_days=s.horizon_days)
    assert returns is not None
    if s.method == "evt":
        with named({"threshold": "evt_threshold"}):  # the request's name for it
            return evt_var(
                book,
                returns,
                confidence=s.confidence,
                horizon_days=s.horizon_days,
                threshold=s.evt_threshold,
            )
    return historical_var(
        book,
        returns,
        confidence=s.confidence,
        horizon_days=s.horizon_days,
        filtered=s.method == "filtered_historical",
        ewma_lambda=s.ewma_lambda,
    )


def lr_test(t: LikelihoodRatioTest) -> pb.LikelihoodRatioTest:
    return pb.LikelihoodRatioTest(
        statistic=convert.finite_or_zero(t.statistic),
        p_value=convert.finite_or_zero(t.p_value),
        reject=t.reject,
        available=t.available,
    )


def backtest_response(r: BacktestResult) -> pb.BacktestVaRResponse:
    return pb.BacktestVaRResponse(
        observations=r.observations,
        failures=r.failures,
        expected_failures=r.expected_failures,
        kupiec_pof=lr_test(r.kupiec_pof),
        christoffersen_independence=lr_test(r.christoffersen_independence),
        conditional_coverage=lr_test(r.conditional_coverage),
        traffic_light=r.traffic_light,
    )


def backtest(req: pb.BacktestVaRRequest) -> pb.BacktestVaRResponse:
    """BacktestVaR: whichever of the three forms the request fills (the library says when
    none or several are given)."""
    level = _default(finite("test_level", req.test_level), DEFAULT_TEST_LEVEL)
    confidence = finite("confidence", req.confidence)
    kwargs: dict[str, object] = {}
    if req.pnl or req.var:
        kwargs["pnl"] = finite_list("pnl", req.pnl) if req.pnl else None
        kwargs["var"] = finite_list("var", req.var) if req.var else None
    if req.hits:
        kwargs["hits"] = np.asarray(req.hits, dtype=bool)
    if req.observations or req.failures:
        kwargs["observations"] = req.observations or None
        kwargs["failures"] = req.failures
    result = backtest_var(confidence=confidence, test_level=level, **kwargs)  # type: ignore[arg-type]
    return backtest_response(result)


def covariance(
    req: pb.EstimateCovarianceRequest, returns: FloatArray
) -> pb.EstimateCovarianceResponse:
    """EstimateCovariance over ``returns`` (days x symbols)."""
    lam = _default(finite("ewma_lambda", req.ewma_lambda), DEFAULT_EWMA_LAMBDA)
    estimator = req.estimator or "ewma"
    est = estimate_covariance(
        returns,
        list(req.symbols),
        estimator=estimator,  # type: ignore[arg-type]
        ewma_lambda=lam,
    )
    out = pb.EstimateCovarianceResponse(
        symbols=list(est.symbols),
        covariance=est.covariance.ravel().tolist(),
        correlation=est.correlation.ravel().tolist(),
        volatilities=est.volatilities.tolist(),
        details=convert.details(est.details),
    )
    if req.rolling_window:
        with named({"window": "rolling_window"}):
            signal = correlation_breakdown(returns, int(req.rolling_window), BREAKDOWN_THRESHOLD)
        out.correlation_change = float(signal.change[-1])
        out.correlation_breakdown = signal.latest
    return out


class Analytics:
    """The stateless RPCs' logic, given the app's CPU pool, the caps and the stored bars."""

    def __init__(self, cpu: CpuPool, caps: Caps, bars: StoredBars) -> None:
        self.cpu = cpu
        self.caps = caps
        self.bars = bars

    def _book(
        self,
        positions: Sequence[pb.RiskPosition],
        market: pb.MarketState,
        at: str = "positions",
        market_at: str = "market",
    ) -> Book:
        if len(positions) > self.caps.max_positions:
            raise ValueError(
                f"{at}: at most {self.caps.max_positions} per book "
                f"(TRADECORE_RISK_MAX_POSITIONS), got {len(positions)}"
            )
        return convert.book(positions, market, at=at, market_at=market_at)

    async def _run(self, cost_ns: float, fn: Callable[[], T]) -> T:
        return await self.cpu.run(int(cost_ns), fn)

    async def _history(
        self,
        values: Sequence[float] | FloatArray,
        lookback_days: int,
        symbols: Sequence[str],
        field: str,
        symbol_field: str,
        time_remaining: float | None = None,
    ) -> tuple[FloatArray, list[str] | None]:
        """``(days x n returns, date labels or None)``: the request's own ``values`` (its
        ``field``) when it has any, else the stored bars of ``symbols`` over ``lookback_days``
        (``symbol_field`` names a symbol in errors, ``{}`` its index), read within the call's
        ``time_remaining`` seconds."""
        if len(values):
            return returns_matrix(values, len(symbols), field), None
        returns, dates = await self.bars.returns(
            symbols, lookback_days or DEFAULT_LOOKBACK_DAYS, field, symbol_field, time_remaining
        )
        return returns, [str(d) for d in dates]

    async def compute_var(
        self, req: pb.ComputeVaRRequest, time_remaining: float | None = None
    ) -> pb.ComputeVaRResponse:
        s = var_settings(req, self.caps)
        book = self._book(req.positions, req.market)
        returns = None
        if s.method in HISTORICAL_METHODS:
            returns, _ = await self._history(
                s.returns, s.lookback_days, book.symbols, "returns", MARKET_SYMBOL, time_remaining
            )
        days = 0 if returns is None else int(returns.shape[0])
        cost = var_cost_ns([book], s, days)
        check_deadline(
            cost, time_remaining, "paths" if s.method in SIMULATED_METHODS else "returns"
        )
        with tracing.child_span(
            f"kernel risk.var.{s.method}", positions=len(req.positions), paths=s.paths, days=days
        ):
            result = await self._run(cost, lambda: run_var(book, s, returns))
        return convert.var_response(result)

    async def compute_var_batch(
        self, req: pb.ComputeVaRBatchRequest, time_remaining: float | None = None
    ) -> pb.ComputeVaRBatchResponse:
        if not req.books:
            raise ValueError("books: must not be empty")
        if len(req.books) > self.caps.max_books:
            raise ValueError(
                f"books: at most {self.caps.max_books} per call (TRADECORE_RISK_MAX_BOOKS), "
                f"got {len(req.books)}"
            )
        s = var_settings(req.settings, self.caps, "settings.")
        if req.settings.positions or req.settings.HasField("market"):
            raise ValueError(
                "settings: positions and market go in books[].positions and market, not in settings"
            )
        books = [
            self._book(b.positions, req.market, f"books[{i}].positions")
            for i, b in enumerate(req.books)
        ]
        returns = None
        if s.method in HISTORICAL_METHODS:
            returns, _ = await self._history(
                s.returns,
                s.lookback_days,
                books[0].symbols,
                "settings.returns",
                MARKET_SYMBOL,
                time_remaining,
            )
        days = 0 if returns is None else int(returns.shape[0])
        cost = var_cost_ns(books, s, days)
        what = "settings.paths" if s.method in SIMULATED_METHODS else "books"
        check_deadline(cost, time_remaining, what)
        with tracing.child_span(
            f"kernel risk.var_batch.{s.method}", books=len(books), paths=s.paths, days=days
        ):
            results = await self._run(cost, lambda: batch_of(books, s, returns))
        return pb.ComputeVaRBatchResponse(results=[convert.var_response(r) for r in results])

    async def backtest_var(self, req: pb.BacktestVaRRequest) -> pb.BacktestVaRResponse:
        n = len(req.pnl) + len(req.var) + len(req.hits)
        return await self._run(BASE_NS + 20.0 * n, lambda: backtest(req))

    async def estimate_covariance(
        self, req: pb.EstimateCovarianceRequest
    ) -> pb.EstimateCovarianceResponse:
        symbols = list(req.symbols)
        if not symbols:
            raise ValueError("symbols: must not be empty (one per column of returns)")
        returns, _ = await self._history(
            req.returns, req.lookback_days, symbols, "returns", "symbols[{}]"
        )
        cost = BASE_NS + 50.0 * returns.size * max(len(symbols), 1)
        if req.estimator == "garch":
            cost += 5_000_000.0 * len(symbols)
        return await self._run(cost, lambda: covariance(req, returns))

    async def stress_test(
        self, req: pb.StressTestRequest, time_remaining: float | None = None
    ) -> pb.StressTestResponse:
        book = self._book(req.positions, req.market)
        history, labels = None, None
        if req.historical_worst_days:
            history, labels = await self._history(
                finite_list("returns", req.returns),
                req.lookback_days,
                book.symbols,
                "returns",
                MARKET_SYMBOL,
                time_remaining,
            )
        scenarios = (
            len(req.scenarios)
            + (0 if history is None else history.shape[0])
            + len(req.grid_spot_shocks) * len(req.grid_vol_shocks)
            + (REVERSE_SCENARIOS if req.reverse_loss else 0)
            + 1
        )
        cost = BASE_NS + NS_REVALUE * option_weight(book) * scenarios
        check_deadline(cost, time_remaining, "scenarios")
        return await self._run(cost, lambda: stress(book, req, history, labels))

    async def portfolio_greeks(self, req: pb.PortfolioGreeksRequest) -> pb.PortfolioGreeksResponse:
        book = self._book(req.positions, req.market)
        return await self._run(BASE_NS + NS_GREEKS * option_weight(book), lambda: greeks(book))

    async def propose_hedge(self, req: pb.ProposeHedgeRequest) -> pb.ProposeHedgeResponse:
        book = self._book(req.positions, req.market)
        cost = BASE_NS + 2 * NS_GREEKS * (option_weight(book) + len(req.candidates))
        return await self._run(cost, lambda: hedge(book, req))

    async def attribute_pnl(self, req: pb.AttributePnLRequest) -> pb.AttributePnLResponse:
        book = self._book(req.positions, req.before, market_at="before")
        cost = BASE_NS + (NS_GREEKS + 2 * NS_REVALUE) * option_weight(book)
        return await self._run(cost, lambda: attribution(book, req))


#: The library's argument names of the settings a batch request holds in ``settings``.
SETTINGS_FIELDS = (
    "confidence",
    "horizon_days",
    "paths",
    "seed",
    "student_t_dof",
    "vol_of_vol",
    "spot_vol_correlation",
    "returns",
    "ewma_lambda",
    "evt_threshold",
)


def batch_of(books: Sequence[Book], s: VaRSettings, returns: FloatArray | None) -> list[VaRResult]:
    """:func:`run_var_batch` with the library's errors about a setting named
    ``settings.<field>`` (where the batch request has it)."""
    fields = {f: f"settings.{f}" for f in SETTINGS_FIELDS}
    fields["threshold"] = fields["evt_threshold"] = "settings.evt_threshold"
    with named(fields):
        return run_var_batch(books, s, returns)


def run_var_batch(
    books: Sequence[Book], s: VaRSettings, returns: FloatArray | None
) -> list[VaRResult]:
    """Every book's VaR over one market and one set of scenarios."""
    if s.method in SIMULATED_METHODS:
        return list(monte_carlo_var_batch(books, **_monte_carlo_settings(s)))
    return [run_var(b, s, returns) for b in books]


def stress(
    book: Book,
    req: pb.StressTestRequest,
    history: FloatArray | None,
    labels: Sequence[str] | None,
) -> pb.StressTestResponse:
    """StressTest: the hypothetical scenarios, the worst historical days, the spot x vol grid
    and the reverse stress the request asks for, each by exact repricing."""
    out = pb.StressTestResponse(value=float(revalue(book).sum()))
    results = []
    if req.scenarios:
        scenarios = [
            StressScenario(
                name=sc.name,
                spot_shocks=dict(sc.spot_shocks),
                vol_shocks=dict(sc.vol_shocks),
                rate_shock=sc.rate_shock,
                horizon_days=sc.horizon_days,
            )
            for sc in req.scenarios
        ]
        results += stress_test(book, scenarios)
    if req.historical_worst_days:
        assert history is not None
        with named({"worst": "historical_worst_days"}):
            results += historical_stress(
                book, history, worst=int(req.historical_worst_days), labels=labels
            )
    for r in results:
        out.scenarios.add(name=r.name, pnl=r.pnl, position_pnl=np.asarray(r.position_pnl).tolist())
    if req.grid_spot_shocks or req.grid_vol_shocks:
        with named({"spot_shocks": "grid_spot_shocks", "vol_shocks": "grid_vol_shocks"}):
            grid = spot_vol_grid(book, list(req.grid_spot_shocks), list(req.grid_vol_shocks))
        out.grid_pnl.extend(grid.ravel().tolist())
    if req.reverse_loss:
        horizon = _default(
            finite("reverse_horizon_days", req.reverse_horizon_days), DEFAULT_HORIZON_DAYS
        )
        with named({"loss": "reverse_loss", "horizon_days": "reverse_horizon_days"}):
            rev = reverse_stress(
                book, finite("reverse_loss", req.reverse_loss), horizon_days=horizon
            )
        out.reverse.CopyFrom(
            pb.ReverseStressResult(
                spot_shocks=rev.spot_shocks,
                mahalanobis_distance=rev.mahalanobis_distance,
                pnl=rev.pnl,
                probability=rev.probability,
            )
        )
    return out


def greeks_msg(g: DollarGreeks) -> pb.DollarGreeks:
    return pb.DollarGreeks(
        delta=g.delta,
        gamma=g.gamma,
        vega=g.vega,
        theta=g.theta,
        rho=g.rho,
        vanna=g.vanna,
        volga=g.volga,
        dollar_delta=g.dollar_delta,
        dollar_gamma=g.dollar_gamma,
        value=g.value,
    )


def greeks(book: Book) -> pb.PortfolioGreeksResponse:
    g = portfolio_greeks(book)
    return pb.PortfolioGreeksResponse(
        total=greeks_msg(g.total),
        positions=[greeks_msg(p) for p in g.positions],
        by_underlying=[
            pb.GreeksBucket(key=k, greeks=greeks_msg(v)) for k, v in g.by_underlying.items()
        ],
        by_expiry=[pb.GreeksBucket(key=k, greeks=greeks_msg(v)) for k, v in g.by_expiry.items()],
    )


def hedge(book: Book, req: pb.ProposeHedgeRequest) -> pb.ProposeHedgeResponse:
    candidates = [convert.instrument(c, f"candidates[{i}]") for i, c in enumerate(req.candidates)]
    proposal = propose_hedge(book, candidates, list(req.targets) or ["delta"])
    return pb.ProposeHedgeResponse(
        trades=[convert.position_msg(p) for p in proposal.trades],
        before=greeks_msg(proposal.before),
        after=greeks_msg(proposal.after),
    )


def attribution(book: Book, req: pb.AttributePnLRequest) -> pb.AttributePnLResponse:
    elapsed = finite("elapsed_days", req.elapsed_days)
    with named({"market_after": "after", "book_before": "before"}):
        a = attribute_pnl(book, convert.market(req.after), elapsed)
    return pb.AttributePnLResponse(
        total=a.total,
        delta=a.delta,
        gamma=a.gamma,
        vega=a.vega,
        theta=a.theta,
        vanna=a.vanna,
        volga=a.volga,
        rho=a.rho,
        unexplained=a.unexplained,
    )
