"""A local stand-in for the part of Alpaca's market-data API that AlpacaFeed uses.

REST (``GET /v2/stocks/quotes`` and ``/v2/stocks/trades``): ``APCA-API-KEY-ID`` /
``APCA-API-SECRET-KEY`` headers checked (401 when missing, 403 when wrong), ``symbols``,
``start``/``end`` (both inclusive, as Alpaca's), ``feed``, ``limit`` (1..10000, capped further at
``page_size`` so tests see several pages) and an opaque ``page_token``/``next_page_token``; rows
are ordered by symbol, then time, as Alpaca pages multi-symbol requests.

Stream (``ws://.../v2/iex`` or ``/v2/sip``), msgpack frames as alpaca-py asks for them with its
``Content-Type: application/msgpack`` header: ``[{"T":"success","msg":"connected"}]``, then an
``auth`` action answered ``authenticated`` or ``[{"T":"error","code":402,"msg":"auth failed"}]``
(and the socket closed), ``subscribe`` actions answered with a ``subscription`` frame, and the
records the test pushes (``t`` as a msgpack timestamp, like Alpaca's).

It runs in its own threads (HTTP server; websocket server on its own event loop) on free loopback
ports, so the code under test talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch → ``2024-01-02T14:30:00.123456789Z`` (as Alpaca writes it)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _ns(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


@dataclass(eq=False)
class _Session:
    ws: ServerConnection
    subscribed: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})


class FakeAlpaca:
    """Serve ``quotes``/``trades`` (symbol → records with ``t`` in ns) over REST and the stream."""

    def __init__(self, key: str = "PKTEST", secret: str = "SECRET", page_size: int = 5) -> None:
        self.key, self.secret, self.page_size = key, secret, page_size
        self.sip_allowed = True
        self.quotes: dict[str, list[dict[str, Any]]] = {}
        self.trades: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.logins = 0
        self.rejected_logins = 0
        self._sessions: set[_Session] = set()
        self._subscribes = 0
        self._cond = threading.Condition()
        self._http: ThreadingHTTPServer | None = None
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._ws_server: Server | None = None
        self.ws_port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAlpaca:
        handler = type("Handler", (_RestHandler,), {"fake": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._loop_thread.start()
        self.start_stream()
        return self

    def close(self) -> None:
        self.stop_stream()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)
        self._loop.close()

    @property
    def rest_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def start_stream(self) -> None:
        """Start (or restart, on the same port) the websocket server."""

        async def go() -> Server:
            return await serve(self._session, "127.0.0.1", self.ws_port)

        server = asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout=5)
        self._ws_server = server
        self.ws_port = next(iter(server.sockets)).getsockname()[1]

    def stop_stream(self, abrupt: bool = False) -> None:
        """The stream server goes away: closes every session (1001, or a TCP abort)."""
        server = self._ws_server
        if server is None:
            return
        self._ws_server = None

        async def go() -> None:
            if abrupt:
                for s in list(self._sessions):
                    s.ws.transport.abort()
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout=10)

    # ------------------------------------------------------------------ stream

    def wait_subscribed(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` subscribe actions have been acknowledged in total."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._subscribes >= count, timeout):
                raise TimeoutError(f"{self._subscribes} subscriptions after {timeout} s")

    def push(self, records: list[dict[str, Any]]) -> int:
        """Send records (``T`` q/t, ``S``, ``t`` ns, ...) as one frame to subscribed sessions."""

        async def go() -> int:
            sent = 0
            for s in list(self._sessions):
                frame = [
                    {**r, "t": msgpack.Timestamp.from_unix_nano(r["t"])}
                    for r in records
                    if r["S"] in s.subscribed["quotes" if r["T"] == "q" else "trades"]
                ]
                if frame:
                    await s.ws.send(msgpack.packb(frame))
                    sent += 1
            return sent

        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout=5)

    async def _session(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path, headers = ws.request.path, ws.request.headers
        if headers.get("Content-Type") != "application/msgpack":
            await ws.send(json.dumps([{"T": "error", "code": 400, "msg": "msgpack only here"}]))
            return
        if path not in ("/v2/iex", "/v2/sip"):
            await ws.close(1008, "unknown feed")
            return
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        try:
            auth = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 10))
        except (TimeoutError, ConnectionClosed):
            return
        ok = auth.get("action") == "auth" and (auth.get("key"), auth.get("secret")) == (
            self.key,
            self.secret,
        )
        if not ok:
            self.rejected_logins += 1
            await ws.send(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
            return
        if path == "/v2/sip" and not self.sip_allowed:
            msg = {"T": "error", "code": 409, "msg": "insufficient subscription"}
            await ws.send(msgpack.packb([msg]))
            return
        self.logins += 1
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        session = _Session(ws)
        self._sessions.add(session)
        try:
            async for frame in ws:
                msg = msgpack.unpackb(frame)
                if msg.get("action") not in ("subscribe", "unsubscribe"):
                    err = {"T": "error", "code": 400, "msg": "invalid syntax"}
                    await ws.send(msgpack.packb([err]))
                    continue
                for channel in CHANNELS:
                    symbols = set(msg.get(channel, []))
                    if msg["action"] == "subscribe":
                        session.subscribed[channel] |= symbols
                    else:
                        session.subscribed[channel] -= symbols
                ack = {"T": "subscription", **{c: sorted(session.subscribed[c]) for c in CHANNELS}}
                await ws.send(msgpack.packb([ack]))
                with self._cond:
                    self._subscribes += 1
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)

    # ------------------------------------------------------------------ REST

    def page(self, kind: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """One REST page: (HTTP status, JSON body)."""
        one = {k: v[0] for k, v in query.items()}
        symbols = [s for s in one.get("symbols", "").split(",") if s]
        if not symbols:
            return 400, {"code": 42210000, "message": "invalid symbols"}
        feed = one.get("feed", "sip")
        if feed not in ("iex", "sip"):
            return 400, {"code": 42210000, "message": f"invalid feed {feed}"}
        if feed == "sip" and not self.sip_allowed:
            return 403, {"message": "subscription does not permit querying recent SIP data"}
        limit = int(one.get("limit", "1000"))
        if not 1 <= limit <= 10_000:
            return 400, {"code": 42210000, "message": "invalid limit"}
        lo = _ns(one["start"]) if "start" in one else 0
        hi = _ns(one["end"]) if "end" in one else 2**63
        source = self.quotes if kind == "quotes" else self.trades
        rows = [
            (s, r)
            for s in sorted(symbols)
            for r in sorted(source.get(s, []), key=lambda r: int(r["t"]))
            if lo <= r["t"] <= hi
        ]
        offset = int(base64.b64decode(one["page_token"])) if "page_token" in one else 0
        size = min(limit, self.page_size)
        chunk = rows[offset : offset + size]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for s, r in chunk:
            grouped.setdefault(s, []).append({**r, "t": rfc3339(r["t"])})
        more = offset + size < len(rows)
        token = base64.b64encode(str(offset + size).encode()).decode() if more else None
        self.requests.append({"kind": kind, **one, "returned": len(chunk)})
        return 200, {kind: grouped, "next_page_token": token}


class _RestHandler(BaseHTTPRequestHandler):
    fake: FakeAlpaca

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        kind = {"/v2/stocks/quotes": "quotes", "/v2/stocks/trades": "trades"}.get(url.path)
        key = self.headers.get("APCA-API-KEY-ID")
        secret = self.headers.get("APCA-API-SECRET-KEY")
        body: dict[str, Any]
        if kind is None:
            status, body = 404, {"message": "Not Found"}
        elif key is None or secret is None:
            status, body = 401, {"code": 40110000, "message": "request is not authorized"}
        elif (key, secret) != (self.fake.key, self.fake.secret):
            status, body = 403, {"message": "forbidden"}
        else:
            status, body = self.fake.page(kind, parse_qs(url.query))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def fake_alpaca(**kwargs: Any) -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca(**kwargs).start()
    try:
        yield fake
    finally:
        fake.close()
