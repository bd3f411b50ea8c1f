"""services/execution/algos.py without a server: StartAlgo requests checked field by field and
resolved (ids, times, the flat VWAP curve), the progress records an algo's changes produce,
and an algo rebuilt from those records and the replayed OMS events carrying on without
sending a child twice."""

from __future__ import annotations

from typing import Any

import pytest
from tradecore.oms.algos import AlgoKind, AlgoState
from tradecore.oms.oms import OMS, OmsEvent
from tradecore.oms.paper import BUY, SELL, PaperVenue
from tradecore.oms.pretrade import MarketReference, PreTradeControls
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.execution import convert
from tradecore_services.execution.algos import (
    VOLUME_PROGRESS_NS,
    Algos,
    algo_id_of,
    check_start,
    replay_entry,
)
from tradecore_services.execution.journal import kind_of

S = 1_000_000_000
NOW = 1_700_000_000 * S


def req(**kw: Any) -> pb.StartAlgoRequest:
    base: dict[str, Any] = dict(
        account="A1",
        client_algo_id="twap-1",
        symbol="AAPL",
        side="BUY",
        quantity=1000,
        kind="TWAP",
        duration_s=60.0,
        slices=4,
    )
    base.update(kw)
    return pb.StartAlgoRequest(**{k: v for k, v in base.items() if v is not None})


def test_a_twap_request_is_resolved_at_now() -> None:
    start = check_start(req(), NOW)
    assert start.algo_id == algo_id_of("A1", "twap-1") and start.algo_id.startswith("ALGO-")
    assert (start.start_time_ns, start.end_time_ns) == (0, NOW + 60 * S)  # 0: at once
    assert start.request.slices == 4
    timed = req(start_time_ns=NOW + 5 * S, duration_s=None, end_time_ns=NOW + 9 * S)
    later = check_start(timed, NOW)
    assert (later.start_time_ns, later.end_time_ns) == (NOW + 5 * S, NOW + 9 * S)
    # the id depends on the account and the client id only
    assert check_start(req(quantity=5), NOW).algo_id == start.algo_id
    assert check_start(req(account="A2"), NOW).algo_id != start.algo_id


def test_a_vwap_without_a_curve_gets_a_flat_one_of_slices_buckets() -> None:
    start = check_start(req(kind="VWAP", slices=0), NOW)
    assert list(start.request.curve) == [1.0] * 10
    given = check_start(req(kind="VWAP", curve=[3.0, 1.0]), NOW)
    assert list(given.request.curve) == [3.0, 1.0]


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"account": ""}, "account"),
        ({"client_algo_id": ""}, "client_algo_id:"),
        ({"client_algo_id": "x" * 65}, "client_algo_id:"),
        ({"symbol": "A.B"}, "symbol"),
        ({"side": "SIDE_UNSPECIFIED"}, "side:"),
        ({"quantity": 0}, "quantity:"),
        ({"kind": "ALGO_KIND_UNSPECIFIED"}, "kind:"),
        ({"venue": 7}, "venue:"),
        ({"limit_price": -1.0}, "limit_price:"),
        ({"limit_price": float("nan")}, "limit_price:"),
        ({"duration_s": None}, "end_time_ns: required for a TWAP"),
        ({"duration_s": -1.0}, "duration_s:"),
        ({"duration_s": float("inf")}, "duration_s:"),
        ({"end_time_ns": NOW + S}, "duration_s: give end_time_ns or duration_s"),
        ({"duration_s": None, "end_time_ns": NOW - S}, "end_time_ns: must be after"),
        ({"start_time_ns": -1}, "start_time_ns:"),
        ({"slices": -1}, "slices:"),
        ({"slices": 10_001}, "slices:"),
        ({"randomize": 1.0}, "randomize:"),
        ({"kind": "VWAP", "curve": [1.0, -1.0]}, "curve[1]:"),
        ({"kind": "VWAP", "curve": [0.0, 0.0]}, "curve:"),
        ({"kind": "POV", "duration_s": None}, "participation_rate:"),
        ({"kind": "POV", "participation_rate": 1.5}, "participation_rate:"),
        ({"kind": "POV", "participation_rate": 0.1, "min_rate": 0.2}, "min_rate:"),
        ({"kind": "POV", "participation_rate": 0.1, "max_rate": 0.05}, "max_rate:"),
        ({"kind": "IS", "risk_aversion": 1e-6, "volatility": 0.1}, "impact:"),
        ({"kind": "IS", "impact": 1e-3, "risk_aversion": -1.0}, "risk_aversion:"),
        ({"kind": "ICEBERG", "display_quantity": 10}, "limit_price: is required"),
        ({"kind": "ICEBERG", "limit_price": 10.0}, "display_quantity:"),
    ],
)
def test_bad_requests_name_the_field(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        check_start(req(**kw), NOW)
    assert needle in str(exc.value), exc.value


def test_submit_order_refuses_the_algo_children_s_prefix() -> None:
    order = pb.SubmitOrderRequest(
        account="A1", client_order_id="ALGO-1.1", symbol="AAPL", side="BUY", quantity=1,
        type="MARKET",
    )  # fmt: skip
    with pytest.raises(ValueError, match="client_order_id: the prefix ALGO- is reserved"):
        convert.order_spec(order)


def test_algo_commands_are_journaled_as_commands_and_progress_as_events() -> None:
    for entry, kind in (
        (pb.JournalEntry(start_algo=pb.AlgoStart(algo_id="x")), "command"),
        (pb.JournalEntry(stop_algo=pb.StopAlgoRequest(algo_id="x")), "command"),
        (pb.JournalEntry(algo_progress=pb.AlgoProgress(algo_id="x")), "event"),
    ):
        assert kind_of(entry).value == kind


class Rig:
    """A paper venue with a book, an OMS whose sink records every event, the service's algos."""

    def __init__(self) -> None:
        self.venue = PaperVenue()
        self.venue.advance(NOW)
        self.refs = MarketReference(lambda: self.venue.now)
        self.events: list[OmsEvent] = []
        self.oms = OMS(
            {"PAPER": self.venue},
            PreTradeControls(self.refs),
            clock_ns=lambda: self.venue.now,
            sink=self.events.append,
        )
        self.algos = Algos()
        self.algos.rebuild(self.oms, {}, {}, {})

    def book(self, bid: float, ask: float, size: int = 10_000) -> None:
        self.venue.on_level("AAPL", BUY, round(bid * 10_000), size, self.venue.now)
        self.venue.on_level("AAPL", SELL, round(ask * 10_000), size, self.venue.now)
        self.refs.quote("AAPL", bid, ask)
        self.algos.on_quote("AAPL", bid, ask, self.venue.now)

    def at(self, t: int) -> list[pb.JournalEntry]:
        self.venue.advance(t)
        self.algos.on_time(t)
        out: list[pb.JournalEntry] = self.algos.collect(t)
        return out


def test_progress_is_recorded_on_each_decision_and_rebuilt_without_doubling() -> None:
    rig = Rig()
    rig.book(99.0, 100.0)
    start = check_start(req(limit_price=98.0), NOW)  # children rest under the bid
    rig.algos.starts[start.algo_id] = start
    rig.algos.start(start)
    first = rig.algos.collect(NOW)
    assert [e.algo_progress.version for e in first] == [1]
    assert rig.algos.collect(NOW) == []  # nothing changed: nothing to journal
    assert rig.algos.next_wake == NOW + 15 * S
    second = rig.at(NOW + 15 * S)  # slice 2
    assert [e.algo_progress.version for e in second] == [2]
    journal = [pb.JournalEntry(start_algo=start), *first, *second]
    t3 = rig.at(NOW + 30 * S)  # slice 3 sent: its progress record is lost (a crash)
    assert len(t3) == 1
    algo = rig.algos.get(start.algo_id)
    assert len(algo.children) == 3 and algo.working_quantity == 750

    # the rebuild: the OMS from its events, the algo from the journal's records
    oms = OMS({"PAPER": rig.venue}, PreTradeControls(rig.refs), clock_ns=lambda: rig.venue.now)
    oms.replay(list(rig.events))
    starts: dict[str, pb.AlgoStart] = {}
    progress: dict[str, pb.AlgoProgress] = {}
    stops: dict[str, str] = {}
    for entry in reversed(journal):  # the newest version wins, whatever the order
        assert replay_entry(entry, starts, progress, stops)
    back = Algos()
    back.rebuild(oms, starts, progress, stops)
    back.resume(oms)
    again = back.get(start.algo_id)
    assert again.children == algo.children  # the third child adopted, not sent again
    records = back.collect(NOW + 30 * S)
    assert [e.algo_progress.version for e in records] == [3]  # the adoption journaled
    back.on_time(NOW + 45 * S)
    assert len(again.children) == 4 and [oms.order(o).quantity for o in again.children] == [250] * 4
    message = back.message(oms, start.algo_id)
    assert message.state == pb.ALGO_WORKING and message.working_quantity == 1000
    assert [c.client_order_id for c in message.children] == [
        f"{start.algo_id}.{n}" for n in range(1, 5)
    ]
    assert all(c.status == events.ACCEPTED for c in message.children)
    assert message.tca.arrival_price == pytest.approx(99.5)
    assert not message.tca.HasField("average_price")  # nothing filled: absent, not NaN


def test_a_market_volume_change_alone_is_journaled_at_most_once_a_second() -> None:
    rig = Rig()
    rig.book(99.0, 100.0)
    start = check_start(req(kind="POV", participation_rate=0.5, limit_price=98.0), NOW)
    rig.algos.starts[start.algo_id] = start
    rig.algos.start(start)
    assert len(rig.algos.collect(NOW)) == 1
    rig.algos.on_trade("AAPL", 99.0, 1, NOW)  # 0.5 x 1 rounds down to no child
    assert rig.algos.collect(NOW) == []
    assert len(rig.algos.collect(NOW + VOLUME_PROGRESS_NS)) == 1
    rig.algos.on_trade("AAPL", 99.0, 100, NOW + VOLUME_PROGRESS_NS)  # a child: at once
    assert len(rig.algos.collect(NOW + VOLUME_PROGRESS_NS)) == 1


def test_halt_and_journaled_stops_stop_working_algos() -> None:
    rig = Rig()
    rig.book(99.0, 100.0)
    start = check_start(req(limit_price=98.0), NOW)
    rig.algos.starts[start.algo_id] = start
    algo = rig.algos.start(start)
    rig.algos.halt("other")
    assert algo.state is AlgoState.WORKING
    rig.algos.halt("A1")
    assert (algo.state, algo.reason) == (AlgoState.STOPPED, "trading halted")
    assert all(not rig.oms.order(o).is_open for o in algo.children)
    assert algo.spec.kind is AlgoKind.TWAP
