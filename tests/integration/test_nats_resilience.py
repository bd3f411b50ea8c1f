"""The services' NATS connection against a real nats-server that goes away: the Bus connects
again even when the server closed the connection for good (a protocol error), re-making its
subscriptions, and a service's grpc.health.v1 status is NOT_SERVING while NATS is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.msg import Msg
from tradecore.subjects import PRICING_PRICE
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.mesh.components import nats_server_path

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class NatsServer:
    """A nats-server with JetStream on a fixed port that a test can kill and start again."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                nats_server_path(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    s = NatsServer(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def _until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        await asyncio.sleep(0.05)


def test_bus_connects_again_after_the_server_closes_the_connection(server: NatsServer) -> None:
    async def go() -> None:
        bus = Bus(server.url, "test-bus")

        async def echo(msg: Msg) -> None:
            await msg.respond(b"echo:" + msg.data)

        bus.subscribe("svc.echo", echo)
        await bus.start()
        await asyncio.wait_for(bus.connected.wait(), 20)
        first = bus.nc
        assert first is not None and first.is_connected
        # A control line over the server's 4096-byte limit: nats-server answers -ERR and
        # closes the connection, and nats-py treats the connection as closed for good.
        await first.publish("x" * 5000, b"")
        await _until("closed", lambda: first.is_closed)
        await _until(
            "connected again",
            lambda: bus.nc is not None and bus.nc is not first and bus.nc.is_connected,
        )
        client = await nats.connect(server.url)
        try:
            reply = await client.request("svc.echo", b"hi", timeout=5)
            assert reply.data == b"echo:hi"
        finally:
            await client.close()
            await bus.stop()

    asyncio.run(go())


def _health(target: str, service: str) -> str:
    with grpc.insecure_channel(target) as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.RpcError as e:
            return e.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def _wait_health(target: str, service: str, want: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = _health(target, service)
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{service} health {got}, not {want}, after {timeout}s")


@pytest.mark.parametrize(
    "module,service",
    [
        ("pricing", "tradecore.pricing.v1.PricingService"),
        ("marketdata", "tradecore.marketdata.v1.MarketDataService"),
    ],
)
def test_health_is_not_serving_while_nats_is_down(
    server: NatsServer, tmp_path: Path, module: str, service: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
    env.update(
        TRADECORE_PORT=str(port),
        TRADECORE_METRICS_PORT=str(free_port()),
        TRADECORE_NATS_URL=server.url,
        TRADECORE_DATA_DIR=str(tmp_path / "data"),
        TRADECORE_GRACE_SECONDS="1",
    )
    target = f"127.0.0.1:{port}"
    with (tmp_path / f"{module}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"tradecore_services.{module}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_health(target, service, "SERVING")
            server.kill()
            _wait_health(target, service, "NOT_SERVING")
            # The process itself still serves (what Envoy routes on): calls that need no
            # NATS keep working.
            assert _health(target, "") == "SERVING"
            server.start()
            _wait_health(target, service, "SERVING")
            if module == "pricing":
                asyncio.run(_nats_price(server.url))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, (tmp_path / f"{module}.log").read_text()


async def _nats_price(url: str) -> None:
    nc = await nats.connect(url)
    try:
        request = pb.PriceRequest()
        request.contracts.add(
            spot=100.0, strike=100.0, expiry_years=1.0, volatility=0.2, option_type=pb.CALL
        )
        reply = await nc.request(PRICING_PRICE, request.SerializeToString(), timeout=5)
        assert pb.PriceResponse.FromString(reply.data).results[0].price > 0
    finally:
        await nc.close()
