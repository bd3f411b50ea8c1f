"""Execution algorithms on the real mesh: the market-data service runs a paced synthetic feed,
the execution service's paper venue works the algo's children against it. Over JSON, gRPC and
the CLI: a TWAP's children appear as orders, GetAlgo shows progress and TCA, StopAlgo cancels
open children, bad input is 400 naming the field; and the execution service SIGKILLed mid-algo
and restarted by the supervisor carries the algo on with no child sent twice, checked against
the order updates recorded independently from NATS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import nats
import pytest
from tradecore.subjects import ExecKind, exec_subject
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_api.marketdata.v1 import marketdata_pb2 as md
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as md_grpc

from tests.integration.test_execution_mesh import execution_pid, http
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Recorder:
    """Every order update of an account published on exec.order.<account>, on a thread of
    its own: the order ids seen per client order id, and each order's latest update."""

    def __init__(self, mesh: Mesh, account: str) -> None:
        self.ids: dict[str, set[str]] = defaultdict(set)
        self.last: dict[str, events.OrderUpdate] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(mesh.nats_url, account)), daemon=True
        )

    async def _run(self, url: str, account: str) -> None:
        nc = await nats.connect(url)

        async def on(msg: Any) -> None:
            u = events.OrderUpdate.FromString(msg.data)
            self.ids[u.client_order_id].add(u.order_id)
            self.last[u.order_id] = u

        await nc.subscribe(exec_subject(ExecKind.ORDER, account), cb=on)
        await nc.flush()
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await nc.drain()

    def __enter__(self) -> Recorder:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the last updates
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def feed(mesh: Mesh) -> Iterator[str]:
    """A paced synthetic feed of one symbol for the test's duration."""
    symbol = "ALG" + uuid.uuid4().hex[:5].upper()
    with grpc.insecure_channel(mesh.marketdata) as ch:
        feeds = md_grpc.MarketDataServiceStub(ch)
        spec = md.SyntheticFeedSpec(symbols=[symbol], rate=50, count=100_000, speed=1)
        status = feeds.StartFeed(md.StartFeedRequest(synthetic=spec), timeout=30)
        try:
            yield symbol
        finally:
            feeds.StopFeed(md.StopFeedRequest(id=status.id), timeout=30)


def get(stub: pb_grpc.ExecutionServiceStub, algo_id: str, ok: Callable[[pb.Algo], bool]) -> pb.Algo:
    deadline = time.monotonic() + 90
    while True:
        try:
            got = stub.GetAlgo(pb.GetAlgoRequest(algo_id=algo_id), timeout=5)
            if ok(got):
                return got
        except grpc.RpcError as exc:  # restarting: UNAVAILABLE until the journal is replayed
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            got = None
        assert time.monotonic() < deadline, str(got)
        time.sleep(0.1)


def quoted(mesh: Mesh, account: str, symbol: str) -> None:
    """Wait until the paper venue's book has the feed's quotes (an IOC buy at a high cap fills)."""
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        deadline = time.monotonic() + 60
        for i in range(10_000):
            o = stub.SubmitOrder(
                pb.SubmitOrderRequest(
                    account=account, client_order_id=f"probe{i}", symbol=symbol, side="BUY",  # type: ignore[arg-type]
                    quantity=1, type="MARKET", time_in_force="IOC",  # type: ignore[arg-type]
                ),
                timeout=10,
            )  # fmt: skip
            if o.status == events.FILLED:
                return
            assert time.monotonic() < deadline, o
            time.sleep(0.2)


def test_a_twap_on_the_paper_venue_survives_a_sigkill_without_doubled_children(
    mesh: Mesh, feed: str
) -> None:
    acct = "AL" + uuid.uuid4().hex[:10]
    status, out = http(
        mesh, "PUT", f"/v1/execution/accounts/{acct}/limits", {"limits": {"collar": False}}
    )
    assert status == 200, out
    quoted(mesh, acct, feed)
    body = {
        "account": acct, "client_algo_id": "twap-1", "symbol": feed, "side": "BUY",
        "quantity": 60, "kind": "TWAP", "duration_s": 24, "slices": 6, "venue": "PAPER",
    }  # fmt: skip
    with Recorder(mesh, acct) as rec, grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        status, out = http(mesh, "POST", "/v1/execution/algos", body)
        assert status == 200 and out["state"] == "ALGO_WORKING", out
        algo_id = out["algo_id"]
        assert http(mesh, "POST", "/v1/execution/algos", body)[1]["algo_id"] == algo_id
        got = get(stub, algo_id, lambda a: len(a.children) >= 2)
        assert got.filled_quantity >= 10 and got.tca.HasField("arrival_price")
        old = execution_pid(mesh)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while execution_pid(mesh) in (None, old):
            assert time.monotonic() < deadline, "the supervisor did not restart the service"
            time.sleep(0.1)
        done = get(stub, algo_id, lambda a: a.state != pb.ALGO_WORKING)
    assert done.state == pb.ALGO_COMPLETED, done.reason
    assert done.filled_quantity == 60 == sum(c.filled_quantity for c in done.children)
    mine = {cid: ids for cid, ids in rec.ids.items() if cid.startswith(f"{algo_id}.")}
    # every child once, under its own client order id, and none the algo does not know
    assert {cid: len(ids) for cid, ids in mine.items()} == {
        c.client_order_id: 1 for c in done.children
    }
    assert {next(iter(ids)) for ids in mine.values()} == {c.order_id for c in done.children}
    assert [c.client_order_id for c in done.children] == [
        f"{algo_id}.{n}" for n in range(1, len(done.children) + 1)
    ]
    assert sum(rec.last[c.order_id].filled_quantity for c in done.children) == 60
    tca = done.tca
    assert tca.HasField("arrival_price") and tca.HasField("slippage_arrival_bps")
    assert tca.average_price == pytest.approx(done.average_price)
    assert tca.market_volume > 0 and tca.HasField("interval_vwap")  # the feed's trades


def test_stop_algo_over_json_and_the_cli(mesh: Mesh, feed: str) -> None:
    acct = "AL" + uuid.uuid4().hex[:10]
    status, out = http(
        mesh, "PUT", f"/v1/execution/accounts/{acct}/limits", {"limits": {"collar": False}}
    )
    assert status == 200, out
    quoted(mesh, acct, feed)
    cli = mesh.run(
        "order", "algo", "start", "--account", acct, "--client-algo-id", "ice-1",
        "--symbol", feed, "--side", "BUY", "--quantity", "50", "--kind", "ICEBERG",
        "--display-quantity", "5", "--limit-price", "0.01",
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    algo = json.loads(cli.stdout)
    assert algo["state"] == "ALGO_WORKING" and algo["working_quantity"] == "5", algo
    [child] = algo["children"]
    status, out = http(mesh, "GET", f"/v1/execution/orders/{child['order_id']}")
    assert status == 200 and out["status"] == "ACCEPTED", out  # a child is an order
    cli = mesh.run("order", "algo", "list", "--account", acct, "--working")
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["algo_id"] for line in cli.stdout.splitlines()] == [algo["algo_id"]]
    status, out = http(mesh, "DELETE", f"/v1/execution/algos/{algo['algo_id']}")
    assert status == 200 and out["state"] == "ALGO_STOPPED", out
    assert [c["status"] for c in out["children"]] == ["CANCELED"], out
    cli = mesh.run("order", "algo", "get", algo["algo_id"])
    assert cli.returncode == 0 and json.loads(cli.stdout)["reason"] == "stopped", cli.stderr
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{acct}/algos")
    assert status == 200 and [a["state"] for a in out["algos"]] == ["ALGO_STOPPED"], out
    # a VWAP without a curve asks the market-data service for the stored one: the feed's
    # symbol has no trades stored on earlier days at this time of day, so it is flat, and
    # the reason is the market-data service's answer (not a missing responder)
    vwap = {
        "account": acct, "client_algo_id": "vwap-1", "symbol": feed, "side": "BUY",
        "quantity": 40, "kind": "VWAP", "duration_s": 60, "slices": 4, "limit_price": 0.01,
    }  # fmt: skip
    status, out = http(mesh, "POST", "/v1/execution/algos", vwap)
    assert status == 200 and out["request"]["curve"] == [1.0] * 4, out
    assert out["curve_source"].startswith(f"flat: symbol: '{feed}' has no stored"), out
    assert http(mesh, "DELETE", f"/v1/execution/algos/{out['algo_id']}")[0] == 200
    status, out = http(mesh, "GET", "/v1/execution/algos/ALGO-unknown")
    assert status == 404 and "algo_id" in out["message"], out
    cli = mesh.run("order", "algo", "get", "ALGO-unknown")
    assert cli.returncode == 1 and "NOT_FOUND" in cli.stderr, cli.stderr


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"quantity": 0}, "quantity:"),
        ({"kind": "TWAP", "duration_s": 0}, "end_time_ns: required"),
        ({"kind": "POV", "participation_rate": 2}, "participation_rate:"),
        ({"kind": "VWAP", "curve": [1, -1]}, "curve[1]:"),
        ({"client_algo_id": ""}, "client_algo_id:"),
        ({"limit_price": -1}, "limit_price:"),
        ({"venue": "ALPACA"}, "venue: ALPACA is not enabled"),
    ],
)
def test_bad_algo_requests_are_400_naming_the_field(
    mesh: Mesh, body: dict[str, Any], needle: str
) -> None:
    base = {
        "account": "A1", "client_algo_id": "b1", "symbol": "AAPL", "side": "BUY",
        "quantity": 10, "kind": "TWAP", "duration_s": 60,
    }  # fmt: skip
    status, out = http(mesh, "POST", "/v1/execution/algos", {**base, **body})
    assert status == 400 and needle in out["message"], out
