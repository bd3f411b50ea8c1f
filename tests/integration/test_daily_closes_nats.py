"""The RiskService's stored returns over NATS (services/risk/bars.py) against a real nats-server
and the market-data ``marketdata.v1.daily_closes`` handler over a real chDB tick store: the VaR
is the library's over the same store's returns, a symbol without history is named by its
market field, and a market-data service that is absent, slow or too slow for the call's
deadline is UNAVAILABLE or DEADLINE_EXCEEDED with a message saying so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from prometheus_client import CollectorRegistry
from tradecore.risk.historical import historical_var
from tradecore.risk.history import bar_returns
from tradecore.store import default_dsn
from tradecore.subjects import MARKETDATA_DAILY_CLOSES
from tradecore_api.events.v1 import market_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.cpu import CpuPool
from tradecore_services.common.errors import status_for
from tradecore_services.common.interceptors import RpcMetrics
from tradecore_services.common.nats_rpc import unary_handler
from tradecore_services.common.store_thread import StoreThread
from tradecore_services.marketdata.closes import daily_closes_reply
from tradecore_services.marketdata.store import TickStore
from tradecore_services.risk import convert
from tradecore_services.risk.analytics import INLINE_NS, Analytics, Caps
from tradecore_services.risk.bars import StoredBars

from tests.integration.test_nats_rpc import nats_url  # noqa: F401 (the fixture)
from tests.unit.test_risk_service_logic import daily_ticks, var_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T = TypeVar("T")
Handle = Callable[[events.DailyClosesRequest], Awaitable[events.DailyCloses]]


def with_risk(
    url: str,
    store: StoreThread,
    body: Callable[[Analytics], Awaitable[T]],
    handle: Handle | None = None,
    timeout: float = 10.0,
) -> T:
    """``body(analytics)`` with a risk Analytics reading bars over NATS at ``url`` and, unless
    ``handle`` says otherwise, the market-data handler over ``store`` answering them."""

    async def from_store(req: events.DailyClosesRequest) -> events.DailyCloses:
        return await store.call(lambda s: daily_closes_reply(s.store, req))

    async def go() -> T:
        await store.start()
        market = Bus(url, "marketdata-test")
        market.subscribe(
            MARKETDATA_DAILY_CLOSES,
            unary_handler(
                MARKETDATA_DAILY_CLOSES,
                events.DailyClosesRequest,
                handle or from_store,
                RpcMetrics(CollectorRegistry(), "marketdata-test"),
            ),
            queue="marketdata",
        )
        risk = Bus(url, "risk-test")
        cpu = CpuPool("test-risk", 2, INLINE_NS)
        bars = StoredBars(None, bus=risk, timeout=timeout)
        try:
            await market.start()
            await risk.start()
            await asyncio.wait_for(market.connected.wait(), 20)
            await asyncio.wait_for(risk.connected.wait(), 20)
            assert market.nc is not None
            await market.nc.flush()
            return await body(Analytics(cpu, Caps(), bars))
        finally:
            await bars.close()
            await cpu.close()
            await risk.stop()
            await market.stop()
            await store.stop()

    return asyncio.run(go())


def filled_store(tmp_path: Path) -> tuple[StoreThread, str]:
    dsn = default_dsn(tmp_path, "marketdata")
    s = TickStore(dsn)
    try:
        s.insert([daily_ticks("AAA", 60), daily_ticks("BBB", 60)])
    finally:
        s.close()
    return StoreThread(lambda: TickStore(dsn)), dsn


def test_historical_var_from_the_market_data_service_s_closes(
    nats_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store, dsn = filled_store(tmp_path)
    req = var_request(method=pb.HISTORICAL, confidence=0.95, lookback_days=40)
    bad = var_request(method=pb.HISTORICAL, confidence=0.95)
    bad.market.underlyings.add(symbol="CCC", spot=10.0, volatility=0.3)
    bad.market.ClearField("correlation")

    async def body(analytics: Analytics) -> tuple[pb.ComputeVaRResponse, BaseException]:
        ok = await analytics.compute_var(req)
        try:
            await analytics.compute_var(bad)
        except ValueError as exc:
            return ok, exc
        raise AssertionError("a symbol without stored history was not refused")

    ok, error = with_risk(nats_url, store, body)
    # The same returns read from the store directly, the same library VaR.
    check = TickStore(dsn)
    try:
        returns, _ = bar_returns(check.store, ["AAA", "BBB"], lookback_days=40)
    finally:
        check.close()
    book = convert.book(req.positions, req.market)
    want = historical_var(book, returns, confidence=0.95, horizon_days=1.0)
    assert ok.paths == 40 == returns.shape[0]
    assert ok.var == pytest.approx(want.var, rel=1e-12) and ok.var > 0
    assert ok.expected_shortfall == pytest.approx(want.expected_shortfall, rel=1e-12)
    assert str(error).startswith(
        "market.underlyings[2].symbol: 'CCC' has 0 daily closes in the store, need at least 21"
    ), error
    assert str(error).endswith("(returns empty: read from the stored bars)")
    assert status_for(error) is grpc.StatusCode.INVALID_ARGUMENT


async def slow(req: events.DailyClosesRequest) -> events.DailyCloses:
    await asyncio.sleep(3.0)
    return events.DailyCloses()


async def refusal(analytics: Analytics, time_remaining: float | None = None) -> BaseException:
    try:
        await analytics.compute_var(var_request(method=pb.HISTORICAL), time_remaining)
    except Exception as exc:
        return exc
    raise AssertionError("answered without stored bars")


def test_no_market_data_service_is_unavailable(nats_url: str) -> None:  # noqa: F811
    """Nobody subscribed to marketdata.v1.daily_closes: UNAVAILABLE at once, saying so."""

    async def go() -> BaseException:
        risk = Bus(nats_url, "risk-test")
        cpu = CpuPool("test-risk", 2, INLINE_NS)
        bars = StoredBars(None, bus=risk)
        try:
            await risk.start()
            await asyncio.wait_for(risk.connected.wait(), 20)
            return await refusal(Analytics(cpu, Caps(), bars))
        finally:
            await bars.close()
            await cpu.close()
            await risk.stop()

    error = asyncio.run(go())
    assert status_for(error) is grpc.StatusCode.UNAVAILABLE, error
    assert str(error).startswith(
        "returns: empty, and no market-data service answers marketdata.v1.daily_closes"
    ), error


def test_a_slow_market_data_service_is_unavailable_or_past_the_deadline(
    nats_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store, _ = filled_store(tmp_path)

    async def body(analytics: Analytics) -> tuple[BaseException, BaseException]:
        # The risk service's own wait (0.3 s here) runs out: UNAVAILABLE.
        late = await refusal(analytics)
        # The call's deadline (0.2 s left) is nearer: DEADLINE_EXCEEDED.
        deadline = await refusal(analytics, 0.2)
        return late, deadline

    late, deadline = with_risk(nats_url, store, body, handle=slow, timeout=0.3)
    assert status_for(late) is grpc.StatusCode.UNAVAILABLE
    assert str(late) == (
        "returns: empty, and the market-data service did not answer "
        "marketdata.v1.daily_closes within 0.3 s"
    )
    assert status_for(deadline) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert str(deadline).startswith("returns: the call's deadline passed while the market-data")
