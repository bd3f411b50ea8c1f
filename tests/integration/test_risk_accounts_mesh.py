"""The RiskService's accounts end to end through a real mesh: Fill and Quote events on NATS in,
``risk.snapshot`` / ``risk.alert`` / ``risk.state`` out; GetAccountRisk over JSON through
Envoy; StreamRisk; limits, the trading state and SetPositions surviving a SIGKILL of the
service (the supervisor restarts it; it reads RISK_JOURNAL back), and so do the positions built
from fills (it reads EXEC_FILLS back)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import nats
import pytest
from nats.aio.msg import Msg
from tradecore.subjects import ExecKind, MdKind, RiskKind, exec_subject, md_subject, risk_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_api.risk.v1 import risk_pb2_grpc as pb_grpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T = TypeVar("T")
YEAR_NS = 365 * 86_400 * 1_000_000_000


def account() -> str:
    return "IT" + uuid.uuid4().hex[:10]


def fill_event(acct: str, fill_id: str, symbol: str, qty: int, price: float) -> bytes:
    f = execution_pb2.Fill(
        fill_id=fill_id, account=acct, side=common_pb2.BUY if qty > 0 else common_pb2.SELL,
        quantity=abs(qty), price=price, exchange_time_ns=time.time_ns(),
    )  # fmt: skip
    f.instrument.symbol = symbol
    f.instrument.kind = common_pb2.EQUITY
    return bytes(f.SerializeToString())


def option_fill(acct: str, fill_id: str, underlying: str, qty: int) -> bytes:
    f = execution_pb2.Fill(
        fill_id=fill_id, account=acct, side=common_pb2.BUY, quantity=qty, price=3.0,
        exchange_time_ns=time.time_ns(),
    )  # fmt: skip
    ins = f.instrument
    ins.symbol, ins.kind, ins.underlying = f"{underlying}C100", common_pb2.OPTION, underlying
    ins.right, ins.strike, ins.multiplier = common_pb2.CALL, 100.0, 100
    ins.expiry_time_ns = time.time_ns() + YEAR_NS // 4
    return bytes(f.SerializeToString())


def quote_event(symbol: str, bid: float, ask: float) -> bytes:
    q = market_pb2.Quote(
        venue="XNAS", symbol=symbol, bid_price=bid, ask_price=ask, bid_size=1, ask_size=1
    )
    return bytes(q.SerializeToString())


async def next_msg(q: asyncio.Queue[Msg], parse: Callable[[bytes], T], timeout: float = 10) -> T:
    msg = await asyncio.wait_for(q.get(), timeout)
    return parse(msg.data)


def http(mesh: Mesh, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **mesh.auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_fills_and_quotes_make_snapshots_and_a_breach_moves_the_state(mesh: Mesh) -> None:
    acct = account()
    und = "U" + acct[2:8].upper()

    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)
        queues: dict[RiskKind, asyncio.Queue[Msg]] = {}
        for kind in RiskKind:
            q: asyncio.Queue[Msg] = asyncio.Queue()
            queues[kind] = q
            await nc.subscribe(risk_subject(kind, acct), cb=q.put)
        snaps, alerts, states = (queues[k] for k in RiskKind)
        async with grpc.aio.insecure_channel(mesh.risk) as ch:
            stub = pb_grpc.RiskServiceStub(ch)
            limits = pb.Limits(max_delta_per_underlying=150)
            got = await stub.SetLimits(pb.SetLimitsRequest(account=acct, limits=limits), timeout=10)
            assert got.version == 1 and got.breach_mode == events.REDUCE_ONLY
            fills = exec_subject(ExecKind.FILL, acct)

            await nc.publish(fills, fill_event(acct, "f1", und, 100, 50.0))
            s1 = await next_msg(snaps, events.RiskSnapshot.FromString)
            assert (s1.sequence, s1.total.delta) == (1, 100)
            assert s1.underlyings[0].underlying == und and s1.underlyings[0].spot == 50.0

            await nc.publish(md_subject("XNAS", und, MdKind.QUOTE), quote_event(und, 51.0, 51.2))
            s2 = await next_msg(snaps, events.RiskSnapshot.FromString)
            assert s2.sequence == 2 and s2.underlyings[0].spot == pytest.approx(51.1)
            assert s2.unrealized_pnl == pytest.approx(110.0)

            # The same fill again changes nothing; a new one breaches the delta limit.
            await nc.publish(fills, fill_event(acct, "f1", und, 100, 50.0))
            await nc.publish(fills, fill_event(acct, "f2", und, 80, 51.0))
            s3 = await next_msg(snaps, events.RiskSnapshot.FromString)
            assert (s3.sequence, s3.total.delta) == (3, 180)
            alert = await next_msg(alerts, events.Alert.FromString)
            assert (alert.code, alert.symbol, alert.value, alert.limit) == (
                "limit.delta", und, 180, 150,
            )  # fmt: skip
            state = await next_msg(states, events.TradingState.FromString)
            assert state.mode == events.REDUCE_ONLY and state.reason == "breach: limit.delta"
            assert state.event_time_ns == s3.as_of_time_ns  # the same update

            # An option on the same underlying: Greeks beyond delta.
            await nc.publish(fills, option_fill(acct, "f3", und, 1))
            s4 = await next_msg(snaps, events.RiskSnapshot.FromString)
            assert 180 < s4.total.delta < 280 and s4.total.gamma > 0 and s4.total.vega > 0

            # GetAccountRisk over JSON through Envoy.
            status, body = await asyncio.to_thread(http, mesh, "GET", f"/v1/risk/accounts/{acct}")
            assert status == 200, body
            assert body["snapshot"]["sequence"] == "4"
            assert body["state"]["mode"] == "REDUCE_ONLY"
            assert body["var"] > 0 and body["limits"]["max_delta_per_underlying"] == 150
            assert {p["instrument"]["symbol"] for p in body["positions"]} == {und, f"{und}C100"}
            status, body = await asyncio.to_thread(
                http, mesh, "GET", f"/v1/risk/accounts/{account()}"
            )
            assert status == 404, body

            # StreamRisk: the current snapshot, then the next one.
            stream = stub.StreamRisk(pb.StreamRiskRequest(account=acct), timeout=30)
            first = await stream.read()
            assert first.sequence == 4
            await nc.publish(md_subject("XNAS", und, MdKind.QUOTE), quote_event(und, 52.0, 52.2))
            second = await stream.read()
            assert second.sequence == 5 and second.underlyings[0].spot == pytest.approx(52.1)
            stream.cancel()
        await nc.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    "method, body, needle",
    [
        ("PUT", {"limits": {"maxVar": -1}}, "limits.max_var"),
        ("PUT", {"limits": {"maxConcentration": 2}}, "limits.max_concentration"),
        ("PUT", {"limits": {"breachMode": "ENABLED"}}, "limits.breach_mode"),
    ],
)
def test_bad_limits_are_400_naming_the_field(
    mesh: Mesh, method: str, body: dict[str, Any], needle: str
) -> None:
    status, out = http(mesh, method, f"/v1/risk/accounts/{account()}/limits", body)
    assert status == 400 and needle in out["message"], out


def test_bad_account_and_mode_are_invalid_argument(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.risk) as ch:
        stub = pb_grpc.RiskServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.SetLimits(pb.SetLimitsRequest(account="a b", limits=pb.Limits()), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "account" in str(err.value.details())
        with pytest.raises(grpc.RpcError) as err:
            stub.SetTradingState(pb.SetTradingStateRequest(account="A1"), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(err.value.details()).startswith("mode:")
        with pytest.raises(grpc.RpcError) as err:
            stub.GetLimits(pb.GetLimitsRequest(account=account()), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def risk_pid(mesh: Mesh) -> int | None:
    pid = mesh.state()["components"]["risk"]["pid"]  # type: ignore[index]
    return None if pid is None else int(pid)


def test_limits_state_and_positions_survive_a_restart(mesh: Mesh) -> None:
    acct = account()
    with grpc.insecure_channel(mesh.risk) as ch:
        stub = pb_grpc.RiskServiceStub(ch)
        limits = pb.Limits(max_var=1234.5, max_day_loss=99, breach_mode=events.HALTED)
        stub.SetLimits(
            pb.SetLimitsRequest(account=acct, limits=limits, changed_by="op"), timeout=10
        )
        halted = stub.SetTradingState(
            pb.SetTradingStateRequest(
                account=acct, mode=events.HALTED, reason="test halt", changed_by="op"
            ),
            timeout=10,
        )
        req = pb.SetPositionsRequest(account=acct)
        req.positions.add(
            instrument=pb.RiskInstrument(symbol="JRNL", kind=common_pb2.EQUITY), quantity=-40
        )
        req.market.underlyings.add(symbol="JRNL", spot=20, volatility=0.3)
        set_risk = stub.SetPositions(req, timeout=10)
        assert set_risk.snapshot.total.delta == -40
    old = risk_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while risk_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the risk service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.risk) as ch:
        stub = pb_grpc.RiskServiceStub(ch)
        while True:
            try:
                got = stub.GetLimits(pb.GetLimitsRequest(account=acct), timeout=5)
                break
            except grpc.RpcError as exc:
                assert time.monotonic() < deadline, exc
                time.sleep(0.2)
        assert (got.max_var, got.max_day_loss, got.version) == (1234.5, 99, 1)
        assert got.breach_mode == events.HALTED
        risk = stub.GetAccountRisk(pb.GetAccountRiskRequest(account=acct), timeout=10)
        assert risk.state.mode == events.HALTED and risk.state.reason == "test halt"
        assert risk.state.sequence == halted.sequence
        ((p),) = risk.positions
        assert (p.instrument.symbol, p.quantity) == ("JRNL", -40)
        # The operator re-enables: the next state continues the sequence.
        st = stub.SetTradingState(
            pb.SetTradingStateRequest(account=acct, mode=events.ENABLED, changed_by="op"),
            timeout=10,
        )
        assert st.sequence == halted.sequence + 1


def test_fill_built_positions_survive_a_restart(mesh: Mesh) -> None:
    """Fills stored in EXEC_FILLS before, during and after a SIGKILL of the risk service: the
    restarted service has each of them once (f1 is stored twice, under two message ids)."""
    acct = account()
    und = "F" + acct[2:8].upper()
    subject = exec_subject(ExecKind.FILL, acct)

    async def store(js: Any, fill_id: str, qty: int, msg_id: str) -> None:
        data = fill_event(acct, fill_id, und, qty, 10.0)
        await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}, stream="EXEC_FILLS")

    async def before() -> None:
        nc = await nats.connect(mesh.nats_url)
        snaps: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(risk_subject(RiskKind.SNAPSHOT, acct), cb=snaps.put)
        js = nc.jetstream()
        await store(js, "f1", 100, f"{acct}-f1")
        snap = await next_msg(snaps, events.RiskSnapshot.FromString)
        assert snap.total.delta == 100
        await nc.close()

    async def while_down() -> None:
        nc = await nats.connect(mesh.nats_url)
        js = nc.jetstream()
        await store(js, "f2", 20, f"{acct}-f2")
        await store(js, "f1", 100, f"{acct}-f1-again")
        await nc.close()

    asyncio.run(before())
    old = risk_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    asyncio.run(while_down())
    deadline = time.monotonic() + 60
    while risk_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the risk service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.risk) as ch:
        stub = pb_grpc.RiskServiceStub(ch)
        while True:
            try:
                risk = stub.GetAccountRisk(pb.GetAccountRiskRequest(account=acct), timeout=5)
                break
            except grpc.RpcError as exc:
                assert time.monotonic() < deadline, exc
                time.sleep(0.2)
        assert {p.instrument.symbol: p.quantity for p in risk.positions} == {und: 120}

        async def after() -> None:
            nc = await nats.connect(mesh.nats_url)
            await store(nc.jetstream(), "f3", 1, f"{acct}-f3")
            await nc.close()

        asyncio.run(after())
        while True:
            risk = stub.GetAccountRisk(pb.GetAccountRiskRequest(account=acct), timeout=5)
            if {p.instrument.symbol: p.quantity for p in risk.positions} == {und: 121}:
                break
            assert time.monotonic() < deadline, risk.positions
            time.sleep(0.1)
