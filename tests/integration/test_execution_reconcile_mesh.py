"""Reconciliation in the mesh: the JSON route through Envoy, bad input as 400 naming the field,
and the reconciliation at start after a SIGKILL of the execution service (the default policy,
ADOPT_VENUE: the orders the restarted paper venue no longer has are CANCELED with reason
"reconciliation")."""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from tradecore_api.events.v1 import execution_pb2
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from tests.integration.test_execution_mesh import (
    account,
    execution_pid,
    http,
    submit,
    until_state,
)
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_reconcile_over_json_and_at_start_after_a_sigkill(mesh: Mesh) -> None:
    acct = account()
    path = f"/v1/execution/accounts/{acct}:reconcile"
    status, out = http(mesh, "POST", path, {"policy": "NOPE"})
    assert status == 400 and "policy" in out["message"], out
    status, out = http(mesh, "POST", path, {"policy": "REPORT"})
    assert status == 200 and out["supported"] and out["clean"], out
    status, out = http(
        mesh, "PUT", f"/v1/execution/accounts/{acct}/limits", {"limits": {"collar": False}}
    )
    assert status == 200, out
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        working = submit(stub, acct, "w1", symbol="EXR" + acct[-4:].upper())
        assert working.status == execution_pb2.ACCEPTED, working
    status, out = http(mesh, "POST", path, {"policy": "HALT"})
    assert status == 200 and out["clean"] and not out.get("halted"), out

    old = execution_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while execution_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        until_state(stub, acct, lambda s: True)  # serving again
        got = stub.GetOrder(pb.GetOrderRequest(order_id=working.order_id), timeout=10)
        assert (got.status, got.reason) == (execution_pb2.CANCELED, "reconciliation")
        state = stub.GetTradingState(pb.GetTradingStateRequest(account=acct), timeout=10)
        assert state.effective == risk_events.ENABLED
    status, out = http(mesh, "POST", path, {"policy": "ADOPT_VENUE"})
    assert status == 200 and out["clean"] and out["policy"] == "ADOPT_VENUE", out
