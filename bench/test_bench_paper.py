"""Paper-venue benchmarks, in process: market events per second (the LOBSTER GOOG day through
:class:`~tradecore.oms.paper.PaperVenue` with our orders resting at the inside, against the bare
C++ replay of the same day in the same run) and orders per second (resting submit + cancel,
marketable IOC walks, L2 updates with the probabilistic queue).

Run: ``python -m pytest bench/test_bench_paper.py -q -s`` (figures also go to
bench/results/paper.json)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tradecore import lobster
from tradecore.oms import OrderType, Side, TimeInForce, VenueEvent, VenueOrder
from tradecore.oms.paper import PaperConfig, PaperVenue
from tradecore.orderbook import OrderBook

from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

RESULTS: dict[str, Any] = {}
SCALE = 10_000


@pytest.fixture(scope="module")
def goog() -> tuple[lobster.Messages, np.ndarray]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return lobster.parse_messages(d / GOOG.format("message")), lobster.parse_book(
        d / GOOG.format("orderbook"), 1
    )


def record(key: str, value: Any) -> None:
    RESULTS[key] = value
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "paper.json").write_text(json.dumps(RESULTS, indent=2))


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def limit(
    oid: str, side: Side, qty: int, ticks: int, tif: TimeInForce = TimeInForce.DAY
) -> VenueOrder:
    return VenueOrder(oid, "acc", "GOOG", side, qty, OrderType.LIMIT, tif, ticks / SCALE)


def day_with_orders(m: lobster.Messages, rows: np.ndarray, every: int) -> tuple[int, int]:
    """The day in chunks of ``every`` messages; before each chunk one buy and one sell of ours
    join the inside. Returns (orders submitted, fills)."""
    v = PaperVenue(PaperConfig(price_scale=SCALE))
    events: list[VenueEvent] = []
    v.set_listener(events.append)
    n = 0
    for start in range(0, len(m), every):
        if start:
            bid, ask = v.book("GOOG").best_bid(), v.book("GOOG").best_ask()
            if bid is not None:
                v.submit(limit(f"b{start}", Side.BUY, 100, bid[0]))
                n += 1
            if ask is not None:
                v.submit(limit(f"s{start}", Side.SELL, 100, ask[0]))
                n += 1
        v.feed_lobster("GOOG", m, rows, 1, start, min(len(m), start + every))
    return n, sum(e.kind == "FILL" for e in events)


def test_market_events_per_second_on_the_lobster_day(
    goog: tuple[lobster.Messages, np.ndarray],
) -> None:
    m, rows = goog
    n = len(m)
    book = OrderBook(8192)
    t_cpp = best_of(lambda: lobster.replay(m, rows, 1, verify=False, book=book), 5)
    t_bare = best_of(
        lambda: PaperVenue(PaperConfig(price_scale=SCALE)).feed_lobster("GOOG", m, rows, 1)
    )
    orders, fills = day_with_orders(m, rows, 500)
    t_ours = best_of(lambda: day_with_orders(m, rows, 500))
    figures = {
        "paper_events_per_s_no_orders": n / t_bare,
        "paper_events_per_s_with_orders": n / t_ours,
        "paper_orders_on_the_day": orders,
        "paper_fills_on_the_day": fills,
        "cpp_replay_events_per_s": n / t_cpp,
        "paper_vs_cpp_replay": t_cpp / t_ours,
    }
    for k, val in figures.items():
        record(k, val)
    print(
        f"\nLOBSTER day through the paper venue: {n / t_bare:,.0f} events/s (no orders), "
        f"{n / t_ours:,.0f} events/s with {orders} orders of ours ({fills} fills); bare C++ "
        f"replay {n / t_cpp:,.0f} events/s"
    )
    assert fills > 0


def test_orders_per_second(goog: tuple[lobster.Messages, np.ndarray]) -> None:
    m, rows = goog
    v = PaperVenue(PaperConfig(price_scale=SCALE))
    v.feed_lobster("GOOG", m, rows, 1, 0, 25_000)
    bid, ask = v.book("GOOG").best_bid(), v.book("GOOG").best_ask()
    assert bid is not None and ask is not None
    count = 20_000
    events: list[VenueEvent] = []
    v.set_listener(events.append)

    def rest_and_cancel() -> None:
        for i in range(count):
            oid = f"r{len(events)}-{i}"
            v.submit(limit(oid, Side.BUY, 100, bid[0] - (i % 10) * 100))
            v.cancel(oid)

    def ioc_walks() -> None:
        for i in range(count):
            # each walk takes what the previous ones left: the depletion model at work
            v.submit(limit(f"x{len(events)}-{i}", Side.BUY, 10, ask[0] + 500, TimeInForce.IOC))

    t_rest = best_of(rest_and_cancel)
    t_ioc = best_of(ioc_walks)
    lv = PaperVenue(PaperConfig(price_scale=SCALE, seed=1))
    for p in range(100):
        lv.on_level("L2", 1, 10_000 - p, 500, 0)

    def l2_updates() -> None:
        for i in range(count):
            lv.submit(
                VenueOrder(
                    f"l{i}-{time.perf_counter_ns()}",
                    "acc",
                    "L2",
                    Side.BUY,
                    10,
                    OrderType.LIMIT,
                    TimeInForce.DAY,
                    (10_000 - i % 100) / SCALE,
                )
            )
            lv.on_level("L2", 1, 10_000 - i % 100, 400 + i % 200, lv.now + 1)

    t_l2 = best_of(l2_updates, 1)
    figures = {
        "paper_submit_cancel_orders_per_s": 2 * count / t_rest,
        "paper_ioc_walk_orders_per_s": count / t_ioc,
        "paper_l2_submit_plus_update_per_s": count / t_l2,
    }
    for k, val in figures.items():
        record(k, val)
    print(
        f"\nPaper venue: {2 * count / t_rest:,.0f} submit+cancel requests/s, "
        f"{count / t_ioc:,.0f} marketable IOC orders/s, {count / t_l2:,.0f} L2 (order + level "
        "update)/s"
    )
    assert t_rest > 0 and t_ioc > 0
