"""The execution service's state, wired to NATS: the journal (journal.py) and the trading
states (state.py).

On each new NATS connection of the service's Bus, :class:`Execution` (1) attaches the journal;
(2) subscribes to the RiskService's trading states, ``risk.state.*``; and (3) the first time,
rebuilds its state by replaying the journal in order, then takes the latest trading state of
every account from the stream ``RISK_JOURNAL`` (a state the subscription delivered meanwhile is
kept when it is newer: states carry a sequence per account).

A trading state from the RiskService takes effect as it arrives (a halt never waits for a
write) and is then journaled as an event, so the journal records what the pre-trade controls
saw. A command (SetTradingState) is journaled first and applied once JetStream acknowledged it,
and only then does the call answer: an answered change survives a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from tradecore.subjects import RiskKind, risk_filter
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common.bus import Bus
from ..common.errors import UnavailableError
from .convert import account, check_mode
from .journal import Journal
from .state import TradingStates

log = logging.getLogger("tradecore.execution")

#: How long an RPC waits for the journal to be replayed at start before UNAVAILABLE.
RESTORE_WAIT_S = 5.0
REBUILD_RETRY_S = 1.0


def apply(states: TradingStates, entry: pb.JournalEntry) -> None:
    """Apply one journal entry (at replay, and after a command is journaled)."""
    which = entry.WhichOneof("entry")
    if which == "set_trading_state":
        req = entry.set_trading_state
        held = states.operator.get(req.account)
        states.set_operator(
            risk_events.TradingState(
                account=req.account,
                mode=req.mode,
                reason=req.reason,
                changed_by=req.changed_by,
                event_time_ns=entry.time_ns,
                sequence=(held.sequence if held is not None else 0) + 1,
            )
        )
    elif which == "risk_state":
        states.set_risk(entry.risk_state)


class Execution:
    """The journaled state of every account and the logic of the RPCs that change it."""

    def __init__(self, bus: Bus, journal: Journal) -> None:
        self.bus = bus
        self.journal = journal
        self.states = TradingStates()
        self.restored = asyncio.Event()
        self.replayed = 0  # journal entries replayed at start
        self._rebuilding: asyncio.Task[None] | None = None
        # One change RPC at a time: each reads the account's sequence, journals, then applies.
        self._changing = asyncio.Lock()
        bus.on_connect(self._on_connect)

    # -- NATS --------------------------------------------------------------------------

    async def _on_connect(self, nc: Client) -> None:
        await self.journal.attach(nc)
        await nc.subscribe(risk_filter(RiskKind.STATE), cb=self._on_risk_state)
        if not self.restored.is_set():
            await self._restore()

    async def _restore(self) -> None:
        """Rebuild the state from the whole journal into fresh objects, then take the latest
        RiskService states (a newer one that arrived meanwhile is kept)."""
        states = TradingStates()
        n = 0
        async for _, entry in self.journal.replay():
            apply(states, entry)
            n += 1
        held = list(self.states.risk.values())
        self.states = states
        for state in held:
            states.set_risk(state)
        for state in (await self.journal.risk_states()).values():
            await self._take_risk_state(state)
        self.replayed = n
        log.info("execution: %d journal entries replayed", n)
        self.restored.set()

    async def _rebuild(self) -> None:
        """After a write whose outcome is unknown: replay until it succeeds (calls wait)."""
        while not self.restored.is_set():
            try:
                await self._restore()
            except Exception as exc:  # NATS still away: try again
                log.warning("execution: journal replay failed (%s); retrying", exc)
                await asyncio.sleep(REBUILD_RETRY_S)
        self._rebuilding = None

    async def _write_command(self, entry: pb.JournalEntry) -> None:
        """Journal a command. When JetStream's acknowledgement does not come, the command may
        still be stored: the state is then rebuilt from the journal before the next call is
        served, so memory never differs from what a restart would rebuild."""
        try:
            await self.journal.write(entry)
        except UnavailableError:
            self.restored.clear()
            if self._rebuilding is None:
                self._rebuilding = asyncio.create_task(self._rebuild(), name="execution-rebuild")
            raise

    async def _on_risk_state(self, msg: Msg) -> None:
        try:
            state = risk_events.TradingState.FromString(msg.data)
            account("account", state.account)
        except (DecodeError, ValueError) as exc:
            log.warning("%s: trading state skipped: %s", msg.subject, exc)
            return
        await self._take_risk_state(state)

    async def _take_risk_state(self, state: risk_events.TradingState) -> None:
        if not self.states.set_risk(state):
            return
        entry = pb.JournalEntry(account=state.account, time_ns=time.time_ns())
        entry.risk_state.CopyFrom(state)
        try:
            await self.journal.write(entry)
        except UnavailableError as exc:
            log.error("risk state of %s not journaled: %s", state.account, exc)

    # -- replay ------------------------------------------------------------------------

    async def stop(self) -> None:
        task, self._rebuilding = self._rebuilding, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- RPCs --------------------------------------------------------------------------

    async def _ready(self) -> None:
        try:
            await asyncio.wait_for(self.restored.wait(), RESTORE_WAIT_S)
        except TimeoutError:
            raise UnavailableError(
                "NATS is unreachable: the execution journal has not been replayed yet"
            ) from None

    async def set_trading_state(
        self, request: pb.SetTradingStateRequest, request_id: str = ""
    ) -> pb.TradingState:
        account("account", request.account)
        check_mode("mode", request.mode)
        await self._ready()
        entry = pb.JournalEntry(account=request.account, request_id=request_id)
        entry.set_trading_state.CopyFrom(request)
        if not entry.set_trading_state.changed_by:
            entry.set_trading_state.changed_by = "operator"
        async with self._changing:
            entry.time_ns = time.time_ns()
            await self._write_command(entry)
            apply(self.states, entry)
        return self.states.get(request.account)

    async def get_trading_state(self, request: pb.GetTradingStateRequest) -> pb.TradingState:
        account("account", request.account)
        await self._ready()
        return self.states.get(request.account)


__all__ = ["RESTORE_WAIT_S", "Execution", "apply"]
