"""StreamGreeks: reprice a chain on every quote of its underlying from NATS.

:class:`ChainRepricer` holds the chain (validated once, vols from numbers or kept surfaces) and
the values last sent per row; :func:`stream_greeks` subscribes to ``md.<venue>.<symbol>.quote``
and yields a :class:`GreeksUpdate` for every quote that moved something.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from tradecore.pricing import DOMAIN
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from ..common.errors import UnavailableError
from .logic import (
    Batch,
    check_styles,
    compute,
    model_name,
    result_columns,
    select_greeks,
    type_and_style,
)
from .surfaces import SurfaceStore
from .validate import check_count, check_rows

log = logging.getLogger("tradecore.pricing.stream")

DEFAULT_TOLERANCE = 1e-9


def quote_subject(venue: str, symbol: str) -> str:
    """``md.<venue>.<symbol>.quote``; ValueError naming ``venue`` or ``symbol`` (the request's
    fields) when one is no NATS token (an over-long one would make nats-server close the
    service's connection)."""
    return md_subject(venue, symbol, MdKind.QUOTE)


def quote_mid(quote: market_pb2.Quote) -> float | None:
    """The mid of a two-sided, uncrossed quote; None for quotes the stream skips (also a mid
    outside the pricing domain's spot range, which no contract could be priced at)."""
    bid, ask = quote.bid_price, quote.ask_price
    if not (math.isfinite(bid) and math.isfinite(ask) and bid > 0 and ask >= bid):
        return None
    mid = 0.5 * (bid + ask)
    return mid if DOMAIN.spot_min <= mid <= DOMAIN.spot_max else None


class ChainRepricer:
    """The chain of a StreamGreeks request, repriced at a given spot, with change detection."""

    def __init__(
        self, request: pb.StreamGreeksRequest, surfaces: SurfaceStore, max_contracts: int
    ) -> None:
        self.subject = quote_subject(request.venue, request.symbol)
        self.model = model_name(request.model)
        self.greeks = select_greeks(request.greeks, request.greek_names, self.model)
        self.names = ["price", *self.greeks]
        tol = request.tolerance if request.HasField("tolerance") else DEFAULT_TOLERANCE
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tolerance must be finite and >= 0 (got {tol!r})")
        self.tolerance = tol
        self.max_updates = request.max_updates
        contracts = request.contracts
        n = len(contracts)
        if n == 0:
            raise ValueError("contracts: the chain is empty")
        check_count("contracts", n, max_contracts, "contracts")
        strike = np.empty(n)
        expiry = np.empty(n)
        rate = np.empty(n)
        div = np.empty(n)
        vol = np.empty(n)
        codes = np.empty(n, dtype=np.int8)
        american: list[int] = []
        by_surface: dict[str, list[int]] = {}
        for i, c in enumerate(contracts):
            strike[i] = c.strike
            expiry[i] = c.expiry_years
            rate[i] = c.rate
            div[i] = c.dividend_yield
            codes[i], is_american = type_and_style(i, c)
            if is_american:
                american.append(i)
            source = c.WhichOneof("vol_source")
            if source == "volatility":
                vol[i] = c.volatility
            elif source == "surface_id":
                by_surface.setdefault(c.surface_id, []).append(i)
                vol[i] = 1.0  # filled below
            else:
                raise ValueError(f"contracts[{i}]: give volatility or surface_id")
        check_rows(
            "contracts",
            [
                ("strike", strike, strike > 0, "> 0"),
                ("expiry_years", expiry, expiry >= 0, ">= 0"),
            ],
        )
        for surface_id, rows in by_surface.items():
            kept = surfaces.get(surface_id, f"contracts[{rows[0]}].surface_id")
            idx = np.asarray(rows, np.intp)
            vol[idx] = kept.surface.vol(strike[idx], expiry[idx])
        if self.model == "black76":
            nonzero = np.flatnonzero(div != 0.0)
            if nonzero.size:
                i = int(nonzero[0])
                raise ValueError(
                    f"contracts[{i}].dividend_yield must be 0 with MODEL_BLACK76 (got {div[i]!r})"
                )
        self.batch = Batch(
            np.empty(n), strike, expiry, rate, div, vol, codes, np.asarray(american, np.intp)
        )
        check_styles(self.batch, self.greeks, self.model)
        # Validate every row (and the American regime) now, not at the first quote.
        self.reprice(float(np.median(strike)))
        self._last: npt.NDArray[np.float64] | None = None

    def reprice(self, spot: float) -> dict[str, npt.NDArray[np.float64]]:
        self.batch.spot.fill(spot)
        return compute(self.batch, self.greeks, self.model)

    def on_quote(self, quote: market_pb2.Quote) -> pb.GreeksUpdate | None:
        """The update for a quote, or None when it is skipped or moves no row."""
        spot = quote_mid(quote)
        if spot is None:
            return None
        out = self.reprice(spot)
        values = np.stack([out[n] for n in self.names])
        full = self._last is None
        if self._last is None:
            rows = np.arange(values.shape[1])
            self._last = values
        else:
            moved = np.abs(values - self._last) > self.tolerance
            moved |= np.isnan(values) != np.isnan(self._last)
            rows = np.flatnonzero(moved.any(axis=0))
            if rows.size == 0:
                return None
            self._last[:, rows] = values[:, rows]
        update = pb.GreeksUpdate(
            exchange_time_ns=quote.exchange_time_ns,
            receive_time_ns=quote.receive_time_ns,
            sequence=quote.sequence,
            spot=spot,
            full=full,
        )
        add = update.rows.add
        for index, result in zip(rows.tolist(), result_columns(self.names, out, rows), strict=True):
            add(index=index, result=result)
        return update


async def stream_greeks(
    repricer: ChainRepricer,
    nc: Client,
    closing: asyncio.Event,
    lost: Callable[[], Awaitable[None]] | None = None,
    on_quote: Callable[[market_pb2.Quote], Awaitable[pb.GreeksUpdate | None]] | None = None,
) -> AsyncIterator[pb.GreeksUpdate]:
    """Subscribe, then yield updates until ``max_updates``, ``closing`` is set (the server is
    shutting down) or the caller cancels; UnavailableError once ``lost()`` (the connection
    closed for good: its subscription is gone) returns. ``on_quote`` reprices (the service
    runs large chains off the loop); without it, ``repricer.on_quote`` runs inline.

    Quotes are conflated: the callback keeps only the newest undelivered one."""
    pending: list[Msg] = []
    arrived = asyncio.Event()
    gone = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        pending[:] = [msg]
        arrived.set()

    async def on_closing() -> None:
        await closing.wait()
        arrived.set()

    async def on_lost() -> None:
        if lost is not None:
            await lost()
            gone.set()
            arrived.set()

    sub = await nc.subscribe(repricer.subject, cb=on_msg)
    watchers = [asyncio.create_task(on_closing()), asyncio.create_task(on_lost())]
    sent = 0
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if closing.is_set():
                return
            if gone.is_set():
                raise UnavailableError("NATS closed the connection: the quote stream ended")
            if not pending:
                continue
            msg = pending.pop()
            try:
                quote = market_pb2.Quote.FromString(msg.data)
            except DecodeError:
                log.warning(
                    "%s: a message that is not a Quote (%d bytes)", msg.subject, len(msg.data)
                )
                continue
            update = repricer.on_quote(quote) if on_quote is None else await on_quote(quote)
            if update is None:
                continue
            yield update
            sent += 1
            if repricer.max_updates and sent >= repricer.max_updates:
                return
    finally:
        for w in watchers:
            w.cancel()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
