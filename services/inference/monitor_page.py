"""The model monitoring page: routes added to the InferenceService's aiohttp application.

``GET /monitor``                 the page (static/monitor.html; its script draws SVG plots)
``GET /monitor/static/{file}``   its script and style sheet (services/inference/static/)
``GET /monitor/api/snapshot``    :meth:`MonitorRecorder.snapshot` as JSON
                                 (query ``since``: seconds; ``model``: one model)
``GET /monitor/api/stream``      Server-Sent Events: ``snapshot`` (everything) on connect, then
                                 ``update`` every ``interval`` seconds (query, default 1) with
                                 what changed since the previous event

Bad query values are 400 ``{"error": "<field>: ..."}``. Everything the page needs is in this
package: no CDN, nothing fetched from outside. Through Envoy the stream needs a route with no
overall timeout (docs/api.md, "Inference: monitoring page").
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

from aiohttp import web
from tradecore.errors import quote
from tradecore.inference.monitor import MonitorRecorder

log = logging.getLogger("tradecore.inference.monitor")
STATIC = Path(__file__).resolve().parent / "static"
# Streams open at once by default; more are refused with 429 (each costs a snapshot per
# interval).
MAX_STREAMS = 32
MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 60.0
# The browser reconnects after this many milliseconds when a stream breaks.
RETRY_MS = 2000
_NO_CACHE = {"Cache-Control": "no-cache"}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _number(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name}: a finite number, got {quote(raw)}")
    return value


def _model(request: web.Request) -> str | None:
    model = request.query.get("model")
    if model is not None and not 1 <= len(model) <= 256:
        raise ValueError(f"model: a name of 1..256 characters, got {quote(model)}")
    return model


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


def add_routes(
    app: web.Application, recorder: MonitorRecorder, *, max_streams: int = MAX_STREAMS
) -> None:
    """Add the monitoring page and its API (routes above) to ``app``, serving ``recorder``;
    at most ``max_streams`` event streams are open at once."""
    page = (STATIC / "monitor.html").read_bytes()
    streams = 0
    # Set when the app shuts down: open streams end at once instead of holding the shutdown
    # for the runner's grace period.
    closing = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        closing.set()

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=_NO_CACHE)

    async def snapshot(request: web.Request) -> web.Response:
        try:
            since = _number(request, "since")
            model = _model(request)
        except ValueError as exc:
            return _error(400, str(exc))
        data = recorder.snapshot(since=since, model=model)
        return web.Response(text=_json(data), content_type="application/json", headers=_NO_CACHE)

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal streams
        try:
            interval = _number(request, "interval")
            model = _model(request)
        except ValueError as exc:
            return _error(400, str(exc))
        if interval is None:
            interval = 1.0
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            return _error(
                400, f"interval: {MIN_INTERVAL_S}..{MAX_INTERVAL_S} seconds, got {interval:g}"
            )
        if streams >= max_streams:
            return _error(429, f"monitor streams: at most {max_streams} open at once")
        streams += 1
        try:
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    # Proxies that buffer responses (nginx) pass this one through at once.
                    "X-Accel-Buffering": "no",
                }
            )
            await resp.prepare(request)
            data = recorder.snapshot(model=model)
            event = "snapshot"
            try:
                await resp.write(f"retry: {RETRY_MS}\n".encode())
                while True:
                    await resp.write(f"event: {event}\ndata: {_json(data)}\n\n".encode())
                    try:
                        await asyncio.wait_for(closing.wait(), interval)
                        break  # the app is shutting down
                    except TimeoutError:
                        pass
                    data = recorder.snapshot(since=data["next_since"], model=model)
                    event = "update"
            except (ConnectionResetError, ConnectionError):
                log.debug("monitor stream closed by the client")
            return resp
        finally:
            streams -= 1

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/monitor", index)
    app.router.add_get("/monitor/api/snapshot", snapshot)
    app.router.add_get("/monitor/api/stream", stream)
    app.router.add_static("/monitor/static", STATIC, append_version=False)
