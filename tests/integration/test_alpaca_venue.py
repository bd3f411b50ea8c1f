"""The Alpaca venue against a local server that speaks the part of Alpaca's trading API the
adapter uses: REST (POST/GET/DELETE/PATCH /v2/orders, GET /v2/orders:by_client_order_id, and
the paged order list and FILL account activities the reconciliation snapshot reads) on
http.server, and the trade_updates websocket (authenticate, listen, event frames) on
websockets. alpaca-py is pointed at it with its url_override."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream
from tradecore.oms.types import (
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import VenuePosition
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.common.bus import Bus
from tradecore_services.common.errors import UnavailableError
from tradecore_services.execution.alpaca_venue import AlpacaVenue, credentials
from tradecore_services.execution.engine import Engine
from tradecore_services.execution.journal import ACK_TIMEOUT_S, Journal
from tradecore_services.execution.live import Execution
from tradecore_services.execution.main import VenueReports, booked_as, venues
from websockets.asyncio.server import ServerConnection, serve

from tests.integration.test_execution_journal import _connect
from tests.integration.test_execution_mesh import http, publish_quote
from tests.integration.test_execution_orders import LocalVenue, instance, quote, stop
from tests.integration.test_execution_orders import order as order_request
from tests.integration.test_nats_resilience import NatsServer
from tests.mesh import Mesh

pytestmark = pytest.mark.integration
# Distinctive values, so that a search of logs and process listings cannot miss them.
KEY, SECRET = "PKTEST7Q2X9ZKEYID", "sEcReT-9f8e7d6c5b4a3e2d1"


class FakeAlpaca:
    """Orders in memory; events pushed to the connected trade_updates sockets by the test."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []  # FILL activities, oldest first
        self.broken_activities = False  # answer the activities endpoint with HTTP 500
        self.posts = 0
        self.throttle = 0  # answer the next N requests with HTTP 429
        self.slow_post = 0.0  # seconds a POST waits after placing the order (a lost answer)
        self.listens = 0
        self.sockets: set[ServerConnection] = set()
        self.loop = asyncio.new_event_loop()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        started = threading.Event()

        async def ws_main() -> None:
            self.ws = await serve(self._ws, "127.0.0.1", 0)
            started.set()
            await self.ws.serve_forever()

        self._ws_thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(ws_main()), daemon=True
        )
        self._ws_thread.start()
        started.wait(5)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.stream_url = f"ws://127.0.0.1:{self.ws.sockets[0].getsockname()[1]}/stream"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.loop.call_soon_threadsafe(self.ws.close)
        self._ws_thread.join(5)
        self.loop.close()

    # -- REST ---------------------------------------------------------------------------
    def new_order(self, body: dict[str, Any], replaces: str | None = None) -> dict[str, Any]:
        o = {
            "id": str(uuid.uuid4()),
            "client_order_id": body["client_order_id"],
            "symbol": body.get("symbol", ""),
            "qty": body["qty"],
            "side": body.get("side", "buy"),
            "type": body.get("type", "limit"),
            "time_in_force": body.get("time_in_force", "day"),
            "stop_price": body.get("stop_price"),
            "submitted_at": f"2026-01-02T15:00:{len(self.orders):02d}.000000Z",
            "filled_qty": "0",
            "filled_avg_price": None,
            "limit_price": body.get("limit_price"),
            "status": "new",
            "replaces": replaces,
            "replaced_by": None,
        }
        self.orders[o["id"]] = o
        return o

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(
                self, code: int, body: Any = None, headers: dict[str, str] | None = None
            ) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                if self.headers.get("APCA-API-KEY-ID") != KEY:
                    return self._send(403, {"code": 40310000, "message": "forbidden"})
                if fake.throttle > 0:
                    fake.throttle -= 1
                    return self._send(
                        429,
                        {"code": 42910000, "message": "rate limit exceeded"},
                        {"Retry-After": "0"},
                    )
                url = urlparse(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else {}
                path = url.path
                if method == "POST" and path == "/v2/orders":
                    fake.posts += 1
                    if any(
                        o["client_order_id"] == body["client_order_id"]
                        for o in fake.orders.values()
                    ):
                        return self._send(
                            422, {"code": 40010001, "message": "client_order_id must be unique"}
                        )
                    placed = fake.new_order(body)
                    time.sleep(fake.slow_post)
                    return self._send(200, placed)
                if method == "GET" and path == "/v2/orders:by_client_order_id":
                    cid = parse_qs(url.query)["client_order_id"][0]
                    for o in fake.orders.values():
                        if o["client_order_id"] == cid:
                            return self._send(200, o)
                    return self._send(404, {"code": 40410000, "message": "order not found"})
                if method == "GET" and path == "/v2/orders":
                    q = parse_qs(url.query)
                    rows = sorted(fake.orders.values(), key=lambda o: o["submitted_at"])
                    if "after" in q:
                        rows = [o for o in rows if o["submitted_at"] > q["after"][0]]
                    return self._send(200, rows[: int(q.get("limit", ["50"])[0])])
                if method == "GET" and path == "/v2/account/activities/FILL":
                    if fake.broken_activities:
                        return self._send(500, {"code": 50010000, "message": "internal"})
                    q = parse_qs(url.query)
                    acts = fake.activities
                    if "page_token" in q:
                        ids = [a["id"] for a in acts]
                        acts = acts[ids.index(q["page_token"][0]) + 1 :]
                    return self._send(200, acts[: int(q.get("page_size", ["100"])[0])])
                oid = path.removeprefix("/v2/orders/")
                found = fake.orders.get(oid)
                if found is None:
                    return self._send(404, {"code": 40410000, "message": "order not found"})
                if method == "GET":
                    return self._send(200, found)
                if method == "DELETE":
                    if found["status"] in ("filled", "canceled", "replaced"):
                        return self._send(
                            422, {"code": 42210000, "message": "order is not cancelable"}
                        )
                    found["status"] = "pending_cancel"
                    return self._send(204)
                if method == "PATCH":
                    new = fake.new_order({**found, **body}, replaces=oid)
                    new["status"] = "pending_new"
                    return self._send(200, new)
                return self._send(405, {"code": 0, "message": "no"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        return H

    # -- trade_updates -------------------------------------------------------------------
    async def _ws(self, ws: ServerConnection) -> None:
        auth = json.loads(await ws.recv())
        ok = auth["data"] == {"key_id": KEY, "secret_key": SECRET}
        status = "authorized" if ok else "unauthorized"
        await ws.send(
            json.dumps(
                {"stream": "authorization", "data": {"status": status, "action": "authenticate"}}
            )
        )
        listen = json.loads(await ws.recv())
        assert listen["action"] == "listen"
        await ws.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}))
        self.sockets.add(ws)
        self.listens += 1
        try:
            await ws.wait_closed()
        finally:
            self.sockets.discard(ws)

    def push(self, event: str, order_id: str, **kw: Any) -> None:
        """Change the order as the event says and send the event to every listener."""
        o = self.orders[order_id]
        if "filled_qty" in kw:
            o["filled_qty"], o["filled_avg_price"] = str(kw["filled_qty"]), str(kw["avg"])
            if "qty" in kw:  # Alpaca records the execution as a FILL account activity
                self.activities.append(
                    {
                        "id": f"20260102150000000::{uuid.uuid4()}",
                        "activity_type": "FILL",
                        "type": "fill" if event == "fill" else "partial_fill",
                        "order_id": order_id,
                        "symbol": o["symbol"],
                        "side": o["side"],
                        "qty": str(kw["qty"]),
                        "cum_qty": str(kw["filled_qty"]),
                        "price": str(kw["price"]),
                        "transaction_time": "2026-01-02T15:00:00Z",
                    }
                )
        o.update(kw.pop("order", {}))
        status = {"fill": "filled", "partial_fill": "partially_filled"}.get(event, event)
        if status in (
            "new",
            "filled",
            "partially_filled",
            "canceled",
            "expired",
            "replaced",
            "rejected",
        ):
            o["status"] = status
        data = {"event": event, "order": dict(o), "timestamp": "2026-01-02T15:00:00Z"}
        for k in ("qty", "price", "execution_id"):
            if k in kw:
                data[k] = str(kw[k])
        frame = json.dumps({"stream": "trade_updates", "data": data})

        async def send() -> None:
            for ws in list(self.sockets):
                await ws.send(frame)

        asyncio.run_coroutine_threadsafe(send(), self.loop).result(5)

    def drop(self) -> None:
        async def close() -> None:
            for ws in list(self.sockets):
                await ws.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    f = FakeAlpaca()
    yield f
    f.close()


class Events:
    def __init__(self) -> None:
        self.items: list[VenueEvent] = []
        self.cond = threading.Condition()

    def __call__(self, e: VenueEvent) -> None:
        with self.cond:
            self.items.append(e)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 10.0) -> list[VenueEvent]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
            return list(self.items)

    def kinds(self) -> list[VenueEventKind]:
        return [e.kind for e in self.items]


@pytest.fixture
def venue(fake: FakeAlpaca) -> Iterator[tuple[AlpacaVenue, Events]]:
    v = AlpacaVenue(
        api_key=KEY,
        secret_key=SECRET,
        url=fake.url,
        stream_url=fake.stream_url,
        backoff_s=0.01,
        reconnect_backoff_s=0.05,
        env={},
    )
    ev = Events()
    v.set_listener(ev)
    v.start()
    assert v.connected.wait(10)
    deadline = time.monotonic() + 10
    while fake.listens < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield v, ev
    v.stop()


def order(oid: str = "O1", qty: int = 100, symbol: str = "AAPL") -> VenueOrder:
    return VenueOrder(oid, "acct", symbol, Side.BUY, qty, OrderType.LIMIT, TimeInForce.DAY, 10.0)


def alpaca_id(fake: FakeAlpaca, cid: str) -> str:
    return str(next(o["id"] for o in fake.orders.values() if o["client_order_id"] == cid))


def test_submit_new_partial_fill_fill(fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]) -> None:
    v, ev = venue
    v.submit(order())
    aid = alpaca_id(fake, "O1")
    assert fake.orders[aid]["symbol"] == "AAPL"
    fake.push("new", aid)
    fake.push("partial_fill", aid, filled_qty=40, avg=10.0, qty=40, price=10.0, execution_id="x1")
    fake.push("fill", aid, filled_qty=100, avg=9.94, qty=60, price=9.9, execution_id="x2")
    got = ev.wait(3)
    assert [e.kind for e in got] == [
        VenueEventKind.ACCEPTED,
        VenueEventKind.FILL,
        VenueEventKind.FILL,
    ]
    assert got[0].venue_order_id == aid
    assert [(e.fill_quantity, e.fill_price, e.leaves_quantity) for e in got[1:]] == [
        (40, 10.0, 60),
        (60, 9.9, 0),
    ]
    assert got[1].fill_id != got[2].fill_id
    assert v.lookup("O1") is not None and v.lookup("nope") is None


def test_options_order_goes_by_occ_symbol(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, _ = venue
    v.submit(order("OPT1", 2, "AAPL  240119C00190000"))
    assert fake.orders[alpaca_id(fake, "OPT1")]["symbol"] == "AAPL240119C00190000"


def test_cancel_race_fill_then_cancel_rejected(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    v.submit(order())
    aid = alpaca_id(fake, "O1")
    fake.push("new", aid)
    v.cancel("O1")  # accepted by REST (204): the answer comes on the stream
    fake.push("fill", aid, filled_qty=100, avg=10.0, qty=100, price=10.0)
    fake.push("order_cancel_rejected", aid)
    got = ev.wait(3)
    assert [e.kind for e in got] == [
        VenueEventKind.ACCEPTED,
        VenueEventKind.FILL,
        VenueEventKind.CANCEL_REJECTED,
    ]
    v.cancel("O1")  # now filled: Alpaca refuses with 422
    assert ev.wait(4)[-1].kind is VenueEventKind.CANCEL_REJECTED


def test_replace_maps_the_new_order_id(fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]) -> None:
    v, ev = venue
    v.submit(order())
    old = alpaca_id(fake, "O1")
    fake.push("new", old)
    fake.push("partial_fill", old, filled_qty=30, avg=10.0, qty=30, price=10.0)
    ev.wait(2)
    v.replace("O1", 80, 10.5)
    new = alpaca_id(fake, "O1.r1")
    assert fake.orders[new]["qty"] == "50"  # what is left to work of the new total
    fake.push("replaced", old, order={"replaced_by": new})
    fake.push("new", new)
    fake.push("fill", new, filled_qty=50, avg=10.5, qty=50, price=10.5)
    got = ev.wait(4)
    assert [e.kind for e in got] == [
        VenueEventKind.ACCEPTED,
        VenueEventKind.FILL,
        VenueEventKind.REPLACED,
        VenueEventKind.FILL,
    ]
    assert (got[2].venue_order_id, got[2].new_quantity, got[2].new_limit_price) == (new, 80, 10.5)
    assert (got[3].fill_quantity, got[3].leaves_quantity) == (50, 0)


def test_replace_sizes_from_alpacas_fill_count(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    v.submit(order())
    old = alpaca_id(fake, "O1")
    fake.push("new", old)
    ev.wait(1)
    fake.orders[old].update(filled_qty="30", filled_avg_price="10.0")  # not streamed yet
    v.replace("O1", 80, 10.5)
    assert fake.orders[alpaca_id(fake, "O1.r1")]["qty"] == "50"
    got = ev.wait(2)
    assert got[1].kind is VenueEventKind.FILL and got[1].fill_quantity == 30
    fake.push("partial_fill", old, filled_qty=30, avg=10.0, qty=30, price=10.0)  # late: a repeat
    fake.push("replaced", old, order={"replaced_by": alpaca_id(fake, "O1.r1")})
    assert [e.kind for e in ev.wait(3)][1:] == [VenueEventKind.FILL, VenueEventKind.REPLACED]


def test_replace_race_old_fills_first(fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]) -> None:
    v, ev = venue
    v.submit(order())
    old = alpaca_id(fake, "O1")
    fake.push("new", old)
    v.replace("O1", 100, 10.5)
    new = alpaca_id(fake, "O1.r1")
    fake.push("fill", old, filled_qty=100, avg=10.0, qty=100, price=10.0)
    fake.push("rejected", new)  # the replacing order: the old one filled first
    got = ev.wait(3)
    assert [e.kind for e in got] == [
        VenueEventKind.ACCEPTED,
        VenueEventKind.FILL,
        VenueEventKind.REPLACE_REJECTED,
    ]


def test_rate_limit_then_success_places_one_order(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    fake.throttle = 2
    v.submit(order())
    assert fake.posts == 1 and len(fake.orders) == 1
    assert v.stats["rate_limited"] == 2
    v.submit(order())  # a retry of the same order: Alpaca refuses it, the venue adopts the first
    assert len(fake.orders) == 1
    assert ev.wait(1)[0].kind is VenueEventKind.ACCEPTED


def test_submit_timeout_then_lookup_finds_the_order(fake: FakeAlpaca) -> None:
    v = AlpacaVenue(api_key=KEY, secret_key=SECRET, url=fake.url, request_timeout=0.2, env={})
    fake.slow_post = 1.0
    with pytest.raises(TimeoutError):
        v.submit(order())  # placed, but the answer is lost
    found = v.lookup("O1")  # what the OMS asks before any retry
    assert found is not None and found.kind is VenueEventKind.ACCEPTED
    assert found.venue_order_id == alpaca_id(fake, "O1") and fake.posts == 1
    v.stop()


def test_stream_drop_reconnects_and_reconciles(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    v.submit(order())
    aid = alpaca_id(fake, "O1")
    fake.push("new", aid)
    ev.wait(1)
    fake.drop()
    # while no socket listens: a fill the stream never delivers
    o = fake.orders[aid]
    o.update(status="partially_filled", filled_qty="25", filled_avg_price="10.0")
    deadline = time.monotonic() + 15
    while fake.listens < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.listens >= 2  # reconnected and listening again
    got = ev.wait(2)
    assert got[1].kind is VenueEventKind.FILL and got[1].fill_quantity == 25
    fake.push("fill", aid, filled_qty=100, avg=10.0, qty=75, price=10.0)  # the new socket
    got = ev.wait(3)
    assert got[2].fill_quantity == 75
    assert v.stats["reconciled_fills"] == 1


def test_every_alpaca_event_kind_is_handled(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    v.submit(order())
    aid = alpaca_id(fake, "O1")
    for kind in (
        "pending_new",
        "new",
        "done_for_day",
        "stopped",
        "suspended",
        "calculated",
        "pending_cancel",
        "pending_replace",
        "held",
        "brand_new_event",
    ):
        fake.push(kind, aid)
    fake.push("expired", aid)
    got = ev.wait(2)
    assert [e.kind for e in got] == [VenueEventKind.ACCEPTED, VenueEventKind.EXPIRED]
    assert v.stats["unknown"] == 1 and v.stats["quiet"] == 8


def test_credentials_from_files_never_in_repr(tmp_path: Any, fake: FakeAlpaca) -> None:
    (tmp_path / "k").write_text(KEY + "\n")
    (tmp_path / "s").write_text(SECRET + "\n")
    env = {
        "TRADECORE_ALPACA_API_KEY_ID_FILE": str(tmp_path / "k"),
        "TRADECORE_ALPACA_API_SECRET_KEY_FILE": str(tmp_path / "s"),
    }
    assert credentials(None, None, env) == (KEY, SECRET)
    assert credentials(None, None, {}) is None
    missing = {**env, "TRADECORE_ALPACA_API_SECRET_KEY_FILE": str(tmp_path / "none")}
    with pytest.raises(ValueError, match=r"^TRADECORE_ALPACA_API_SECRET_KEY_FILE: cannot read"):
        credentials(None, None, missing)
    v = AlpacaVenue(url=fake.url, env=env)
    assert SECRET not in repr(v) and KEY not in repr(v)
    with pytest.raises(ValueError, match="credentials"):
        AlpacaVenue(url=fake.url, env={})


def test_the_private_alpaca_py_members_used_are_there() -> None:
    """alpaca-py is pinned <0.45; these are the private members the venue relies on."""
    for name in ("_start_ws", "_run_forever"):
        fn = getattr(TradingStream, name)
        assert inspect.iscoroutinefunction(fn) and list(inspect.signature(fn).parameters) == [
            "self"
        ]
    stream = TradingStream("k", "s", raw_data=True, url_override="ws://127.0.0.1:1")
    assert isinstance(stream._reconnect_min_backoff, float)
    client = TradingClient("k", "s", raw_data=True, url_override="http://127.0.0.1:1")
    assert isinstance(client._retry, int) and isinstance(client._session, requests.Session)
    client._session.close()


# -- in the execution service ---------------------------------------------------------------


def test_service_runs_alpaca_only_with_credentials(fake: FakeAlpaca) -> None:
    assert set(venues({})) == {"PAPER"}
    env = {
        "TRADECORE_ALPACA_API_KEY_ID": KEY,
        "TRADECORE_ALPACA_API_SECRET_KEY": SECRET,
        "TRADECORE_ALPACA_TRADING_URL": fake.url,
    }
    got = venues(env)
    assert set(got) == {"PAPER", "ALPACA"} and isinstance(got["ALPACA"], AlpacaVenue)
    assert got["ALPACA"].stream_url == fake.url.replace("http://", "ws://") + "/stream"


@pytest.mark.timeout(120)
def test_orders_through_the_service_fill_from_the_stream(tmp_path: Any, fake: FakeAlpaca) -> None:
    server = NatsServer(tmp_path / "nats")
    server.start()

    async def go() -> None:
        v = AlpacaVenue(
            api_key=KEY, secret_key=SECRET, url=fake.url, stream_url=fake.stream_url, env={}
        )
        bus = Bus(server.url, "execution-test")
        journal = Journal()
        ex = Execution(bus, journal, Engine(journal, {"PAPER": LocalVenue(False), "ALPACA": v}))
        reports = VenueReports(ex, asyncio.get_running_loop())
        v.set_dispatch(reports.dispatch)
        await bus.start()
        await asyncio.wait_for(ex.restored.wait(), 20)
        v.start()
        nc = await _connect(server.url)
        await quote(nc, ex, "AAPL", 190.0, 191.0)
        sent = await ex.submit_order(order_request("a1", venue="ALPACA"))
        aid = alpaca_id(fake, sent.order_id)
        await asyncio.to_thread(fake.push, "new", aid)
        await asyncio.to_thread(
            fake.push, "fill", aid, filled_qty=100, avg=190.5, qty=100, price=190.5
        )
        req = pb.GetOrderRequest(order_id=sent.order_id)
        for _ in range(500):
            got = await ex.get_order(req)
            if got.status == events.FILLED:
                break
            await asyncio.sleep(0.02)
        assert (got.status, got.filled_quantity, got.average_price) == (events.FILLED, 100, 190.5)
        # Alpaca's record agrees with the journal's
        v.account_of = booked_as(ex.engine)
        rec = await ex.reconcile(
            pb.ReconcileRequest(account=got.account, venue=pb.ALPACA, policy=pb.REPORT)
        )
        assert (rec.supported, rec.clean, list(rec.breaks)) == (True, True, []), rec
        # NATS (the journal) away while a fill arrives: applied once the journal is back
        second = await ex.submit_order(order_request("a2", 50, venue="ALPACA"))
        assert second.status == events.PENDING_NEW, second
        aid2 = alpaca_id(fake, second.order_id)
        await asyncio.to_thread(fake.push, "new", aid2)
        req2 = pb.GetOrderRequest(order_id=second.order_id)
        for _ in range(500):
            if (await ex.get_order(req2)).status == events.ACCEPTED:
                break
            await asyncio.sleep(0.02)
        server.kill()
        await asyncio.to_thread(
            fake.push, "fill", aid2, filled_qty=50, avg=190.5, qty=50, price=190.5
        )
        await asyncio.sleep(ACK_TIMEOUT_S + 2.0)  # the report's journal write times out
        server.start()
        for _ in range(1500):
            with contextlib.suppress(UnavailableError):
                got2 = await ex.get_order(req2)
                if got2.status == events.FILLED:
                    break
            await asyncio.sleep(0.02)
        assert (got2.status, got2.filled_quantity) == (events.FILLED, 50)
        await asyncio.to_thread(v.stop)
        await reports.close()
        await stop(bus, ex)
        # the fill was journaled: a new instance rebuilds it from the journal alone
        bus, ex = await instance(server.url, LocalVenue(False))
        for r, qty in ((req, 100), (req2, 50)):
            again = await ex.get_order(r)
            assert (again.status, again.filled_quantity) == (events.FILLED, qty)
        await stop(bus, ex)
        await nc.close()

    try:
        asyncio.run(go())
    finally:
        server.kill()


@pytest.mark.timeout(300)
def test_the_mesh_runs_venue_alpaca_with_credentials(tmp_path: Any, fake: FakeAlpaca) -> None:
    """`tradecore up` with Alpaca credentials in its environment: an order with venue ALPACA
    over JSON reaches the (local) Alpaca, and the stream's fill fills it."""
    m = Mesh.with_free_ports(tmp_path / "mesh")
    m.env = {
        "TRADECORE_ALPACA_API_KEY_ID": KEY,
        "TRADECORE_ALPACA_API_SECRET_KEY": SECRET,
        "TRADECORE_ALPACA_TRADING_URL": fake.url,
        "TRADECORE_ALPACA_TRADING_STREAM_URL": fake.stream_url,
    }
    up = m.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        deadline = time.monotonic() + 30
        while fake.listens < 1:  # the execution service's trade_updates stream
            assert time.monotonic() < deadline, "the service did not listen to trade_updates"
            time.sleep(0.05)
        publish_quote(m, "AAPL", 190.0, 191.0)
        body = {
            "account": "ALP1", "client_order_id": "m1", "symbol": "AAPL", "side": "BUY",
            "quantity": 10, "type": "LIMIT", "limit_price": 190.5, "time_in_force": "DAY",
            "venue": "ALPACA",
        }  # fmt: skip
        while True:  # the quote reaches the price collar
            status, out = http(m, "POST", "/v1/execution/orders", body)
            if out.get("reason_code") != "NO_REFERENCE_PRICE":
                break
            assert time.monotonic() < deadline, out
            body["client_order_id"] = f"m{uuid.uuid4().hex[:6]}"
            time.sleep(0.1)
        assert status == 200 and out["status"] in ("PENDING_NEW", "ACCEPTED"), out
        aid = alpaca_id(fake, out["order_id"])
        fake.push("new", aid)
        fake.push("fill", aid, filled_qty=10, avg=190.5, qty=10, price=190.5)
        path = f"/v1/execution/orders/{out['order_id']}"
        while True:
            status, got = http(m, "GET", path)
            if got.get("status") == "FILLED":
                break
            assert time.monotonic() < deadline + 30, got
            time.sleep(0.1)
        assert (got["filled_quantity"], got["average_price"]) in (("10", 190.5), (10, 190.5))
        # the credentials are in no process's command line
        listing = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
        assert KEY not in listing and SECRET not in listing
    finally:
        down = m.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
    # ... nor in any file the mesh wrote (logs of every component, mesh.json, stores)
    for path in m.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, path


def test_snapshot_is_alpacas_record_of_our_orders(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, ev = venue
    v.account_of = lambda oid: ("acct", "AAPL") if oid in ("O1", "O2") else None
    v.submit(order("O1", 100))
    a1 = alpaca_id(fake, "O1")
    fake.push("new", a1)
    fake.push("partial_fill", a1, filled_qty=40, avg=10.0, qty=40, price=10.0)
    ev.wait(2)
    v.replace("O1", 80, 10.5)  # 40 left to work, on a new Alpaca order O1.r1
    a1r = alpaca_id(fake, "O1.r1")
    fake.push("replaced", a1, order={"replaced_by": a1r})
    fake.push("fill", a1r, filled_qty=40, avg=10.5, qty=40, price=10.5)
    v.submit(
        VenueOrder("O2", "acct", "AAPL", Side.SELL, 10, OrderType.LIMIT, TimeInForce.GTC, 11.0)
    )
    a2 = alpaca_id(fake, "O2")
    fake.push("new", a2)
    got = ev.wait(5)
    fake.new_order({"client_order_id": "dashboard-1", "symbol": "MSFT", "qty": "5"})
    snap = v.snapshot()
    by = {o.order_id: o for o in snap.orders}
    assert set(by) == {"O1", "O2", "dashboard-1"}
    o1 = by["O1"]
    assert (o1.quantity, o1.filled_quantity, o1.status, o1.venue_order_id, o1.limit_price) == (
        80,
        80,
        OrderStatus.FILLED,
        a1r,
        10.5,
    )
    assert (by["O2"].status, by["O2"].side, by["O2"].time_in_force) == (
        OrderStatus.ACCEPTED,
        Side.SELL,
        TimeInForce.GTC,
    )
    assert (by["dashboard-1"].account, by["dashboard-1"].symbol) == ("ALPACA", "MSFT")
    assert sorted((f.fill_id, f.quantity, f.price) for f in snap.fills) == sorted(
        [(f"{a1}-40", 40, 10.0), (f"{a1r}-40", 40, 10.5)]
    )
    # the same fill ids as the stream's: a fill seen both ways is one fill
    assert {f.fill_id for f in snap.fills} == {
        e.fill_id for e in got if e.kind is VenueEventKind.FILL
    }
    assert snap.positions == (VenuePosition("acct", "AAPL", 80),)


def test_snapshot_reads_every_page(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradecore_services.execution import alpaca_venue

    monkeypatch.setattr(alpaca_venue, "PAGE_ORDERS", 2)
    monkeypatch.setattr(alpaca_venue, "PAGE_FILLS", 2)
    v, _ = venue
    for i in range(5):
        v.submit(order(f"P{i}", 10))
        aid = alpaca_id(fake, f"P{i}")
        if i % 2 == 0:
            fake.push("fill", aid, filled_qty=10, avg=10.0, qty=10, price=10.0)
    snap = v.snapshot()
    assert sorted(o.order_id for o in snap.orders) == [f"P{i}" for i in range(5)]
    assert len(snap.fills) == 3
    assert snap.positions == (VenuePosition("ALPACA", "AAPL", 30),)


def test_snapshot_failure_is_unavailable_and_reconciles_nothing(
    fake: FakeAlpaca, venue: tuple[AlpacaVenue, Events]
) -> None:
    v, _ = venue
    fake.broken_activities = True
    with pytest.raises(UnavailableError, match="snapshot failed: HTTP 500"):
        v.snapshot()
