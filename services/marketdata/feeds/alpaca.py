"""Alpaca market-data adapter: live (websocket) and history (REST) stock quotes and trades.

``AlpacaFeed(symbols=[...], mode="live" | "history", ...)`` implements ``EventFeed`` on top of
alpaca-py: ``StockDataStream`` for live data, ``StockHistoricalDataClient`` for history. Both
paths turn Alpaca's raw records into ``tradecore.marketdata.v1`` ``Quote``/``Trade`` messages:

- quote ``bp``/``bs``/``ap``/``as`` → bid/ask price and size; Alpaca reports stock quote sizes in
  round lots, so sizes are multiplied by ``quote_size_multiplier`` (default 100) to give shares;
  trade ``p``/``s`` → price/size (already shares); ``tks`` (taker side, when present) → aggressor.
- ``t`` (RFC 3339 with nanoseconds over REST, a msgpack timestamp on the stream) → int64 ns, kept
  exact (alpaca-py's models would round it to microseconds, so raw records are used).
- ``sequence`` is derived from the exchange time, not from a counter:
  ``(t_us - 2015-01-01) << 13 | k`` where ``k`` numbers the events of one symbol within the same
  microsecond (ordered by time in ns, quote before trade, then the API's order). Any history range
  (its ends are whole microseconds) that contains an event gives it the same sequence, so a restart
  re-fetching an overlapping range produces repeats the service's dedup drops. Live events get the
  same value when they arrive in time order; an event arriving out of order gets ``previous + 1``
  so sequences stay unique and increasing per (venue, symbol).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgpack
from alpaca.common.enums import BaseURL
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.requests import StockQuotesRequest, StockTradesRequest
from requests.adapters import HTTPAdapter
from requests.exceptions import RequestException
from tradecore_api.events.v1 import common_pb2, market_pb2

from .base import Event

log = logging.getLogger(__name__)

SEQUENCE_EPOCH_US = 1_420_070_400_000_000  # 2015-01-01T00:00:00Z, before any Alpaca history
TIE_BITS = 13  # up to 8192 events per symbol and microsecond keep range-independent sequences
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,15}$")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_FATAL_AUTH = ("auth failed", "failed to authenticate", "insufficient subscription", "forbidden")
_TAKER = {"B": common_pb2.BUY, "S": common_pb2.SELL}


class AlpacaFeedError(RuntimeError):
    """The Alpaca feed stopped for a reason retrying will not fix."""


class AlpacaAuthError(AlpacaFeedError):
    """Alpaca rejected the credentials (or the account may not use the requested feed)."""


def parse_rfc3339_ns(text: str) -> int:
    """``2024-01-02T14:30:00.123456789Z`` → nanoseconds since the epoch (exact)."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339")
    offset = "+00:00" if m.group(3).upper() == "Z" else m.group(3)
    seconds = datetime.fromisoformat(m.group(1) + offset).timestamp()
    frac = (m.group(2) or "").ljust(9, "0")
    return int(seconds) * 1_000_000_000 + int(frac)


def _time_ns(value: Any) -> int:
    if isinstance(value, msgpack.Timestamp):
        return int(value.to_unix_nano())
    if isinstance(value, str):
        return parse_rfc3339_ns(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _datetime_us(dt) * 1000
    raise ValueError(f"timestamp of type {type(value).__name__} is not supported")


def _datetime_us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {key!r} is missing or not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"field {key!r} must be finite and >= 0 (got {value})")
    return float(value)


class Sequencer:
    """Per-symbol sequences from exchange time (see the module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int, int]] = {}  # symbol -> (us, events in us, seq)

    def next(self, symbol: str, time_ns: int) -> int:
        us = time_ns // 1000
        last_us, count, last_seq = self._last.get(symbol, (-1, 0, -1))
        k = count if us == last_us else 0
        seq = max((max(us - SEQUENCE_EPOCH_US, 0) << TIE_BITS) + k, last_seq + 1)
        self._last[symbol] = (us, k + 1 if us == last_us else 1, seq)
        return seq


class AlpacaFeed:
    """Alpaca stock quotes and trades as ``EventFeed`` batches.

    Arguments win over the environment; credentials come from ``api_key``/``secret_key``, else
    ``TRADECORE_ALPACA_API_KEY_ID``/``TRADECORE_ALPACA_API_SECRET_KEY``, else Alpaca's own
    ``ALPACA_API_KEY_ID``/``ALPACA_API_SECRET_KEY``. ``rest_url`` (default Alpaca's data API,
    ``TRADECORE_ALPACA_REST_URL``) and ``stream_url`` (``TRADECORE_ALPACA_STREAM_URL``; the feed
    path ``/v2/<feed>`` is appended) are bases for alpaca-py's ``url_override``.
    """

    def __init__(
        self,
        symbols: Sequence[str] | None = None,
        mode: Literal["live", "history"] | str = "live",
        *,
        api_key: str | None = None,
        secret_key: str | None = None,
        feed: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        rest_url: str | None = None,
        stream_url: str | None = None,
        venue: str = "ALPACA",
        batch_size: int = 1000,
        flush_interval: float = 0.05,
        quote_size_multiplier: int = 100,
        history_window: timedelta = timedelta(hours=1),
        request_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        if symbols is None:
            symbols = [s for s in env.get("TRADECORE_ALPACA_SYMBOLS", "").split(",") if s.strip()]
        if isinstance(symbols, str) or not symbols:
            raise ValueError("alpaca.symbols must not be empty (a list of tickers)")
        self.symbols: list[str] = []
        for i, raw in enumerate(symbols):
            sym = str(raw).strip().upper()
            if not _SYMBOL.match(sym):
                raise ValueError(f"alpaca.symbols[{i}] must be a ticker like AAPL (got {raw!r})")
            if sym in self.symbols:
                raise ValueError(f"alpaca.symbols[{i}] repeats {sym}")
            self.symbols.append(sym)
        if mode not in ("live", "history"):
            raise ValueError(f"alpaca.mode must be 'live' or 'history' (got {mode!r})")
        self.mode = mode
        self._key = (
            api_key or env.get("TRADECORE_ALPACA_API_KEY_ID") or env.get("ALPACA_API_KEY_ID")
        )
        self._secret = (
            secret_key
            or env.get("TRADECORE_ALPACA_API_SECRET_KEY")
            or env.get("ALPACA_API_SECRET_KEY")
        )
        if not self._key:
            raise ValueError(
                "alpaca.api_key must be set (argument, TRADECORE_ALPACA_API_KEY_ID or "
                "ALPACA_API_KEY_ID)"
            )
        if not self._secret:
            raise ValueError(
                "alpaca.secret_key must be set (argument, TRADECORE_ALPACA_API_SECRET_KEY or "
                "ALPACA_API_SECRET_KEY)"
            )
        feed = (feed or env.get("TRADECORE_ALPACA_FEED") or "iex").lower()
        if feed not in ("iex", "sip"):
            raise ValueError(f"alpaca.feed must be 'iex' or 'sip' (got {feed!r})")
        self.feed = DataFeed(feed)
        self.rest_url = _url(
            "rest_url",
            rest_url or env.get("TRADECORE_ALPACA_REST_URL") or BaseURL.DATA.value,
            "http",
        )
        self.stream_url = _url(
            "stream_url",
            stream_url
            or env.get("TRADECORE_ALPACA_STREAM_URL")
            or BaseURL.MARKET_DATA_STREAM.value,
            "ws",
        )
        if not venue or not venue.strip():
            raise ValueError("alpaca.venue must not be empty")
        self.venue = venue
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"alpaca.batch_size must be an integer >= 1 (got {batch_size!r})")
        self.batch_size = batch_size
        _positive("flush_interval", flush_interval)
        self.flush_interval = float(flush_interval)
        if not isinstance(quote_size_multiplier, int) or quote_size_multiplier < 1:
            raise ValueError(
                "alpaca.quote_size_multiplier must be an integer >= 1 "
                f"(got {quote_size_multiplier!r})"
            )
        self.quote_size_multiplier = quote_size_multiplier
        if history_window < timedelta(seconds=1):
            raise ValueError(f"alpaca.history_window must be >= 1 s (got {history_window})")
        self.history_window = history_window
        _positive("request_timeout", request_timeout)
        self.request_timeout = float(request_timeout)
        self.start: datetime | None = None
        self.end: datetime | None = None
        if mode == "history":
            if start is None:
                raise ValueError("alpaca.start must be set in history mode")
            self.start = _utc("start", start)
            self.end = _utc("end", end) if end is not None else datetime.now(UTC)
            if self.end <= self.start:
                raise ValueError(
                    f"alpaca.end ({self.end}) must be after alpaca.start ({self.start})"
                )
        self.stats = {"events": 0, "malformed": 0, "connects": 0, "requests": 0}
        self._sequencer = Sequencer()
        self._closed = False
        self._started = False
        self._stream: _Stream | None = None
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[list[Event]] = asyncio.Queue(maxsize=64)
        self._pending: list[Event] = []

    # ---------------------------------------------------------------- public surface

    def events(self) -> AsyncIterator[list[Event]]:
        """Batches of events; live runs until ``close()``, history ends after ``end``."""
        if self._started:
            raise RuntimeError("AlpacaFeed.events() may be iterated only once")
        self._started = True
        return self._live() if self.mode == "live" else self._history()

    async def close(self) -> None:
        """Stop the stream (or the history walk) and release connections; idempotent."""
        self._closed = True
        stream, task = self._stream, self._task
        if stream is None or task is None:
            return
        await stream.stop_ws()
        # Close the socket now: alpaca-py checks for the stop only between reads (up to 5 s).
        with contextlib.suppress(Exception):
            await stream.close()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await stream.close()

    # ---------------------------------------------------------------- mapping

    def to_event(self, kind: str, symbol: str, raw: Mapping[str, Any], received_ns: int) -> Event:
        """One raw Alpaca quote (``kind="q"``) or trade (``"t"``) → a sequenced message."""
        t_ns = _time_ns(raw.get("t"))
        if kind == "q":
            mult = self.quote_size_multiplier
            event: Event = market_pb2.Quote(
                venue=self.venue,
                symbol=symbol,
                exchange_time_ns=t_ns,
                receive_time_ns=received_ns,
                bid_price=_number(raw, "bp"),
                bid_size=round(_number(raw, "bs") * mult),
                ask_price=_number(raw, "ap"),
                ask_size=round(_number(raw, "as") * mult),
            )
        else:
            event = market_pb2.Trade(
                venue=self.venue,
                symbol=symbol,
                exchange_time_ns=t_ns,
                receive_time_ns=received_ns,
                price=_number(raw, "p"),
                size=round(_number(raw, "s")),
                aggressor=_TAKER.get(str(raw.get("tks", "")).upper(), common_pb2.SIDE_UNSPECIFIED),
            )
        event.sequence = self._sequencer.next(symbol, t_ns)
        self.stats["events"] += 1
        return event

    def _malformed(self, kind: str, raw: Any, exc: Exception) -> None:
        self.stats["malformed"] += 1
        if self.stats["malformed"] <= 10:
            log.warning("alpaca: dropped malformed %s record %r: %s", kind, raw, exc)

    # ---------------------------------------------------------------- live

    async def _live(self) -> AsyncIterator[list[Event]]:
        stream = _Stream(self, f"{self.stream_url}/v2/{self.feed.value}")
        stream.subscribe_quotes(self._on_quote, *self.symbols)
        stream.subscribe_trades(self._on_trade, *self.symbols)
        self._stream = stream
        self._task = asyncio.create_task(stream._run_forever(), name="alpaca-stream")
        try:
            while not (self._queue.empty() and (self._closed or self._task.done())):
                try:
                    batch = await asyncio.wait_for(self._queue.get(), self.flush_interval)
                except TimeoutError:
                    if self._pending:
                        batch, self._pending = self._pending, []
                        yield batch
                    continue
                yield batch
            if self._pending:
                batch, self._pending = self._pending, []
                yield batch
            if not self._closed:
                if stream.fatal is not None:
                    raise stream.fatal
                exc = self._task.exception()
                if exc is not None:
                    raise AlpacaFeedError(f"alpaca stream failed: {exc}") from exc
                raise AlpacaFeedError("alpaca stream ended")
        finally:
            await self.close()

    async def _on_quote(self, raw: Any) -> None:
        await self._on_record("q", raw)

    async def _on_trade(self, raw: Any) -> None:
        await self._on_record("t", raw)

    async def _on_record(self, kind: str, raw: dict[str, Any]) -> None:
        if self._closed:
            return
        try:
            self._pending.append(self.to_event(kind, str(raw["S"]), raw, time.time_ns()))
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            self._malformed(kind, raw, exc)
            return
        if len(self._pending) >= self.batch_size:
            batch, self._pending = self._pending, []
            await self._queue.put(batch)  # bounded: a slow consumer slows the socket reads

    # ---------------------------------------------------------------- history

    async def _history(self) -> AsyncIterator[list[Event]]:
        assert self.start is not None and self.end is not None
        client = StockHistoricalDataClient(
            self._key, self._secret, raw_data=True, url_override=self.rest_url
        )
        adapter = _TimeoutAdapter(self.request_timeout)
        client._session.mount("http://", adapter)
        client._session.mount("https://", adapter)
        try:
            lo = self.start
            while lo < self.end and not self._closed:
                hi = min(lo + self.history_window, self.end)
                events = await asyncio.to_thread(self._fetch_window, client, lo, hi)
                for i in range(0, len(events), self.batch_size):
                    if self._closed:
                        return
                    yield events[i : i + self.batch_size]
                lo = hi
        finally:
            client._session.close()

    def _fetch_window(
        self, client: StockHistoricalDataClient, lo: datetime, hi: datetime
    ) -> list[Event]:
        """All quotes and trades with lo <= t < hi, in time order, sequenced."""
        lo_ns, hi_ns = _datetime_us(lo) * 1000, _datetime_us(hi) * 1000
        rows: list[tuple[int, str, int, int, dict[str, Any]]] = []
        received = time.time_ns()
        for kind_rank, (kind, request, fetch) in enumerate(
            (
                ("q", StockQuotesRequest, client.get_stock_quotes),
                ("t", StockTradesRequest, client.get_stock_trades),
            )
        ):
            req = request(symbol_or_symbols=self.symbols, start=lo, end=hi, feed=self.feed)
            try:
                data: Any = fetch(req)  # type: ignore[operator]
            except APIError as exc:
                status = exc.status_code
                if status in (401, 403):
                    raise AlpacaAuthError(
                        f"alpaca REST {self.rest_url} rejected the credentials (HTTP {status}): "
                        f"{exc}"
                    ) from exc
                raise AlpacaFeedError(f"alpaca REST error (HTTP {status}): {exc}") from exc
            except RequestException as exc:
                raise ConnectionError(f"alpaca REST {self.rest_url} unreachable: {exc}") from exc
            self.stats["requests"] += 1
            assert isinstance(data, dict)
            for symbol, records in data.items():
                for index, raw in enumerate(records or []):
                    try:
                        t_ns = _time_ns(raw.get("t"))
                    except (ValueError, AttributeError) as exc:
                        self._malformed(kind, raw, exc)
                        continue
                    if lo_ns <= t_ns < hi_ns:  # Alpaca's end is inclusive; ours is not
                        rows.append((t_ns, str(symbol), kind_rank, index, raw))
        rows.sort(key=lambda r: r[:4])
        out: list[Event] = []
        for _t, symbol, kind_rank, _i, raw in rows:
            kind = "qt"[kind_rank]
            try:
                out.append(self.to_event(kind, symbol, raw, received))
            except (ValueError, TypeError, OverflowError) as exc:
                self._malformed(kind, raw, exc)
        return out


class _Stream(StockDataStream):
    """alpaca-py's stream in raw mode, run as a task in the caller's loop.

    alpaca-py retries a rejected login forever; this subclass stops on the errors retrying cannot
    fix (bad credentials, no subscription to the feed) and records them for ``events()``.
    """

    def __init__(self, feed: AlpacaFeed, endpoint: str) -> None:
        self.endpoint = endpoint
        super().__init__(
            feed._key or "",
            feed._secret or "",
            raw_data=True,
            feed=feed.feed,
            url_override=endpoint,
        )
        self._feed = feed
        self.fatal: AlpacaFeedError | None = None

    async def _start_ws(self) -> None:
        self._feed.stats["connects"] += 1
        await super()._start_ws()

    async def _auth(self) -> None:
        try:
            await super()._auth()
        except ValueError as exc:
            if any(m in str(exc).lower() for m in _FATAL_AUTH):
                self.fatal = AlpacaAuthError(
                    f"alpaca stream {self.endpoint} refused the login: {exc} (check the key "
                    "and secret and that the account may use this feed)"
                )
                await self.stop_ws()
            raise


class _TimeoutAdapter(HTTPAdapter):
    """alpaca-py sends requests without a timeout; a hung server must not hang the feed."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, *args, **kwargs)


def _url(name: str, value: str, scheme: str) -> str:
    if not re.match(rf"^{scheme}s?://[^/\s]+", value):
        raise ValueError(f"alpaca.{name} must be a {scheme}:// or {scheme}s:// URL (got {value!r})")
    return value.rstrip("/")


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"alpaca.{name} must be > 0 (got {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"alpaca.{name} must be finite (got {value!r})")


def _utc(name: str, value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"alpaca.{name} must be an ISO 8601 / RFC 3339 time (got {value!r})"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError(f"alpaca.{name} must be a datetime (got {value!r})")
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if _datetime_us(value) < SEQUENCE_EPOCH_US:
        raise ValueError(f"alpaca.{name} must not be before 2015-01-01 (got {value.isoformat()})")
    return value
