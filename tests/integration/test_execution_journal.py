"""The execution journal (services/execution/journal.py) and the state rebuilt from it
(live.py) against a real nats-server with JetStream: entries come back in the order written,
a message id is stored once, the RiskService's latest trading states are read from
RISK_JOURNAL, and a new service instance rebuilds what the old one acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from tradecore.subjects import RiskKind, risk_subject
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import UnavailableError
from tradecore_services.common.store_thread import StoreThread
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import FILLS_STREAM, STREAM, Journal
from tradecore_services.execution.live import Execution
from tradecore_services.execution.store import JournalStore, StoreConsumer
from tradecore_services.risk.journal import Journal as RiskJournal

from tests.integration.test_nats_resilience import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    s = NatsServer(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def _connect(url: str) -> nats.NATS:
    deadline = time.monotonic() + 20
    while True:
        try:
            return await nats.connect(url, max_reconnect_attempts=0)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def submit(account: str, coid: str) -> pb.JournalEntry:
    e = pb.JournalEntry(account=account, request_id=f"r-{coid}", time_ns=1)
    e.submit.CopyFrom(pb.SubmitOrderRequest(account=account, client_order_id=coid, quantity=1))
    return e


def test_entries_replay_in_order_and_a_message_id_is_stored_once(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        journal = Journal()
        await journal.attach(nc)
        fill = pb.JournalEntry(account="B2", time_ns=2)
        fill.fill.CopyFrom(events.Fill(fill_id="PAPER-1", account="B2", quantity=3, price=9.5))
        written = [submit("A1", "c1"), fill, submit("B2", "c2"), submit("A1", "c3")]
        for e in written:
            assert not await journal.write(e, msg_id=f"submit.{e.account}.{e.request_id}")
        # the same message id again (a retry after a lost acknowledgement): stored once
        assert await journal.write(written[0], msg_id="submit.A1.r-c1")
        got = [(seq, e) async for seq, e in journal.replay()]
        assert [e for _, e in got] == written
        assert [s for s, _ in got] == sorted(s for s, _ in got)
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        assert info.config.subjects == ["exec.journal.*.*"]
        assert info.state.messages == 4
        # a fill contract is stored in EXEC_FILLS, once per fill id
        for _ in range(2):
            await journal.publish_fill(fill.fill)
        assert (await js.stream_info(FILLS_STREAM)).state.messages == 1
        await nc.close()

    asyncio.run(go())


def test_the_latest_risk_state_of_every_account(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        journal = Journal()
        await journal.attach(nc)
        assert await journal.risk_states() == {}  # no RISK_JOURNAL yet
        risk = RiskJournal()
        await risk.attach(nc)
        for account, mode, seq in (
            ("A1", "REDUCE_ONLY", 1),
            ("A1", "HALTED", 2),
            ("B2", "ENABLED", 1),
        ):
            await risk.state(risk_events.TradingState(account=account, mode=mode, sequence=seq))  # type: ignore[arg-type]
        got = await journal.risk_states()
        assert {a: (s.mode, s.sequence) for a, s in got.items()} == {
            "A1": (risk_events.HALTED, 2),
            "B2": (risk_events.ENABLED, 1),
        }
        await nc.close()

    asyncio.run(go())


def test_a_new_instance_rebuilds_the_trading_states(server: NatsServer) -> None:
    async def instance() -> tuple[Bus, Execution]:
        bus = Bus(server.url, "execution-test")
        journal = Journal()
        ex = Execution(bus, journal, Engine(journal, {}))
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        return bus, ex

    async def go() -> None:
        nc = await _connect(server.url)
        risk = RiskJournal()
        await risk.attach(nc)
        await risk.state(risk_events.TradingState(account="A1", mode="REDUCE_ONLY", sequence=5))  # type: ignore[arg-type]

        bus, ex = await instance()
        assert ex.states.mode("A1") == risk_events.REDUCE_ONLY  # read from RISK_JOURNAL
        got = await ex.set_trading_state(
            pb.SetTradingStateRequest(account="A1", mode="HALTED", reason="kill switch"),  # type: ignore[arg-type]
            request_id="r-1",
        )
        assert got.effective == risk_events.HALTED and got.operator.sequence == 1
        got = await ex.set_trading_state(
            pb.SetTradingStateRequest(account="B2", mode="REDUCE_ONLY", changed_by="ops")  # type: ignore[arg-type]
        )
        # a live risk state: applied, then journaled
        await nc.publish(
            risk_subject(RiskKind.STATE, "B2"),
            risk_events.TradingState(account="B2", mode="HALTED", sequence=1).SerializeToString(),  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + 10
        while ex.states.mode("B2") != risk_events.HALTED:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        before = {a: ex.states.get(a) for a in ("A1", "B2")}
        await bus.stop()

        bus2, ex2 = await instance()
        after = {a: ex2.states.get(a) for a in ("A1", "B2")}
        for a in ("A1", "B2"):
            # the operator's state as acknowledged (time and sequence included)
            assert after[a].operator == before[a].operator
            assert after[a].effective == before[a].effective
        assert after["A1"].operator.reason == "kill switch"
        assert after["B2"].operator.changed_by == "ops"
        assert after["B2"].risk.mode == risk_events.HALTED
        assert ex2.replayed >= 4  # two commands, two risk states
        await bus2.stop()
        await nc.close()

    asyncio.run(go())


def test_the_journal_is_copied_into_clickhouse_once(server: NatsServer) -> None:
    async def go() -> None:
        nc = await _connect(server.url)
        journal = Journal()
        await journal.attach(nc)
        store = StoreThread(lambda: JournalStore("chdb://memory"))
        await store.start()
        written = [submit("A1", f"c{i}") for i in range(5)] + [submit("B2", "x")]
        for e in written[:3]:
            await journal.write(e)
        consumer = StoreConsumer(store)
        await consumer.attach(nc.jetstream())

        async def until(n: int) -> None:
            deadline = time.monotonic() + 20
            while await store.call(lambda s: s.count()) < n:
                assert time.monotonic() < deadline, f"fewer than {n} rows stored"
                await asyncio.sleep(0.05)

        await until(3)
        await consumer.stop()
        # a second consumer on the same durable (a restarted service) stores the rest only
        for e in written[3:]:
            await journal.write(e)
        consumer = StoreConsumer(store)
        await consumer.attach(nc.jetstream())
        await until(6)
        await consumer.stop()
        assert await store.call(lambda s: s.count()) == 6
        a1 = await store.call(lambda s: s.entries("A1"))
        assert [e for _, e in a1] == written[:5]
        assert await store.call(lambda s: s.count("B2")) == 1
        await store.stop()
        await nc.close()

    asyncio.run(go())


class CountingStore(JournalStore):
    """Counts the inserts (each costs milliseconds of chDB CPU whatever its size)."""

    inserts = 0

    def insert(self, rows: list[tuple[int, str, str, str, str, int, bytes]]) -> None:
        if rows:
            self.inserts += 1
        super().insert(rows)


def test_a_stream_of_writes_is_copied_in_few_inserts(server: NatsServer) -> None:
    """Entries journaled one at a time, as orders are, reach ClickHouse in a few batched
    inserts, not one insert per entry."""

    async def go() -> None:
        nc = await _connect(server.url)
        journal = Journal()
        await journal.attach(nc)
        counting = CountingStore("chdb://memory")
        store = StoreThread(lambda: counting)
        await store.start()
        consumer = StoreConsumer(store)
        await consumer.attach(nc.jetstream())
        n = 60
        for i in range(n):
            await journal.write(submit("A1", f"s{i}"))
            await asyncio.sleep(0.01)  # spread over at least 0.6 s
        deadline = time.monotonic() + 20
        while await store.call(lambda s: s.count()) < n:
            assert time.monotonic() < deadline, "not every entry was stored"
            await asyncio.sleep(0.05)
        await consumer.stop()
        assert counting.inserts <= n // 4, counting.inserts
        await store.stop()
        await nc.close()

    asyncio.run(go())


class LostAck(Journal):
    """Stores the next command and then loses JetStream's acknowledgement (the publish timed
    out after the server had stored it)."""

    lose = False

    async def write(self, entry: pb.JournalEntry, msg_id: str = "") -> bool:
        dup = await super().write(entry, msg_id)
        if self.lose and entry.WhichOneof("entry") == "set_trading_state":
            self.lose = False
            raise UnavailableError("the execution journal did not acknowledge (test)")
        return dup


def test_a_lost_acknowledgement_rebuilds_from_the_journal(server: NatsServer) -> None:
    async def go() -> None:
        bus = Bus(server.url, "execution-test")
        journal = LostAck()
        ex = Execution(bus, journal, Engine(journal, {}))
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        req = pb.SetTradingStateRequest(account="A1", mode="HALTED", reason="r1")  # type: ignore[arg-type]
        assert (await ex.set_trading_state(req)).operator.sequence == 1
        journal.lose = True
        req = pb.SetTradingStateRequest(account="A1", mode="ENABLED", reason="r2")  # type: ignore[arg-type]
        with pytest.raises(UnavailableError):
            await ex.set_trading_state(req)
        # the unanswered change is in the journal: the next call sees it, as a restart would
        got = await ex.get_trading_state(pb.GetTradingStateRequest(account="A1"))
        assert (got.operator.sequence, got.operator.reason) == (2, "r2")
        req = pb.SetTradingStateRequest(account="A1", mode="HALTED", reason="r3")  # type: ignore[arg-type]
        assert (await ex.set_trading_state(req)).operator.sequence == 3
        await ex.stop()
        await bus.stop()

    asyncio.run(go())
