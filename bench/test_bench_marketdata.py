"""MarketDataService: (a) ticks per second from a feed to rows in ClickHouse, end to end through
the mesh (feed → packed batches on JetStream → durable consumer → chDB insert; the clock stops
when the feed is DONE, i.e. when the store has counted every tick as a row in chDB), against the
bare columnar chDB insert of the same number of rows (``TickStore.insert``, no NATS, no feed)
measured in the same run; the CPU seconds each process spent per run (service, its child
processes if any, nats-server) are recorded with the figure; (a') the same for the real LOBSTER GOOG
day (≈ 50k messages) replayed by several feeds at once as distinct symbols; (b) tick-to-
subscriber latency over core NATS (p50/p99): a paced synthetic feed (2000 operations/s), from
the time the service received a chunk (``recv_ts``) to a subscriber of ``.book`` getting the
chunk's level updates, against a bare nats-py publish → subscribe of a similar payload in the
same run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import nats
import numpy as np
import pytest
from tradecore import ticks
from tradecore.store import default_dsn
from tradecore.subjects import MdKind, md_subject
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc
from tradecore_services.marketdata.store import TickStore

from tests.mesh import Mesh
from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

SYMBOLS = ["B1", "B2", "B3", "B4"]
PER_SYMBOL = 250_000  # 1M ticks in all
LOBSTER_FEEDS = 10  # x 49,482 GOOG messages
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-md")))
    up = m.run("up")
    assert up.returncode == 0, up.stderr
    yield m
    m.run("down")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _cpu(mesh: Mesh) -> dict[str, float]:
    comps: dict[str, Any] = mesh.state()["components"]  # type: ignore[assignment]
    md = int(comps["marketdata"]["pid"])
    out = {"service": _cpu_s(md), "worker": sum(_cpu_s(c) for c in _children(md))}
    if "nats" in comps and comps["nats"].get("pid"):
        out["nats"] = _cpu_s(int(comps["nats"]["pid"]))
    return out


def _cpu_delta(before: dict[str, float], after: dict[str, float], runs: int) -> dict[str, float]:
    return {f"cpu_s_per_run_{k}": (after[k] - before.get(k, 0.0)) / runs for k in after}


def _wait_done(stub: Any, feed_id: str) -> Any:
    """Long-polls GetFeed: the service answers as soon as the feed is over (no polling load
    on the service, no polling interval in the measured time)."""
    while True:
        req = pb.GetFeedRequest(id=feed_id)
        req.wait.FromSeconds(10)
        st = stub.GetFeed(req, timeout=30)
        if st.state != pb.RUNNING:
            return st


@pytest.mark.benchmark(group="md-throughput")
def test_peer_bare_chdb_insert(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The store stage alone: 1M rows as one columnar insert (no NATS, no feed; the rows are
    made before the clock starts, 4 symbols in chunks of 8192 like the feed's)."""
    n = len(SYMBOLS) * PER_SYMBOL
    rng = np.random.default_rng(0)
    store = TickStore(default_dsn(tmp_path, "peer"))
    made: list[list[ticks.TickBatch]] = []

    def make(tag: int) -> list[ticks.TickBatch]:
        out = []
        for sym in SYMBOLS:
            for i in range(0, PER_SYMBOL, 8192):
                m = min(8192, PER_SYMBOL - i)
                seq = np.arange(i + 1, i + m + 1)
                out.append(
                    ticks.make_batch(
                        "peer",
                        f"P{tag}{sym}",
                        "peer",
                        seq=seq,
                        ts=time.time_ns() + seq * 1000,
                        recv_ts=time.time_ns(),
                        type=rng.integers(1, 5, m),
                        order_id=rng.integers(1, 1 << 40, m),
                        side=rng.choice([-1, 1], m),
                        price=rng.integers(990_000, 1_010_000, m),
                        size=rng.integers(1, 10, m) * 100,
                    )
                )
        return out

    def setup() -> tuple[tuple[list[ticks.TickBatch]], dict[str, Any]]:
        made.append(make(len(made)))
        return (made[-1],), {}

    def insert(batches: list[ticks.TickBatch]) -> None:
        store.insert(batches)

    try:
        benchmark.pedantic(insert, setup=setup, rounds=3, iterations=1)
    finally:
        store.close()
    rate = n / benchmark.stats.stats.median
    RESULTS["insert"] = rate
    benchmark.extra_info.update({"ticks": n, "ticks_per_s": rate})


@pytest.mark.benchmark(group="md-throughput")
def test_feed_to_clickhouse_ticks_per_second(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(mesh.marketdata) as ch:
        stub = pb_grpc.MarketDataServiceStub(ch)
        run = [0]

        def feed() -> None:
            run[0] += 1
            spec = pb.SyntheticFeedSpec(
                symbols=[f"{s}R{run[0]}" for s in SYMBOLS], rate=1e6, count=PER_SYMBOL, speed=0
            )
            st = stub.StartFeed(pb.StartFeedRequest(synthetic=spec), timeout=30)
            done = _wait_done(stub, st.id)
            assert done.state == pb.DONE and done.stored == len(SYMBOLS) * PER_SYMBOL

        feed()  # warm-up: the generator thread starts on the first synthetic feed
        before = _cpu(mesh)
        benchmark.pedantic(feed, rounds=3, iterations=1)
        cpu = _cpu_delta(before, _cpu(mesh), 3)
    n = len(SYMBOLS) * PER_SYMBOL
    rate = n / benchmark.stats.stats.median
    RESULTS["e2e"] = rate
    benchmark.extra_info.update({"ticks": n, "ticks_per_s": rate, **cpu})
    if "insert" in RESULTS:
        benchmark.extra_info["ratio_to_bare_insert"] = rate / RESULTS["insert"]


@pytest.mark.benchmark(group="md-throughput")
def test_lobster_feeds_to_clickhouse_ticks_per_second(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    """The real GOOG day (LOBSTER, ≈ 50k messages) replayed unpaced by LOBSTER_FEEDS feeds at
    once, each as a distinct symbol; clock stopped when every feed is DONE (all rows in chDB)."""
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    messages, book = str(d / GOOG.format("message")), str(d / GOOG.format("orderbook"))
    total = [0]
    with grpc.insecure_channel(mesh.marketdata) as ch:
        stub = pb_grpc.MarketDataServiceStub(ch)
        run = [0]

        def feeds() -> None:
            run[0] += 1
            ids = []
            for i in range(LOBSTER_FEEDS):
                spec = pb.LobsterFeedSpec(
                    symbol=f"GOOG{run[0]}x{i}", messages_path=messages, book_path=book, speed=0
                )
                ids.append(stub.StartFeed(pb.StartFeedRequest(lobster=spec), timeout=30).id)
            total[0] = 0
            for feed_id in ids:
                done = _wait_done(stub, feed_id)
                assert done.state == pb.DONE and done.stored == done.total
                total[0] += done.stored

        benchmark.pedantic(feeds, rounds=3, iterations=1)
    rate = total[0] / benchmark.stats.stats.median
    benchmark.extra_info.update({"ticks": total[0], "feeds": LOBSTER_FEEDS, "ticks_per_s": rate})
    if "insert" in RESULTS:
        benchmark.extra_info["ratio_to_bare_insert"] = rate / RESULTS["insert"]


async def _latency(mesh: Mesh, stub: Any, samples: int) -> np.ndarray:
    nc = await nats.connect(mesh.nats_url)
    lat: list[float] = []

    async def on_book(m: Any) -> None:
        now = time.time_ns()
        b = ticks.unpack(m.data)
        lat.extend(((now - b.recv_ts) / 1e3).tolist())

    await nc.subscribe(md_subject("synthetic", "LAT", MdKind.BOOK), cb=on_book)
    await nc.flush()
    st = stub.StartFeed(
        pb.StartFeedRequest(
            synthetic=pb.SyntheticFeedSpec(symbols=["LAT"], rate=2000, count=samples, speed=1)
        ),
        timeout=30,
    )
    # Polled from a thread: a blocking call on this loop would delay the subscriber's callbacks
    # and count as latency (the bare peer below has no such calls).
    while (
        await asyncio.to_thread(stub.GetFeed, pb.GetFeedRequest(id=st.id), timeout=5)
    ).state == pb.RUNNING:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await nc.close()
    return np.asarray(lat)


async def _bare_latency(url: str, samples: int, payload: int) -> np.ndarray:
    pub = await nats.connect(url)
    sub = await nats.connect(url)
    lat: list[float] = []

    async def on_msg(m: Any) -> None:
        lat.append((time.time_ns() - int.from_bytes(m.data[:8], "little")) / 1e3)

    await sub.subscribe("bench.lat", cb=on_msg)
    await sub.flush()
    pad = bytes(max(0, payload - 8))
    for _ in range(samples):
        await pub.publish("bench.lat", time.time_ns().to_bytes(8, "little") + pad)
        await pub.flush()
        await asyncio.sleep(0.005)  # paced like the feed's 5 ms chunks
    await asyncio.sleep(0.3)
    await pub.close()
    await sub.close()
    return np.asarray(lat)


@pytest.mark.benchmark(group="md-latency")
def test_tick_to_subscriber_latency(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(mesh.marketdata) as ch:
        stub = pb_grpc.MarketDataServiceStub(ch)
        lat = asyncio.run(_latency(mesh, stub, 6000))
        # Payload of a paced chunk's .book update: ≈ 10 level rows.
        bare = asyncio.run(_bare_latency(mesh.nats_url, 600, 10 * ticks.BYTES_PER_TICK + 32))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    b50, b99 = float(np.percentile(bare, 50)), float(np.percentile(bare, 99))
    benchmark.extra_info.update(
        {
            "rows": len(lat),
            "p50_us": p50,
            "p99_us": p99,
            "bare_nats_p50_us": b50,
            "bare_nats_p99_us": b99,
            "p50_over_bare": p50 / b50,
        }
    )
