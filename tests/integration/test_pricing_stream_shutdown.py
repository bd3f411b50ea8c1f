"""An open StreamGreeks call ends cleanly (status OK, no error) when the mesh shuts down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import nats
import pytest
from tradecore.subjects import MdKind, md_subject
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.integration.test_pricing_analytics_mesh import quote, stream_request, wait_subscribers
from tests.mesh import Mesh

pytestmark = pytest.mark.integration


def test_open_stream_ends_ok_on_shutdown(tmp_path: Path) -> None:
    mesh = Mesh.with_free_ports(tmp_path)
    up = mesh.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    down_rc: list[int] = []

    async def go() -> None:
        subject = md_subject("XTST", "SDOWN", MdKind.QUOTE)
        async with grpc.aio.insecure_channel(mesh.pricing) as ch:
            call = pb_grpc.PricingServiceStub(ch).StreamGreeks(stream_request("SDOWN"), timeout=60)
            await wait_subscribers(mesh, subject, 1)
            nc = await nats.connect(mesh.nats_url)
            await nc.publish(subject, quote("SDOWN", 99.0, 101.0, 1))
            first = await call.read()
            assert first.full and first.sequence == 1
            await nc.close()
            down = await asyncio.to_thread(mesh.run, "down")
            down_rc.append(down.returncode)
            assert await call.read() is grpc.aio.EOF  # ended by the server, not cut
            assert await call.code() == grpc.StatusCode.OK

    try:
        asyncio.run(go())
    finally:
        if not down_rc:
            mesh.run("down")
    assert down_rc == [0]
