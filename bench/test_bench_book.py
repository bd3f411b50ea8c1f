"""Order-book benchmarks: the LOBSTER GOOG day through the Python API against a plain-Python
replay measured in the same run, parse + apply, and a synthetic deep, cancel-heavy stream.

Run: ``python -m pytest bench/test_bench_book.py -q -s`` (figures also go to
bench/results/book.json)."""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tradecore import lobster
from tradecore.orderbook import OpKind, OrderBook

from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

RESULTS: dict[str, Any] = {}
EMPTY = (lobster.EMPTY_ASK, lobster.EMPTY_BID)


@pytest.fixture(scope="module")
def goog_paths() -> tuple[Path, Path]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return d / GOOG.format("message"), d / GOOG.format("orderbook")


@pytest.fixture(scope="module")
def goog(goog_paths: tuple[Path, Path]) -> tuple[lobster.Messages, np.ndarray]:
    return lobster.parse_messages(goog_paths[0]), lobster.parse_book(goog_paths[1], 1)


# ------------------------------------------------------------------ the plain-Python peer


class PyReplay:
    """Plain-Python LOBSTER replay with the same rules as the C++ kernel: dict levels with
    bisect-sorted price lists, dict orders, per-row compare and resync of the visible levels."""

    def __init__(self, levels: int) -> None:
        self.L = levels
        self.size: dict[int, dict[int, int]] = {1: {}, -1: {}}
        self.keys: dict[int, list[int]] = {1: [], -1: []}  # sorted worst..best (key: +p / -p)
        self.orders: dict[int, list[int]] = {}

    def add(self, side: int, p: int, q: int) -> None:
        lv = self.size[side]
        if p in lv:
            lv[p] += q
        else:
            lv[p] = q
            bisect.insort(self.keys[side], p * side)

    def remove(self, side: int, p: int, q: int) -> None:
        lv = self.size[side]
        if p not in lv:
            return
        left = lv[p] - q
        if left > 0:
            lv[p] = left
        else:
            del lv[p]
            keys = self.keys[side]
            del keys[bisect.bisect_left(keys, p * side)]

    def top(self, side: int) -> list[tuple[int, int]]:
        keys, lv = self.keys[side], self.size[side]
        return [(k * side, lv[k * side]) for k in reversed(keys[-self.L :])]

    @staticmethod
    def file_side(row: list[int], off: int, L: int) -> list[tuple[int, int]]:
        out = []
        for k in range(L):
            p, s = row[4 * k + off], row[4 * k + off + 1]
            if s <= 0 or p in EMPTY:
                break
            out.append((p, s))
        return out

    def run(self, msgs: list[tuple[int, int, int, int, int]], rows: list[list[int]]) -> list[int]:
        L = self.L
        counts = [0, 0, 0]
        for s, off in ((-1, 0), (1, 2)):
            for p, q in self.file_side(rows[0], off, L):
                self.add(s, p, q)
        t0, _, q0, p0, d0 = msgs[0]
        if t0 == 1:
            self.remove(d0, p0, q0)
        elif t0 <= 4:
            self.add(d0, p0, q0)
        prev = rows[0]
        for (t, oid, q, p, d), row in zip(msgs, rows, strict=True):
            if t == 1:
                self.orders[oid] = [d, p, q]
                self.add(d, p, q)
            elif t <= 4:
                o = self.orders.get(oid)
                if o is not None and o[1] == p and o[0] == d:
                    take = o[2] if t == 3 else min(q, o[2])
                    o[2] -= take
                    if o[2] == 0:
                        del self.orders[oid]
                self.remove(d, p, q)
            status = 0
            files = {}
            for s, off in ((-1, 0), (1, 2)):
                f = self.file_side(row, off, L)
                files[s] = f
                ours = self.top(s)
                if f == ours:
                    continue
                pp, pq = prev[4 * (L - 1) + off], prev[4 * (L - 1) + off + 1]
                st = 2
                if pq > 0 and pp not in EMPTY:
                    bp = pp * s
                    if [x for x in f if x[0] * s >= bp] == [x for x in ours if x[0] * s >= bp]:
                        st = 1
                status = max(status, st)
            if status:
                for s in (-1, 1):
                    f = files[s]
                    fp = {x[0] for x in f}
                    bound = f[-1][0] if len(f) == L else None
                    stale = True
                    while stale:  # until no visible level of ours is missing from the file
                        stale = False
                        for p2, q2 in self.top(s):
                            if p2 not in fp and (bound is None or p2 * s >= bound * s):
                                self.remove(s, p2, q2)
                                stale = True
                for s in (-1, 1):
                    for p2, q2 in files[s]:
                        have = self.size[s].get(p2, 0)
                        if have < q2:
                            self.add(s, p2, q2 - have)
                        elif have > q2:
                            self.remove(s, p2, have - q2)
            counts[status] += 1
            prev = row
        return counts


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def record(key: str, value: Any) -> None:
    RESULTS[key] = value
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "book.json").write_text(json.dumps(RESULTS, indent=2))


# ------------------------------------------------------------------ benchmarks


def test_goog_cpp_vs_python_same_run(goog: tuple[lobster.Messages, np.ndarray]) -> None:
    msgs, rows = goog
    n = len(msgs)
    book = OrderBook(8192)
    res = lobster.replay(msgs, rows, 1, verify=False, book=book)
    t_cpp = best_of(lambda: lobster.replay(msgs, rows, 1, verify=False, book=book), 20)
    tuples = list(
        zip(
            msgs.type.tolist(),
            msgs.order_id.tolist(),
            msgs.size.tolist(),
            msgs.price.tolist(),
            msgs.direction.tolist(),
            strict=True,
        )
    )
    row_lists = rows.tolist()
    counts = PyReplay(1).run(tuples, row_lists)
    assert counts == [res.rows_exact, res.rows_edge, res.rows_bad]  # same reconstruction
    t_py = best_of(lambda: PyReplay(1).run(tuples, row_lists), 3)
    cpp_rate, py_rate = n / t_cpp, n / t_py
    print(
        f"\nGOOG day apply: C++ {cpp_rate / 1e6:.2f}M msg/s, plain Python "
        f"{py_rate / 1e6:.3f}M msg/s, ratio {cpp_rate / py_rate:.1f}x"
    )
    record("goog_apply_cpp_msgs_per_s", cpp_rate)
    record("goog_apply_python_msgs_per_s", py_rate)
    record("goog_apply_ratio", cpp_rate / py_rate)
    assert cpp_rate > py_rate


def test_bench_goog_apply(benchmark: Any, goog: tuple[lobster.Messages, np.ndarray]) -> None:
    msgs, rows = goog
    book = OrderBook(8192)
    res = benchmark(lambda: lobster.replay(msgs, rows, 1, verify=False, book=book))
    assert res.rows_bad == 0
    benchmark.extra_info["messages_per_second"] = len(msgs) / benchmark.stats.stats.min


def test_bench_goog_parse_and_apply(benchmark: Any, goog_paths: tuple[Path, Path]) -> None:
    res = benchmark(lambda: lobster.replay_files(goog_paths[0], goog_paths[1], 1, verify=True))
    assert res.rows_bad == 0
    rate = res.messages / benchmark.stats.stats.min
    benchmark.extra_info["messages_per_second"] = rate
    record("goog_parse_apply_msgs_per_s", rate)


def synthetic_stream(n: int, levels: int, seed: int = 7) -> dict[str, np.ndarray]:
    """A deep book (``levels`` prices a side around 10_000) under a cancel-heavy flow:
    after a prefill, ~48% cancels of live orders, ~48% passive adds, ~4% marketable IOCs."""
    rng = np.random.default_rng(seed)
    kind = np.empty(n, np.uint8)
    oid = np.empty(n, np.uint64)
    side = np.empty(n, np.int8)
    price = np.empty(n, np.int64)
    size = rng.integers(1, 100, n).astype(np.int64)
    live: list[int] = []
    next_id = 1
    prefill = min(n // 10, 40 * levels)  # a deep book first, then the cancel-heavy flow
    u = rng.random(n)
    sides = rng.choice(np.array([1, -1], np.int8), n)
    depth = rng.integers(0, levels, n)
    pick = rng.random(n)
    for i in range(n):
        s = int(sides[i])
        if i >= prefill and u[i] < 0.48 and live:
            j = int(pick[i] * len(live))
            live[j], live[-1] = live[-1], live[j]
            kind[i], oid[i], side[i], price[i] = OpKind.CANCEL, live.pop(), s, 0
        elif i < prefill or u[i] < 0.96 or not live:
            kind[i], oid[i], side[i] = OpKind.LIMIT, next_id, s
            price[i] = 10_000 - s * (1 + int(depth[i]))
            live.append(next_id)
            next_id += 1
        else:
            kind[i], oid[i], side[i], price[i] = OpKind.IOC, next_id, s, 10_000 + s * 2
            next_id += 1
    return {
        "kind": kind,
        "order_id": oid,
        "side": side,
        "price": price,
        "size": size,
        "ts": np.arange(n, dtype=np.int64),
    }


def test_bench_synthetic_deep_book(benchmark: Any) -> None:
    n = 1_000_000
    ops = synthetic_stream(n, levels=2000)

    def run() -> OrderBook:
        book = OrderBook(1 << 16)
        book.record_events = False
        book.apply_batch(**ops)
        return book

    book = benchmark(run)
    book.check_invariants()
    assert book.core.level_count(1) > 1000
    rate = n / benchmark.stats.stats.min
    benchmark.extra_info["messages_per_second"] = rate
    record("synthetic_deep_msgs_per_s", rate)
    book2 = OrderBook(1 << 16)
    t = best_of(lambda: (book2.clear(), book2.apply_batch(**ops)), 3)
    record("synthetic_deep_with_events_msgs_per_s", n / t)
    print(
        f"\nsynthetic deep book: {rate / 1e6:.2f}M msg/s (events off), "
        f"{n / t / 1e6:.2f}M msg/s (events on)"
    )
