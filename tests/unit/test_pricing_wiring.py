"""The PricingService's objects built from their collaborators, without a server, and where
their CPU work runs: small calls on the event loop, large ones on the app's CPU pool so that
they never hold up small calls made meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tradecore_api.events.v1 import market_pb2 as md
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common.cpu import CpuPool
from tradecore_services.pricing import logic
from tradecore_services.pricing.pricer import (
    INLINE_ROWS,
    Pricer,
    contracts_cost,
    expiries_counter,
)
from tradecore_services.pricing.surfaces import SurfaceStore

BIG = 100_000


def price_request(n: int, style: int = pb.EUROPEAN) -> pb.PriceRequest:
    req = pb.PriceRequest()
    for i in range(n):
        req.contracts.add(
            spot=100.0, strike=80.0 + i % 40, expiry_years=0.5, rate=0.03, dividend_yield=0.01,
            volatility=0.25, option_type=pb.CALL if i % 2 else pb.PUT, style=style,
        )  # fmt: skip
    return req


def iv_request(n: int) -> pb.ImpliedVolRequest:
    req = pb.ImpliedVolRequest()
    for i in range(n):
        req.options.add(
            price=5.0, spot=100.0, strike=80.0 + i % 40, expiry_years=0.5, rate=0.03,
            option_type=pb.CALL,
        )  # fmt: skip
    return req


@pytest.fixture
def pricer() -> Iterator[Pricer]:
    cpu = CpuPool("test-pricing", 2, INLINE_ROWS)
    yield Pricer(cpu, SurfaceStore(4), BIG, expiries_counter(CollectorRegistry()))
    asyncio.run(cpu.close())


def test_a_large_price_does_not_hold_up_small_prices(pricer: Pricer) -> None:
    """A 100k-contract Price started first, then 20 one-contract Prices: all 20 finish first
    (on the loop, a large batch kept every other call waiting until it was done)."""
    big, small = price_request(BIG), price_request(1)

    async def run() -> list[str]:
        done: list[str] = []

        async def call(name: str, request: pb.PriceRequest) -> None:
            response = await pricer.price(request)
            assert len(response.results) == len(request.contracts)
            done.append(name)

        tasks = [asyncio.create_task(call("big", big))]
        tasks += [asyncio.create_task(call(f"small-{i}", small)) for i in range(20)]
        await asyncio.gather(*tasks)
        return done

    done = asyncio.run(run())
    assert done[-1] == "big", done
    assert sorted(done[:-1]) == sorted(f"small-{i}" for i in range(20))


def test_a_large_implied_vol_does_not_hold_up_small_calls(pricer: Pricer) -> None:
    async def run() -> list[str]:
        done: list[str] = []

        async def call(name: str, request: pb.ImpliedVolRequest) -> None:
            await pricer.implied_vol(request)
            done.append(name)

        tasks = [asyncio.create_task(call("big", iv_request(BIG)))]
        tasks += [asyncio.create_task(call("small", iv_request(1))) for _ in range(20)]
        await asyncio.gather(*tasks)
        return done

    assert asyncio.run(run()) == ["small"] * 20 + ["big"]


def test_small_work_runs_on_the_loop_and_large_work_on_the_pool() -> None:
    """The small path has no thread hand-off (its latency is the bare call's)."""
    cpu = CpuPool("test", 1, 10)

    async def run() -> tuple[str, str, str]:
        def where() -> str:
            return threading.current_thread().name

        return await cpu.run(10, where), await cpu.run(11, where), await cpu.off_loop(where)

    try:
        inline, large, forced = asyncio.run(run())
    finally:
        asyncio.run(cpu.close())
    assert inline == threading.current_thread().name
    assert large.startswith("test-cpu") and forced.startswith("test-cpu")


def test_american_rows_weigh_more_than_european_ones() -> None:
    assert contracts_cost(price_request(1).contracts) == 1
    assert contracts_cost(price_request(4).contracts) == 4
    assert contracts_cost(price_request(4, pb.AMERICAN).contracts) == 4 * 64
    assert contracts_cost(price_request(5, pb.AMERICAN).contracts) > INLINE_ROWS
    assert contracts_cost(price_request(INLINE_ROWS + 1).contracts) == INLINE_ROWS + 1


@pytest.mark.parametrize("n", [1, INLINE_ROWS + 1, 2_000])
def test_price_on_the_pool_or_the_loop_gives_the_library_answer(pricer: Pricer, n: int) -> None:
    request = price_request(n)
    got = asyncio.run(pricer.price(request))
    assert got == logic.price(request, BIG)


def test_errors_raised_on_the_pool_reach_the_caller(pricer: Pricer) -> None:
    request = price_request(2_000)
    request.contracts[1_500].volatility = float("nan")
    with pytest.raises(ValueError, match=r"contracts\[1500\]\.volatility"):
        asyncio.run(pricer.price(request))
    black76 = price_request(300)
    black76.model = pb.MODEL_BLACK76
    with pytest.raises(ValueError, match=r"contracts\[0\]\.dividend_yield must be 0"):
        asyncio.run(pricer.price(black76))


def test_stream_chain_reprices_off_the_loop_when_large(pricer: Pricer) -> None:
    req = pb.StreamGreeksRequest(venue="XNAS", symbol="XYZ")
    for i in range(INLINE_ROWS + 44):
        req.contracts.add(
            strike=80.0 + i % 40, expiry_years=0.5, option_type=pb.CALL, volatility=0.25,
            rate=0.03,
        )  # fmt: skip

    async def run() -> pb.GreeksUpdate | None:
        repricer = await pricer.chain(req)
        quote = md.Quote(venue="XNAS", symbol="XYZ", bid_price=99.5, ask_price=100.5, sequence=1)
        return await pricer.on_quote(repricer, quote)

    update = asyncio.run(run())
    assert update is not None and update.full and len(update.rows) == INLINE_ROWS + 44
    want = logic.price(
        pb.PriceRequest(
            contracts=[
                pb.OptionContract(
                    spot=100.0,
                    strike=c.strike,
                    expiry_years=c.expiry_years,
                    rate=c.rate,
                    volatility=c.volatility,
                    option_type=c.option_type,
                )
                for c in req.contracts
            ]
        ),
        BIG,
    )
    got = np.array([r.result.price for r in update.rows])
    np.testing.assert_allclose(got, [r.price for r in want.results], rtol=1e-12)
