"""The ExecutionService's audit trail on a running mesh: after orders, a cancel, a replace and a
limit change through gRPC, the tamper-evident log under the data directory holds every journaled
command and event (each once, with the journaled bytes), ``tradecore audit verify`` says it is
intact (signed checkpoints checked with the key the service made), and a tampered copy is not."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import nats
import pytest
from tradecore import audit
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_services.execution.audit_trail import PUBLIC_KEY_FILE
from tradecore_services.execution.journal import Journal

from tests.mesh import Mesh, tradecore_cmd

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BID, ASK = 99.9, 100.1


def journal_entries(mesh: Mesh) -> dict[tuple[int, int], bytes]:
    """(stream sequence, place in its message) -> the entry's bytes, of the whole journal."""

    async def go() -> dict[tuple[int, int], bytes]:
        nc = await nats.connect(mesh.nats_url)
        journal = Journal()
        await journal.attach(nc)
        out = {(seq, i): e.SerializeToString() async for seq, i, e in journal.records()}
        await nc.close()
        return out

    return asyncio.run(go())


def audited(log: Path) -> dict[tuple[int, int], tuple[str, bytes]]:
    """(stream sequence, place) -> (kind, journaled bytes) of the trail's records."""
    out: dict[tuple[int, int], tuple[str, bytes]] = {}
    for r in audit.records_of(log):
        if r.source != "execution":
            continue
        obj = json.loads(r.payload)
        key = (obj["stream_seq"], obj["batch_index"])
        assert key not in out, f"journal entry {key} appended twice"
        out[key] = (r.kind, base64.b64decode(obj["proto"]))
    return out


def verify(log: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tradecore_cmd(), "audit", "verify", "--path", str(log), "--public-key", str(public_key)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_journaled_entry_is_in_the_verified_audit_log(mesh: Mesh, tmp_path: Path) -> None:
    acct, sym = "AU" + uuid.uuid4().hex[:10], "AUQ" + uuid.uuid4().hex[:6].upper()

    async def publish_quote() -> None:
        nc = await nats.connect(mesh.nats_url)
        q = market_pb2.Quote(
            venue="XNAS", symbol=sym, bid_price=BID, ask_price=ASK, bid_size=10**6, ask_size=10**6
        )
        await nc.publish(md_subject("XNAS", sym, MdKind.QUOTE), q.SerializeToString())
        await nc.flush()
        await nc.close()

    asyncio.run(publish_quote())

    def order(coid: str, qty: int, price: float, tif: int) -> pb.SubmitOrderRequest:
        return pb.SubmitOrderRequest(
            account=acct, client_order_id=coid, symbol=sym, side=common_pb2.BUY, quantity=qty,
            type=execution_pb2.LIMIT, limit_price=price, time_in_force=tif,
        )  # fmt: skip

    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        deadline = time.monotonic() + 20
        for i in range(200):  # until the paper venue has the quote
            probe = stub.SubmitOrder(order(f"p{i}", 1 + i, ASK, execution_pb2.IOC), timeout=10)
            if probe.status == execution_pb2.FILLED:
                break
            assert time.monotonic() < deadline, probe
            time.sleep(0.1)
        for k in range(5):
            got = stub.SubmitOrder(order(f"f{k}", 10 + k, ASK, execution_pb2.IOC), timeout=10)
            assert got.status == execution_pb2.FILLED, got
        resting = stub.SubmitOrder(order("r", 7, 99.5, execution_pb2.DAY), timeout=10)
        assert resting.status == execution_pb2.ACCEPTED, resting
        stub.ReplaceOrder(pb.ReplaceOrderRequest(order_id=resting.order_id, quantity=9), timeout=10)
        stub.CancelOrder(pb.CancelOrderRequest(order_id=resting.order_id), timeout=10)
        limits = stub.GetLimits(pb.GetLimitsRequest(account=acct), timeout=10)
        limits.max_order_quantity = 1000
        stub.SetLimits(pb.SetLimitsRequest(account=acct, limits=limits), timeout=10)

    log = mesh.data_dir / "audit"
    journal = journal_entries(mesh)
    deadline = time.monotonic() + 30
    while True:  # the trail follows the journal; a checkpoint signs it within a second
        trail = audited(log)
        if set(journal) <= set(trail) and audit.verify(log).checkpoints:
            break
        assert time.monotonic() < deadline, sorted(set(journal) - set(trail))[:10]
        time.sleep(0.2)
    for key, data in journal.items():
        assert trail[key][1] == data, key
    ours = [
        pb.JournalEntry.FromString(data)
        for _, data in sorted(trail.values())
        if pb.JournalEntry.FromString(data).account == acct
    ]
    which = {e.WhichOneof("entry") for e in ours}
    assert {"submit", "replace", "cancel", "set_limits", "oms"} <= which
    oms_types = {e.oms.type for e in ours if e.WhichOneof("entry") == "oms"}
    assert {"OrderCreated", "OrderFilled", "OrderReplaced", "OrderCanceled", "LimitsSet"} <= (
        oms_types
    )
    kinds = {kind for kind, _ in trail.values()}
    assert {"exec.command.submit", "exec.event.oms.OrderFilled"} <= kinds

    public_key = mesh.data_dir / PUBLIC_KEY_FILE
    ok = verify(log, public_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact" in ok.stdout

    # a copy with one byte of a record changed is found out
    copy = tmp_path / "audit"
    shutil.copytree(log, copy, ignore=shutil.ignore_patterns(".lock"))
    segment = sorted(copy.glob("segment-*.audit"))[0]
    data = bytearray(segment.read_bytes())
    at = data.index(acct.encode())
    data[at] ^= 0x01
    segment.write_bytes(bytes(data))
    bad = verify(copy, public_key)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "NOT INTACT" in bad.stderr
