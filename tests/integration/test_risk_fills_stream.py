"""The RiskService's fills come from the JetStream stream EXEC_FILLS (services/risk/fills.py),
against a real nats-server: a new instance of the service rebuilds every account's positions
from the fills stored while no instance ran, then follows the stream live; a fill stored twice
counts once; a fill older than the account's latest SetPositions is not applied again; without
the stream SetPositions keeps working, fills come from core NATS, and the stream is read once
the execution service makes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from tradecore.subjects import ExecKind, RiskKind, exec_subject, risk_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.execution.journal import Journal as ExecJournal
from tradecore_services.risk.journal import Journal
from tradecore_services.risk.live import Accounts

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


async def connect(url: str) -> nats.NATS:
    deadline = time.monotonic() + 20
    while True:
        try:
            return await nats.connect(url, max_reconnect_attempts=0)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def fill(acct: str, fill_id: str, symbol: str, qty: int) -> execution_pb2.Fill:
    f = execution_pb2.Fill(
        fill_id=fill_id, account=acct, side=common_pb2.BUY if qty > 0 else common_pb2.SELL,
        quantity=abs(qty), price=10.0, exchange_time_ns=time.time_ns(),
    )  # fmt: skip
    f.instrument.symbol = symbol
    f.instrument.kind = common_pb2.EQUITY
    return f


async def store(js: JetStreamContext, f: execution_pb2.Fill, msg_id: str) -> None:
    """Store ``f`` in EXEC_FILLS under ``msg_id`` (a new id: stored again, as a redelivery)."""
    subject = exec_subject(ExecKind.FILL, f.account)
    await js.publish(subject, f.SerializeToString(), headers={"Nats-Msg-Id": msg_id})


async def start(url: str) -> tuple[Bus, Accounts]:
    bus = Bus(url, "risk-test")
    accounts = Accounts(bus, Journal())
    accounts.fills.retry_s = 0.05
    await bus.start()
    await asyncio.wait_for(accounts.restored.wait(), 20)
    return bus, accounts


async def stop(bus: Bus, accounts: Accounts) -> None:
    await accounts.stop()
    await bus.stop()


def held(accounts: Accounts, acct: str) -> dict[str, float]:
    risk = accounts.books[acct].account_risk(time.time_ns()) if acct in accounts.books else None
    return {} if risk is None else {p.instrument.symbol: p.quantity for p in risk.positions}


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def exec_stream(nc: nats.NATS) -> JetStreamContext:
    """EXEC_FILLS made as the execution service makes it."""
    await ExecJournal().attach(nc)
    return nc.jetstream()


def test_a_new_instance_rebuilds_fill_built_positions_and_counts_a_fill_once(
    server: NatsServer,
) -> None:
    async def go() -> None:
        nc = await connect(server.url)
        js = await exec_stream(nc)
        # Stored before any risk instance runs; f1 twice (a redelivery under a new id).
        await store(js, fill("A", "f1", "UA", 100), "f1")
        await store(js, fill("A", "f1", "UA", 100), "f1-again")
        await store(js, fill("A", "f2", "UA", 50), "f2")
        bus, accounts = await start(server.url)
        assert held(accounts, "A") == {"UA": 150}  # read back before the RPCs answer
        await store(js, fill("A", "f3", "UA", 10), "f3")  # live
        await until(lambda: held(accounts, "A") == {"UA": 160}, "live fill f3")
        # Account B: a fill, then SetPositions replacing it, then a fill on top.
        await store(js, fill("B", "g1", "UB", 7), "g1")
        await until(lambda: held(accounts, "B") == {"UB": 7}, "live fill g1")
        req = pb.SetPositionsRequest(account="B")
        req.positions.add(
            instrument=pb.RiskInstrument(symbol="XB", kind=common_pb2.EQUITY), quantity=-40
        )
        req.market.underlyings.add(symbol="XB", spot=20, volatility=0.3)
        await accounts.set_positions(req)
        assert held(accounts, "B") == {"XB": -40}
        await store(js, fill("B", "g2", "UB", 3), "g2")
        await until(lambda: held(accounts, "B") == {"XB": -40, "UB": 3}, "live fill g2")
        await stop(bus, accounts)

        # While no instance runs: a new fill and f3 delivered again.
        await store(js, fill("A", "f4", "UA", 1), "f4")
        await store(js, fill("A", "f3", "UA", 10), "f3-again")
        snaps: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(risk_subject(RiskKind.SNAPSHOT, "A"), cb=snaps.put)
        bus, accounts = await start(server.url)
        assert held(accounts, "A") == {"UA": 161}
        assert held(accounts, "B") == {"XB": -40, "UB": 3}
        await store(js, fill("A", "f5", "UA", 2), "f5")
        await until(lambda: held(accounts, "A") == {"UA": 163}, "live fill f5 after restart")
        # One snapshot for the fills read back (not one per fill), then one for f5.
        deltas = []
        while not deltas or deltas[-1] != 163:
            msg = await asyncio.wait_for(snaps.get(), 10)
            deltas.append(events.RiskSnapshot.FromString(msg.data).total.delta)
        assert deltas == [161, 163]
        await stop(bus, accounts)
        await nc.close()

    asyncio.run(go())


def test_without_the_stream_set_positions_works_and_fills_come_once_it_exists(
    server: NatsServer,
) -> None:
    async def go() -> None:
        nc = await connect(server.url)
        bus, accounts = await start(server.url)  # no EXEC_FILLS: the service still starts
        req = pb.SetPositionsRequest(account="C")
        req.positions.add(
            instrument=pb.RiskInstrument(symbol="XC", kind=common_pb2.EQUITY), quantity=5
        )
        req.market.underlyings.add(symbol="XC", spot=20, volatility=0.3)
        risk = await accounts.set_positions(req)
        assert risk.snapshot.total.delta == 5
        subject = exec_subject(ExecKind.FILL, "C")
        await nc.publish(subject, fill("C", "h1", "UC", 4).SerializeToString())
        await until(lambda: held(accounts, "C") == {"XC": 5, "UC": 4}, "core fill h1")

        js = await exec_stream(nc)  # the execution service starts
        await store(js, fill("C", "h1", "UC", 4), "h1")  # seen on core NATS already
        await store(js, fill("C", "h2", "UC", 1), "h2")
        await until(lambda: held(accounts, "C") == {"XC": 5, "UC": 5}, "stream fill h2")
        await stop(bus, accounts)

        bus, accounts = await start(server.url)
        assert held(accounts, "C") == {"XC": 5, "UC": 5}
        await stop(bus, accounts)
        await nc.close()

    asyncio.run(go())
