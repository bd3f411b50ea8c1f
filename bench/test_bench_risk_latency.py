"""Risk snapshot latency (issue 11): a Quote or a Fill published on the mesh's loopback NATS
until the ``risk.snapshot.<account>`` it causes arrives, one update at a time, on an account of
20 American equity options on 4 underlyings (built from fills; 10,000-path fast VaR). Peer in
the same run: the same update computed in process (``AccountBook.on_quote`` + ``evaluate``),
i.e. the part of the latency that is the risk computation. p50/p99 in extra_info (target:
p99 <= 5 ms)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import numpy as np
import pytest
from nats.aio.msg import Msg
from tradecore.subjects import ExecKind, MdKind, RiskKind, exec_subject, md_subject, risk_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_services.risk.accounts import YEAR_NS, AccountBook

from tests.mesh import Mesh

SAMPLES = 2000
WARMUP = 200
ACCOUNT = "BENCH1"
UNDERLYINGS = ("BU0", "BU1", "BU2", "BU3")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-risk-mesh")))
    assert m.run("up").returncode == 0
    yield m
    m.run("down")


def option_fills() -> list[execution_pb2.Fill]:
    now = time.time_ns()
    out = []
    for i in range(20):
        u = UNDERLYINGS[i % 4]
        f = execution_pb2.Fill(
            fill_id=f"bench-o{i}", account=ACCOUNT, quantity=5 + i, price=4.0,
            side=common_pb2.BUY if i % 3 else common_pb2.SELL, exchange_time_ns=now,
        )  # fmt: skip
        ins = f.instrument
        ins.symbol, ins.kind, ins.underlying = f"{u}O{i}", common_pb2.OPTION, u
        ins.right = common_pb2.CALL if i % 2 else common_pb2.PUT
        ins.strike, ins.multiplier = 90.0 + i, 100
        ins.expiry_time_ns = now + YEAR_NS // 4 + i * YEAR_NS // 20
        out.append(f)
    return out


def quote(symbol: str, mid: float, seq: int) -> bytes:
    q = market_pb2.Quote(
        venue="XBEN", symbol=symbol, bid_price=mid - 0.01, ask_price=mid + 0.01, sequence=seq
    )
    return bytes(q.SerializeToString())


def record(benchmark, samples: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    p50, p99 = float(np.percentile(samples, 50)), float(np.percentile(samples, 99))
    benchmark.extra_info.update(
        {"p50_us": p50, "p99_us": p99, "max_us": float(samples.max()), "samples": samples.size}
    )
    print(f"\n{benchmark.name}: p50 {p50:.0f} us, p99 {p99:.0f} us over {samples.size}")


@pytest.mark.benchmark(group="risk-snapshot")
@pytest.mark.peer
def test_update_in_process(benchmark) -> None:  # type: ignore[no-untyped-def]
    book = AccountBook(ACCOUNT)
    for f in option_fills():
        book.apply_fill(f)
    for u in UNDERLYINGS:
        book.on_quote(u, 100.0)
    samples = np.empty(SAMPLES)
    for i in range(WARMUP + SAMPLES):
        t0 = time.perf_counter_ns()
        book.on_quote(UNDERLYINGS[i % 4], 100.0 + 0.01 * (i % 7))
        book.evaluate(time.time_ns())
        if i >= WARMUP:
            samples[i - WARMUP] = (time.perf_counter_ns() - t0) / 1e3
    benchmark.pedantic(lambda: book.evaluate(time.time_ns()), rounds=200, iterations=1)
    record(benchmark, samples)


@pytest.mark.benchmark(group="risk-snapshot")
@pytest.mark.parametrize("source", ["quote", "fill"])
def test_nats_to_snapshot(benchmark, mesh: Mesh, source: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    snaps: asyncio.Queue[Msg] = asyncio.Queue()
    account = f"{ACCOUNT}{source}"

    async def setup() -> nats.NATS:
        nc = await nats.connect(mesh.nats_url)
        await nc.subscribe(risk_subject(RiskKind.SNAPSHOT, account), cb=snaps.put)
        for f in option_fills():
            f.account = account
            await nc.publish(exec_subject(ExecKind.FILL, account), f.SerializeToString())
            await asyncio.wait_for(snaps.get(), 30)
        for k, u in enumerate(UNDERLYINGS):
            await nc.publish(md_subject("XBEN", u, MdKind.QUOTE), quote(u, 100.0, k))
            await asyncio.wait_for(snaps.get(), 30)
        return nc

    nc = loop.run_until_complete(setup())
    n = 0

    async def one() -> float:
        nonlocal n
        n += 1
        if source == "quote":
            # Each underlying's next mid differs from its last one (a same mid changes nothing).
            u = UNDERLYINGS[n % 4]
            mid = 100.0 + 0.01 * (1 + (n // 4) % 2)
            subject, data = md_subject("XBEN", u, MdKind.QUOTE), quote(u, mid, n)
        else:
            f = execution_pb2.Fill(
                fill_id=f"bench-e{n}", account=account, quantity=1, price=100.0,
                side=common_pb2.BUY if n % 2 else common_pb2.SELL, exchange_time_ns=time.time_ns(),
            )  # fmt: skip
            f.instrument.symbol, f.instrument.kind = UNDERLYINGS[0], common_pb2.EQUITY
            subject, data = exec_subject(ExecKind.FILL, account), f.SerializeToString()
        t0 = time.perf_counter_ns()
        await nc.publish(subject, data)
        msg = await asyncio.wait_for(snaps.get(), 10)
        elapsed = (time.perf_counter_ns() - t0) / 1e3
        snap = events.RiskSnapshot.FromString(msg.data)
        assert len(snap.underlyings) == 4
        return elapsed

    try:
        for _ in range(WARMUP):
            loop.run_until_complete(one())
        samples = np.array([loop.run_until_complete(one()) for _ in range(SAMPLES)])
        benchmark.pedantic(lambda: loop.run_until_complete(one()), rounds=200, iterations=1)
        record(benchmark, samples)
    finally:
        loop.run_until_complete(nc.close())
        loop.close()
