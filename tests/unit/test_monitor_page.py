"""services/inference/monitor_page.py: the monitoring page's routes over real HTTP (aiohttp on a
loopback port); the page itself in a browser is tests/e2e/test_monitor_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tradecore.inference.monitor import MonitorRecorder
from tradecore_services.inference.monitor_page import STATIC, add_routes

Check = Callable[[str, MonitorRecorder], Awaitable[None]]


def serve(check: Check, *, max_streams: int = 32) -> None:
    """Run ``check(base_url, recorder)`` against a fresh app with the monitor's routes."""

    async def main() -> None:
        recorder = MonitorRecorder()
        app = web.Application()
        add_routes(app, recorder, max_streams=max_streams)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await check(f"http://127.0.0.1:{port}", recorder)
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events response (``retry`` as event 'retry')."""
    event, data = "message", ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("retry:"):
            yield "retry", int(line[6:])
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


def test_page_and_assets_are_served_and_self_contained() -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/monitor") as r:
                assert r.status == 200
                assert r.content_type == "text/html"
                html = await r.text()
            refs = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert "/monitor/static/monitor.js" in refs
            assert "/monitor/static/monitor.css" in refs
            for ref in refs:
                assert ref.startswith(("/monitor/static/", "data:")), ref
                if ref.startswith("/"):
                    async with http.get(base + ref) as a:
                        assert a.status == 200, ref
            async with http.get(f"{base}/monitor/static/monitor.js") as r:
                assert r.content_type in ("application/javascript", "text/javascript")

    serve(check)
    # Nothing is fetched from elsewhere: the only absolute URL in the assets is the SVG
    # namespace name.
    for f in STATIC.iterdir():
        urls = set(re.findall(r"https?://[^\s\"'`)]+", f.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (f.name, urls)


def test_snapshot_route_returns_the_recorder_snapshot() -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        rec.record_inference("pricer", "1", "champion", 0.002, 8)
        rec.record_inference("other", "1", "", 0.002, 8)
        rec.record_drift("pricer", "1", "x0", "ks", 0.2, False)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/monitor/api/snapshot") as r:
                assert r.status == 200
                assert r.headers["Cache-Control"] == "no-cache"
                snap = await r.json()
            assert snap["schema"] == "tradecore.monitor/1"
            assert [m["name"] for m in snap["models"]] == ["other", "pricer"]
            url = f"{base}/monitor/api/snapshot?model=pricer&since={snap['next_since']}"
            async with http.get(url) as r:
                part = await r.json()
            (m,) = part["models"]
            assert m["series"][0]["buckets"]["count"] == [1]
            assert m["drift"][0]["feature"] == "x0"

    serve(check)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=nan", "since"),
        ("since=inf", "since"),
        ("model=" + "m" * 300, "model"),
    ],
)
def test_snapshot_bad_query_is_400_naming_the_field(query: str, field: str) -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/monitor/api/snapshot?{query}") as r,
        ):
            assert r.status == 400
            assert (await r.json())["error"].startswith(f"{field}:")

    serve(check)


@pytest.mark.parametrize(
    ("query", "field"),
    [("interval=soon", "interval"), ("interval=0.01", "interval"), ("interval=3600", "interval")],
)
def test_stream_bad_query_is_400_naming_the_field(query: str, field: str) -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/monitor/api/stream?{query}") as r,
        ):
            assert r.status == 400
            assert (await r.json())["error"].startswith(f"{field}:")

    serve(check)


def test_stream_sends_a_snapshot_then_updates_with_new_inferences() -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        rec.record_inference("pricer", "1", "champion", 0.002, 8)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/monitor/api/stream?interval=0.2") as r,
        ):
            assert r.status == 200
            assert r.content_type == "text/event-stream"
            stream = events(r)
            assert await anext(stream) == ("retry", 2000)
            kind, snap = await anext(stream)
            assert kind == "snapshot"
            assert snap["models"][0]["series"][0]["window"]["count"] == 1
            rec.record_inference("pricer", "2", "challenger", 0.004, 2)
            kind, upd = await anext(stream)
            assert kind == "update"
            assert upd["since"] == snap["next_since"]
            roles = [s["role"] for s in upd["models"][0]["series"]]
            assert roles == ["champion", "challenger"]
            assert upd["models"][0]["series"][1]["buckets"]["count"] == [1]

    serve(check)


def test_streams_are_capped_and_a_closed_one_frees_its_place() -> None:
    async def check(base: str, rec: MonitorRecorder) -> None:
        url = f"{base}/monitor/api/stream?interval=0.2"
        async with aiohttp.ClientSession() as http:
            first = await http.get(url)
            assert first.status == 200
            async with http.get(url) as r:
                assert r.status == 429
                assert "at most 1" in (await r.json())["error"]
            first.close()
            # The server notices the closed stream at its next write (one interval).
            for _ in range(100):
                async with http.get(url) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert r.status == 200

    serve(check, max_streams=1)


def test_open_streams_end_when_the_server_shuts_down() -> None:
    """An open page must not hold the service's shutdown for the runner's whole grace period
    (60 s here): the streams end as shutdown begins."""

    async def main() -> None:
        recorder = MonitorRecorder()
        app = web.Application()
        add_routes(app, recorder)
        runner = web.AppRunner(app, shutdown_timeout=60.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"http://127.0.0.1:{port}/monitor/api/stream?interval=30")
            stream = events(r)
            assert (await anext(stream))[0] == "retry"
            assert (await anext(stream))[0] == "snapshot"
            await asyncio.wait_for(runner.cleanup(), 20)
            assert [e async for e in stream] == []  # the stream ended
            r.close()

    asyncio.run(main())
