"""The monitoring page and its Server-Sent Events stream through a real Envoy configured by the
gateway's own generator for the InferenceService's HTTP port: the ``/monitor`` prefix with an
overall route timeout, and ``/monitor/api/stream`` on its own route without one (docs/api.md,
"Inference: monitoring page"). Events must arrive one at a time (Envoy buffers nothing) and the
stream must outlive the prefix route's timeout."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tradecore.inference.monitor import MonitorRecorder

from tests.monitor_app import Envoy, Server

pytestmark = pytest.mark.integration

# The prefix route's overall timeout here (the gateway's is 60 s): short, so the test shows the
# stream's own route is what keeps it open.
PREFIX_TIMEOUT_S = 2


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, MonitorRecorder]]:
    recorder = MonitorRecorder()
    with Server(recorder) as server, Envoy(tmp_path, server.port, PREFIX_TIMEOUT_S) as envoy:
        yield envoy.url, recorder


def test_stream_through_envoy_is_live_and_outlives_the_prefix_timeout(
    gateway: tuple[str, MonitorRecorder],
) -> None:
    url, recorder = gateway

    async def main() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/monitor/api/stream?interval=0.25") as r,
        ):
            assert r.status == 200
            assert r.content_type == "text/event-stream"
            seen: list[tuple[str, dict[str, Any]]] = []
            event = ""
            opened = time.monotonic()
            recorded = 0
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    seen.append((event, json.loads(line[5:])))
                    # Each event is answered by a new inference that the next one must carry:
                    # only an unbuffered stream can show it.
                    if recorded:
                        counts = [
                            s["window"]["count"] for m in seen[-1][1]["models"] for s in m["series"]
                        ]
                        assert counts == [recorded]
                    recorder.record_inference("pricer", "1", "champion", 0.001, 1)
                    recorded += 1
                    if time.monotonic() - opened > PREFIX_TIMEOUT_S + 1.5:
                        break
            assert seen[0][0] == "snapshot"
            assert {e for e, _ in seen[1:]} == {"update"}

    asyncio.run(main())


def test_page_and_snapshot_through_envoy(gateway: tuple[str, MonitorRecorder]) -> None:
    url, recorder = gateway
    recorder.record_inference("pricer", "1", "champion", 0.001, 4)
    with urllib.request.urlopen(f"{url}/monitor", timeout=5) as r:
        assert b"/monitor/static/monitor.js" in r.read()
    with urllib.request.urlopen(f"{url}/monitor/static/monitor.js", timeout=5) as r:
        assert b"EventSource" in r.read()
    with urllib.request.urlopen(f"{url}/monitor/api/snapshot?model=pricer", timeout=5) as r:
        snap = json.loads(r.read())
    assert snap["models"][0]["series"][0]["window"]["rows"] == 4
