"""Authentication and roles at the gateway, walked over the whole route table: every RPC of
every registered service as gRPC and (where it has an HTTP binding) as JSON, and the plain
HTTP paths (/v2, /monitor), each with a missing, expired, wrongly signed, wrong-issuer,
wrong-audience and wrong-role token, and with a token of its minimum role."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_gateway.auth import HTTP_RULES, PUBLIC_PATHS, ROLES, method_roles
from tradecore_gateway.generate import descriptor_path, json_routes, streaming_methods
from tradecore_services.mesh.auth import sign, signing_key
from tradecore_services.registry import SERVICES

from tests.integration.conftest import running_mesh
from tests.mesh import Mesh, tradecore_cmd

ACCOUNT = "acct-x"
UNAUTHENTICATED, DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


def claims(role: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"iss": "tradecore", "aud": "tradecore", "sub": role, "role": role, "iat": now}
    out |= {"exp": now + 600, "account": ACCOUNT}
    out.update(over)
    return out


def bad_tokens(mesh: Mesh) -> dict[str, str | None]:
    """Tokens the gateway must refuse as UNAUTHENTICATED / 401 (None: no token at all)."""
    key, kid = signing_key(mesh.data_dir)
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    return {
        "missing": None,
        "expired": sign(claims("admin", iat=now - 7200, exp=now - 3600), key, kid),
        "wrong key": sign(claims("admin"), other, kid),
        "wrong issuer": sign(claims("admin", iss="someone-else"), key, kid),
        "wrong audience": sign(claims("admin", aud="someone-else"), key, kid),
        "no exp": sign({k: v for k, v in claims("admin").items() if k != "exp"}, key, kid),
    }


def role_token(mesh: Mesh, role: str) -> str:
    key, kid = signing_key(mesh.data_dir)
    return sign(claims(role), key, kid)


def below(role: str) -> str:
    """A role that may not call what ``role`` may (``guest`` below viewer)."""
    i = ROLES.index(role)
    return ROLES[i - 1] if i else "guest"


def routed() -> set[str]:
    return {g for s in SERVICES for g in s.grpc_services}


def _request_classes() -> Callable[[str], Any]:
    pool = descriptor_pool.DescriptorPool()
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    for f in fds.file:
        pool.Add(f)
    methods = {
        f"/{f.package}.{s.name}/{m.name}": m.input_type.lstrip(".")
        for f in fds.file
        for s in f.service
        for m in s.method
    }

    def request_bytes(rpc: str) -> bytes:
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(methods[rpc]))
        msg = cls()
        if "account" in cls.DESCRIPTOR.fields_by_name:
            msg.account = ACCOUNT  # a trader token for ACCOUNT may act on it
        return bytes(msg.SerializeToString())

    return request_bytes


REQUEST = _request_classes()
STREAMS = set(streaming_methods(descriptor_path()))
ROLE_OF = method_roles(descriptor_path())
GRPC_RPCS = sorted(p for p in ROLE_OF if p.split("/")[1] in routed())


def grpc_code(mesh: Mesh, rpc: str, token: str | None) -> grpc.StatusCode:
    md = () if token is None else (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(mesh.gateway) as ch:
        try:
            if rpc in STREAMS:
                it = ch.unary_stream(rpc)(REQUEST(rpc), metadata=md, timeout=1.5)
                next(iter(it), None)
            else:
                ch.unary_unary(rpc)(REQUEST(rpc), metadata=md, timeout=10)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def http_call(
    mesh: Mesh, method: str, path: str, token: str | None, body: bytes | None = None
) -> tuple[int, Any]:
    headers = {"content-type": "application/json"} if body is not None else {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, None  # a stream stays open: its status is enough
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw


def _json_cases() -> Iterator[tuple[str, str, bytes | None, str]]:
    """(HTTP method, path, body, rpc) of every HTTP binding of the routed tradecore services."""
    for r in json_routes(descriptor_path(), sorted(routed())):

        def var(m: re.Match[str]) -> str:
            name, _, sub = m.group(1).partition("=")
            if sub:
                return sub.replace("**", "x").replace("*", "x")
            return ACCOUNT if name == "account" else "x"

        path = re.sub(r"\{([^}]*)\}", var, r.template)
        body: bytes | None = None
        if r.body:
            has_account = "account" in _fields(r.request) and "{account" not in r.template
            body = json.dumps({"account": ACCOUNT} if has_account and r.body == "*" else {})
            body = body.encode()  # type: ignore[union-attr]
        yield r.method, path, body, r.rpc


def _fields(message: str) -> set[str]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    for f in fds.file:
        for m in f.message_type:
            if f"{f.package}.{m.name}" == message:
                return {fd.name for fd in m.field}
    return set()


JSON_CASES = list(_json_cases())


def test_the_walk_covers_every_routed_rpc() -> None:
    assert len(GRPC_RPCS) >= 50, GRPC_RPCS
    assert {c[3] for c in JSON_CASES} >= {
        "/tradecore.execution.v1.ExecutionService/SubmitOrder",
        "/tradecore.marketdata.v1.MarketDataService/StartFeed",
    }


def test_every_grpc_route_refuses_bad_tokens_and_low_roles(mesh: Mesh) -> None:
    bad = bad_tokens(mesh)
    wrong: list[str] = []
    for rpc in GRPC_RPCS:
        for what, token in bad.items():
            code = grpc_code(mesh, rpc, token)
            if code != UNAUTHENTICATED:
                wrong.append(f"{rpc} with {what} token: {code.name}")
        low = below(ROLE_OF[rpc])
        code = grpc_code(mesh, rpc, role_token(mesh, low))
        if code != DENIED:
            wrong.append(f"{rpc} as {low}: {code.name}")
        code = grpc_code(mesh, rpc, role_token(mesh, ROLE_OF[rpc]))
        if code in (UNAUTHENTICATED, DENIED):
            wrong.append(f"{rpc} as {ROLE_OF[rpc]} (its minimum role): {code.name}")
    assert not wrong, "\n".join(wrong)


def test_every_json_route_refuses_bad_tokens_and_low_roles(mesh: Mesh) -> None:
    bad = bad_tokens(mesh)
    wrong: list[str] = []
    for method, path, body, rpc in JSON_CASES:
        where = f"{method} {path} ({rpc})"
        for what, token in bad.items():
            status, out = http_call(mesh, method, path, token, body)
            if status != 401 or not isinstance(out, dict) or out.get("code") != 16:
                wrong.append(f"{where} with {what} token: {status} {out!r}")
        low = below(ROLE_OF[rpc])
        status, out = http_call(mesh, method, path, role_token(mesh, low), body)
        if status != 403 or not isinstance(out, dict) or out.get("code") != 7:
            wrong.append(f"{where} as {low}: {status} {out!r}")
        elif rpc not in out["message"] or low not in out["message"]:
            wrong.append(f"{where} as {low}: the message names neither: {out!r}")
        status, out = http_call(mesh, method, path, role_token(mesh, ROLE_OF[rpc]), body)
        if status in (401, 403):
            wrong.append(f"{where} as {ROLE_OF[rpc]} (its minimum role): {status} {out!r}")
    assert not wrong, "\n".join(wrong)


def test_every_plain_http_path_refuses_bad_tokens_and_low_roles(mesh: Mesh) -> None:
    bad = bad_tokens(mesh)
    wrong: list[str] = []
    for rule in HTTP_RULES:
        body = b"{}" if rule.method == "POST" else None
        where = f"{rule.method} {rule.example}"
        for what, token in bad.items():
            status, out = http_call(mesh, rule.method, rule.example, token, body)
            if status != 401 or not isinstance(out, dict) or out.get("code") != 16:
                wrong.append(f"{where} with {what} token: {status} {out!r}")
        low = below(rule.role)
        status, out = http_call(mesh, rule.method, rule.example, role_token(mesh, low), body)
        if status != 403 or not isinstance(out, dict) or out.get("code") != 7:
            wrong.append(f"{where} as {low}: {status} {out!r}")
        status, out = http_call(mesh, rule.method, rule.example, role_token(mesh, rule.role), body)
        if status in (401, 403):
            wrong.append(f"{where} as {rule.role}: {status} {out!r}")
    # Under a prefix but in no rule: admin only.
    status, _ = http_call(mesh, "GET", "/v2/elsewhere", role_token(mesh, "risk"))
    if status != 403:
        wrong.append(f"/v2/elsewhere as risk: {status}")
    assert not wrong, "\n".join(wrong)


def test_health_needs_no_token(mesh: Mesh) -> None:
    for path in PUBLIC_PATHS:
        assert http_call(mesh, "GET", path, None)[0] == 200, path
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(mesh.gateway) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live/../../../v1/pricing/price",
        "/v2/health/live/%2E%2E/%2E%2E/%2E%2E/v1/pricing/price",
        "//v1/pricing/price",
        "/grpc.health.v1.Health/../tradecore.pricing.v1.PricingService/Price",
        "/tradecore.pricing.v1.PricingService/Price",
    ],
)
def test_no_path_leads_around_the_token(mesh: Mesh, path: str) -> None:
    status, _ = http_call(mesh, "POST", path, None, b"{}")
    assert status in (401, 404), status  # never reaches the service without a token


def test_a_trader_acts_on_its_own_account_only(mesh: Mesh) -> None:
    mine, theirs = "auth-" + uuid.uuid4().hex[:8], "auth-" + uuid.uuid4().hex[:8]

    def stub(role: str, account: str) -> tuple[grpc.Channel, pb_grpc.ExecutionServiceStub]:
        ch = grpc.insecure_channel(mesh.gateway)
        md = mesh.metadata(role, account)
        return ch, _Stub(pb_grpc.ExecutionServiceStub(ch), md)  # type: ignore[return-value]

    order: dict[str, Any] = dict(
        client_order_id="c1", symbol="AAPL", side=common_pb2.BUY, quantity=10,
        type=execution_pb2.LIMIT, limit_price=99.0,
    )  # fmt: skip
    ch1, me = stub("trader", mine)
    ch2, other = stub("trader", theirs)
    ch3, risk = stub("risk", "")
    with ch1, ch2, ch3:
        placed = me.SubmitOrder(pb.SubmitOrderRequest(account=mine, **order), timeout=10)
        assert placed.account == mine
        for call in (
            lambda: other.SubmitOrder(pb.SubmitOrderRequest(account=mine, **order), timeout=10),
            lambda: other.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), timeout=10),
            lambda: other.CancelOrder(pb.CancelOrderRequest(order_id=placed.order_id), timeout=10),
            lambda: other.ListOrders(pb.ListOrdersRequest(account=mine), timeout=10),
            lambda: other.GetPositions(pb.GetPositionsRequest(account=mine), timeout=10),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == DENIED, err.value
            assert repr(mine) in (err.value.details() or ""), err.value.details()
        assert me.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), timeout=10).account == mine
        got = risk.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), timeout=10)
        assert got.order_id == placed.order_id
    # The same over JSON.
    status, out = http_call(
        mesh, "GET", f"/v1/execution/orders/{placed.order_id}", mesh.token("trader", theirs)
    )
    assert status == 403 and out["code"] == 7 and repr(mine) in out["message"], out


class _Stub:
    """A stub whose every call carries ``metadata``."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub, self._md = stub, metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)
        return lambda req, **kw: method(req, metadata=self._md, **kw)


def test_key_files_are_private(mesh: Mesh) -> None:
    auth = Path(mesh.data_dir) / "auth"
    assert auth.stat().st_mode & 0o777 == 0o700
    keys = list((auth / "keys").glob("*.pem"))
    assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)


def test_auth_off_and_a_forged_claims_header(tmp_path: Path) -> None:
    """With ``--auth off`` no token is asked for, and a client's own claims header never reaches
    a service (a forged trader claim for another account would be refused if it did)."""
    forged = (
        "eyJyb2xlIjoidHJhZGVyIiwiYWNjb3VudCI6Im5vYm9keSJ9"  # {"role":"trader","account":"nobody"}
    )
    with running_mesh(tmp_path, "--auth", "off") as m:
        assert not (tmp_path / "auth").exists()
        with grpc.insecure_channel(m.gateway) as ch:
            stub = pb_grpc.ExecutionServiceStub(ch)
            resp = stub.ListOrders(
                pb.ListOrdersRequest(account="someone"),
                metadata=(("x-tradecore-claims", forged),),
                timeout=10,
            )
        assert list(resp.orders) == []


def _token_cli(m: Mesh, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
    return subprocess.run(
        [*tradecore_cmd(), "token", *args, "--data-dir", str(m.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _wait_code(m: Mesh, token: str, want: grpc.StatusCode, timeout: float = 30) -> None:
    """Until a ListSymbols call with ``token`` gets ``want`` (the gateway restarts meanwhile)."""
    deadline = time.monotonic() + timeout
    code = grpc.StatusCode.UNKNOWN
    while time.monotonic() < deadline:
        code = grpc_code(m, "/tradecore.marketdata.v1.MarketDataService/ListSymbols", token)
        if code == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{want.name} expected, last {code.name}")


def test_token_cli_and_key_rotation(tmp_path: Path) -> None:
    with running_mesh(tmp_path) as m:
        minted = _token_cli(m, "--role", "viewer", "--ttl", "10m")
        assert minted.returncode == 0, minted.stderr
        old = minted.stdout.strip()
        _wait_code(m, old, grpc.StatusCode.OK)
        bad = _token_cli(m, "--role", "trader")  # a trader token needs its account
        assert bad.returncode == 2 and "account" in bad.stderr, bad.stderr
        old_kid = json.loads((tmp_path / "auth" / "jwks.json").read_text())["keys"][0]["kid"]

        rotated = _token_cli(m, "rotate")
        assert rotated.returncode == 0 and "restarts" in rotated.stdout, rotated
        kids = [k["kid"] for k in json.loads((tmp_path / "auth" / "jwks.json").read_text())["keys"]]
        assert old_kid in kids and len(kids) == 2
        new = _token_cli(m, "--role", "viewer").stdout.strip()
        _wait_code(m, new, grpc.StatusCode.OK)  # the restarted gateway knows the new key
        _wait_code(m, old, grpc.StatusCode.OK)  # and still the old one

        refused = _token_cli(m, "rotate", "--retire", kids[0] if kids[0] != old_kid else kids[1])
        assert refused.returncode == 2 and "current" in refused.stderr, refused
        retired = _token_cli(m, "rotate", "--retire", old_kid)
        assert retired.returncode == 0, retired
        _wait_code(m, old, UNAUTHENTICATED)
        _wait_code(m, new, grpc.StatusCode.OK)
