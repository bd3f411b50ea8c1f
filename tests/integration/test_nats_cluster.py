"""The mesh on a three-node NATS cluster with R3 JetStream streams: one node is SIGKILLed while a
synthetic feed streams ticks and marketable orders fill on the paper venue. The services follow
their connection to another node (``TRADECORE_NATS_URL`` lists all three) and the streams keep
their leaders on the other two. Afterwards every answered order is there exactly once with the
state it was answered with, its fills are in EXEC_FILLS once each, the position equals an
independent record, and every tick the feed published is stored once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from subprocess import Popen
from typing import IO

import grpc
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from tradecore.subjects import ExecKind, MdKind, exec_subject, md_subject
from tradecore_api.events.v1 import execution_pb2, market_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as md_grpc
from tradecore_services.mesh.components import nats_server_path

from tests.conftest import free_port
from tests.integration.test_execution_nats_kill import (
    OrderLoop,
    marketable,
    net_position,
    wait_paper_fills,
)
from tests.integration.test_marketdata_mesh import all_ticks
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

BID, ASK, SIZE = 99.9, 100.1, 10_000_000
BEFORE_KILL, AFTER_KILL = 30, 40
FEED_TICKS = 30_000


class Cluster:
    """Three nats-server processes routed into one cluster, JetStream on each."""

    def __init__(self, root: Path, n: int = 3) -> None:
        self.root = root
        self.nodes = [
            {"name": f"n{i}", "port": free_port(), "cluster": free_port(), "monitor": free_port()}
            for i in range(n)
        ]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{n['port']}" for n in self.nodes]

    def start(self) -> None:
        for i, node in enumerate(self.nodes):
            routes = ",".join(
                f"nats://127.0.0.1:{o['cluster']}" for o in self.nodes if o is not node
            )
            with (self.root / f"{node['name']}.log").open("wb") as log:  # the child keeps a copy
                self.procs[i] = self._popen(node, routes, log)

    def _popen(self, node: dict[str, object], routes: str, log: IO[bytes]) -> Popen[bytes]:
        return subprocess.Popen(
            [
                nats_server_path(), "-a", "127.0.0.1", "-p", str(node["port"]),
                "-m", str(node["monitor"]), "-js", "-sd", str(self.root / str(node["name"])),
                "--server_name", str(node["name"]), "--cluster_name", "tradecore",
                "--cluster", f"nats://127.0.0.1:{node['cluster']}", "--routes", routes,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every node healthy and the JetStream meta group has a leader."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            url = f"http://127.0.0.1:{node['monitor']}/healthz?js-enabled-only=true"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{node['name']} not healthy"
                time.sleep(0.2)
        while True:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.nodes[0]['monitor']}/jsz", timeout=2
            ) as r:
                meta = json.loads(r.read()).get("meta_cluster", {})
            if meta.get("leader"):
                return
            assert time.monotonic() < deadline, "no JetStream meta leader"
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        i = next(i for i, n in enumerate(self.nodes) if n["name"] == name)
        proc = self.procs[i]
        assert proc is not None
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def js_call(urls: list[str], fn):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        nc = await nats.connect(servers=urls)
        try:
            return await fn(nc, nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_nats_node_killed_under_a_feed_and_orders_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    cluster.start()
    m = Mesh.with_free_ports(tmp_path / "mesh")
    m.env = {"TRADECORE_NATS_URL": ",".join(cluster.urls), "TRADECORE_JETSTREAM_REPLICAS": "3"}
    try:
        cluster.wait_ready()
        up = m.run("up", timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        run_orders_and_feed_through_a_node_kill(m, cluster)
    finally:
        m.run("down")
        cluster.stop()


def run_orders_and_feed_through_a_node_kill(m: Mesh, cluster: Cluster) -> None:
    acct, sym = "NC" + uuid.uuid4().hex[:10], "NCQ" + uuid.uuid4().hex[:6].upper()

    async def quote(nc, js):  # type: ignore[no-untyped-def]
        q = market_pb2.Quote(
            venue="XNAS", symbol=sym, bid_price=BID, ask_price=ASK, bid_size=SIZE, ask_size=SIZE
        )
        await nc.publish(md_subject("XNAS", sym, MdKind.QUOTE), q.SerializeToString())
        await nc.flush()

    wait_paper_fills(str(m.execution), acct, sym, before=lambda: js_call(cluster.urls, quote))

    async def replicas(nc, js):  # type: ignore[no-untyped-def]
        out = {}
        for name in ("EXEC_JOURNAL", "EXEC_FILLS"):
            info = await js.stream_info(name)
            out[name] = (info.config.num_replicas, info.cluster.leader)
        return out

    streams = js_call(cluster.urls, replicas)
    assert {k: v[0] for k, v in streams.items()} == {"EXEC_JOURNAL": 3, "EXEC_FILLS": 3}

    feed = m.run(
        "feed", "synthetic", "--symbols", "NCFEED", "--rate", "1500",
        "--count", str(FEED_TICKS), "--speed", "1", "--seed", "5",
    )  # fmt: skip
    assert feed.returncode == 0, feed.stdout + feed.stderr
    feed_id = json.loads(feed.stdout)["id"]

    loop = OrderLoop(str(m.execution), marketable(acct, sym, "c"))
    loop.start()
    loop.wait_for(BEFORE_KILL, 60, "answered")
    answered = loop.answered
    # the node leading the journal's stream goes: the worst one to lose
    leader = streams["EXEC_JOURNAL"][1]
    cluster.kill(leader)
    killed_at = len(answered)
    loop.wait_for(killed_at + AFTER_KILL, 180, "after the kill")
    loop.stop()

    with grpc.insecure_channel(m.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        listed = stub.ListOrders(pb.ListOrdersRequest(account=acct), timeout=10).orders
        positions = stub.GetPositions(pb.GetPositionsRequest(account=acct), timeout=10).positions
    coids = [o.client_order_id for o in listed]
    assert len(coids) == len(set(coids)), "an order is there twice"
    have = {o.client_order_id: o for o in listed}
    assert set(have) == set(answered), "orders lost or unknown orders present"
    for coid, a in answered.items():
        o = have[coid]
        assert (o.order_id, o.status, o.filled_quantity) == (a.order_id, a.status, a.filled)
        assert a.status == execution_pb2.FILLED, (coid, o)

    async def fills(nc, js):  # type: ignore[no-untyped-def]
        sub = await js.pull_subscribe(
            exec_subject(ExecKind.FILL, acct),
            stream="EXEC_FILLS",
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
        pending = (await sub.consumer_info()).num_pending or 0
        out: list[execution_pb2.Fill] = []
        while len(out) < pending:
            out += [execution_pb2.Fill.FromString(x.data) for x in await sub.fetch(256, timeout=5)]
        return out

    stored = js_call(cluster.urls, fills)
    ids = [f.fill_id for f in stored]
    assert len(ids) == len(set(ids)), "a fill is in EXEC_FILLS twice"
    by_order: dict[str, int] = {}
    for f in stored:
        by_order[f.order_id] = by_order.get(f.order_id, 0) + f.quantity
    assert by_order == {a.order_id: a.filled for a in answered.values() if a.filled}
    record = [
        (a.side, a.filled, a.price)
        for _, a in sorted(answered.items(), key=lambda kv: int(kv[0][1:]))
        if a.filled
    ]
    qty, avg, _ = net_position(record)
    [p] = positions
    assert (p.symbol, p.quantity) == (sym, qty)
    assert p.average_cost == pytest.approx(avg, rel=1e-9)

    done = m.run("feed", "status", feed_id, "--wait", "--timeout", "180", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    st = json.loads(done.stdout)
    assert int(st["published"]) == int(st["stored"]) == FEED_TICKS, st
    with m.channel() as ch:
        ticks = all_ticks(md_grpc.MarketDataServiceStub(ch), "NCFEED")
    assert ticks["sequence"].tolist() == list(range(1, FEED_TICKS + 1))
