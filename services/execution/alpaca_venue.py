"""The Alpaca venue: :class:`tradecore.oms.venue.Venue` on Alpaca's trading API (alpaca-py).

Requests (on the caller's thread, the OMS thread in the service) go over REST with
alpaca-py's ``TradingClient`` (raw JSON); what happens to the orders comes back on the
``trade_updates`` websocket (alpaca-py's ``TradingStream``, raw frames: the event string is
parsed here, so the events alpaca-py's enum lacks are handled too). Every VenueEvent goes
through ``dispatch`` (the service posts it onto the OMS thread, in order).

Identity: Alpaca's ``client_order_id`` is our ``order_id``, so a request that timed out or was
rate-limited is looked up (``GET /v2/orders:by_client_order_id``) before it is sent again, and a
second POST of the same order is refused by Alpaca: an order is never placed twice.

Replace: Alpaca replaces an order by a NEW order (new id, ``replaces`` = the old id, client id
``<order_id>.r<n>``). The new order's ``qty`` is what is left to work (the OMS's new total
quantity less what is filled); both ids map to our order. ``replaced`` (the old order) ->
REPLACED with ``venue_order_id`` = the new id; ``order_replace_rejected``, a PATCH refused with
HTTP 4xx, or ``rejected`` of the new order (the old one filled first: the replace race) ->
REPLACE_REJECTED.

Fills: a fill's quantity is the rise of the Alpaca order's cumulative ``filled_qty`` since the
last one seen, its id ``<alpaca order id>-<filled_qty>``: a fill seen on the stream and again in
a reconciliation is one fill, and none is counted twice. The price is the event's ``price``
when its ``qty`` is that rise, else derived from ``filled_avg_price``.

Events: new (and accepted) -> ACCEPTED once; fill / partial_fill -> FILL; canceled -> CANCELED;
expired -> EXPIRED; rejected -> REJECTED (REPLACE_REJECTED for a pending replacement);
replaced -> REPLACED; order_cancel_rejected -> CANCEL_REJECTED; order_replace_rejected ->
REPLACE_REJECTED. pending_new, pending_cancel, pending_replace, done_for_day, stopped,
suspended, calculated and held change nothing the OMS tracks (the OMS already holds the pending
states; done_for_day is followed by expired or canceled); they are counted in ``stats``. Any
other event string is counted as ``unknown`` and logged, never raised.

Stream drops: alpaca-py reconnects and listens again; after every (re)connection the venue
reconciles: ``GET /v2/orders?status=all`` (and ``GET /v2/orders/{id}`` for a tracked order not
in that page) and reports the fills and terminal states it missed.

Rate limits: HTTP 429 is retried up to ``max_retries`` times, waiting ``Retry-After`` seconds
when given, else ``backoff_s * 2**attempt``, at most ``max_backoff_s``; a submit looks the order
up before each retry. alpaca-py's own 429 retry is switched off (it ignores Retry-After).

Reconciliation snapshot (:meth:`AlpacaVenue.snapshot`, the optional
:class:`~tradecore.oms.venue.Reconcilable` side): Alpaca's own record read over REST, every page
of ``GET /v2/orders?status=all`` (ascending by submission time) and of the ``FILL`` account
activities. Orders and fills are ours when their client order id is one of our order ids or a
replacement ``<order_id>.r<n>``; a replace chain is one order (quantity = what the replaced
orders filled plus the working order's quantity). A fill's id is ``<alpaca order id>-<cum_qty>``
as on the stream. The account of an order is the OMS's (``account_of``, set by the service);
orders placed outside the OMS go to ``TRADECORE_ALPACA_ACCOUNT`` (default ``ALPACA``).
Positions are the net of those fills per account and symbol, as for the paper venue: holdings
the brokerage account had from elsewhere are not ours to reconcile. The reads run on the
caller's thread (the OMS thread in the service), bounded by the request timeout and the 429
retries; a failure raises :class:`tradecore.errors.UnavailableError`.

Credentials: arguments, else ``TRADECORE_ALPACA_API_KEY_ID`` / ``TRADECORE_ALPACA_API_SECRET_KEY``,
else Alpaca's ``ALPACA_API_KEY_ID`` / ``ALPACA_API_SECRET_KEY``, else the files named by
``TRADECORE_ALPACA_API_KEY_ID_FILE`` / ``TRADECORE_ALPACA_API_SECRET_KEY_FILE``; never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream
from requests.adapters import HTTPAdapter
from tradecore.errors import UnavailableError
from tradecore.oms.types import (
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import (
    Listener,
    VenueFill,
    VenueOrderState,
    VenuePosition,
    VenueSnapshot,
)

log = logging.getLogger("tradecore.execution.alpaca")

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
#: Events that change nothing the OMS tracks (see the module docstring).
QUIET_EVENTS = frozenset(
    {
        "pending_new",
        "pending_cancel",
        "pending_replace",
        "done_for_day",
        "stopped",
        "suspended",
        "calculated",
        "held",
    }
)
_DONE = {"filled", "canceled", "expired", "rejected", "replaced"}
#: Alpaca's order statuses as the OMS's (any other open status: ACCEPTED, or PARTIALLY_FILLED
#: once something is filled).
_STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
#: Rows per page of the snapshot's reads, and a bound on the pages read.
PAGE_ORDERS, PAGE_FILLS, MAX_PAGES = 500, 100, 1000
#: Who an order placed outside the OMS is booked to (see the module docstring).
DEFAULT_ACCOUNT = "ALPACA"


class AlpacaVenueError(RuntimeError):
    """A request Alpaca refused or could not take (the OMS rejects the order with it)."""


def credentials(
    api_key: str | None, secret_key: str | None, env: Mapping[str, str]
) -> tuple[str, str] | None:
    """(key, secret) from the arguments, the environment or the files it names; None when
    neither is configured."""

    def one(arg: str | None, name: str) -> str:
        if arg:
            return arg
        for var in (f"TRADECORE_ALPACA_{name}", f"ALPACA_{name}"):
            if env.get(var):
                return env[var]
        var = f"TRADECORE_ALPACA_{name}_FILE"
        path = env.get(var)
        if not path:
            return ""
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{var}: cannot read {path!r} ({exc.strerror})") from None

    key, secret = one(api_key, "API_KEY_ID"), one(secret_key, "API_SECRET_KEY")
    return (key, secret) if key and secret else None


@dataclass
class _Track:
    """What the venue knows of one of our orders."""

    order_id: str
    alpaca_id: str = ""  # the order now working (changes with each replace)
    accepted: bool = False
    done: bool = False
    #: Cumulative filled quantity seen, per Alpaca order id.
    filled: dict[str, int] = field(default_factory=dict)
    avg: dict[str, float] = field(default_factory=dict)
    #: A replace sent and not answered: (new alpaca id, new total quantity, new limit price).
    replacing: tuple[str, int, float | None] | None = None
    replaces: int = 0
    quantity: int = 0
    last: VenueEvent | None = None

    @property
    def total_filled(self) -> int:
        return sum(self.filled.values())


class _TimeoutAdapter(HTTPAdapter):
    """alpaca-py sends requests without a timeout; a hung server must not hang the OMS."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class _Stream(TradingStream):
    """alpaca-py's trading stream, telling the venue after each (re)connection."""

    def __init__(self, on_connected: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_connected = on_connected

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self._on_connected()


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def _occ_or_ticker(symbol: str) -> str:
    """Options go by their OCC symbol (``AAPL240119C00190000``, spaces removed), stocks by
    their ticker."""
    return symbol.replace(" ", "").upper()


class AlpacaVenue:
    """Alpaca as a :class:`~tradecore.oms.venue.Venue` (see the module docstring)."""

    name = "ALPACA"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        secret_key: str | None = None,
        paper: bool | None = None,
        url: str | None = None,
        stream_url: str | None = None,
        dispatch: Callable[[Callable[[], None]], None] | None = None,
        request_timeout: float = 10.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        reconnect_backoff_s: float = 1.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        creds = credentials(api_key, secret_key, env)
        if creds is None:
            raise ValueError(
                "alpaca: credentials must be set (TRADECORE_ALPACA_API_KEY_ID and "
                "TRADECORE_ALPACA_API_SECRET_KEY, or their _FILE variants)"
            )
        if paper is None:
            paper = env.get("TRADECORE_ALPACA_PAPER", "true").lower() not in ("0", "false", "no")
        self.url = (url or env.get("TRADECORE_ALPACA_TRADING_URL") or "").rstrip("/") or (
            PAPER_URL if paper else LIVE_URL
        )
        self.stream_url = (
            stream_url
            or env.get("TRADECORE_ALPACA_TRADING_STREAM_URL")
            or self.url.replace("https://", "wss://").replace("http://", "ws://") + "/stream"
        )
        for name, v in (("request_timeout", request_timeout), ("backoff_s", backoff_s)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"alpaca.{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ValueError(f"alpaca.max_retries must be an integer >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._client = TradingClient(*creds, paper=paper, raw_data=True, url_override=self.url)
        self._client._retry = 0  # 429s are retried here (Retry-After, lookup first)
        adapter = _TimeoutAdapter(request_timeout)
        self._client._session.mount("http://", adapter)
        self._client._session.mount("https://", adapter)
        self._creds = creds
        self._paper = paper
        self._reconnect_backoff_s = reconnect_backoff_s
        self._dispatch = dispatch or (lambda fn: fn())
        self._listener: Listener = lambda _e: None
        self._lock = threading.RLock()
        self._tracks: dict[str, _Track] = {}  # our order id -> track
        self._by_alpaca: dict[str, str] = {}  # alpaca order id -> our order id
        self._stream: _Stream | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = threading.Event()
        #: Our order id -> (account, symbol) as the OMS books it, None for an id it does not
        #: know (set by the service; see :meth:`snapshot`).
        self.account_of: Callable[[str], tuple[str, str] | None] = lambda _oid: None
        self.default_account = env.get("TRADECORE_ALPACA_ACCOUNT", "").strip() or DEFAULT_ACCOUNT
        self.stats: dict[str, int] = {
            "events": 0,
            "quiet": 0,
            "unknown": 0,
            "foreign": 0,
            "rate_limited": 0,
            "connects": 0,
            "reconciled_fills": 0,
        }

    def __repr__(self) -> str:  # never shows the credentials
        return f"AlpacaVenue(url={self.url!r}, stream_url={self.stream_url!r})"

    # -- Venue -----------------------------------------------------------------------------

    def set_dispatch(self, dispatch: Callable[[Callable[[], None]], None]) -> None:
        """How reports reach the listener: ``dispatch(fn)`` must run the ``fn``s one at a time,
        in the order given, where the listener may be called (the service: the OMS thread)."""
        self._dispatch = dispatch

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    def submit(self, order: VenueOrder) -> None:
        if order.legs:
            raise AlpacaVenueError("multi-leg orders are not supported on Alpaca by this venue")
        body: dict[str, Any] = {
            "symbol": _occ_or_ticker(order.symbol),
            "qty": str(order.quantity),
            "side": order.side.value.lower(),
            "type": order.type.value.lower(),
            "time_in_force": order.time_in_force.value.lower(),
            "client_order_id": order.order_id,
        }
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            body["limit_price"] = str(order.limit_price)
        if order.type in (OrderType.STOP, OrderType.STOP_LIMIT):
            body["stop_price"] = str(order.stop_price)
        with self._lock:
            self._tracks.setdefault(
                order.order_id, _Track(order.order_id)
            ).quantity = order.quantity
        for attempt in range(self.max_retries + 1):
            try:
                raw = self._client.post("/orders", body)
            except APIError as exc:
                if exc.status_code == 429 and attempt < self.max_retries:
                    self._wait_rate_limit(exc, attempt)
                    if self._adopt(order.order_id):  # the POST went through after all
                        return
                    continue
                if exc.status_code == 422 and self._adopt(order.order_id):
                    return  # "client_order_id must be unique": the order is there
                raise AlpacaVenueError(_reason(exc)) from None
            except requests.exceptions.Timeout:
                raise TimeoutError(f"alpaca: submit of {order.order_id} timed out") from None
            except requests.exceptions.ConnectionError as exc:
                raise TimeoutError(f"alpaca: submit of {order.order_id}: {exc}") from None
            self._snapshot(_order(raw), order.order_id)
            return
        raise AlpacaVenueError("rate limited")  # pragma: no cover - the loop raises first

    def cancel(self, order_id: str) -> None:
        with self._lock:
            track = self._tracks.get(order_id)
            alpaca_id = track.alpaca_id if track else ""
        if not alpaca_id:
            self._report(VenueEventKind.CANCEL_REJECTED, order_id, reason="unknown to Alpaca")
            return
        try:
            self._retrying(lambda: self._client.delete(f"/orders/{alpaca_id}"))
        except APIError as exc:  # 422: not cancelable (filled meanwhile); 404: unknown
            self._report(VenueEventKind.CANCEL_REJECTED, order_id, reason=_reason(exc))

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        with self._lock:
            track = self._tracks.get(order_id)
            if track is None or not track.alpaca_id:
                self._report(VenueEventKind.REPLACE_REJECTED, order_id, reason="unknown")
                return
            old_id = track.alpaca_id
        # The remainder from Alpaca's own count (fills the stream has not delivered yet are
        # reported now), so the new order is not sized from a stale fill count.
        try:
            self._snapshot(_order(self._get_order(old_id)), order_id)
        except APIError as exc:
            self._report(VenueEventKind.REPLACE_REJECTED, order_id, reason=_reason(exc))
            return
        with self._lock:
            track.replaces += 1
            n, left = track.replaces, quantity - track.total_filled
        if left <= 0:
            self._report(VenueEventKind.REPLACE_REJECTED, order_id, reason="nothing left")
            return
        body: dict[str, Any] = {"qty": str(left), "client_order_id": f"{order_id}.r{n}"}
        if limit_price is not None:
            body["limit_price"] = str(limit_price)
        try:
            raw = self._retrying(lambda: self._client.patch(f"/orders/{old_id}", body))
        except APIError as exc:
            self._report(VenueEventKind.REPLACE_REJECTED, order_id, reason=_reason(exc))
            return
        with self._lock:
            new_id = str(raw["id"])
            self._by_alpaca[new_id] = order_id
            track.replacing = (new_id, quantity, limit_price)

    def lookup(self, order_id: str) -> VenueEvent | None:
        try:
            raw = self._retrying(
                lambda: self._client.get(
                    "/orders:by_client_order_id", {"client_order_id": order_id}
                )
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        self._snapshot(_order(raw), order_id, report=False)
        with self._lock:
            track = self._tracks[order_id]
            if raw.get("status") == "rejected":
                track.done = True
                return self._event(VenueEventKind.REJECTED, track, reason="rejected")
            track.accepted = True
            event = self._event(VenueEventKind.ACCEPTED, track)
        # Its fills and end are reported after the answer (the OMS adopts ACCEPTED first).
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.run_in_executor, None, self.reconcile)
        return event

    # -- the stream ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the trade_updates stream on a thread of its own (reconnects by itself)."""
        if self._thread is not None:
            return
        stream = _Stream(
            self._connected,
            api_key=self._creds[0],
            secret_key=self._creds[1],
            paper=self._paper,
            raw_data=True,
            url_override=self.stream_url,
        )
        stream._reconnect_min_backoff = self._reconnect_backoff_s
        stream.subscribe_trade_updates(self._on_update)
        self._stream = stream

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(stream._run_forever())  # type: ignore[no-untyped-call]
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the stream and the REST session (idempotent)."""
        stream, thread, loop = self._stream, self._thread, self._loop
        self._thread = None
        if stream is None or thread is None:
            self._client._session.close()
            return
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(5)
                asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
        thread.join(10)
        self._client._session.close()

    def _connected(self) -> None:
        self.stats["connects"] += 1
        self.connected.set()
        loop = self._loop
        if loop is not None:  # off the stream's loop: the REST calls block
            loop.run_in_executor(None, self.reconcile)

    async def _on_update(self, msg: Any) -> None:
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(data, dict):
            return
        try:
            self.on_trade_update(data)
        except Exception:  # one malformed frame must not stop the stream
            log.exception("alpaca: trade update skipped")

    def on_trade_update(self, data: Mapping[str, Any]) -> None:
        """One ``trade_updates`` payload (``{"event": ..., "order": {...}, ...}``)."""
        self.stats["events"] += 1
        kind = str(data.get("event", ""))
        raw = data.get("order")
        if not isinstance(raw, dict) or "id" not in raw:
            self.stats["unknown"] += 1
            return
        with self._lock:
            oid = self._by_alpaca.get(str(raw["id"])) or (
                str(raw.get("client_order_id", ""))
                if str(raw.get("client_order_id", "")) in self._tracks
                else ""
            )
            if not oid:
                self.stats["foreign"] += 1  # an order of the account not placed by us
                return
            track = self._tracks[oid]
            aid = str(raw["id"])
            if aid not in self._by_alpaca:
                self._by_alpaca[aid] = oid
            if kind in ("new", "accepted"):
                if aid == track.alpaca_id or not track.alpaca_id:
                    track.alpaca_id = aid
                    self._accept(track)
            elif kind in ("fill", "partial_fill"):
                self._fills(track, raw, data)
            elif kind == "canceled":
                self._fills(track, raw, None)
                self._terminal(track, aid, VenueEventKind.CANCELED, "canceled")
            elif kind == "expired":
                self._fills(track, raw, None)
                self._terminal(track, aid, VenueEventKind.EXPIRED, "expired")
            elif kind == "rejected":
                if track.replacing and track.replacing[0] == aid:
                    track.replacing = None
                    self._report_locked(VenueEventKind.REPLACE_REJECTED, track, "rejected")
                else:
                    self._terminal(track, aid, VenueEventKind.REJECTED, "rejected")
            elif kind == "replaced":
                self._fills(track, raw, None)
                self._replaced(track, aid, str(raw.get("replaced_by") or ""))
            elif kind == "order_cancel_rejected":
                self._report_locked(VenueEventKind.CANCEL_REJECTED, track, kind)
            elif kind == "order_replace_rejected":
                track.replacing = None
                self._report_locked(VenueEventKind.REPLACE_REJECTED, track, kind)
            elif kind in QUIET_EVENTS:
                self.stats["quiet"] += 1
            else:
                self.stats["unknown"] += 1
                log.warning("alpaca: unknown trade update event %r skipped", kind)

    def reconcile(self) -> int:
        """Report what the stream missed for every order not done; returns fills reported."""
        with self._lock:
            open_ids = {t.alpaca_id for t in self._tracks.values() if not t.done and t.alpaca_id}
            open_ids |= {
                t.replacing[0] for t in self._tracks.values() if t.replacing and not t.done
            }
        if not open_ids:
            return 0
        before = self.stats["reconciled_fills"]
        try:
            page = self._retrying(
                lambda: self._client.get("/orders", {"status": "all", "limit": 500})
            )
            seen = {str(o["id"]): o for o in page if isinstance(o, dict) and "id" in o}
            for aid in sorted(open_ids - set(seen)):
                seen[aid] = _order(self._get_order(aid))
        except (APIError, requests.exceptions.RequestException) as exc:
            log.warning("alpaca: reconciliation failed: %s", _reason(exc))
            return 0
        for aid in sorted(open_ids):
            raw = seen.get(aid)
            if raw is not None:
                self._snapshot(raw, self._by_alpaca.get(aid, ""), count=True)
        return self.stats["reconciled_fills"] - before

    def snapshot(self) -> VenueSnapshot:
        """Alpaca's record of our orders, their fills and the net positions from those fills
        (see the module docstring)."""
        try:
            raw_orders = self._pages_of_orders()
            raw_fills = self._pages_of_fills()
        except (APIError, requests.exceptions.RequestException, AlpacaVenueError) as exc:
            raise UnavailableError(f"alpaca: snapshot failed: {_reason(exc)}") from None
        chains: dict[str, list[dict[str, Any]]] = {}
        for raw in raw_orders:
            cid = str(raw.get("client_order_id") or raw["id"])
            chains.setdefault(_base_id(cid), []).append(raw)
        owner: dict[str, str] = {}  # alpaca id -> our order id
        orders: list[VenueOrderState] = []
        books: dict[str, tuple[str, str]] = {}
        for oid, chain in chains.items():
            chain.sort(key=lambda r: _replace_number(str(r.get("client_order_id") or "")))
            last = chain[-1]
            known = self.account_of(oid)
            acct, symbol = known if known else (self.default_account, str(last["symbol"]))
            books[oid] = (acct, symbol)
            filled = sum(int(_num(r.get("filled_qty"))) for r in chain)
            earlier = sum(int(_num(r.get("filled_qty"))) for r in chain[:-1])
            status = _STATUS.get(str(last.get("status", "")))
            if status is None:
                status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.ACCEPTED
            for r in chain:
                owner[str(r["id"])] = oid
            limit = _num(last.get("limit_price"))
            stop = _num(last.get("stop_price"))
            orders.append(
                VenueOrderState(
                    order_id=oid,
                    venue_order_id=str(last["id"]),
                    account=acct,
                    symbol=symbol,
                    side=Side(str(last.get("side", "buy")).upper()),
                    type=OrderType(str(last.get("type", "market")).upper()),
                    time_in_force=_tif(str(last.get("time_in_force", "day"))),
                    quantity=earlier + int(_num(last.get("qty"))),
                    filled_quantity=filled,
                    status=status,
                    limit_price=limit or None,
                    stop_price=stop or None,
                )
            )
        fills: list[VenueFill] = []
        net: dict[tuple[str, str], int] = {}
        for act in raw_fills:
            aid = str(act.get("order_id", ""))
            ours = owner.get(aid)
            if ours is None:
                continue  # a fill of an order not in the order pages (placed elsewhere, older)
            acct, symbol = books[ours]
            side = Side.BUY if str(act.get("side", "")).lower() == "buy" else Side.SELL
            qty = int(_num(act.get("qty")))
            fills.append(
                VenueFill(
                    fill_id=f"{aid}-{int(_num(act.get('cum_qty')))}",
                    order_id=ours,
                    account=acct,
                    symbol=symbol,
                    side=side,
                    quantity=qty,
                    price=_num(act.get("price")),
                    time_ns=_time_ns(act.get("transaction_time")),
                    venue_order_id=aid,
                )
            )
            net[(acct, symbol)] = net.get((acct, symbol), 0) + side.sign * qty
        positions = tuple(VenuePosition(a, sym, q) for (a, sym), q in sorted(net.items()) if q)
        return VenueSnapshot(self.name, time.time_ns(), tuple(orders), tuple(fills), positions)

    def _pages_of_orders(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = ""
        for _ in range(MAX_PAGES):
            params = {"status": "all", "limit": PAGE_ORDERS, "direction": "asc", "nested": False}
            if after:
                params["after"] = after
            page = self._retrying(lambda p=params: self._client.get("/orders", p))  # type: ignore[misc]
            rows = [_order(r) for r in (page or [])]
            fresh = [r for r in rows if all(r["id"] != o["id"] for o in out[-PAGE_ORDERS:])]
            out.extend(fresh)
            if len(rows) < PAGE_ORDERS or not fresh:
                return out
            after = str(rows[-1].get("submitted_at") or "")
            if not after:
                return out
        raise AlpacaVenueError(f"more than {MAX_PAGES} pages of orders")

    def _pages_of_fills(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"direction": "asc", "page_size": PAGE_FILLS}
            if token:
                params["page_token"] = token
            page = self._retrying(
                lambda p=params: self._client.get("/account/activities/FILL", p)  # type: ignore[misc]
            )
            rows = [r for r in (page or []) if isinstance(r, dict)]
            out.extend(rows)
            if len(rows) < PAGE_FILLS:
                return out
            token = str(rows[-1].get("id") or "")
            if not token:
                return out
        raise AlpacaVenueError(f"more than {MAX_PAGES} pages of fill activities")

    # -- internals (under the lock) --------------------------------------------------------

    def _snapshot(
        self, raw: Mapping[str, Any], order_id: str, report: bool = True, count: bool = False
    ) -> None:
        """An order as REST shows it: adopt its id; report (when ``report``) what changed."""
        if not order_id:
            return
        aid = str(raw["id"])
        status = str(raw.get("status", ""))
        with self._lock:
            track = self._tracks.setdefault(order_id, _Track(order_id))
            self._by_alpaca[aid] = order_id
            if not track.alpaca_id:
                track.alpaca_id = aid
            if not report:
                return
            if status == "rejected":
                self.on_trade_update({"event": "rejected", "order": raw})
                return
            if status not in ("pending_new", "") and aid == track.alpaca_id:
                self._accept(track)
            n = self._fills(track, raw, None)
            if count:
                self.stats["reconciled_fills"] += n
            if status in ("canceled", "expired", "replaced"):
                self.on_trade_update({"event": status, "order": raw})

    def _accept(self, track: _Track) -> None:
        if not track.accepted:
            track.accepted = True
            self._report_locked(VenueEventKind.ACCEPTED, track)

    def _fills(self, track: _Track, raw: Mapping[str, Any], data: Mapping[str, Any] | None) -> int:
        aid = str(raw["id"])
        cum = int(_num(raw.get("filled_qty")))
        avg = _num(raw.get("filled_avg_price"))
        seen, seen_avg = track.filled.get(aid, 0), track.avg.get(aid, 0.0)
        if cum <= seen:
            return 0
        if aid == track.alpaca_id:
            self._accept(track)
        qty = cum - seen
        price = (avg * cum - seen_avg * seen) / qty
        if data is not None and int(_num(data.get("qty"))) == qty and _num(data.get("price")) > 0:
            price = _num(data.get("price"))
        track.filled[aid], track.avg[aid] = cum, avg
        extra = {"alpaca_order_id": aid}
        if data is not None and data.get("execution_id"):
            extra["execution_id"] = str(data["execution_id"])
        self._report_locked(
            VenueEventKind.FILL,
            track,
            fill_id=f"{aid}-{cum}",
            fill_quantity=qty,
            fill_price=round(price, 10),
            leaves_quantity=max(track.quantity - track.total_filled, 0),
            extra=extra,
        )
        return 1

    def _terminal(self, track: _Track, aid: str, kind: VenueEventKind, reason: str) -> None:
        if aid != track.alpaca_id or track.done:
            return  # an old order's end after its replacement took over
        track.done = True
        self._report_locked(kind, track, reason)

    def _replaced(self, track: _Track, aid: str, new_id: str) -> None:
        if aid != track.alpaca_id:
            return
        pending = track.replacing
        if pending is None or (new_id and new_id != pending[0]):
            self._report_locked(VenueEventKind.REPLACE_REJECTED, track, "replaced elsewhere")
            return
        new_id, quantity, limit = pending
        track.replacing = None
        track.alpaca_id = new_id
        track.quantity = quantity
        self._report_locked(
            VenueEventKind.REPLACED,
            track,
            new_quantity=quantity,
            new_limit_price=limit,
            leaves_quantity=max(quantity - track.total_filled, 0),
        )

    def _event(
        self, kind: VenueEventKind, track: _Track, reason: str = "", **kw: Any
    ) -> VenueEvent:
        kw.setdefault(
            "leaves_quantity",
            0
            if kind.value in ("CANCELED", "EXPIRED", "REJECTED")
            else max(track.quantity - track.total_filled, 0),
        )
        event = VenueEvent(
            kind=kind,
            order_id=track.order_id,
            time_ns=time.time_ns(),
            venue_order_id=track.alpaca_id,
            reason=reason,
            **kw,
        )
        track.last = event
        return event

    def _report_locked(
        self, kind: VenueEventKind, track: _Track, reason: str = "", **kw: Any
    ) -> None:
        event = self._event(kind, track, reason, **kw)
        listener = self._listener
        self._dispatch(lambda: listener(event))

    def _report(self, kind: VenueEventKind, order_id: str, reason: str = "") -> None:
        with self._lock:
            track = self._tracks.setdefault(order_id, _Track(order_id))
            self._report_locked(kind, track, reason)

    def _adopt(self, order_id: str) -> bool:
        """Whether Alpaca has the order (by client_order_id); its state is reported."""
        try:
            raw = self._retrying(
                lambda: self._client.get(
                    "/orders:by_client_order_id", {"client_order_id": order_id}
                )
            )
        except APIError as exc:
            if exc.status_code == 404:
                return False
            raise AlpacaVenueError(_reason(exc)) from None
        self._snapshot(_order(raw), order_id)
        return True

    def _get_order(self, alpaca_id: str) -> Any:
        return self._retrying(lambda: self._client.get(f"/orders/{alpaca_id}"))

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """``call`` with HTTP 429 retried (Retry-After, else exponential; bounded)."""
        for attempt in range(self.max_retries + 1):
            try:
                return call()
            except APIError as exc:
                if exc.status_code != 429 or attempt == self.max_retries:
                    raise
                self._wait_rate_limit(exc, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_rate_limit(self, exc: APIError, attempt: int) -> None:
        self.stats["rate_limited"] += 1
        wait = self.backoff_s * 2**attempt
        response = exc.response
        header = response.headers.get("Retry-After") if response is not None else None
        if header is not None:
            with contextlib.suppress(ValueError):
                wait = float(header)
        time.sleep(min(max(wait, 0.0), self.max_backoff_s))


def _base_id(client_order_id: str) -> str:
    """Our order id of a client order id (a replacement's ``<order_id>.r<n>`` included)."""
    head, sep, tail = client_order_id.rpartition(".r")
    return head if sep and tail.isdigit() else client_order_id


def _replace_number(client_order_id: str) -> int:
    _, sep, tail = client_order_id.rpartition(".r")
    return int(tail) if sep and tail.isdigit() else 0


def _tif(value: str) -> TimeInForce:
    try:
        return TimeInForce(value.upper())
    except ValueError:
        return TimeInForce.DAY


def _time_ns(value: Any) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


def _order(raw: Any) -> dict[str, Any]:
    """An order object of a REST answer (AlpacaVenueError for anything else)."""
    if not isinstance(raw, dict) or "id" not in raw:
        raise AlpacaVenueError(f"Alpaca answered with something not an order: {raw!r:.200}")
    return raw


def _reason(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        with contextlib.suppress(Exception):
            return f"HTTP {exc.status_code}: {json.loads(str(exc))['message']}"
        return f"HTTP {exc.status_code}: {exc}"
    return str(exc)


__all__ = ["QUIET_EVENTS", "AlpacaVenue", "AlpacaVenueError", "credentials"]
