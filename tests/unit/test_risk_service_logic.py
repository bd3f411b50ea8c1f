"""The RiskService's request handling without a server: protobuf <-> library conversion
(services/risk/convert.py) and the stateless methods (services/risk/analytics.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import numpy as np
import pytest
from tradecore import cuda_available, ticks
from tradecore.risk.historical import evt_var, historical_var
from tradecore.risk.montecarlo import monte_carlo_var
from tradecore.risk.parametric import cornish_fisher_var, parametric_var
from tradecore.risk.result import VaRResult
from tradecore.risk.valuation import revalue
from tradecore.store import default_dsn
from tradecore_api.events.v1 import common_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.cpu import CpuPool
from tradecore_services.common.errors import PreconditionError, status_for
from tradecore_services.common.settings import ServiceSettings
from tradecore_services.marketdata.store import TickStore
from tradecore_services.risk import convert
from tradecore_services.risk.analytics import INLINE_NS, Analytics, Caps, var_settings
from tradecore_services.risk.bars import StoredBars

NY = ZoneInfo("America/New_York")


def daily_ticks(symbol: str, days: int) -> ticks.TickBatch:
    """One closing trade per weekday (15:55 New York) on a random walk, as the market-data
    service stores ticks."""
    rng = np.random.default_rng(sum(map(ord, symbol)))
    start = dt.date(2026, 1, 5)
    dates = [start + dt.timedelta(days=k) for k in range(days * 2)]
    dates = [d for d in dates if d.weekday() < 5][:days]
    px = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.015, len(dates))))
    ts = [
        int(dt.datetime(d.year, d.month, d.day, 15, 55, tzinfo=NY).timestamp()) * 10**9
        for d in dates
    ]
    return ticks.make_batch(
        "test",
        symbol,
        "f",
        seq=np.arange(1, len(ts) + 1),
        ts=ts,
        recv_ts=time.time_ns(),
        type=np.full(len(ts), ticks.EXECUTE),
        price=np.round(px * ticks.PRICE_SCALE).astype(np.int64),
        size=np.full(len(ts), 100),
    )


def option(
    symbol: str = "AAA",
    strike: float = 100.0,
    expiry: float = 0.5,
    right: int = events.CALL,
    style: int = pb.EXERCISE_STYLE_UNSPECIFIED,
    quantity: float = 10.0,
) -> pb.RiskPosition:
    return pb.RiskPosition(
        instrument=pb.RiskInstrument(
            symbol=symbol,
            kind=events.OPTION,
            option_type=right,
            style=style,
            strike=strike,
            expiry_years=expiry,
        ),
        quantity=quantity,
    )


def equity(symbol: str = "AAA", quantity: float = 100.0) -> pb.RiskPosition:
    return pb.RiskPosition(
        instrument=pb.RiskInstrument(symbol=symbol, kind=events.EQUITY), quantity=quantity
    )


def market(n: int = 2, correlation: list[float] | None = None) -> pb.MarketState:
    symbols = ["AAA", "BBB", "CCC", "DDD"][:n]
    return pb.MarketState(
        rate=0.03,
        underlyings=[
            pb.UnderlyingMarket(symbol=s, spot=100.0 + 10 * i, volatility=0.2 + 0.05 * i)
            for i, s in enumerate(symbols)
        ],
        correlation=correlation or [],
    )


def test_positions_and_market_become_the_library_book() -> None:
    m = market(2, [1.0, 0.3, 0.3, 1.0])
    p = [option(), equity("BBB"), option("BBB", style=pb.AMERICAN, right=events.PUT)]
    p[2].multiplier = 10.0
    book = convert.book(p, m)
    assert book.symbols == ("AAA", "BBB")
    assert list(book.underlying) == [0, 1, 1]
    assert list(book.kind) == [1, 0, 2]  # European (unset style), equity, American
    assert list(book.option_type) == [1, 0, -1]
    assert list(book.units) == [1000.0, 100.0, 100.0]  # option multiplier: 100 unless set
    assert book.correlation[0, 1] == 0.3
    assert book.rate == 0.03


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p, m: setattr(p[1].instrument, "symbol", "ZZZ"), "positions[1].instrument.symbol"),
        (lambda p, m: setattr(p[1].instrument, "strike", -1.0), "positions[1].instrument.strike"),
        (
            lambda p, m: setattr(p[1].instrument, "expiry_years", 0.0),
            "positions[1].instrument.expiry_years",
        ),
        (lambda p, m: setattr(p[0], "quantity", math.nan), "positions[0].quantity"),
        (lambda p, m: setattr(p[1].instrument, "kind", 0), "positions[1].instrument.kind"),
        (
            lambda p, m: setattr(p[1].instrument, "kind", events.FUTURE),
            "positions[1].instrument.kind",
        ),
        (
            lambda p, m: setattr(p[1].instrument, "option_type", 0),
            "positions[1].instrument.option_type",
        ),
        (lambda p, m: p[1].ClearField("instrument"), "positions[1].instrument"),
        (lambda p, m: m.correlation.extend([1.0, 0.2, 0.2]), "market.correlation"),
        (lambda p, m: setattr(m.underlyings[1], "spot", math.inf), "market.underlyings[1].spot"),
        (lambda p, m: setattr(m, "rate", math.nan), "market.rate"),
    ],
)
def test_bad_input_names_the_field(change: object, field: str) -> None:
    p = [equity(), option("BBB")]
    m = market(2)
    change(p, m)  # type: ignore[operator]
    with pytest.raises(ValueError) as info:
        convert.book(p, m)
    assert str(info.value).startswith(field + ":") or str(info.value).startswith(field + "["), (
        info.value
    )


def test_a_batch_book_names_its_own_fields() -> None:
    with pytest.raises(ValueError, match=r"^books\[2\]\.positions\[0\]\.instrument\.strike: "):
        convert.book([option(strike=0.0)], market(1), at="books[2].positions")
    with pytest.raises(ValueError, match=r"^before\.underlyings\[0\]\.spot: "):
        m = market(1)
        m.underlyings[0].spot = -1.0
        convert.book([option()], m, market_at="before")


def test_a_var_result_becomes_the_response() -> None:
    result = VaRResult(
        method="delta_gamma",
        confidence=0.99,
        horizon_days=10.0,
        var=12.5,
        expected_shortfall=15.0,
        var_stderr=0.1,
        es_stderr=math.nan,
        value=1000.0,
        scenarios=100_000,
        device="cuda",
        details={
            "correlation_repaired": True,
            "repair_distance": 0.02,
            "note": "x",
            "bad": math.nan,
        },
    )
    r = convert.var_response(result)
    assert (r.var, r.expected_shortfall, r.var_stderr, r.es_stderr) == (12.5, 15.0, 0.1, 0.0)
    assert (r.value, r.paths, r.device, r.method) == (1000.0, 100_000, pb.GPU, pb.DELTA_GAMMA)
    assert (r.confidence, r.horizon_days, r.correlation_repaired) == (0.99, 10.0, True)
    assert dict(r.details) == {"correlation_repaired": 1.0, "repair_distance": 0.02}


# --- analytics (the stateless RPCs without a server) ---------------------------------------


@pytest.fixture
def analytics() -> Iterator[Analytics]:
    cpu = CpuPool("test-risk", 2, INLINE_NS)
    yield Analytics(cpu, Caps(max_paths=1_000_000, max_positions=50, max_books=3), NO_BARS)
    asyncio.run(cpu.close())


NO_BARS = StoredBars(None, "no store in this test")


def var_request(**fields: object) -> pb.ComputeVaRRequest:
    req = pb.ComputeVaRRequest(
        positions=[option(), equity("BBB", -50.0)], market=market(2, [1.0, 0.5, 0.5, 1.0])
    )
    for k, v in fields.items():
        if isinstance(v, list):
            getattr(req, k).extend(v)
        else:
            setattr(req, k, v)
    return req


def returns_for(n: int, days: int = 300, seed: int = 7) -> list[float]:
    rng = np.random.default_rng(seed)
    return (rng.standard_t(4, size=(days, n)) * 0.012).ravel().tolist()


def test_var_settings_apply_the_proto_defaults() -> None:
    s = var_settings(pb.ComputeVaRRequest(), Caps())
    assert (s.method, s.confidence, s.horizon_days, s.paths) == ("monte_carlo", 0.99, 1.0, 100_000)
    assert (s.device, s.ewma_lambda, s.evt_threshold) == ("cpu", 0.94, 0.90)
    s = var_settings(pb.ComputeVaRRequest(method=pb.EVT, device=pb.GPU, confidence=0.975), Caps())
    assert (s.method, s.device, s.confidence) == ("evt", "cuda", 0.975)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"confidence": 1.5}, r"^confidence: must be in \(0, 1\)"),
        ({"confidence": -0.1}, r"^confidence: must be in \(0, 1\)"),
        ({"confidence": math.nan}, r"^confidence: must be finite"),
        ({"horizon_days": math.inf}, r"^horizon_days: must be finite"),
        ({"horizon_days": -1.0}, r"^horizon_days: must be > 0"),
        ({"paths": 10**12}, r"^paths: at most 1000000 per call"),
        ({"paths": 0}, r"^paths: must be >= 1, got 0"),
        ({"confidence": 0.0}, r"^confidence: must be in \(0, 1\), got 0.0"),
        ({"horizon_days": 0.0}, r"^horizon_days: must be > 0, got 0.0"),
        ({"evt_threshold": 0.0}, r"^evt_threshold: must be in \(0, 1\)"),
        ({"ewma_lambda": 1.0}, r"^ewma_lambda: must be in \(0, 1\)"),
        ({"vol_of_vol": [0.5, math.nan]}, r"^vol_of_vol\[1\]: must be finite"),
        ({"returns": [0.01, math.inf]}, r"^returns\[1\]: must be finite"),
    ],
)
def test_bad_var_settings_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        var_settings(var_request(**fields), Caps(max_paths=1_000_000))


def test_a_batch_names_settings_fields() -> None:
    with pytest.raises(ValueError, match=r"^settings\.confidence: must be in \(0, 1\)"):
        var_settings(pb.ComputeVaRRequest(confidence=2.0), Caps(), "settings.")


@pytest.mark.parametrize("method", [pb.PARAMETRIC, pb.CORNISH_FISHER])
def test_closed_form_var_is_the_library_s(analytics: Analytics, method: int) -> None:
    req = var_request(method=method, confidence=0.975, horizon_days=10.0)
    got = asyncio.run(analytics.compute_var(req))
    book = convert.book(req.positions, req.market)
    fn = parametric_var if method == pb.PARAMETRIC else cornish_fisher_var
    want = fn(book, confidence=0.975, horizon_days=10.0)
    assert (got.var, got.expected_shortfall, got.value) == (
        want.var,
        want.expected_shortfall,
        want.value,
    )
    assert (got.method, got.confidence, got.horizon_days, got.var_stderr) == (
        method,
        0.975,
        10.0,
        0.0,
    )


@pytest.mark.parametrize("method", [pb.HISTORICAL, pb.FILTERED_HISTORICAL, pb.EVT])
def test_historical_var_over_the_request_s_returns(analytics: Analytics, method: int) -> None:
    req = var_request(method=method, returns=returns_for(2))
    got = asyncio.run(analytics.compute_var(req))
    book = convert.book(req.positions, req.market)
    r = np.asarray(req.returns).reshape(-1, 2)
    if method == pb.EVT:
        want = evt_var(book, r, confidence=0.99, horizon_days=1.0, threshold=0.9)
    else:
        want = historical_var(book, r, filtered=method == pb.FILTERED_HISTORICAL)
    assert (got.var, got.expected_shortfall, got.paths) == (want.var, want.expected_shortfall, 300)
    assert got.var > 0
    assert got.var_stderr > 0 or method == pb.EVT  # the GPD fit has no standard error here


def test_historical_returns_must_be_whole_days(analytics: Analytics) -> None:
    req = var_request(method=pb.HISTORICAL, returns=returns_for(2)[:-1])
    with pytest.raises(ValueError, match=r"^returns: 599 values are not whole days of 2"):
        asyncio.run(analytics.compute_var(req))


def test_historical_var_without_returns_or_readable_bars_says_why(analytics: Analytics) -> None:
    with pytest.raises(PreconditionError) as info:
        asyncio.run(analytics.compute_var(var_request(method=pb.HISTORICAL)))
    assert str(info.value).startswith("returns: empty and no stored bars are readable: ")
    assert status_for(info.value) is grpc.StatusCode.FAILED_PRECONDITION


def test_only_a_clickhouse_server_s_bars_are_read_directly() -> None:
    """The mesh's embedded chDB belongs to the market-data process (one process per path):
    the risk service reads bars from a server DSN itself, else asks the market-data service
    over NATS (tests/integration/test_daily_closes_nats.py)."""
    bus = Bus("nats://127.0.0.1:1", "test")
    settings = ServiceSettings(service="risk", clickhouse_dsn="chdb:///tmp/x/clickhouse/risk")
    bars = StoredBars.for_settings(settings, bus)
    assert bars.dsn is None and bars.bus is bus
    server = ServiceSettings(service="risk", clickhouse_dsn="http://default:@ch:8123/md")
    direct = StoredBars.for_settings(server, bus)
    assert direct.dsn == "http://default:@ch:8123/md" and direct.bus is None


def test_historical_var_reads_the_stored_bars(tmp_path: Path) -> None:
    """With a readable store (here an embedded one the test owns), a request without returns
    is served from the stored daily closes; a symbol without enough days is named by its
    market field."""
    dsn = default_dsn(tmp_path, "marketdata")
    store = TickStore(dsn)
    try:
        store.insert([daily_ticks("AAA", 60), daily_ticks("BBB", 60)])
    finally:
        store.close()
    cpu = CpuPool("test-risk", 2, INLINE_NS)
    bars = StoredBars(dsn)
    analytics = Analytics(cpu, Caps(), bars)

    async def go() -> tuple[pb.ComputeVaRResponse, str]:
        try:
            ok = await analytics.compute_var(
                var_request(method=pb.HISTORICAL, confidence=0.95, lookback_days=40)
            )
            bad = var_request(method=pb.HISTORICAL, confidence=0.95)
            bad.market.underlyings.add(symbol="CCC", spot=10.0, volatility=0.3)
            bad.market.ClearField("correlation")
            try:
                await analytics.compute_var(bad)
            except ValueError as exc:
                return ok, str(exc)
            return ok, ""
        finally:
            await bars.close()
            await cpu.close()

    ok, message = asyncio.run(go())
    assert ok.paths == 40 and ok.var > 0
    assert message.startswith("market.underlyings[2].symbol: 'CCC' has 0 daily closes"), message


def test_backtest_reproduces_the_mathworks_example(analytics: Analytics) -> None:
    """MathWorks varbacktest: 1,043 observations, 57 failures at 95 %: POF LR 0.461, p 0.497,
    green."""
    req = pb.BacktestVaRRequest(observations=1043, failures=57, confidence=0.95)
    r = asyncio.run(analytics.backtest_var(req))
    assert (r.observations, r.failures) == (1043, 57)
    assert r.kupiec_pof.statistic == pytest.approx(0.461, abs=5e-4)
    assert r.kupiec_pof.p_value == pytest.approx(0.497, abs=5e-4)
    assert r.kupiec_pof.available and not r.kupiec_pof.reject
    # Counts only: no independence test, and no NaN in the reply.
    assert not r.christoffersen_independence.available
    assert r.christoffersen_independence.statistic == 0.0
    assert r.traffic_light == "GREEN"


def test_backtest_from_series_and_bad_forms(analytics: Analytics) -> None:
    pnl = [-1.0, 2.0, -3.0, 0.5] * 50
    var = [2.0] * 200
    r = asyncio.run(
        analytics.backtest_var(pb.BacktestVaRRequest(pnl=pnl, var=var, confidence=0.99))
    )
    assert (r.observations, r.failures) == (200, 50)
    assert r.christoffersen_independence.available
    with pytest.raises(ValueError, match=r"^pnl: give exactly one of"):
        asyncio.run(analytics.backtest_var(pb.BacktestVaRRequest(confidence=0.99)))
    with pytest.raises(ValueError, match=r"^var: must have one value per pnl value"):
        asyncio.run(
            analytics.backtest_var(pb.BacktestVaRRequest(pnl=[1.0], var=[1.0, 2.0], confidence=0.9))
        )
    with pytest.raises(ValueError, match=r"^pnl\[0\]: must be finite"):
        asyncio.run(
            analytics.backtest_var(pb.BacktestVaRRequest(pnl=[math.nan], var=[1.0], confidence=0.9))
        )
    with pytest.raises(ValueError, match=r"^confidence: must be in \(0, 1\)"):
        asyncio.run(analytics.backtest_var(pb.BacktestVaRRequest(observations=10, failures=1)))


def test_estimate_covariance(analytics: Analytics) -> None:
    req = pb.EstimateCovarianceRequest(
        returns=returns_for(3, 200), symbols=["A", "B", "C"], estimator="sample", rolling_window=20
    )
    r = asyncio.run(analytics.estimate_covariance(req))
    sample = np.cov(np.asarray(req.returns).reshape(-1, 3), rowvar=False) * 252
    assert np.allclose(np.asarray(r.covariance).reshape(3, 3), sample, rtol=1e-12)
    assert list(r.symbols) == ["A", "B", "C"] and len(r.correlation) == 9
    assert r.correlation_change > 0
    with pytest.raises(ValueError, match=r"^estimator: "):
        asyncio.run(analytics.estimate_covariance(pb.EstimateCovarianceRequest(
            returns=req.returns, symbols=req.symbols, estimator="magic")))  # fmt: skip
    with pytest.raises(ValueError, match=r"^rolling_window: "):
        asyncio.run(analytics.estimate_covariance(pb.EstimateCovarianceRequest(
            returns=req.returns, symbols=req.symbols, rolling_window=500)))  # fmt: skip
    with pytest.raises(ValueError, match=r"^returns: 599 values are not whole days of 3"):
        asyncio.run(analytics.estimate_covariance(pb.EstimateCovarianceRequest(
            returns=req.returns[:599], symbols=req.symbols)))  # fmt: skip


def test_caps_name_the_field(analytics: Analytics) -> None:
    big = var_request(method=pb.PARAMETRIC)
    big.positions.extend([equity()] * 60)
    with pytest.raises(ValueError, match=r"^positions: at most 50 per book"):
        asyncio.run(analytics.compute_var(big))
    batch = pb.ComputeVaRBatchRequest(market=market(2))
    batch.books.add().positions.extend([equity()])
    with pytest.raises(ValueError, match=r"^settings\.confidence"):
        asyncio.run(
            analytics.compute_var_batch(
                pb.ComputeVaRBatchRequest(
                    books=batch.books, market=market(2), settings=pb.ComputeVaRRequest(confidence=7)
                )
            )
        )
    for _ in range(3):
        batch.books.add().positions.extend([equity()])
    with pytest.raises(ValueError, match=r"^books: at most 3 per call"):
        asyncio.run(analytics.compute_var_batch(batch))
    one = pb.ComputeVaRBatchRequest(market=market(2), settings=pb.ComputeVaRRequest(method=5))
    one.books.add().positions.extend([equity()])
    one.books.add().positions.extend([option(strike=-1.0)])
    with pytest.raises(ValueError, match=r"^books\[1\]\.positions\[0\]\.instrument\.strike: "):
        asyncio.run(analytics.compute_var_batch(one))


def test_a_run_too_large_for_the_deadline_is_refused_before_it_starts(
    analytics: Analytics,
) -> None:
    req = var_request(method=pb.HISTORICAL, returns=returns_for(2, 100_000))
    with pytest.raises(TimeoutError, match=r"^returns: the run would take about") as info:
        asyncio.run(analytics.compute_var(req, time_remaining=0.001))
    assert status_for(info.value) is grpc.StatusCode.DEADLINE_EXCEEDED
    # Within a generous deadline the same run is served.
    small = var_request(method=pb.HISTORICAL, returns=returns_for(2, 300))
    assert asyncio.run(analytics.compute_var(small, time_remaining=60.0)).paths == 300


def test_a_batch_names_the_library_s_setting_errors_by_its_settings_field(
    analytics: Analytics,
) -> None:
    batch = pb.ComputeVaRBatchRequest(
        market=market(2),
        settings=pb.ComputeVaRRequest(method=pb.HISTORICAL, returns=returns_for(2, 10)),
    )
    batch.books.add().positions.extend([equity()])
    with pytest.raises(ValueError, match=r"^settings\.returns: 10 days leave no loss"):
        asyncio.run(analytics.compute_var_batch(batch))
    batch.settings.method = pb.EVT
    batch.settings.returns[:] = returns_for(2, 300)
    batch.settings.evt_threshold = 1.5
    with pytest.raises(ValueError, match=r"^settings\.evt_threshold: "):
        asyncio.run(analytics.compute_var_batch(batch))
    ok = pb.ComputeVaRBatchRequest(
        market=market(2), settings=pb.ComputeVaRRequest(method=pb.PARAMETRIC)
    )
    ok.books.add().positions.extend([equity()])
    ok.books.add().positions.extend([option(), equity("BBB")])
    r = asyncio.run(analytics.compute_var_batch(ok))
    assert len(r.results) == 2 and 0 < r.results[0].var < r.results[1].var


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p, m: setattr(p[1].instrument, "expiry_years", 0.0),
            "positions[1].instrument.expiry_years: must be > 0 (the option has expired), got 0.0",
        ),
        (
            lambda p, m: setattr(p[1].instrument, "strike", -1.0),
            "positions[1].instrument.strike: must be > 0, got -1.0",
        ),
        (
            lambda p, m: setattr(m.underlyings[0], "volatility", 11.0),
            "market.underlyings[0].volatility: must be in (0, 10], got 11.0",
        ),
        (
            lambda p, m: m.correlation.extend([1.0, 1.5, 1.5, 1.0]),
            "market.correlation[0][1]: must be in [-1, 1], got 1.5",
        ),
    ],
)
def test_messages_quote_the_value_as_the_caller_wrote_it(change: object, message: str) -> None:
    """A JSON caller sees ``got 0.0``, not numpy's ``got np.float64(0.0)``."""
    p = [equity(), option("BBB")]
    m = market(2)
    change(p, m)  # type: ignore[operator]
    with pytest.raises(ValueError) as info:
        convert.book(p, m)
    assert str(info.value) == message


def stress_request() -> pb.StressTestRequest:
    req = pb.StressTestRequest(
        positions=[option(), option("BBB", style=pb.AMERICAN, right=events.PUT), equity("BBB")],
        market=market(2, [1.0, 0.4, 0.4, 1.0]),
    )
    crash = req.scenarios.add(name="crash", rate_shock=0.01, horizon_days=5.0)
    crash.spot_shocks["AAA"] = -0.10
    crash.vol_shocks["BBB"] = 0.05
    return req


def test_stress_pnl_is_exact_repricing(analytics: Analytics) -> None:
    req = stress_request()
    req.grid_spot_shocks.extend([-0.1, 0.0, 0.1])
    req.grid_vol_shocks.extend([0.0, 0.05])
    r = asyncio.run(analytics.stress_test(req))
    book = convert.book(req.positions, req.market)
    now = revalue(book)
    after = revalue(
        book,
        spot=book.spot * np.array([0.9, 1.0]),
        volatility=book.volatility + np.array([0.0, 0.05]),
        rate=book.rate + 0.01,
        horizon=5.0 / 252,
    )
    (crash,) = r.scenarios
    assert crash.name == "crash" and r.value == float(now.sum())
    assert list(crash.position_pnl) == pytest.approx((after - now).tolist(), rel=1e-12, abs=1e-9)
    assert crash.pnl == pytest.approx(float((after - now).sum()), rel=1e-12)
    grid = np.asarray(r.grid_pnl).reshape(3, 2)
    assert grid[1, 0] == pytest.approx(0.0, abs=1e-9)
    up = revalue(book, spot=book.spot * 1.1, volatility=book.volatility + 0.05).sum()
    assert grid[2, 1] == pytest.approx(float(up - now.sum()), rel=1e-12)


def test_stress_bad_input_names_the_field(analytics: Analytics) -> None:
    req = stress_request()
    req.scenarios[0].rate_shock = math.nan
    with pytest.raises(ValueError, match=r"^scenarios\[0\]\.rate_shock: "):
        asyncio.run(analytics.stress_test(req))
    req = stress_request()
    req.scenarios[0].spot_shocks["ZZZ"] = 0.1
    with pytest.raises(ValueError, match=r"^scenarios\[0\]\.spot_shocks\['ZZZ'\]: unknown"):
        asyncio.run(analytics.stress_test(req))
    req = stress_request()
    req.grid_spot_shocks.append(0.1)
    with pytest.raises(ValueError, match=r"^grid_vol_shocks: must not be empty"):
        asyncio.run(analytics.stress_test(req))
    req = stress_request()
    req.historical_worst_days = 3
    with pytest.raises(PreconditionError, match=r"^returns: empty and no stored bars"):
        asyncio.run(analytics.stress_test(req))


def test_historical_stress_applies_the_worst_days(analytics: Analytics) -> None:
    req = stress_request()
    req.historical_worst_days = 2
    req.returns.extend([0.0, 0.0, -0.05, 0.01, 0.02, -0.03])
    r = asyncio.run(analytics.stress_test(req))
    book = convert.book(req.positions, req.market)
    days = np.asarray(req.returns).reshape(3, 2)
    pnl = (revalue(book, spot=book.spot * np.exp(days), horizon=1 / 252) - revalue(book)).sum(-1)
    worst = np.argsort(pnl)[:2]
    assert [s.name for s in r.scenarios] == ["crash"] + [f"historical:{i}" for i in worst]
    assert [s.pnl for s in r.scenarios[1:]] == pytest.approx(pnl[worst].tolist(), rel=1e-12)


def test_portfolio_greeks_hedge_and_attribution(analytics: Analytics) -> None:
    p = [option(), option("BBB", right=events.PUT, quantity=-5.0), equity("BBB")]
    m = market(2)
    g = asyncio.run(analytics.portfolio_greeks(pb.PortfolioGreeksRequest(positions=p, market=m)))
    assert len(g.positions) == 3
    assert g.total.delta == pytest.approx(sum(x.delta for x in g.positions), rel=1e-12)
    assert [b.key for b in g.by_underlying] == ["AAA", "BBB"]
    assert g.positions[2].delta == 100.0  # 100 shares
    h = asyncio.run(analytics.propose_hedge(pb.ProposeHedgeRequest(positions=p, market=m)))
    assert h.after.delta == pytest.approx(0.0, abs=1e-6) and h.before.delta == g.total.delta
    assert {t.instrument.kind for t in h.trades} == {events.EQUITY}
    after = pb.MarketState()
    after.CopyFrom(m)
    after.underlyings[0].spot = 103.0
    a = asyncio.run(
        analytics.attribute_pnl(
            pb.AttributePnLRequest(positions=p, before=m, after=after, elapsed_days=1.0)
        )
    )
    book = convert.book(p, m)
    moved = convert.book(p, after)
    assert a.total == pytest.approx(
        float(revalue(moved, horizon=1 / 252).sum() - revalue(book).sum()), rel=1e-12
    )
    assert abs(a.unexplained) < 0.05 * abs(a.total)
    after.underlyings[1].spot = -1.0
    with pytest.raises(ValueError, match=r"^after\.underlyings\[1\]\.spot: "):
        asyncio.run(
            analytics.attribute_pnl(pb.AttributePnLRequest(positions=p, before=m, after=after))
        )
    with pytest.raises(ValueError, match=r"^before\.underlyings: must not be empty"):
        asyncio.run(analytics.attribute_pnl(pb.AttributePnLRequest(positions=p, after=m)))
    bad = pb.ProposeHedgeRequest(positions=p, market=m, candidates=[pb.RiskInstrument()])
    with pytest.raises(ValueError, match=r"^candidates\[0\]\.kind: "):
        asyncio.run(analytics.propose_hedge(bad))


def test_a_large_stress_does_not_hold_up_small_calls(analytics: Analytics) -> None:
    """A stress test of 20,000 scenarios started first, then 10 one-position Greeks calls: the
    small calls finish first (the large one runs on the CPU pool)."""
    big = stress_request()
    for i in range(20_000):
        sc = big.scenarios.add(name=f"s{i}")
        sc.spot_shocks["AAA"] = -0.2 + i * 1e-5
    small = pb.PortfolioGreeksRequest(positions=[option()], market=market(1))

    async def run() -> list[str]:
        done: list[str] = []

        async def call(name: str, coro: Awaitable[object]) -> None:
            await coro
            done.append(name)

        tasks = [asyncio.create_task(call("big", analytics.stress_test(big)))]
        await asyncio.sleep(0)
        tasks += [
            asyncio.create_task(call(f"small-{i}", analytics.portfolio_greeks(small)))
            for i in range(10)
        ]
        await asyncio.gather(*tasks)
        return done

    done = asyncio.run(run())
    assert done[-1] == "big", done


@pytest.mark.parametrize("method", [pb.MONTE_CARLO, pb.DELTA_GAMMA])
def test_monte_carlo_var_is_the_kernel_s_and_repeats_with_its_seed(
    analytics: Analytics, method: int
) -> None:
    req = var_request(method=method, paths=20_000, seed=42, horizon_days=5.0, student_t_dof=5)
    req.positions.append(option("BBB", style=pb.AMERICAN, right=events.PUT, quantity=-3.0))
    got = asyncio.run(analytics.compute_var(req))
    again = asyncio.run(analytics.compute_var(req))
    assert got == again
    want = monte_carlo_var(
        convert.book(req.positions, req.market),
        confidence=0.99,
        horizon_days=5.0,
        paths=20_000,
        seed=42,
        method="full" if method == pb.MONTE_CARLO else "delta_gamma",
        student_t_dof=5,
    )
    assert (got.var, got.expected_shortfall, got.var_stderr) == (
        want.var,
        want.expected_shortfall,
        want.var_stderr,
    )
    assert (got.paths, got.device, got.method) == (20_000, pb.CPU, method)
    assert got.interpolation_error == want.details["interpolation_error"] > 0
    other = asyncio.run(analytics.compute_var(var_request(method=method, paths=20_000, seed=43)))
    assert other.var != got.var


def test_a_monte_carlo_batch_is_each_book_s_var(analytics: Analytics) -> None:
    batch = pb.ComputeVaRBatchRequest(
        market=market(2, [1.0, 0.5, 0.5, 1.0]),
        settings=pb.ComputeVaRRequest(paths=10_000, seed=7),
    )
    batch.books.add().positions.extend([option(), equity("BBB", -50.0)])
    batch.books.add().positions.extend([option("BBB", right=events.PUT)])
    r = asyncio.run(analytics.compute_var_batch(batch))
    for book, result in zip(batch.books, r.results, strict=True):
        one = asyncio.run(
            analytics.compute_var(
                pb.ComputeVaRRequest(
                    positions=book.positions, market=batch.market, paths=10_000, seed=7
                )
            )
        )
        assert result.var == pytest.approx(one.var, rel=1e-12)
        assert result.expected_shortfall == pytest.approx(one.expected_shortfall, rel=1e-12)


def test_monte_carlo_bad_settings_name_the_field(analytics: Analytics) -> None:
    with pytest.raises(ValueError, match=r"^student_t_dof: must be 0 \(normal\) or in \[3,"):
        asyncio.run(analytics.compute_var(var_request(student_t_dof=2, paths=1000)))
    with pytest.raises(ValueError, match=r"^vol_of_vol: expected a number or 2 numbers"):
        asyncio.run(analytics.compute_var(var_request(vol_of_vol=[0.5, 0.5, 0.5], paths=1000)))
    with pytest.raises(ValueError, match=r"^paths: at most 1000000 per call"):
        asyncio.run(analytics.compute_var(var_request(paths=1_000_001)))
    if not cuda_available():
        with pytest.raises(PreconditionError, match=r"^device: GPU asked for"):
            asyncio.run(analytics.compute_var(var_request(device=pb.GPU)))
    batch = pb.ComputeVaRBatchRequest(
        market=market(2), settings=pb.ComputeVaRRequest(student_t_dof=2, paths=1000)
    )
    batch.books.add().positions.extend([equity()])
    with pytest.raises(ValueError, match=r"^settings\.student_t_dof: "):
        asyncio.run(analytics.compute_var_batch(batch))


def test_a_monte_carlo_run_too_large_for_the_deadline_is_refused(analytics: Analytics) -> None:
    req = var_request(paths=1_000_000)
    req.positions.extend([option(strike=80.0 + i) for i in range(40)])
    with pytest.raises(TimeoutError, match=r"^paths: the run would take about 0\.1\d+ s, more"):
        asyncio.run(analytics.compute_var(req, time_remaining=0.05))
    assert asyncio.run(analytics.compute_var(var_request(paths=1000), time_remaining=0.05)).var


def test_an_embedded_store_held_by_one_process_cannot_be_opened_by_another(tmp_path: Path) -> None:
    """Why the risk service reads bars only from a ClickHouse server: chDB locks its data
    directory, so while the market-data service holds its embedded store, a second process
    (the risk service) cannot open it."""
    dsn = default_dsn(tmp_path, "marketdata")
    store = TickStore(dsn)  # this process holds the directory, as the market-data service does
    try:
        store.insert([daily_ticks("AAA", 30)])
        probe = (
            "import sys\n"
            "from tradecore.store import connect\n"
            "try:\n"
            f"    connect({dsn!r}).query_rows('SELECT count() FROM ticks')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n"
            "    sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        )
    finally:
        store.close()
    assert other.returncode == 3, other.stdout + other.stderr
    assert "Unable to open the chdb engine" in other.stdout, other.stdout
    assert "Another server instance in same directory is already running" in other.stderr
