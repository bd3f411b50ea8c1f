"""``tradecore chaos``: mixed load through the gateway of a running mesh while every component is
killed (SIGKILL) in turn, then a check that nothing acknowledged was lost or doubled.

    tradecore chaos [--duration 60] [--rate 40] [--out FILE] [--kill all|NAME,...|none]
                    [--seed N] [--data-dir DIR]

Load (through the gateway, with an admin token minted from the data directory's key, over TLS
when the gateway serves it): ``--rate`` calls per second in turn of PricingService.Price,
MarketDataService.GetBars and GetBook, ModelInfer on a small model (``chaos_probe``, registered
with ``tradecore model register`` when absent) and SubmitOrder. Orders are marketable IOC
limits on the paper venue, which the tool's quotes on NATS keep priced; they go one at a time,
each with its own client_order_id, retried with that id until answered: the answers are the
independent record. A synthetic feed runs meanwhile (one after another, each on a symbol of its
own), its published and stored counts followed.

Kills: the components of ``<data>/mesh.json`` (nats-server, each service, the access logger,
Envoy), spaced evenly across the run; for each the time until its health check passes again
with a new process (gRPC health, Envoy's ``/ready``, NATS ``/healthz``) and the calls that
failed meanwhile, by kind.

Afterwards: orders (every answered order listed once with its answered state, none unknown),
fills (``EXEC_FILLS`` once per fill id, per order the answered quantity), the position (the
record's fills netted), ticks (each feed's sequences stored once, all of a finished feed's and
at least the acknowledged ones of an interrupted feed). Latency percentiles and error counts
per kind. JSON to ``--out``, a summary on stdout.

Exit status: 0 nothing lost or doubled and every killed component healthy again; 1 otherwise;
2 bad input; 3 the mesh is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from .chaos_accounting import (
    FeedRecord,
    FillRecord,
    OrderRecord,
    PositionRecord,
    check_fills,
    check_orders,
    check_position,
    check_ticks,
)
from .config import MeshConfig

# y = x + 1 on float32 [batch, 4]: onnx.helper.make_graph([make_node("Add", ["x", "one"],
# ["y"])], ...) at opset 13, IR version 8, serialized. The smallest model that exercises
# ModelInfer end to end, carried here so the tool needs no model building package.
PROBE_MODEL = "chaos_probe"
PROBE_ONNX = base64.b64decode(
    "CAg6ZAoQCgF4CgNvbmUSAXkiA0FkZBILY2hhb3NfcHJvYmUqDwgBEAEiBAAAgD9CA29uZVoYCgF4EhMKEQgBEg0K"
    "BxIFYmF0Y2gKAggEYhgKAXkSEwoRCAESDQoHEgViYXRjaAoCCARCBAoAEA0="
)
BID, ASK, QUOTE_SIZE = 99.9, 100.1, 1_000_000_000
QUOTE_EVERY_S = 0.2
CALL_TIMEOUT_S = 5.0
HEALTHY_TIMEOUT_S = 60.0
ORDER_ANSWER_TIMEOUT_S = 90.0
FEED_RATE = 200.0  # ticks per second of each synthetic feed
FEED_SECONDS = 8  # ticks of one feed: FEED_RATE * FEED_SECONDS
MAX_IN_FLIGHT = 64
# ListOrders answers at most 1000 orders: the run moves to a new account after this many.
ORDERS_PER_ACCOUNT = 500
# Calls a restart may fail with (the gateway or service gone, a deadline while it comes
# back); an order answered with anything else is refused, not retried.
RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED"}
KINDS = ("price", "bars", "book", "infer", "order")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0 when empty."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@dataclass
class KindStats:
    sent: int = 0
    ok: int = 0
    skipped: int = 0  # not sent: MAX_IN_FLIGHT calls already waiting
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.sent - self.ok,
            "skipped": self.skipped,
            "errors": dict(self.errors),
            "latency_ms": {
                "p50": round(percentile(lat, 0.50), 3),
                "p90": round(percentile(lat, 0.90), 3),
                "p99": round(percentile(lat, 0.99), 3),
                "max": round(max(lat), 3) if lat else 0.0,
            },
        }


@dataclass
class Kill:
    component: str
    pid: int
    at_s: float  # seconds into the run
    new_pid: int | None = None
    healthy_after_s: float | None = None  # None: not healthy again within HEALTHY_TIMEOUT_S
    detail: str = ""
    # calls failed from the kill until the next kill (or the run's end), by kind, and when
    # the last of them failed (seconds after the kill): a component healthy again may still
    # fail calls a moment longer, e.g. until Envoy reconnects to it
    failed_calls: dict[str, int] = field(default_factory=dict)
    last_failure_after_s: float | None = None


class Chaos:
    def __init__(
        self, cfg: MeshConfig, duration: float, rate: float, kill: list[str], seed: int
    ) -> None:
        from .components import components, gateway_credentials

        self.cfg = cfg
        self.duration = duration
        self.rate = rate
        self.kill_names = kill
        self.rng = random.Random(seed)
        # a run's own symbols, accounts and order ids, whatever the seed
        self.tag = uuid.uuid4().hex[:8].upper()
        self.account = f"CHAOS{self.tag}"
        self.symbol = f"CQ{self.tag}"  # the orders' symbol (quotes from this tool)
        self.stats = {k: KindStats() for k in (*KINDS, "feed")}
        self.failures: list[tuple[str, float]] = []  # (kind, monotonic end) of failed calls
        self.kills: list[Kill] = []
        self.answered: list[OrderRecord] = []
        self.order_attempts: Counter[str] = Counter()
        self.unanswered: list[str] = []
        self.feeds: list[FeedRecord] = []
        self.read_symbol = ""
        self.bars_span = (0, 1, 1_000_000_000)  # start, end, interval (ns) of the bar reads
        self.quotes_sent = 0
        self.health = {c.name: c.health for c in components(cfg, cfg.data_path / "envoy.json")}
        self.credentials, self.options = gateway_credentials(cfg)
        self.t0 = 0.0
        self.started = ""
        self.stopping = False

    # ------------------------------------------------------------------ plumbing
    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.cfg.state_file.read_text()))

    def gateway_channel(self) -> grpc.aio.Channel:
        target = f"{self.cfg.host}:{self.cfg.gateway_port}"
        if self.credentials is None:
            return grpc.aio.insecure_channel(target)
        return grpc.aio.secure_channel(target, self.credentials, options=self.options)

    def direct(self, service: str) -> str:
        return f"127.0.0.1:{self.state()['config'][f'{service}_port']}"

    async def timed(self, kind: str, call: Callable[[], Awaitable[Any]]) -> tuple[Any, str]:
        """Runs one call, recording its latency (answered calls) or its status code."""
        st = self.stats[kind]
        st.sent += 1
        start = time.monotonic()
        try:
            result = await call()
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() else "UNKNOWN"
            st.errors[code] += 1
            self.failures.append((kind, time.monotonic()))
            return None, code
        except TimeoutError:
            st.errors["DEADLINE_EXCEEDED"] += 1
            self.failures.append((kind, time.monotonic()))
            return None, "DEADLINE_EXCEEDED"
        st.ok += 1
        st.latencies_ms.append((time.monotonic() - start) * 1e3)
        return result, "OK"

    # ------------------------------------------------------------------ set-up
    def ensure_model(self) -> None:
        """Registers ``chaos_probe`` through ``tradecore model register`` unless it exists."""
        from tradecore_api.inference.v1 import models_pb2, models_pb2_grpc

        with grpc.insecure_channel(self.direct("inference")) as ch:
            stub = models_pb2_grpc.ModelServiceStub(ch)
            listed = stub.ListModels(models_pb2.ListModelsRequest(), timeout=30)
            if any(m.name == PROBE_MODEL for m in listed.models):
                return
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"{PROBE_MODEL}.onnx"
            path.write_bytes(PROBE_ONNX)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tradecore_services.mesh.cli",
                    "model",
                    "--data-dir",
                    str(self.cfg.data_path),
                    "register",
                    PROBE_MODEL,
                    str(path),
                    "--description",
                    "tradecore chaos probe: y = x + 1",
                    "--code-version",
                    "chaos",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"registering {PROBE_MODEL}: {proc.stderr.strip()[-500:]}")

    # ------------------------------------------------------------------ load
    async def publish_quotes(self) -> None:
        """Keeps the paper venue priced for the orders' symbol (a restarted execution service
        or nats-server has forgotten the last quote)."""
        import nats
        from tradecore.subjects import MdKind, md_subject
        from tradecore_api.events.v1 import market_pb2

        quote = market_pb2.Quote(
            venue="XNAS",
            symbol=self.symbol,
            bid_price=BID,
            ask_price=ASK,
            bid_size=QUOTE_SIZE,
            ask_size=QUOTE_SIZE,
        ).SerializeToString()
        subject = md_subject("XNAS", self.symbol, MdKind.QUOTE)

        async def quiet(_exc: Exception) -> None:
            return None  # a restarting nats-server: the client reconnects by itself

        nc = await nats.connect(
            self.cfg.effective_nats_url,
            error_cb=quiet,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            allow_reconnect=True,
        )
        try:
            while not self.stopping:
                with contextlib.suppress(Exception):
                    await nc.publish(subject, quote)
                    self.quotes_sent += 1
                await asyncio.sleep(QUOTE_EVERY_S)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def wait_priced(self, stub: Any, pb: Any, epb: Any, cpb: Any) -> None:
        """Until an IOC at the ask fills (the quote reached the paper venue), on an account of
        its own so the record's account sees only the run's orders."""
        deadline = time.monotonic() + 30
        while True:
            req = pb.SubmitOrderRequest(
                account=f"P{self.account}",
                client_order_id=uuid.uuid4().hex,
                symbol=self.symbol,
                side=cpb.BUY,
                quantity=1,
                type=epb.LIMIT,
                limit_price=ASK,
                time_in_force=epb.IOC,
            )
            with contextlib.suppress(grpc.RpcError):
                got = await stub.SubmitOrder(req, timeout=CALL_TIMEOUT_S)
                if got.status == epb.FILLED:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the paper venue has no quote for {self.symbol} after 30 s")
            await asyncio.sleep(0.2)

    async def order_lane(self, stub: Any, queue: asyncio.Queue[int | None]) -> None:
        from tradecore_api.events.v1 import common_pb2 as cpb
        from tradecore_api.events.v1 import execution_pb2 as epb
        from tradecore_api.execution.v1 import execution_pb2 as pb

        while (i := await queue.get()) is not None:
            buy = i % 2 == 0
            account = self.account_of(i)
            req = pb.SubmitOrderRequest(
                account=account,
                client_order_id=f"{self.tag}-{i}",
                symbol=self.symbol,
                side=cpb.BUY if buy else cpb.SELL,
                # a quantity per order: the duplicate-order control refuses repeats
                quantity=i + 1,
                type=epb.LIMIT,
                limit_price=ASK if buy else BID,
                time_in_force=epb.IOC,
            )
            deadline = time.monotonic() + ORDER_ANSWER_TIMEOUT_S
            while True:  # the same client_order_id until answered
                self.order_attempts[req.client_order_id] += 1
                got, code = await self.timed("order", _submit(stub, req))
                if got is not None:
                    self.answered.append(
                        OrderRecord(
                            got.client_order_id,
                            got.order_id,
                            "BUY" if buy else "SELL",
                            epb.OrderStatus.Name(got.status),
                            got.filled_quantity,
                            got.average_price,
                            account,
                        )
                    )
                    break
                if code not in RETRYABLE:
                    break  # refused: no order
                if time.monotonic() > deadline:
                    self.unanswered.append(req.client_order_id)
                    break
                await asyncio.sleep(0.1)

    def account_of(self, i: int) -> str:
        return f"{self.account}A{i // ORDERS_PER_ACCOUNT}"

    def one_call(self, kind: str, stubs: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        from google.protobuf import duration_pb2
        from tradecore_api.inference import grpc_service_pb2 as ipb
        from tradecore_api.marketdata.v1 import marketdata_pb2 as mpb
        from tradecore_api.pricing.v1 import pricing_pb2 as ppb

        t = CALL_TIMEOUT_S
        if kind == "price":
            spot = 90 + 20 * self.rng.random()
            req = ppb.PriceRequest(
                contracts=[
                    ppb.OptionContract(
                        spot=spot,
                        strike=100,
                        expiry_years=0.5,
                        rate=0.02,
                        volatility=0.25,
                        option_type=ppb.CALL,
                    )
                ]
            )
            return lambda: stubs["pricing"].Price(req, timeout=t)
        if kind == "bars":
            lo, hi, step = self.bars_span
            bars = mpb.GetBarsRequest(symbol=self.read_symbol)
            bars.start.FromNanoseconds(lo)
            bars.end.FromNanoseconds(hi)
            bars.interval.CopyFrom(duration_pb2.Duration(seconds=step // 1_000_000_000))
            return lambda: stubs["marketdata"].GetBars(bars, timeout=t)
        if kind == "book":
            book = mpb.GetBookRequest(symbol=self.read_symbol, depth=5)
            return lambda: stubs["marketdata"].GetBook(book, timeout=t)
        x = [self.rng.random() for _ in range(4)]
        import struct

        infer = ipb.ModelInferRequest(
            model_name=PROBE_MODEL,
            inputs=[
                ipb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1, 4])
            ],
            raw_input_contents=[struct.pack("<4f", *x)],
        )
        return lambda: stubs["inference"].ModelInfer(infer, timeout=t)

    async def load(self, stubs: dict[str, Any], orders: asyncio.Queue[int | None]) -> None:
        """``rate`` calls a second in turn of each kind, open loop (a call does not wait for
        the one before); an order is queued for the order lane."""
        interval = 1.0 / self.rate
        in_flight: set[asyncio.Task[Any]] = set()
        i = n_orders = 0
        next_t = time.monotonic()
        end = self.t0 + self.duration
        while next_t < end:
            kind = KINDS[i % len(KINDS)]
            i += 1
            if kind == "order":
                if orders.qsize() < 4:
                    orders.put_nowait(n_orders)
                    n_orders += 1
                else:
                    self.stats["order"].skipped += 1
            elif len(in_flight) >= MAX_IN_FLIGHT:
                self.stats[kind].skipped += 1
            else:
                task = asyncio.ensure_future(self.timed(kind, self.one_call(kind, stubs)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight)

    # ------------------------------------------------------------------ feeds
    async def run_feed(self, stub: Any, k: int, wait_done: bool) -> FeedRecord | None:
        """Starts feed ``k`` on a symbol of its own and follows it until DONE, gone (the
        service restarted: INTERRUPTED) or, unless ``wait_done``, the run ends."""
        from tradecore_api.marketdata.v1 import marketdata_pb2 as mpb

        symbol = f"CF{self.tag}{k}"
        spec = mpb.SyntheticFeedSpec(
            symbols=[symbol],
            rate=FEED_RATE,
            count=int(FEED_RATE * (FEED_SECONDS if k else 2)),  # the first: 2 s
            speed=1.0,
            seed=k,
        )
        status, _ = await self.timed(
            "feed", lambda: stub.StartFeed(mpb.StartFeedRequest(synthetic=spec), timeout=10)
        )
        if status is None:
            return None  # not answered: it may or may not run; its symbol is not checked
        rec = FeedRecord(status.id, symbol, status.venue, status.total)
        self.feeds.append(rec)
        while True:
            await asyncio.sleep(0.5)
            got, code = await self.timed(
                "feed", lambda: stub.GetFeed(mpb.GetFeedRequest(id=rec.id), timeout=CALL_TIMEOUT_S)
            )
            if got is not None:
                rec.published = max(rec.published, got.published)
                rec.reported_stored = max(rec.reported_stored, got.stored)
                rec.venue = got.venue or rec.venue
                rec.state = mpb.FeedState.Name(got.state)
                if got.state != mpb.RUNNING:
                    return rec
            elif code == "NOT_FOUND":
                rec.state = "INTERRUPTED"
                return rec
            if not wait_done and self.stopping and rec.state == "RUNNING":
                # the run is over: stop the feed, so its last count is final
                stopped, _ = await self.timed(
                    "feed", lambda: stub.StopFeed(mpb.StopFeedRequest(id=rec.id), timeout=10)
                )
                if stopped is None:
                    return rec

    async def feeds_loop(self, stub: Any) -> None:
        k = 1
        while not self.stopping:
            await self.run_feed(stub, k, wait_done=False)
            k += 1

    # ------------------------------------------------------------------ kills
    async def kill_one(self, name: str) -> None:
        comp = self.state()["components"].get(name) or {}
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while not comp.get("pid") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            comp = self.state()["components"].get(name) or {}
        pid = comp.get("pid")
        if not pid:
            self.kills.append(Kill(name, 0, time.monotonic() - self.t0, detail="no process"))
            return
        killed = time.monotonic()
        k = Kill(name, int(pid), round(killed - self.t0, 3))
        self.kills.append(k)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
        deadline = killed + HEALTHY_TIMEOUT_S
        check = self.health[name]
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            new = (self.state()["components"].get(name) or {}).get("pid")
            if not new or new == pid:
                continue
            ok, detail = await asyncio.to_thread(check)
            k.detail = detail
            if ok:
                k.new_pid = int(new)
                k.healthy_after_s = round(time.monotonic() - killed, 3)
                break

    async def kills_loop(self) -> None:
        names = self.kill_names
        if not names:
            return
        spacing = self.duration / (len(names) + 1)
        for i, name in enumerate(names):
            await asyncio.sleep(max(0.0, self.t0 + spacing * (i + 1) - time.monotonic()))
            await self.kill_one(name)

    # ------------------------------------------------------------------ the run
    async def run(self) -> dict[str, Any]:
        from tradecore_api.events.v1 import common_pb2 as cpb
        from tradecore_api.events.v1 import execution_pb2 as epb
        from tradecore_api.execution.v1 import execution_pb2 as pb
        from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
        from tradecore_api.inference import grpc_service_pb2_grpc as ipb_grpc
        from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as mpb_grpc
        from tradecore_api.pricing.v1 import pricing_pb2_grpc as ppb_grpc

        from .auth import mint

        self.started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        await asyncio.to_thread(self.ensure_model)
        token = mint(self.cfg.data_path, "admin", "", 6 * 3600)
        md = (("authorization", f"Bearer {token}"),)
        channel = self.gateway_channel()

        def authed(stub: Any) -> Any:
            return _Authed(stub, md)

        stubs = {
            "pricing": authed(ppb_grpc.PricingServiceStub(channel)),
            "marketdata": authed(mpb_grpc.MarketDataServiceStub(channel)),
            "inference": authed(ipb_grpc.GRPCInferenceServiceStub(channel)),
            "execution": authed(pb_grpc.ExecutionServiceStub(channel)),
        }
        quotes = asyncio.ensure_future(self.publish_quotes())
        await self.wait_priced(stubs["execution"], pb, epb, cpb)
        # a first feed to its end: the reads' symbol has bars and a book from the start
        first = await self.run_feed(stubs["marketdata"], 0, wait_done=True)
        if first is None or first.state != "DONE":
            raise RuntimeError(f"the first synthetic feed did not finish: {first}")
        self.read_symbol = first.symbol
        await self.bars_range(first)
        self.stats["feed"] = KindStats()

        orders: asyncio.Queue[int | None] = asyncio.Queue()
        self.t0 = time.monotonic()
        lane = asyncio.ensure_future(self.order_lane(stubs["execution"], orders))
        feeds = asyncio.ensure_future(self.feeds_loop(stubs["marketdata"]))
        kills = asyncio.ensure_future(self.kills_loop())
        await self.load(stubs, orders)
        load_s = time.monotonic() - self.t0
        self.stopping = True
        await orders.put(None)
        await asyncio.gather(lane, kills, feeds, quotes)
        await channel.close()
        return await self.report(load_s)

    # ------------------------------------------------------------------ the books
    async def read_back(self) -> dict[str, Any]:
        """What the mesh holds afterwards, read from the services directly."""
        from tradecore_api.events.v1 import execution_pb2 as epb
        from tradecore_api.execution.v1 import execution_pb2 as pb
        from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

        for name in self.health:  # everything back before the books are read
            await self.wait_healthy(name)
        accounts = sorted({a.account for a in self.answered} | {self.account_of(0)})
        orders: dict[str, list[OrderRecord]] = {}
        pos: dict[str, list[PositionRecord]] = {}
        async with grpc.aio.insecure_channel(self.direct("execution")) as ch:
            stub = pb_grpc.ExecutionServiceStub(ch)
            for acct in accounts:
                listed = await stub.ListOrders(pb.ListOrdersRequest(account=acct), timeout=30)
                positions = await stub.GetPositions(
                    pb.GetPositionsRequest(account=acct), timeout=30
                )
                orders[acct] = [
                    OrderRecord(
                        o.client_order_id,
                        o.order_id,
                        "",
                        epb.OrderStatus.Name(o.status),
                        o.filled_quantity,
                        o.average_price,
                        acct,
                    )
                    for o in listed.orders
                ]
                pos[acct] = [
                    PositionRecord(p.symbol, p.quantity, p.average_cost, p.realized_pnl)
                    for p in positions.positions
                ]
        fills = {acct: await self.read_fills(acct) for acct in accounts}
        await self.read_ticks()
        return {"orders": orders, "positions": pos, "fills": fills}

    async def wait_healthy(self, name: str) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while time.monotonic() < deadline:
            ok, _ = await asyncio.to_thread(self.health[name])
            if ok:
                return
            await asyncio.sleep(0.2)

    async def read_fills(self, account: str) -> list[FillRecord]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from tradecore.subjects import ExecKind, exec_subject
        from tradecore_api.events.v1 import execution_pb2 as epb

        nc = await nats.connect(self.cfg.effective_nats_url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                exec_subject(ExecKind.FILL, account),
                stream="EXEC_FILLS",
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
            )
            pending = (await sub.consumer_info()).num_pending or 0
            out: list[FillRecord] = []
            while len(out) < pending:
                for m in await sub.fetch(256, timeout=5):
                    f = epb.Fill.FromString(m.data)
                    out.append(FillRecord(f.fill_id, f.order_id, f.quantity))
            return out
        finally:
            await nc.close()

    @staticmethod
    def ticks_request(f: FeedRecord) -> Any:
        """QueryTicks of every tick of ``f``'s symbol (all times until 2200)."""
        from google.protobuf import timestamp_pb2
        from tradecore_api.marketdata.v1 import marketdata_pb2 as mpb

        return mpb.QueryTicksRequest(
            symbol=f.symbol,
            venue=f.venue,
            start=timestamp_pb2.Timestamp(seconds=0),
            end=timestamp_pb2.Timestamp(seconds=7_258_118_400),
        )

    async def bars_range(self, f: FeedRecord) -> None:
        """The reads' time range and bar interval: the span of ``f``'s ticks, 1 s bars (at
        least; at most 500 of them)."""
        from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as mpb_grpc

        times: list[int] = []
        async with grpc.aio.insecure_channel(self.direct("marketdata")) as ch:
            stub = mpb_grpc.MarketDataServiceStub(ch)
            async for batch in stub.QueryTicks(self.ticks_request(f), timeout=30):
                times.extend(batch.exchange_time_ns)
        if not times:
            raise RuntimeError(f"the first feed stored no ticks for {f.symbol}")
        lo, hi = min(times), max(times) + 1
        self.bars_span = (lo, hi, max(1_000_000_000, (hi - lo) // 500 + 1))

    async def read_ticks(self) -> None:
        """Each feed's stored sequences, waiting (up to 30 s) for the store to catch up with
        what the stream acknowledged."""
        from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as mpb_grpc

        async with grpc.aio.insecure_channel(self.direct("marketdata")) as ch:
            stub = mpb_grpc.MarketDataServiceStub(ch)
            for f in self.feeds:
                want = f.total if f.state == "DONE" else f.published
                deadline = time.monotonic() + 30
                while True:
                    seqs: list[int] = []
                    async for batch in stub.QueryTicks(self.ticks_request(f), timeout=30):
                        seqs.extend(batch.sequence)
                    f.sequences = seqs
                    if len(set(seqs)) >= want or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)

    def attribute_failures(self) -> None:
        """Each failed call to the last kill before it (calls failed before the first kill
        are the run's own, counted per kind only)."""
        for n, k in enumerate(self.kills):
            start = self.t0 + k.at_s
            end = self.t0 + self.kills[n + 1].at_s if n + 1 < len(self.kills) else float("inf")
            mine = [(kind, at) for kind, at in self.failures if start <= at < end]
            k.failed_calls = dict(Counter(kind for kind, _ in mine))
            if mine:
                k.last_failure_after_s = round(max(at for _, at in mine) - start, 3)

    async def report(self, load_s: float) -> dict[str, Any]:
        self.attribute_failures()
        back = await self.read_back()
        problems: dict[str, list[str]] = {"orders": [], "fills": [], "positions": []}
        for acct in back["orders"]:
            mine = [a for a in self.answered if a.account == acct]
            problems["orders"] += check_orders(mine, back["orders"][acct])
            problems["fills"] += check_fills(mine, back["fills"][acct])
            problems["positions"] += check_position(mine, self.symbol, back["positions"][acct])
        problems["ticks"] = check_ticks(self.feeds)
        not_back = [k.component for k in self.kills if k.healthy_after_s is None]
        if not_back:
            problems["components"] = [f"{n}: not healthy again" for n in not_back]
        statuses = Counter(a.status for a in self.answered)
        calls = {k: s.summary() for k, s in self.stats.items()}
        sent = sum(s.sent for k, s in self.stats.items() if k in KINDS)
        return {
            "started": self.started,
            "data_dir": str(self.cfg.data_path),
            "duration_s": self.duration,
            "load_s": round(load_s, 3),
            "rate": self.rate,
            "achieved_rate": round(sent / load_s, 2) if load_s else 0.0,
            "machine": {"cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
            "accounts": sorted(back["orders"]),
            "symbol": self.symbol,
            "calls": calls,
            "kills": [asdict(k) for k in self.kills],
            "orders": {
                "answered": len(self.answered),
                "by_status": dict(statuses),
                "retried": sum(1 for n in self.order_attempts.values() if n > 1),
                "unanswered": self.unanswered,
                "listed": sum(len(v) for v in back["orders"].values()),
            },
            "fills": {
                "in_stream": sum(len(v) for v in back["fills"].values()),
                "filled_quantity": sum(f.quantity for v in back["fills"].values() for f in v),
            },
            "ticks": {
                "feeds": [
                    {
                        "id": f.id,
                        "symbol": f.symbol,
                        "state": f.state,
                        "total": f.total,
                        "published": f.published,
                        "stored": len(set(f.sequences)),
                        "stored_rows": len(f.sequences),
                    }
                    for f in self.feeds
                ],
            },
            "quotes_sent": self.quotes_sent,
            "problems": problems,
            "ok": not any(problems.values()),
        }


def _submit(stub: Any, req: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: stub.SubmitOrder(req, timeout=CALL_TIMEOUT_S)


class _Authed:
    """A stub whose calls carry the token's metadata."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            return method(request, metadata=self._metadata, **kwargs)

        return call


def summary(result: dict[str, Any]) -> str:
    """The human summary of a result."""
    lines = [
        f"tradecore chaos: {result['load_s']:.0f} s at {result['rate']:g} calls/s "
        f"(achieved {result['achieved_rate']:g}), load average "
        + " ".join(f"{v:.2f}" for v in result["machine"]["load_avg"])
        + f" on {result['machine']['cpus']} CPUs",
        "",
        f"{'kind':<8}{'sent':>7}{'ok':>7}{'failed':>8}{'p50 ms':>9}{'p90 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}  errors",
    ]
    for kind, s in result["calls"].items():
        lat = s["latency_ms"]
        errors = ", ".join(f"{c} {n}" for c, n in sorted(s["errors"].items())) or "-"
        lines.append(
            f"{kind:<8}{s['sent']:>7}{s['ok']:>7}{s['failed']:>8}{lat['p50']:>9.1f}"
            f"{lat['p90']:>9.1f}{lat['p99']:>9.1f}{lat['max']:>9.1f}  {errors}"
        )
    lines += [
        "",
        f"{'killed':<12}{'at s':>7}{'healthy after s':>17}{'last failure s':>16}  failed calls",
    ]
    for k in result["kills"]:
        back = "NOT BACK" if k["healthy_after_s"] is None else f"{k['healthy_after_s']:.2f}"
        last = "-" if k["last_failure_after_s"] is None else f"{k['last_failure_after_s']:.2f}"
        failed = ", ".join(f"{c} {n}" for c, n in sorted(k["failed_calls"].items())) or "-"
        lines.append(f"{k['component']:<12}{k['at_s']:>7.1f}{back:>17}{last:>16}  {failed}")
    o = result["orders"]
    by_status = ", ".join(f"{s} {n}" for s, n in o["by_status"].items())
    lines += [
        "",
        f"orders: {o['answered']} answered ({by_status}), "
        f"{o['retried']} retried, {len(o['unanswered'])} unanswered, {o['listed']} listed",
        f"fills: {result['fills']['in_stream']} in EXEC_FILLS",
    ]
    feeds = result["ticks"]["feeds"]
    lines.append(
        f"ticks: {len(feeds)} feeds ("
        + ", ".join(f"{s} {n}" for s, n in Counter(f["state"] for f in feeds).items())
        + f"), {sum(f['published'] for f in feeds)} acknowledged, "
        f"{sum(f['stored'] for f in feeds)} stored"
    )
    problems = [p for ps in result["problems"].values() for p in ps]
    lines.append("")
    if problems:
        lines.append(f"FAILED: {len(problems)} problems")
        lines += [f"  {p}" for p in problems[:50]]
    else:
        lines.append("OK: nothing acknowledged lost or doubled; every killed component came back")
    return "\n".join(lines)


def chaos_parser() -> argparse.ArgumentParser:
    from .cli import _add_mesh_args

    ap = argparse.ArgumentParser(prog="tradecore chaos", description=__doc__.split("\n")[0])
    _add_mesh_args(ap, MeshConfig.from_env())
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--rate", type=float, default=40.0, help="calls per second (default 40)")
    ap.add_argument("--out", default="", help="write the result as JSON here")
    ap.add_argument(
        "--kill",
        default="all",
        help="components to kill in turn: all, none, or names from mesh.json (nats,pricing,...)",
    )
    ap.add_argument("--seed", type=int, default=0)
    return ap


def chaos_main(argv: list[str]) -> int:
    ns = chaos_parser().parse_args(argv)
    from .cli import _read_state, _supervisor_running

    if not (1.0 <= ns.duration <= 3600.0):
        print("tradecore chaos: --duration: 1..3600 seconds", file=sys.stderr)
        return 2
    if not (1.0 <= ns.rate <= 5000.0):
        print("tradecore chaos: --rate: 1..5000 calls per second", file=sys.stderr)
        return 2
    try:
        state = _read_state(MeshConfig(data_dir=str(Path(ns.data_dir).resolve())))
    except ValueError as exc:
        print(f"tradecore chaos: {exc}", file=sys.stderr)
        return 3
    if state is None or not _supervisor_running(state) or state.get("state") != "ready":
        print(f"tradecore chaos: no running mesh in {Path(ns.data_dir).resolve()}", file=sys.stderr)
        return 3
    cfg = MeshConfig.from_dict(state["config"])
    names = list(state.get("components", {}))
    if ns.kill == "all":
        kill = names
    elif ns.kill == "none":
        kill = []
    else:
        kill = [n.strip() for n in ns.kill.split(",") if n.strip()]
        unknown = [n for n in kill if n not in names]
        if unknown:
            print(
                f"tradecore chaos: --kill: no component {', '.join(unknown)} "
                f"(the mesh has {', '.join(names)})",
                file=sys.stderr,
            )
            return 2
    chaos = Chaos(cfg, ns.duration, ns.rate, kill, ns.seed)
    try:
        result = asyncio.run(chaos.run())
    except RuntimeError as exc:  # the set-up failed (no model, no quote, no first feed)
        print(f"tradecore chaos: {exc}", file=sys.stderr)
        return 1
    if ns.out:
        Path(ns.out).write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    return 0 if result["ok"] else 1
