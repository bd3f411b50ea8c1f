"""ExecutionService in the mesh: the trading state over JSON and gRPC, the RiskService's state
reaching it over NATS, bad input naming the field, and acknowledged changes surviving a SIGKILL
of the service mid-stream (journal before acknowledgement)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_api.risk.v1 import risk_pb2 as risk_pb
from tradecore_api.risk.v1 import risk_pb2_grpc as risk_grpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def account() -> str:
    return "EX" + uuid.uuid4().hex[:10]


def http(mesh: Mesh, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def until_state(stub: pb_grpc.ExecutionServiceStub, acct: str, ok: Any) -> pb.TradingState:
    deadline = time.monotonic() + 30
    while True:
        try:
            got = stub.GetTradingState(pb.GetTradingStateRequest(account=acct), timeout=5)
            if ok(got):
                return got
        except grpc.RpcError as exc:  # restarting: UNAVAILABLE until the journal is replayed
            assert time.monotonic() < deadline, exc
        assert time.monotonic() < deadline, "state not reached"
        time.sleep(0.1)


def test_trading_state_over_json_grpc_and_from_the_risk_service(mesh: Mesh) -> None:
    acct = account()
    status, out = http(
        mesh,
        "POST",
        f"/v1/execution/accounts/{acct}/state",
        {"mode": "HALTED", "reason": "kill switch", "changedBy": "op-1"},
    )
    assert status == 200, out
    assert out["effective"] == "HALTED" and out["operator"]["changed_by"] == "op-1", out
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        got = stub.GetTradingState(pb.GetTradingStateRequest(account=acct), timeout=10)
        assert got.effective == events.HALTED and got.operator.reason == "kill switch"
        # The RiskService reduces another account: the execution service follows over NATS.
        other = account()
        with grpc.insecure_channel(mesh.risk) as rch:
            risk_grpc.RiskServiceStub(rch).SetTradingState(
                risk_pb.SetTradingStateRequest(account=other, mode=events.REDUCE_ONLY),
                timeout=10,
            )
        got = until_state(stub, other, lambda s: s.effective == events.REDUCE_ONLY)
        assert got.risk.mode == events.REDUCE_ONLY and got.operator.mode == events.ENABLED
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{other}/state")
    assert status == 200 and out["effective"] == "REDUCE_ONLY", out


@pytest.mark.parametrize(
    "path, body, needle",
    [
        ("/v1/execution/accounts/A1/state", {"mode": "HALT"}, "mode"),
        ("/v1/execution/accounts/A1/state", {}, "mode:"),
        ("/v1/execution/accounts/a%20b/state", {"mode": "HALTED"}, "account"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    mesh: Mesh, path: str, body: dict[str, Any], needle: str
) -> None:
    status, out = http(mesh, "POST", path, body)
    assert status == 400 and needle in out["message"], out


def execution_pid(mesh: Mesh) -> int | None:
    pid = mesh.state()["components"]["execution"]["pid"]  # type: ignore[index]
    return None if pid is None else int(pid)


def test_acknowledged_changes_survive_a_sigkill_mid_stream(mesh: Mesh) -> None:
    """SetTradingState calls one after another; the service is SIGKILLed while they run. After
    the restart the account's operator state is the journal's: its sequence counts every
    acknowledged call exactly once (plus at most the one in flight at the kill, journaled
    but not answered), and its reason is that of the call with that sequence."""
    acct = account()
    acked: list[int] = []
    stop = threading.Event()

    def submit() -> None:
        with grpc.insecure_channel(mesh.execution) as ch:
            stub = pb_grpc.ExecutionServiceStub(ch)
            for i in range(1, 10_000):
                if stop.is_set():
                    return
                mode = events.HALTED if i % 2 else events.ENABLED
                req = pb.SetTradingStateRequest(account=acct, mode=mode, reason=f"r{i}")
                try:
                    got = stub.SetTradingState(req, timeout=5)
                except grpc.RpcError:
                    return  # the service died: i may or may not be journaled
                assert got.operator.sequence == i
                acked.append(i)

    t = threading.Thread(target=submit)
    t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20:
        assert time.monotonic() < deadline and t.is_alive(), "no changes acknowledged"
        time.sleep(0.01)
    old = execution_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    t.join(30)
    stop.set()
    n = len(acked)
    assert acked == list(range(1, n + 1))
    deadline = time.monotonic() + 60
    while execution_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        got = until_state(stub, acct, lambda s: True)
        seq = got.operator.sequence
        assert seq in (n, n + 1), (seq, n)
        assert got.operator.reason == f"r{seq}"
        assert got.operator.mode == (events.HALTED if seq % 2 else events.ENABLED)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"side": "BUY", "quantity": 0}, "quantity"),
        ({"side": "BUY", "limit_price": -1}, "limit_price"),
        ({"side": "HOLD"}, "side"),
        ({"side": "BUY", "type": "MARKET"}, "limit_price"),
        ({"side": "BUY", "symbol": "A.B"}, "symbol"),
        ({"side": "BUY", "client_order_id": ""}, "client_order_id"),
        ({"side": "BUY", "venue": "ALPACA"}, "venue: ALPACA is not enabled"),
    ],
)
def test_bad_orders_are_400_naming_the_field(mesh: Mesh, body: dict[str, Any], needle: str) -> None:
    order = {
        "account": account(), "client_order_id": "c1", "symbol": "AAPL", "quantity": 100,
        "type": "LIMIT", "limit_price": 190.5, "time_in_force": "DAY", "venue": "PAPER",
    }  # fmt: skip
    status, out = http(mesh, "POST", "/v1/execution/orders", {**order, **body})
    assert status == 400 and needle in out["message"], out


def test_orders_and_positions_over_grpc_json_and_the_cli(mesh: Mesh) -> None:
    acct = account()
    # no venue runs in this build yet: a well-formed order is refused naming the venue
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        req = pb.SubmitOrderRequest(
            account=acct, client_order_id="c1", symbol="AAPL", side=common_pb2.BUY,
            quantity=10, type=execution_pb2.LIMIT, limit_price=190.5,
        )  # fmt: skip
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitOrder(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert str(err.value.details()).startswith("venue: PAPER is not running")
        with pytest.raises(grpc.RpcError) as err:
            stub.GetOrder(pb.GetOrderRequest(order_id="O999999"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{acct}/orders")
    assert (status, out.get("orders", [])) == (200, []), out
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{acct}/positions")
    assert status == 200 and out["account"] == acct and out.get("positions", []) == [], out
    status, out = http(mesh, "DELETE", "/v1/execution/orders/O999999")
    assert status == 404, out
    path = f"/v1/execution/accounts/{acct}/limits"
    status, out = http(mesh, "PUT", path, {"limits": {"max_order_quantity": 0}})
    assert status == 400 and out["message"].startswith("limits.max_order_quantity "), out
    status, out = http(mesh, "PUT", path, {"limits": {"max_order_quantity": 10}})
    assert status == 200 and out["max_order_quantity"] == "10", out
    assert http(mesh, "GET", path) == (200, out)
    cli = mesh.run("positions", "--account", acct)
    assert cli.returncode == 0 and cli.stdout == "", cli.stdout + cli.stderr
    cli = mesh.run(
        "order", "submit", "--account", acct, "--client-order-id", "c1", "--symbol", "AAPL",
        "--side", "BUY", "--quantity", "10", "--limit-price", "190.5",
    )  # fmt: skip
    assert cli.returncode == 1 and "FAILED_PRECONDITION: venue: PAPER" in cli.stderr, cli.stderr
    cli = mesh.run("order", "submit", "--account", "a.b", "--client-order-id", "c1",
                   "--symbol", "AAPL", "--side", "BUY", "--quantity", "10")  # fmt: skip
    assert cli.returncode == 2 and "account" in cli.stderr, cli.stderr
