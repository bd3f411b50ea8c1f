"""The accounts the RiskService watches, wired to NATS (the state logic is accounts.py).

On each new NATS connection of the service's Bus, :class:`Accounts` (1) attaches the journal
(journal.py) and, the first time, rebuilds every account's limits, trading state and
SetPositions positions from it, then replays every fill of the stream ``EXEC_FILLS`` so the
positions built from fills come back too; (2) follows ``EXEC_FILLS`` live (fills.py: an
ordered consumer from the sequence after the last fill applied; core NATS only while the
stream does not exist); and (3) subscribes to the quotes of every underlying an account
holds, ``md.*.<symbol>.quote`` (added as accounts come to hold new underlyings).

After every fill or quote that changes an account it publishes ``risk.snapshot.<account>``
(core NATS, ``events.v1.RiskSnapshot``, sequence + 1 per account), the alerts of new breaches
on ``risk.alert.<account>`` and, when the trading mode changed in that update,
``risk.state.<account>`` (a JetStream publish into the journal). The work of one update runs on
the event loop: it is bounded by the account's size (per update a few hundred microseconds for
20 options; docs/benchmarks.md).

The methods behind the RPCs (SetPositions, GetAccountRisk, StreamRisk, SetLimits, GetLimits,
SetTradingState) are here too; every change is journaled before the method returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from tradecore.subjects import (
    MdKind,
    RiskKind,
    md_filter,
    risk_subject,
    validate_token,
)
from tradecore_api.events.v1 import execution_pb2, market_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb

from ..common import tracing
from ..common.bus import Bus
from ..common.errors import NotFoundError, ResourceExhaustedError, UnavailableError
from ..common.nats_rpc import publish
from . import limits as lim
from .accounts import AccountBook, AccountConfig, Update
from .fills import FillFeed
from .journal import Journal

log = logging.getLogger("tradecore.risk.accounts")

#: How long an RPC waits for the journal to be read back at start before UNAVAILABLE.
RESTORE_WAIT_S = 5.0
#: Snapshots a StreamRisk reader may fall behind by; older ones are dropped (newest kept).
STREAM_BUFFER = 64
MAX_ACCOUNTS = 100_000


def quote_mid(quote: market_pb2.Quote) -> float | None:
    """The mid of a two-sided, uncrossed quote with finite prices; None otherwise."""
    bid, ask = quote.bid_price, quote.ask_price
    if not (math.isfinite(bid) and math.isfinite(ask) and bid > 0 and ask >= bid):
        return None
    return 0.5 * (bid + ask)


def account_name(name: str, value: str) -> str:
    return validate_token(name, value)


class Accounts:
    """Every account's :class:`AccountBook`, kept current from NATS, with the RPCs' logic."""

    def __init__(
        self,
        bus: Bus,
        journal: Journal,
        config: AccountConfig | None = None,
        max_accounts: int = MAX_ACCOUNTS,
    ) -> None:
        self.bus = bus
        self.journal = journal
        self.config = config or AccountConfig()
        self.max_accounts = max_accounts
        self.books: dict[str, AccountBook] = {}
        #: underlying -> the accounts holding it.
        self.holders: dict[str, set[str]] = {}
        self._quote_subs: dict[str, Subscription] = {}
        self._nc: Client | None = None
        self._watchers: dict[str, set[asyncio.Queue[events.RiskSnapshot | None]]] = {}
        self.restored = asyncio.Event()
        self.closing = asyncio.Event()
        # One change RPC at a time: each reads the account (version, sequence), journals,
        # then applies; interleaved, two SetLimits would journal the same version.
        self._changing = asyncio.Lock()
        self.fills = FillFeed(self._on_fill)
        #: account -> when its latest SetPositions was journaled (ns): a fill stored in
        #: EXEC_FILLS before that is part of the positions SetPositions replaced.
        self._positions_ns: dict[str, int] = {}
        #: While the fills are read back at start: the accounts they changed (evaluated and
        #: published once each at the end, not once per fill).
        self._replayed: set[str] | None = None
        bus.on_connect(self._on_connect)

    # -- NATS --------------------------------------------------------------------------

    async def _on_connect(self, nc: Client) -> None:
        await self.journal.attach(nc)
        self._nc = nc
        self._quote_subs = {}
        if not self.restored.is_set():
            await self._restore(nc)
        await self.fills.follow(nc)
        for underlying in list(self.holders):
            await self._watch_quotes(underlying)

    async def _restore(self, nc: Client) -> None:
        restored = await self.journal.restore()
        for account in restored.accounts:
            book = self._book(account)
            if account in restored.positions:
                request, t_ns = restored.positions[account]
                book.set_positions(request, t_ns)
                self._positions_ns[account] = t_ns
            if account in restored.limits:
                book.restore_limits(restored.limits[account])
            if account in restored.states:
                book.restore_state(restored.states[account])
            self._track(book)
        log.info("risk accounts: %d restored from the journal", len(restored.accounts))
        self._replayed = set()
        try:
            await self.fills.backlog(nc)
            replayed = self._replayed
        finally:
            self._replayed = None
        now = time.time_ns()
        for account in sorted(replayed):
            book = self.books[account]
            await self._publish(book, book.evaluate(now))
        self.restored.set()

    async def _watch_quotes(self, underlying: str) -> None:
        nc = self._nc
        if nc is None or underlying in self._quote_subs:
            return
        subject = md_filter(MdKind.QUOTE, symbol=underlying)
        self._quote_subs[underlying] = await nc.subscribe(subject, cb=self._on_quote)

    def _track(self, book: AccountBook) -> list[str]:
        """Record the underlyings ``book`` holds; the ones no account held before."""
        new = []
        for underlying in book.legs:
            holders = self.holders.setdefault(underlying, set())
            if not holders:
                new.append(underlying)
            holders.add(book.account)
        return new

    def _book(self, account: str) -> AccountBook:
        book = self.books.get(account)
        if book is None:
            if len(self.books) >= self.max_accounts:
                raise ResourceExhaustedError(
                    f"account: at most {self.max_accounts} accounts are watched"
                )
            book = AccountBook(account, self.config)
            self.books[account] = book
        return book

    async def _on_fill(self, subject: str, data: bytes, stored_ns: int) -> None:
        """Apply a fill (``stored_ns``: when EXEC_FILLS stored it; 0 from core NATS)."""
        account = subject.rsplit(".", 1)[-1]
        try:
            fill = execution_pb2.Fill.FromString(data)
            book = self._book(account_name("account", account))
            if 0 < stored_ns <= self._positions_ns.get(account, 0):
                # Older than the account's latest SetPositions, which replaced it: counted
                # as seen, not applied again (a replay after a restart gives it back).
                if fill.fill_id:
                    book.fill_ids.add(fill.fill_id)
                return
            changed = book.apply_fill(fill)
        except (DecodeError, ValueError, ResourceExhaustedError) as exc:
            log.warning("%s: fill skipped: %s", subject, exc)
            return
        if not changed:
            return
        for underlying in self._track(book):
            await self._watch_quotes(underlying)
        if self._replayed is not None:
            self._replayed.add(book.account)
            return
        await self._publish(book, book.evaluate(time.time_ns()))

    async def _on_quote(self, msg: Msg) -> None:
        try:
            quote = market_pb2.Quote.FromString(msg.data)
        except DecodeError:
            log.warning("%s: not a Quote (%d bytes)", msg.subject, len(msg.data))
            return
        mid = quote_mid(quote)
        if mid is None:
            return
        symbol = msg.subject.split(".")[2]
        with tracing.consume_span(f"consume {msg.subject}", msg.headers):
            for account in list(self.holders.get(symbol, ())):
                book = self.books[account]
                if book.on_quote(symbol, mid):
                    await self._publish(book, book.evaluate(time.time_ns()))

    async def _publish(self, book: AccountBook, update: Update) -> None:
        """The update's snapshot, then its alerts, then its state (journaled)."""
        for q in self._watchers.get(book.account, ()):
            _offer(q, update.snapshot)
        nc = self._nc
        if nc is None:
            return
        account = book.account
        await publish(
            nc, risk_subject(RiskKind.SNAPSHOT, account), update.snapshot.SerializeToString()
        )
        for alert in update.alerts:
            await publish(nc, risk_subject(RiskKind.ALERT, account), alert.SerializeToString())
        if update.state is not None:
            try:
                await self.journal.state(update.state)
            except Exception as exc:  # the state is in memory; the next change journals again
                log.error("%s: trading state not journaled: %s", account, exc)

    # -- RPCs ----------------------------------------------------------------------------

    async def _ready(self) -> None:
        try:
            await asyncio.wait_for(self.restored.wait(), RESTORE_WAIT_S)
        except TimeoutError:
            raise UnavailableError(
                "NATS is unreachable: the risk journal has not been read yet"
            ) from None

    def _known(self, account: str) -> AccountBook:
        account_name("account", account)
        book = self.books.get(account)
        if book is None:
            raise NotFoundError(f"account {account!r} is not known to the risk service")
        return book

    async def set_positions(self, request: pb.SetPositionsRequest) -> pb.AccountRisk:
        account_name("account", request.account)
        await self._ready()
        now = time.time_ns()
        # Checked on a scratch book first: a bad request changes nothing.
        AccountBook(request.account, self.config).set_positions(request, now)
        async with self._changing:
            book = self._book(request.account)
            self._positions_ns[request.account] = await self.journal.positions(request)
            book.set_positions(request, now)
        for underlying in self._track(book):
            await self._watch_quotes(underlying)
        await self._publish(book, book.evaluate(now))
        return book.account_risk(now)

    async def get_account_risk(self, request: pb.GetAccountRiskRequest) -> pb.AccountRisk:
        await self._ready()
        return self._known(request.account).account_risk(time.time_ns())

    async def set_limits(self, request: pb.SetLimitsRequest) -> pb.Limits:
        account_name("account", request.account)
        await self._ready()
        new = lim.validate_limits(request.limits)
        async with self._changing:
            book = self._book(request.account)
            new.account = request.account
            new.version = book.limits.version + 1
            await self.journal.limits(new)
            book.restore_limits(new)
        log.info(
            "%s: limits version %d set by %s", request.account, new.version, request.changed_by
        )
        return new

    async def get_limits(self, request: pb.GetLimitsRequest) -> pb.Limits:
        await self._ready()
        return self._known(request.account).limits

    async def set_trading_state(self, request: pb.SetTradingStateRequest) -> events.TradingState:
        account_name("account", request.account)
        lim.check_mode("mode", request.mode)
        await self._ready()
        async with self._changing:
            book = self._book(request.account)
            state = book.state()
            state.mode = request.mode
            state.reason = request.reason
            state.changed_by = request.changed_by
            state.event_time_ns = time.time_ns()
            state.sequence += 1
            await self.journal.state(state)  # journaled and published on risk.state.<account>
            book.restore_state(state)
        return state

    async def stream(self, request: pb.StreamRiskRequest) -> AsyncIterator[events.RiskSnapshot]:
        """The account's current snapshot, then each new one, until the caller cancels or the
        service shuts down (:meth:`close_streams`)."""
        await self._ready()
        book = self._known(request.account)
        q: asyncio.Queue[events.RiskSnapshot | None] = asyncio.Queue(STREAM_BUFFER)
        watchers = self._watchers.setdefault(request.account, set())
        watchers.add(q)
        try:
            yield book.account_risk(time.time_ns()).snapshot
            while not self.closing.is_set():
                snap = await q.get()
                if snap is None:
                    return
                yield snap
        finally:
            watchers.discard(q)
            if not watchers:
                self._watchers.pop(request.account, None)

    async def close_streams(self) -> None:
        """End every StreamRisk cleanly (the server is shutting down)."""
        self.closing.set()
        for qs in self._watchers.values():
            for q in qs:
                _offer(q, None)

    async def stop(self) -> None:
        await self.close_streams()
        await self.fills.stop()
        for sub in self._quote_subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._quote_subs = {}


class AccountMethods:
    """The RiskService's account RPCs, mixed into its servicer (which sets ``accounts``)."""

    accounts: Accounts

    async def SetPositions(
        self, request: pb.SetPositionsRequest, context: object
    ) -> pb.AccountRisk:
        return await self.accounts.set_positions(request)

    async def GetAccountRisk(
        self, request: pb.GetAccountRiskRequest, context: object
    ) -> pb.AccountRisk:
        return await self.accounts.get_account_risk(request)

    async def StreamRisk(
        self, request: pb.StreamRiskRequest, context: object
    ) -> AsyncIterator[events.RiskSnapshot]:
        async for snapshot in self.accounts.stream(request):
            yield snapshot

    async def SetLimits(self, request: pb.SetLimitsRequest, context: object) -> pb.Limits:
        return await self.accounts.set_limits(request)

    async def GetLimits(self, request: pb.GetLimitsRequest, context: object) -> pb.Limits:
        return await self.accounts.get_limits(request)

    async def SetTradingState(
        self, request: pb.SetTradingStateRequest, context: object
    ) -> events.TradingState:
        return await self.accounts.set_trading_state(request)


def _offer(q: asyncio.Queue[events.RiskSnapshot | None], item: events.RiskSnapshot | None) -> None:
    """Put ``item``, dropping the oldest snapshot when the reader is that far behind."""
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
    q.put_nowait(item)


__all__ = ["AccountMethods", "Accounts", "quote_mid"]
