"""Flow control between a feed and the store, against a real nats-server with JetStream: the
publisher pauses while the store consumer has `max_backlog` messages not yet stored (the
stream would otherwise drop its oldest messages at its byte limit, stored or not), and goes
on once they are acknowledged."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from tradecore import ticks
from tradecore_services.marketdata import pipeline
from tradecore_services.marketdata.feeds.sources import Chunk
from tradecore_services.mesh.components import nats_server_path

from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_path(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{port}"
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _chunk(i: int) -> Chunk:
    seq = list(range(10 * i + 1, 10 * i + 11))
    b = ticks.make_batch(
        "fc", "SYM", "", seq=seq, ts=seq, recv_ts=time.time_ns(), type=1, price=100, size=1
    )
    return Chunk(b, per_event=False)


def test_feed_pauses_while_the_store_is_behind(nats_url: str) -> None:
    async def run() -> None:
        nc = await nats.connect(nats_url, connect_timeout=10, max_reconnect_attempts=50)
        js = nc.jetstream()
        for _ in range(50):  # the server may still be starting
            try:
                await pipeline.ensure_stream(js)
                break
            except Exception:
                await asyncio.sleep(0.1)
        sub = await js.pull_subscribe(
            pipeline.TICK_SUBJECTS,
            durable=pipeline.DURABLE,
            stream=pipeline.STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        pub = pipeline.Publisher(nc, js, max_backlog=3, check_every=1)

        async def feed() -> None:
            for i in range(6):
                await pub.publish("feed-fc", _chunk(i))
            await pub.flush("feed-fc")

        task = asyncio.create_task(feed())
        await asyncio.sleep(1.5)
        # Three messages not stored: the fourth waits.
        assert not task.done()
        assert (await js.stream_info(pipeline.STREAM)).state.messages == 3
        got = await sub.fetch(3, timeout=5)
        assert [ticks.unpack(m.data).first_seq for m in got] == [1, 11, 21]
        await asyncio.sleep(0.5)
        assert not task.done()  # delivered is not stored: still paused until acknowledged
        for m in got:
            await m.ack_sync()
        await asyncio.wait_for(task, 10)
        assert (await js.stream_info(pipeline.STREAM)).state.messages == 6
        assert pub.paused_s > 1.5
        rest = await sub.fetch(3, timeout=5)
        assert [ticks.unpack(m.data).first_seq for m in rest] == [31, 41, 51]
        await nc.close()

    asyncio.run(run())
