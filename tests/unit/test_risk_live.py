"""services/risk/live.py without NATS: StreamRisk's first message and its end at shutdown,
the slow reader's buffer, unknown accounts, quote mids, and RPCs refused before the journal
was read."""

from __future__ import annotations

import asyncio
import math

import pytest
from tradecore_api.events.v1 import market_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import NotFoundError, UnavailableError
from tradecore_services.risk import live
from tradecore_services.risk.journal import Journal
from tradecore_services.risk.live import Accounts, quote_mid


def accounts() -> Accounts:
    return Accounts(Bus("nats://127.0.0.1:1", "test"), Journal())


def test_stream_risk_starts_with_the_current_snapshot_and_ends_at_shutdown() -> None:
    async def go() -> None:
        acc = accounts()
        acc.restored.set()
        book = acc._book("A1")
        book.evaluate(1)
        gen = acc.stream(pb.StreamRiskRequest(account="A1"))
        first = await gen.__anext__()
        assert first.account == "A1" and first.sequence == 1
        nxt = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0)
        await acc._publish(book, book.evaluate(2))  # no NATS connection: watchers only
        assert (await nxt).sequence == 2
        ending = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0)
        await acc.close_streams()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(ending, 5)
        assert "A1" not in acc._watchers

    asyncio.run(go())


def test_a_slow_reader_keeps_the_newest_snapshots() -> None:
    q: asyncio.Queue[events.RiskSnapshot | None] = asyncio.Queue(live.STREAM_BUFFER)
    for i in range(live.STREAM_BUFFER + 5):
        live._offer(q, events.RiskSnapshot(sequence=i))
    assert q.qsize() == live.STREAM_BUFFER
    first = q.get_nowait()
    assert first is not None and first.sequence == 5


def test_unknown_accounts_are_not_found_and_bad_ones_invalid() -> None:
    async def go() -> None:
        acc = accounts()
        acc.restored.set()
        with pytest.raises(NotFoundError):
            await acc.get_account_risk(pb.GetAccountRiskRequest(account="NOPE"))
        with pytest.raises(NotFoundError):
            await acc.get_limits(pb.GetLimitsRequest(account="NOPE"))
        with pytest.raises(ValueError, match=r"^account "):
            await acc.get_account_risk(pb.GetAccountRiskRequest(account="a.b"))
        gen = acc.stream(pb.StreamRiskRequest(account="NOPE"))
        with pytest.raises(NotFoundError):
            await gen.__anext__()

    asyncio.run(go())


def test_rpcs_wait_for_the_journal_then_are_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "RESTORE_WAIT_S", 0.05)

    async def go() -> None:
        with pytest.raises(UnavailableError):
            await accounts().get_limits(pb.GetLimitsRequest(account="A1"))

    asyncio.run(go())


@pytest.mark.parametrize(
    "bid, ask, mid",
    [(10.0, 10.2, 10.1), (0.0, 10.0, None), (10.2, 10.0, None), (math.nan, 10.0, None)],
)
def test_quote_mid(bid: float, ask: float, mid: float | None) -> None:
    got = quote_mid(market_pb2.Quote(bid_price=bid, ask_price=ask))
    assert got == (None if mid is None else pytest.approx(mid))
