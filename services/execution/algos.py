"""Execution algorithms inside the execution service: ``tradecore.oms.algos.AlgoEngine`` inside
the engine's OMS calls, its commands and progress journaled, its RPCs (StartAlgo, GetAlgo, StopAlgo,
ListAlgos).

Every child is an ordinary order of the service's OMS (``OMS.submit``): the pre-trade
controls, the journal (its events through the engine's sink) and the venue, like any
SubmitOrder. The algo engine is driven inside OMS calls by the market data the service
already takes (``md.*.*.quote``: every quote; ``md.*.*.trade``: every trade while the paper
venue runs) and by a clock task (:class:`AlgoCalls` ``run``) that calls ``on_time`` when the
next slice, end or duplicate-window hold is due; times are the OMS's clock (the paper venue's
market time, never behind the wall clock; the wall clock without a paper venue).

Journal (``execution.v1.JournalEntry``):

- ``start_algo`` (command, ``AlgoStart``): the request with what the service resolved (the algo
  id, the start and end times, the VWAP curve), written before the algo starts; message id
  ``algo.<algo_id>`` (a retried write within the duplicate window is stored once).
- ``stop_algo`` (command, ``StopAlgoRequest``), written before the stop applies.
- ``algo_progress`` (event, ``AlgoProgress``): ``AlgoEngine.snapshot`` as JSON with a version
  per algo, written after every OMS call that changed an algo's decisions (children, slices,
  state, holds, arrival price), and after a change of its market volume only at most once per
  :data:`VOLUME_PROGRESS_NS`. The call answers after its progress is journaled.

At start (and after a journal write whose outcome is unknown) the service rebuilds every algo
from the newest ``algo_progress`` of each (``AlgoEngine.restore``: children the OMS holds
under the algo's next client order ids, sent after that snapshot, are adopted, so none is sent
twice), starts algos journaled without progress, applies journaled stops, and then lets them
carry on: a slice due while the service was down is sent at once (the schedule's cumulative
target less what is filled and working). Market volume seen after an algo's last snapshot and
before a crash is not in its TCA or its POV volume after the restart.

Algo ids are ``ALGO-`` and 20 hex digits of a hash of (account, client_algo_id), so a
repeated StartAlgo finds its algo; children's client order ids are ``<algo_id>.<n>`` (n = 1, 2,
... in send order), a prefix SubmitOrder refuses (convert.py). An account whose effective
trading state becomes HALTED has its working algos stopped (reason ``trading halted``); a
StartAlgo for a HALTED account is FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import nats.errors
from google.protobuf.message import DecodeError
from tradecore.errors import quote
from tradecore.oms.algos import Algo, AlgoEngine, AlgoKind, AlgoNotFound, AlgoSpec, AlgoState
from tradecore.oms.oms import OMS
from tradecore.subjects import MARKETDATA_VOLUME_CURVE, validate_token
from tradecore_api.events.v1 import market_pb2 as market_events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common import nats_rpc
from ..common.errors import NotFoundError, PreconditionError, UnavailableError
from . import convert

if TYPE_CHECKING:
    from .live import Execution

log = logging.getLogger("tradecore.execution.algos")
T = TypeVar("T")

ALGO_PREFIX = convert.ALGO_CHILD_PREFIX
MAX_CLIENT_ALGO_ID = 64
DEFAULT_SLICES = 10
MAX_SLICES = 10_000
#: A change of an algo's market volume alone is journaled at most this often.
VOLUME_PROGRESS_NS = 1_000_000_000
#: How long StartAlgo waits for the market-data service's stored VWAP curve.
CURVE_TIMEOUT_S = 2.0
#: How often the clock task looks whether an algo's next wake-up is due.
TICK_S = 0.05
#: StopAlgo's reason when the request gives none, and the halt's.
STOPPED = "stopped"
HALTED = "trading halted"

KINDS: dict[int, AlgoKind] = {
    pb.TWAP: AlgoKind.TWAP,
    pb.VWAP: AlgoKind.VWAP,
    pb.POV: AlgoKind.POV,
    pb.IS: AlgoKind.IS,
    pb.ICEBERG: AlgoKind.ICEBERG,
}
KIND_OF = {v: k for k, v in KINDS.items()}
STATE_OF: dict[AlgoState, pb.AlgoState] = {
    AlgoState.WORKING: pb.ALGO_WORKING,
    AlgoState.COMPLETED: pb.ALGO_COMPLETED,
    AlgoState.STOPPED: pb.ALGO_STOPPED,
}
_SCHEDULED = (AlgoKind.TWAP, AlgoKind.VWAP, AlgoKind.IS)
#: The library's names of AlgoSpec fields that the request names otherwise.
_FIELD = {"rate": "participation_rate", "start_ns": "start_time_ns", "end_ns": "end_time_ns"}
_LEADING_NAME = re.compile(r"^([a-z_]+)((?:\[\d+\])?) (.*)$", re.DOTALL)


def algo_id_of(account: str, client_algo_id: str) -> str:
    digest = hashlib.sha256(f"{account}\0{client_algo_id}".encode()).hexdigest()
    return f"{ALGO_PREFIX}{digest[:20]}"


def _request_error(exc: ValueError) -> ValueError:
    """The library's ``<field> must ...`` as ``<request field>: must ...``."""
    m = _LEADING_NAME.match(str(exc))
    if m is None:
        return exc
    return ValueError(f"{_FIELD.get(m.group(1), m.group(1))}{m.group(2)}: {m.group(3)}")


def check_start(req: pb.StartAlgoRequest, now_ns: int) -> pb.AlgoStart:
    """``req`` checked field by field (ValueError naming the first bad one) and resolved at
    ``now_ns``: the algo id, the start (0: at once), the end (0: none) and the VWAP curve."""
    convert.account("account", req.account)
    cid = req.client_algo_id
    if not cid:
        raise ValueError("client_algo_id: must not be empty (it makes the start idempotent)")
    if len(cid) > MAX_CLIENT_ALGO_ID or not cid.isprintable():
        raise ValueError(
            f"client_algo_id: must be printable and at most {MAX_CLIENT_ALGO_ID} characters, "
            f"got {quote(cid)}"
        )
    validate_token("symbol", req.symbol)
    if req.side not in convert.SIDES:
        raise ValueError(f"side: must be BUY or SELL, got {quote(req.side)}")
    if not 0 < req.quantity <= convert.MAX_QUANTITY:
        raise ValueError(
            f"quantity: must be in 1..{convert.MAX_QUANTITY}, got {quote(req.quantity)}"
        )
    if req.kind not in KINDS:
        raise ValueError(f"kind: must be TWAP, VWAP, POV, IS or ICEBERG, got {quote(req.kind)}")
    kind = KINDS[req.kind]
    convert.venue(req.venue)
    if req.HasField("limit_price") and not (math.isfinite(req.limit_price) and req.limit_price > 0):
        raise ValueError(f"limit_price: must be a finite number > 0, got {quote(req.limit_price)}")
    if req.start_time_ns < 0:
        raise ValueError(f"start_time_ns: must be >= 0, got {req.start_time_ns}")
    if req.end_time_ns < 0:
        raise ValueError(f"end_time_ns: must be >= 0, got {req.end_time_ns}")
    if not (math.isfinite(req.duration_s) and req.duration_s >= 0):
        raise ValueError(f"duration_s: must be a finite number >= 0, got {quote(req.duration_s)}")
    if req.end_time_ns and req.duration_s:
        raise ValueError("duration_s: give end_time_ns or duration_s, not both")
    if not 0 <= req.slices <= MAX_SLICES:
        raise ValueError(f"slices: must be in 0..{MAX_SLICES} (0: 10), got {req.slices}")
    if len(req.curve) > MAX_SLICES:
        raise ValueError(f"curve: at most {MAX_SLICES} buckets, got {len(req.curve)}")
    start = req.start_time_ns if req.start_time_ns > now_ns else 0
    begin = start or now_ns
    end = req.end_time_ns
    if req.duration_s:
        end = begin + round(req.duration_s * 1e9)
    if kind in _SCHEDULED and not end:
        raise ValueError(f"end_time_ns: required for a {kind.value} algo (or duration_s)")
    if end and end <= begin:
        raise ValueError(f"end_time_ns: must be after the start {begin}, got {end}")
    out = pb.AlgoStart(algo_id=algo_id_of(req.account, cid), start_time_ns=start, end_time_ns=end)
    out.request.CopyFrom(req)
    if not req.slices:
        out.request.slices = DEFAULT_SLICES
    if kind is AlgoKind.VWAP:
        if req.curve:
            out.curve_source = "request"
        else:  # flat until a stored curve replaces it (AlgoCalls.start_algo)
            out.request.curve.extend([1.0] * out.request.slices)
            out.curve_source = "flat"
    spec_of(out)  # every field the library checks
    return out


def spec_of(start: pb.AlgoStart) -> AlgoSpec:
    """The library's spec of a resolved start (ValueError naming the request's field)."""
    req = start.request
    kind = KINDS[req.kind]
    try:
        return AlgoSpec(
            kind=kind,
            account=req.account,
            symbol=req.symbol,
            side=convert.SIDES[req.side],
            quantity=int(req.quantity),
            start_ns=start.start_time_ns or None,
            end_ns=start.end_time_ns or None,
            limit_price=req.limit_price if req.HasField("limit_price") else None,
            venue=convert.venue(req.venue),
            slices=int(req.slices) or DEFAULT_SLICES,
            randomize=req.randomize,
            seed=int(req.seed),
            curve=tuple(req.curve),
            rate=req.participation_rate,
            min_rate=req.min_rate if req.HasField("min_rate") else None,
            max_rate=req.max_rate if req.HasField("max_rate") else None,
            risk_aversion=req.risk_aversion,
            volatility=req.volatility,
            impact=req.impact if kind is AlgoKind.IS else 0.0,
            display_quantity=int(req.display_quantity),
        )
    except ValueError as exc:
        raise _request_error(exc) from None


@dataclass(slots=True)
class _Journaled:
    """What the journal holds of an algo: its last snapshot's decisions and market volume,
    when it was written, its version."""

    decisions: str
    volume: int
    time_ns: int
    version: int
    final: bool

    def behind(self, decisions: str, volume: int, now_ns: int) -> bool:
        """Whether the algo's state now must be journaled."""
        if decisions != self.decisions:
            return True
        return volume != self.volume and now_ns - self.time_ns >= VOLUME_PROGRESS_NS


def _decisions(snapshot: dict[str, Any]) -> str:
    rest = {k: v for k, v in snapshot.items() if k not in ("market_volume", "market_value")}
    return json.dumps(rest, sort_keys=True)


class Algos:
    """The service's algo engine and what the journal holds of each algo. The engine and
    the journaled records are used on the OMS thread only; ``starts`` is kept on the loop
    (filled at the replay and by StartAlgo) and read by both."""

    def __init__(self) -> None:
        self.engine: AlgoEngine | None = None
        #: Every algo's resolved start, by id, in start order.
        self.starts: dict[str, pb.AlgoStart] = {}
        self._journaled: dict[str, _Journaled] = {}
        self._pending: list[str] = []  # journaled starts without progress (rebuild -> resume)
        self._stops: dict[str, str] = {}  # journaled stops (rebuild -> resume)
        #: The earliest time an algo needs ``on_time`` (written on the OMS thread).
        self.next_wake: int | None = None

    # -- rebuild (the journal's replay) ----------------------------------------------------

    def rebuild(
        self,
        oms: OMS,
        starts: dict[str, pb.AlgoStart],
        progress: dict[str, pb.AlgoProgress],
        stops: dict[str, str],
    ) -> None:
        """A new engine over the (replayed) ``oms`` with every journaled algo (OMS thread)."""
        self.engine = AlgoEngine(oms, id_prefix=ALGO_PREFIX)
        self.starts = dict(starts)
        self._journaled = {}
        self._pending = []
        self._stops = dict(stops)
        for algo_id in starts:
            p = progress.get(algo_id)
            if p is None:
                self._pending.append(algo_id)
                continue
            snapshot = json.loads(p.json)
            algo = self.engine.restore(snapshot)
            self._journaled[algo_id] = _Journaled(
                _decisions(snapshot),
                int(snapshot["market_volume"]),
                0,
                p.version,
                algo.state is not AlgoState.WORKING,
            )

    def resume(self, oms: OMS) -> None:
        """Start the algos journaled without progress, apply the journaled stops (OMS
        thread; the caller journals the progress)."""
        pending, self._pending = self._pending, []
        for algo_id in pending:
            try:
                self.start(self.starts[algo_id])
            except ValueError as exc:  # e.g. its end passed while the service was down
                log.error("algo %s: not resumed: %s", algo_id, exc)
                self.starts.pop(algo_id, None)
        stops, self._stops = self._stops, {}
        for algo_id, reason in stops.items():
            with contextlib.suppress(AlgoNotFound):
                self._engine().stop(algo_id, reason)

    # -- OMS thread --------------------------------------------------------------------------

    def _engine(self) -> AlgoEngine:
        if self.engine is None:
            raise PreconditionError("the algo engine is not rebuilt yet")
        return self.engine

    def start(self, start: pb.AlgoStart) -> Algo:
        return self._engine().start(spec_of(start), algo_id=start.algo_id)

    def stop(self, algo_id: str, reason: str) -> Algo:
        return self._engine().stop(algo_id, reason)

    def get(self, algo_id: str) -> Algo:
        try:
            return self._engine().get(algo_id)
        except AlgoNotFound:
            raise NotFoundError(f"algo_id: unknown algo {quote(algo_id)}") from None

    def on_quote(self, symbol: str, bid: float, ask: float, time_ns: int) -> None:
        if self.engine is not None:
            self.engine.on_quote(symbol, bid, ask, time_ns)

    def on_trade(self, symbol: str, price: float, size: int, time_ns: int) -> None:
        if self.engine is not None and math.isfinite(price) and price > 0 and size > 0:
            self.engine.on_trade(symbol, price, int(size), time_ns)

    def on_time(self, time_ns: int) -> None:
        if self.engine is not None:
            self.engine.on_time(time_ns)

    def halt(self, account: str) -> None:
        """Stop the account's working algos (its trading state is HALTED)."""
        if self.engine is None:
            return
        for a in self.engine.algos():
            if a.spec.account == account and a.state is AlgoState.WORKING:
                self.engine.stop(a.algo_id, HALTED)

    def collect(self, now_ns: int) -> list[pb.JournalEntry]:
        """The progress records of every algo whose journaled state is behind (see the
        module docstring); the caller journals them. Sets :attr:`next_wake`."""
        engine = self.engine
        if engine is None:
            return []
        out: list[pb.JournalEntry] = []
        for algo_id in engine.ids():
            held = self._journaled.get(algo_id)
            if held is not None and held.final:  # done, and journaled so
                continue
            a = engine.get(algo_id)
            snapshot = engine.snapshot(algo_id)
            decisions = _decisions(snapshot)
            volume = a.market_volume
            if held is not None and not held.behind(decisions, volume, now_ns):
                continue
            version = 1 if held is None else held.version + 1
            entry = pb.JournalEntry(account=a.spec.account, time_ns=now_ns)
            entry.algo_progress.algo_id = a.algo_id
            entry.algo_progress.version = version
            entry.algo_progress.json = json.dumps(snapshot, separators=(",", ":")).encode()
            out.append(entry)
            final = a.state is not AlgoState.WORKING
            self._journaled[a.algo_id] = _Journaled(decisions, volume, now_ns, version, final)
        self.next_wake = engine.next_wakeup()
        return out

    def message(self, oms: OMS, algo_id: str) -> pb.Algo:
        a = self.get(algo_id)
        start = self.starts[algo_id]
        req = start.request
        out = pb.Algo(
            algo_id=a.algo_id,
            client_algo_id=req.client_algo_id,
            account=req.account,
            symbol=req.symbol,
            side=req.side,
            kind=req.kind,
            state=STATE_OF[a.state],
            reason=a.reason,
            quantity=a.spec.quantity,
            filled_quantity=a.filled_quantity,
            working_quantity=a.working_quantity,
            average_price=a.average_price or 0.0,
            start_time_ns=a.start_ns,
            end_time_ns=a.end_ns or 0,
            ended_time_ns=a.ended_ns or 0,
            curve_source=start.curve_source,
        )
        out.request.CopyFrom(req)
        for oid in a.children:
            o = oms.order(oid)
            out.children.add(
                order_id=o.order_id,
                client_order_id=o.client_order_id,
                status=convert.STATUSES[o.status],
                quantity=o.quantity,
                filled_quantity=o.filled_quantity,
                average_price=o.average_fill_price,
                reason=o.reason,
            )
        tca = a.tca()
        out.tca.market_volume = tca.market_volume
        for name in (
            "arrival_price",
            "average_price",
            "slippage_arrival_bps",
            "interval_vwap",
            "slippage_vwap_bps",
            "participation",
        ):
            value = getattr(tca, name)
            if value is not None and math.isfinite(value):
                setattr(out.tca, name, value)
        return out


class AlgoCalls:
    """The algo RPCs and the clock task, over the service's :class:`Execution`."""

    def __init__(self, execution: Execution) -> None:
        self.ex = execution
        self.algos = execution.algos
        self._starting = asyncio.Lock()  # check, journal and start one StartAlgo at a time
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        """Start the clock task (once, on the loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._clock(), name="algo-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            wake = self.algos.next_wake
            if wake is None or not self.ex.restored.is_set():
                continue
            if wake > max(time.time_ns(), self.ex.engine.clock_ns()):
                continue
            try:
                await self.ex._oms(lambda oms: self.algos.on_time(oms.clock_ns()))
            except Exception as exc:  # journal away: the rebuild follows; try again
                log.warning("algo clock: %s", exc)

    async def _call(self, fn: Callable[[OMS], T], request_id: str = "") -> T:
        return await self.ex._oms(fn, request_id)

    async def start_algo(self, req: pb.StartAlgoRequest, request_id: str = "") -> pb.Algo:
        now = max(time.time_ns(), self.ex.engine.clock_ns())
        start = check_start(req, now)
        self.ex._venue(convert.venue(req.venue))
        await self.ex._ready()
        algo_id = start.algo_id
        if algo_id not in self.algos.starts and KINDS[req.kind] is AlgoKind.VWAP and not req.curve:
            await self._stored_curve(start, now)
        async with self._starting:
            if algo_id in self.algos.starts:  # a repeated client_algo_id: the existing algo
                return await self._call(lambda oms: self.algos.message(oms, algo_id))
            if self.ex.states.mode(req.account) == risk_events.HALTED:
                raise PreconditionError(f"account: trading is HALTED for {req.account}")
            entry = pb.JournalEntry(account=req.account, request_id=request_id)
            entry.time_ns = time.time_ns()
            entry.start_algo.CopyFrom(start)
            await self.ex._write_command(entry, f"algo.{algo_id}")
            self.algos.starts[algo_id] = start

            def run(oms: OMS) -> pb.Algo:
                self.algos.start(start)
                return self.algos.message(oms, algo_id)

            try:
                return await self._call(run, request_id)
            except ValueError:  # the clock passed the end meanwhile: the start is void
                self.algos.starts.pop(algo_id, None)
                raise

    async def _stored_curve(self, start: pb.AlgoStart, now_ns: int) -> None:
        """Replace the flat curve of ``start`` by the stored volume profile of its window from
        the market-data service (``marketdata.v1.volume_curve``); keep it flat, saying why,
        when there is none or no answer within :data:`CURVE_TIMEOUT_S`."""
        req = start.request
        ask = market_events.VolumeCurveRequest(
            symbol=req.symbol,
            start_time_ns=start.start_time_ns or now_ns,
            end_time_ns=start.end_time_ns,
            buckets=req.slices,
        )
        nc = self.ex.bus.nc
        try:
            if nc is None or not nc.is_connected:
                raise UnavailableError("NATS is not connected")
            data, _ = await nats_rpc.request(
                nc, MARKETDATA_VOLUME_CURVE, ask.SerializeToString(), timeout=CURVE_TIMEOUT_S
            )
            curve = market_events.VolumeCurve.FromString(data)
        except (nats_rpc.NatsRpcError, nats.errors.Error, UnavailableError, DecodeError) as exc:
            why = exc.message if isinstance(exc, nats_rpc.NatsRpcError) else type(exc).__name__
            start.curve_source = f"flat: {why}"
            return
        if len(curve.weights) != req.slices or not sum(curve.weights) > 0:
            start.curve_source = "flat: the stored curve was malformed"
            return
        del start.request.curve[:]
        start.request.curve.extend(curve.weights)
        start.curve_source = f"stored: {curve.days} days"

    async def get_algo(self, req: pb.GetAlgoRequest) -> pb.Algo:
        algo_id = _algo_id(req.algo_id)
        await self.ex._ready()
        return await self._call(lambda oms: self.algos.message(oms, algo_id))

    async def stop_algo(self, req: pb.StopAlgoRequest, request_id: str = "") -> pb.Algo:
        algo_id = _algo_id(req.algo_id)
        if len(req.reason) > 256:
            raise ValueError(f"reason: at most 256 characters, got {len(req.reason)}")
        await self.ex._ready()
        start = self.algos.starts.get(algo_id)
        if start is None:
            raise NotFoundError(f"algo_id: unknown algo {quote(algo_id)}")
        entry = pb.JournalEntry(account=start.request.account, request_id=request_id)
        entry.time_ns = time.time_ns()
        entry.stop_algo.CopyFrom(req)
        await self.ex._write_command(entry)
        reason = req.reason or STOPPED

        def run(oms: OMS) -> pb.Algo:
            self.algos.stop(algo_id, reason)
            return self.algos.message(oms, algo_id)

        return await self._call(run, request_id)

    async def list_algos(self, req: pb.ListAlgosRequest) -> pb.ListAlgosResponse:
        acct = convert.account("account", req.account)
        await self.ex._ready()

        def run(oms: OMS) -> pb.ListAlgosResponse:
            mine = [
                a
                for a in self.algos._engine().algos()
                if a.spec.account == acct
                and a.algo_id in self.algos.starts
                and (not req.working_only or a.state is AlgoState.WORKING)
            ]
            mine.sort(key=lambda a: a.start_ns, reverse=True)
            return pb.ListAlgosResponse(algos=[self.algos.message(oms, a.algo_id) for a in mine])

        return await self._call(run)


def _algo_id(value: str) -> str:
    if not value:
        raise ValueError("algo_id: must not be empty")
    if len(value) > 128:
        raise ValueError(f"algo_id: at most 128 characters, got {len(value)}")
    return value


def replay_entry(
    entry: pb.JournalEntry,
    starts: dict[str, pb.AlgoStart],
    progress: dict[str, pb.AlgoProgress],
    stops: dict[str, str],
) -> bool:
    """Take an algo record of the journal's replay into the three maps; False for another
    entry."""
    which = entry.WhichOneof("entry")
    if which == "start_algo":
        starts.setdefault(entry.start_algo.algo_id, entry.start_algo)
    elif which == "stop_algo":
        stops.setdefault(entry.stop_algo.algo_id, entry.stop_algo.reason or STOPPED)
    elif which == "algo_progress":
        held = progress.get(entry.algo_progress.algo_id)
        if held is None or entry.algo_progress.version > held.version:
            progress[entry.algo_progress.algo_id] = entry.algo_progress
    else:
        return False
    return True


__all__ = [
    "ALGO_PREFIX",
    "AlgoCalls",
    "Algos",
    "algo_id_of",
    "check_start",
    "replay_entry",
    "spec_of",
]
