"""ExecutionService through gRPC (issue 12), on a mesh started for the module (loopback NATS
with JetStream file storage, the paper venue).

* ``test_submit_orders_grpc[N]``: SubmitOrder calls from one grpc.aio client with N calls in
  flight, marketable IOC limit orders filled by the paper venue (buys at the ask and sells at
  the bid in turn, a quantity per order so that the duplicate-order control lets them through).
  Each call journals its command and the OMS's events in ``EXEC_JOURNAL`` (two writes: before
  the venue request, and the venue's answers) before it answers; its fill goes into
  ``EXEC_FILLS`` after that. extra_info: orders/s over the run, p50/p99 of one call.
* ``test_quote_to_order``: a client subscribed to ``md.<venue>.<symbol>.quote`` decides on each
  quote (buys and sells in turn, limits 10 cents through the quote) and submits the IOC order
  over gRPC; the test publishes the quotes one at a time. Measured from the quote's publish to
  the FILLED reply, and to the ``exec.order.<account>`` event saying FILLED (target: p99 <= 2 ms).
* ``test_quote_to_order_in_process``: the same decision path without gRPC: the service's
  ``Execution`` (the paper venue, its journal on a nats-server of its own, file storage) in the
  test's process; the decider's quote subscription calls ``Execution.submit_order`` directly.
  Measured from the quote's publish to the FILLED answer (what the service adds between a quote
  and an accepted order when the gRPC hop is left out).
* ``test_journal_write_baseline`` (peer): one JetStream publish acknowledged by the same
  nats-server into a file-stored stream, the unit an order pays once per journal write (two in
  sequence for a filled order: its command with the events up to the venue request, then the
  venue's answers).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import numpy as np
import pytest
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from tradecore.oms.paper import PaperVenue
from tradecore.subjects import ExecKind, MdKind, exec_subject, md_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_services.common.bus import Bus
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import Journal
from tradecore_services.execution.live import Execution
from tradecore_services.execution.main import venues
from tradecore_services.execution.paper_feed import PaperFeed

from tests.integration.test_execution_journal import _connect
from tests.integration.test_nats_resilience import NatsServer
from tests.mesh import Mesh

ORDERS = 2000  # per concurrency level
WARMUP = 200
QUOTES = 1500
JS_WRITES = 3000
BID, ASK, SIZE = 99.9, 100.1, 1_000_000_000
INFLIGHT = (1, 8, 32)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-exec-mesh")))
    assert m.run("up").returncode == 0
    yield m
    m.run("down")


def quote_bytes(symbol: str, seq: int, bid: float = BID, ask: float = ASK) -> bytes:
    q = market_pb2.Quote(
        venue="XBEN", symbol=symbol, bid_price=bid, ask_price=ask, bid_size=SIZE,
        ask_size=SIZE, sequence=seq, exchange_time_ns=time.time_ns(),
    )  # fmt: skip
    return bytes(q.SerializeToString())


def order(acct: str, sym: str, i: int, bid: float = BID, ask: float = ASK) -> pb.SubmitOrderRequest:
    buy = i % 2 == 0
    return pb.SubmitOrderRequest(
        account=acct, client_order_id=f"b{i}", symbol=sym,
        side=common_pb2.BUY if buy else common_pb2.SELL, quantity=1 + i,
        type=execution_pb2.LIMIT, limit_price=ask if buy else bid,
        time_in_force=execution_pb2.IOC,
    )  # fmt: skip


def decision(acct: str, sym: str, q: market_pb2.Quote) -> pb.SubmitOrderRequest:
    """Buy on even quotes, sell on odd ones, as marketable limits capped 10 cents through the
    quote: the service reads the same quote from NATS at the same moment, and the order can
    reach its paper venue before that quote does (the previous one, a few cents away, is
    still its book then)."""
    return order(
        acct, sym, int(q.sequence), round(q.bid_price - 0.1, 2), round(q.ask_price + 0.1, 2)
    )


async def _ready(mesh: Mesh, nc: nats.NATS, stub: pb_grpc.ExecutionServiceStub, sym: str) -> None:
    """Publish the symbol's quote until an IOC at the ask fills (the paper venue has it)."""
    acct = "W" + uuid.uuid4().hex[:10]
    for i in range(200):
        await nc.publish(md_subject("XBEN", sym, MdKind.QUOTE), quote_bytes(sym, i + 1))
        await nc.flush()
        got = await stub.SubmitOrder(order(acct, sym, 2 * i), timeout=10)
        if got.status == execution_pb2.FILLED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the paper venue never saw the quote")


def percentiles(us: np.ndarray) -> dict[str, float]:
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}


async def _submit_run(mesh: Mesh, inflight: int) -> dict[str, float | int]:
    sym = "BX" + uuid.uuid4().hex[:6].upper()
    acct = "B" + uuid.uuid4().hex[:10]
    nc = await nats.connect(mesh.nats_url)
    async with grpc.aio.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        await _ready(mesh, nc, stub, sym)
        clock = time.perf_counter_ns
        lat = np.empty(ORDERS)
        next_i = 0

        async def worker(base: int, count: int, record: bool) -> None:
            nonlocal next_i
            while next_i < count:
                i = next_i
                next_i += 1
                t0 = clock()
                got = await stub.SubmitOrder(order(acct, sym, base + i), timeout=30)
                if record:
                    lat[i] = (clock() - t0) / 1e3
                assert got.status == execution_pb2.FILLED, got

        await asyncio.gather(*(worker(ORDERS, WARMUP, False) for _ in range(inflight)))
        next_i = 0
        t0 = clock()
        await asyncio.gather(*(worker(0, ORDERS, True) for _ in range(inflight)))
        elapsed = (clock() - t0) / 1e9
    await nc.close()
    return {"orders_per_s": ORDERS / elapsed, "orders": ORDERS, "inflight": inflight} | percentiles(
        lat
    )


async def _quote_to_order(mesh: Mesh) -> dict[str, float | int]:
    sym = "BQ" + uuid.uuid4().hex[:6].upper()
    acct = "Q" + uuid.uuid4().hex[:10]
    pub = await nats.connect(mesh.nats_url)
    nc = await nats.connect(mesh.nats_url)  # the deciding client's own connection
    clock = time.perf_counter_ns
    to_reply = np.empty(QUOTES)
    to_event = np.empty(QUOTES)
    sent: dict[str, int] = {}  # client_order_id -> the quote's publish time
    got_reply = asyncio.Event()
    got_event = asyncio.Event()
    state = {"i": 0, "record": False, "replies": 0}
    failed: list[str] = []  # what the deciding callback met (it runs outside the test's task)
    async with grpc.aio.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        await _ready(mesh, pub, stub, sym)

        async def decide(msg: Msg) -> None:
            q = market_pb2.Quote.FromString(msg.data)
            i = int(q.sequence)
            state["entered"] = i
            req = decision(acct, sym, q)
            try:
                got = await stub.SubmitOrder(req, timeout=10)
            except grpc.aio.AioRpcError as exc:
                failed.append(f"quote {i}: {exc.code().name} {exc.details()}")
                got_reply.set()
                return
            if got.status != execution_pb2.FILLED:
                failed.append(f"quote {i}: not filled: {got}")
            if state["record"]:
                to_reply[i] = (clock() - sent[req.client_order_id]) / 1e3
            got_reply.set()

        async def on_order(msg: Msg) -> None:
            u = execution_pb2.OrderUpdate.FromString(msg.data)
            if u.status == execution_pb2.FILLED and u.client_order_id in sent:
                i = int(u.client_order_id[1:])
                if state["record"]:
                    to_event[i] = (clock() - sent[u.client_order_id]) / 1e3
                got_event.set()

        await nc.subscribe(md_subject("XBEN", sym, MdKind.QUOTE), cb=decide)
        await nc.subscribe(exec_subject(ExecKind.ORDER, acct), cb=on_order)
        await nc.flush()
        subject = md_subject("XBEN", sym, MdKind.QUOTE)
        for record, base, count in ((False, QUOTES, WARMUP), (True, 0, QUOTES)):
            state["record"] = record
            for k in range(count):
                i = base + k
                # the quote moves by a tick each time; orders take its new prices
                bid = round(BID + 0.01 * (k % 10), 2)
                data = quote_bytes(sym, i, bid, round(bid + 0.2, 2))
                got_reply.clear()
                got_event.clear()
                sent[f"b{i}"] = clock()
                await pub.publish(subject, data)
                try:
                    await asyncio.wait_for(got_reply.wait(), 10)
                except TimeoutError:
                    raise AssertionError(
                        f"quote {i}: no reply in 10 s (the decider last took quote "
                        f"{state.get('entered')})"
                    ) from None
                assert not failed, failed
                await asyncio.wait_for(got_event.wait(), 10)
    await nc.close()
    await pub.close()
    reply, event = percentiles(to_reply), percentiles(to_event)
    return {
        "quotes": QUOTES,
        "reply_p50_us": reply["p50_us"],
        "reply_p99_us": reply["p99_us"],
        "event_p50_us": event["p50_us"],
        "event_p99_us": event["p99_us"],
    }


async def _quote_to_order_in_process(store: Path) -> dict[str, float | int]:
    server = NatsServer(store)
    server.start()
    try:
        return await _in_process(server.url)
    finally:
        server.kill()


async def _in_process(url: str) -> dict[str, float | int]:
    paper = venues({})["PAPER"]
    assert isinstance(paper, PaperVenue)
    feed = PaperFeed(paper)
    bus = Bus(url, "execution-bench")
    journal = Journal()
    ex = Execution(bus, journal, Engine(journal, {"PAPER": paper}, feed.clock), feed)
    await bus.start()
    await asyncio.wait_for(ex.restored.wait(), 20)
    sym = "BI" + uuid.uuid4().hex[:6].upper()
    acct = "I" + uuid.uuid4().hex[:10]
    pub = await _connect(url)
    nc = await _connect(url)
    clock = time.perf_counter_ns
    lat = np.empty(QUOTES)
    sent: dict[int, int] = {}
    done = asyncio.Event()
    state = {"record": False, "filled": False}

    async def decide(msg: Msg) -> None:
        q = market_pb2.Quote.FromString(msg.data)
        i = int(q.sequence)
        got = await ex.submit_order(decision(acct, sym, q))
        state["filled"] = got.status == execution_pb2.FILLED
        if state["record"]:
            lat[i] = (clock() - sent[i]) / 1e3
        done.set()

    subject = md_subject("XBEN", sym, MdKind.QUOTE)
    await nc.subscribe(subject, cb=decide)
    await nc.flush()
    for _ in range(200):  # until the paper venue has the quote and fills
        done.clear()
        sent[10 * QUOTES] = clock()
        await pub.publish(subject, quote_bytes(sym, 10 * QUOTES))
        await asyncio.wait_for(done.wait(), 10)
        if state["filled"]:
            break
        await asyncio.sleep(0.05)
    for record, base, count in ((False, QUOTES, WARMUP), (True, 0, QUOTES)):
        state["record"] = record
        for k in range(count):
            i = base + k
            bid = round(BID + 0.01 * (k % 10), 2)
            done.clear()
            sent[i] = clock()
            await pub.publish(subject, quote_bytes(sym, i, bid, round(bid + 0.2, 2)))
            await asyncio.wait_for(done.wait(), 10)
            assert state["filled"], i
    await nc.close()
    await pub.close()
    await ex.stop()
    await bus.stop()
    await ex.engine.close()
    return {"quotes": QUOTES} | percentiles(lat)


async def _journal_writes(mesh: Mesh) -> dict[str, float | int]:
    nc = await nats.connect(mesh.nats_url)
    js = nc.jetstream()
    name = "BENCH_ACK_" + uuid.uuid4().hex[:8].upper()
    await js.add_stream(
        StreamConfig(name=name, subjects=[f"benchack.{name}"], storage=StorageType.FILE)
    )
    payload = b"x" * 300  # about one journaled OMS event
    clock = time.perf_counter_ns
    lat = np.empty(JS_WRITES)
    for i in range(WARMUP + JS_WRITES):
        t0 = clock()
        await js.publish(f"benchack.{name}", payload, headers={"Nats-Msg-Id": str(i)})
        if i >= WARMUP:
            lat[i - WARMUP] = (clock() - t0) / 1e3
    await js.delete_stream(name)
    await nc.close()
    return {"writes": JS_WRITES} | percentiles(lat)


@pytest.mark.benchmark(group="execution-grpc")
@pytest.mark.parametrize("inflight", INFLIGHT)
def test_submit_orders_grpc(benchmark, mesh: Mesh, inflight: int) -> None:  # type: ignore[no-untyped-def]
    out: dict[str, float | int] = {}
    benchmark.pedantic(
        lambda: out.update(asyncio.run(_submit_run(mesh, inflight))), rounds=1, iterations=1
    )
    benchmark.extra_info.update(out)


@pytest.mark.benchmark(group="execution-quote-to-order")
def test_quote_to_order(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    out: dict[str, float | int] = {}
    benchmark.pedantic(lambda: out.update(asyncio.run(_quote_to_order(mesh))), rounds=1)
    benchmark.extra_info.update(out)


@pytest.mark.benchmark(group="execution-quote-to-order")
def test_quote_to_order_in_process(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out: dict[str, float | int] = {}
    benchmark.pedantic(
        lambda: out.update(asyncio.run(_quote_to_order_in_process(tmp_path / "nats"))), rounds=1
    )
    benchmark.extra_info.update(out)


@pytest.mark.peer
@pytest.mark.benchmark(group="execution-quote-to-order")
def test_journal_write_baseline(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    out: dict[str, float | int] = {}
    benchmark.pedantic(lambda: out.update(asyncio.run(_journal_writes(mesh))), rounds=1)
    benchmark.extra_info.update(out)
