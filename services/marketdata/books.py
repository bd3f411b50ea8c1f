"""The books the service keeps (top-N per venue and symbol, as of the last feed batch) and the
in-process fan-out behind StreamQuotes and StreamBook."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tradecore.ticks import PRICE_SCALE
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb

Key = tuple[str, str]  # (venue, symbol)
_QUEUE = 10_000


@dataclass(frozen=True, slots=True)
class Levels:
    """Both sides best first (integer prices); only the first ``*_levels`` entries count."""

    bid_price: npt.NDArray[np.int64]
    bid_size: npt.NDArray[np.int64]
    ask_price: npt.NDArray[np.int64]
    ask_size: npt.NDArray[np.int64]
    bid_levels: int
    ask_levels: int
    sequence: int
    exchange_time_ns: int


def snapshot_proto(venue: str, symbol: str, lv: Levels, depth: int) -> pb.BookSnapshot:
    snap = pb.BookSnapshot(
        venue=venue, symbol=symbol, exchange_time_ns=lv.exchange_time_ns, sequence=lv.sequence
    )
    for px, sz, n, out in (
        (lv.bid_price, lv.bid_size, lv.bid_levels, snap.bids),
        (lv.ask_price, lv.ask_size, lv.ask_levels, snap.asks),
    ):
        for p, s in zip(px[: min(n, depth)].tolist(), sz[: min(n, depth)].tolist(), strict=True):
            out.add(price=p / PRICE_SCALE, size=s, price_ticks=p)
    return snap


class Books:
    """Latest top-of-book levels per (venue, symbol) and the subscribers to their changes."""

    def __init__(self) -> None:
        self.levels: dict[Key, Levels] = {}
        self._quote_subs: dict[Key, set[asyncio.Queue[pb.Quote]]] = defaultdict(set)
        self._book_subs: dict[Key, set[asyncio.Queue[Levels]]] = defaultdict(set)

    def keys_for(self, symbol: str) -> list[Key]:
        return sorted(k for k in self.levels if k[1] == symbol)

    def update(self, key: Key, levels: Levels | None, quotes: list[pb.Quote]) -> None:
        if levels is not None:
            self.levels[key] = levels
            for book_q in self._book_subs.get(key, ()):
                _offer(book_q, levels)
        subs = self._quote_subs.get(key)
        if subs:
            for quote in quotes:
                for q in subs:
                    _offer(q, quote)

    async def quotes(self, key: Key) -> AsyncIterator[pb.Quote]:
        q: asyncio.Queue[pb.Quote] = asyncio.Queue(_QUEUE)
        self._quote_subs[key].add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._quote_subs[key].discard(q)

    async def books(self, key: Key) -> AsyncIterator[Levels]:
        q: asyncio.Queue[Levels] = asyncio.Queue(_QUEUE)
        self._book_subs[key].add(q)
        try:
            current = self.levels.get(key)
            if current is not None:
                yield current
            while True:
                yield await q.get()
        finally:
            self._book_subs[key].discard(q)


def _offer(q: asyncio.Queue[Any], item: object) -> None:
    """Deliver without blocking the feed; a subscriber that fell 10k behind loses the oldest."""
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
    q.put_nowait(item)
