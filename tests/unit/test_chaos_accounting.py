"""The books of ``tradecore chaos`` (services/mesh/chaos_accounting.py): a lost, doubled or
changed order, fill, position or tick is reported, and a clean run reports nothing."""

from __future__ import annotations

from tradecore_services.mesh.chaos import summary
from tradecore_services.mesh.chaos_accounting import (
    FeedRecord,
    FillRecord,
    OrderRecord,
    PositionRecord,
    check_fills,
    check_orders,
    check_position,
    check_ticks,
    net_position,
)

A = OrderRecord("c1", "o1", "BUY", "FILLED", 10, 100.1)
B = OrderRecord("c2", "o2", "SELL", "FILLED", 4, 99.9)
C = OrderRecord("c3", "o3", "BUY", "CANCELLED", 0, 0.0)
ANSWERED = [A, B, C]


def listed(*orders: OrderRecord) -> list[OrderRecord]:
    """As ListOrders gives them: no side."""
    return [
        OrderRecord(o.client_order_id, o.order_id, "", o.status, o.filled, o.price) for o in orders
    ]


def test_orders_clean() -> None:
    assert check_orders(ANSWERED, listed(A, B, C)) == []


def test_a_doubled_order_is_reported() -> None:
    problems = check_orders(ANSWERED, listed(A, B, C, B))
    assert len(problems) == 1 and "c2" in problems[0] and "doubled" in problems[0]


def test_a_lost_order_is_reported() -> None:
    problems = check_orders(ANSWERED, listed(A, C))
    assert len(problems) == 1 and "c2" in problems[0] and "lost" in problems[0]


def test_an_unknown_order_is_reported() -> None:
    extra = OrderRecord("c9", "o9", "", "FILLED", 1, 100.1)
    problems = check_orders(ANSWERED, [*listed(A, B, C), extra])
    assert len(problems) == 1 and "c9" in problems[0] and "unknown" in problems[0]


def test_an_order_in_another_state_is_reported() -> None:
    changed = OrderRecord("c1", "o1", "", "FILLED", 9, 100.1)
    problems = check_orders(ANSWERED, [changed, *listed(B, C)])
    assert len(problems) == 1 and "c1" in problems[0]


def test_fills_clean_doubled_and_lost() -> None:
    fills = [FillRecord("f1", "o1", 6), FillRecord("f2", "o1", 4), FillRecord("f3", "o2", 4)]
    assert check_fills(ANSWERED, fills) == []
    doubled = check_fills(ANSWERED, [*fills, FillRecord("f3", "o2", 4)])
    assert len(doubled) == 1 and "f3" in doubled[0] and "doubled" in doubled[0]
    lost = check_fills(ANSWERED, fills[1:])
    assert len(lost) == 1 and "o1" in lost[0] and "lost" in lost[0]
    unknown = check_fills(ANSWERED, [*fills, FillRecord("f4", "o3", 1)])
    assert len(unknown) == 1 and "o3" in unknown[0]


def test_net_position() -> None:
    # buy 10 @ 100.1, sell 4 @ 99.9: 6 long at 100.1, realised 4 * -0.2
    qty, avg, realized = net_position([("BUY", 10, 100.1), ("SELL", 4, 99.9)])
    assert (qty, avg) == (6, 100.1)
    assert abs(realized - 4 * (99.9 - 100.1)) < 1e-12
    # crossing zero opens at the fill price
    assert net_position([("BUY", 2, 10.0), ("SELL", 5, 11.0)])[:2] == (-3, 11.0)


def test_position_checked_against_the_record() -> None:
    realized = 4 * (99.9 - 100.1)
    good = [PositionRecord("S", 6, 100.1, realized)]
    assert check_position(ANSWERED, "S", good) == []
    off = check_position(ANSWERED, "S", [PositionRecord("S", 7, 100.1, realized)])
    assert len(off) == 1 and "quantity 7" in off[0]
    assert check_position(ANSWERED, "S", []) == ["position S: none, record says 6"]
    assert check_position([C], "S", []) == []


def test_ticks_clean_doubled_and_lost() -> None:
    done = FeedRecord(
        "f1", "X", "synthetic", 5, published=5, state="DONE", sequences=[1, 2, 3, 4, 5]
    )
    cut = FeedRecord(
        "f2", "Y", "synthetic", 5, published=3, state="INTERRUPTED", sequences=[1, 2, 3]
    )
    assert check_ticks([done, cut]) == []
    twice = FeedRecord(
        "f1", "X", "synthetic", 5, published=5, state="DONE", sequences=[1, 2, 2, 3, 4, 5]
    )
    assert any("stored twice" in p for p in check_ticks([twice]))
    missing = FeedRecord(
        "f1", "X", "synthetic", 5, published=5, state="DONE", sequences=[1, 2, 4, 5]
    )
    assert any("lost" in p for p in check_ticks([missing]))
    short = FeedRecord(
        "f2", "Y", "synthetic", 5, published=3, state="INTERRUPTED", sequences=[1, 2]
    )
    assert any("3 ticks acknowledged, 2 stored" in p for p in check_ticks([short]))


def test_summary_says_failed_when_a_problem_is_found() -> None:
    result = {
        "load_s": 1.0,
        "rate": 5.0,
        "achieved_rate": 5.0,
        "machine": {"cpus": 2, "load_avg": [0.1, 0.2, 0.3]},
        "calls": {},
        "kills": [
            {
                "component": "nats",
                "at_s": 0.5,
                "healthy_after_s": None,
                "last_failure_after_s": None,
                "failed_calls": {},
            }
        ],
        "orders": {"answered": 0, "by_status": {}, "retried": 0, "unanswered": [], "listed": 0},
        "fills": {"in_stream": 0},
        "ticks": {"feeds": []},
        "problems": {"orders": ["order c2: listed 2 times (doubled)"]},
    }
    text = summary(result)
    assert "FAILED: 1 problems" in text and "doubled" in text and "NOT BACK" in text
