"""The books the service keeps (top-N per venue and symbol, as of the last feed batch), saved
to ``<data_dir>/marketdata/books.npz`` so that GetBook survives a restart, the ``.book`` level
updates between two tops of a book, and the in-process fan-out behind StreamQuotes and
StreamBook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tradecore.ticks import LEVEL, LEVEL_SNAPSHOT, PRICE_SCALE, TickBatch, make_batch
from tradecore_api.events.v1 import market_pb2
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb

Key = tuple[str, str]  # (venue, symbol)
_QUEUE = 10_000
_ARRAYS = ("bid_price", "bid_size", "ask_price", "ask_size")
log = logging.getLogger("tradecore.marketdata.books")


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


def _side_levels(lv: Levels, side: int) -> dict[int, int]:
    px, sz, n = (
        (lv.bid_price, lv.bid_size, lv.bid_levels)
        if side > 0
        else (lv.ask_price, lv.ask_size, lv.ask_levels)
    )
    return dict(zip(px[:n].tolist(), sz[:n].tolist(), strict=True))


def book_deltas(
    venue: str, symbol: str, prev: Levels | None, new: Levels, recv_ns: int
) -> TickBatch | None:
    """The ``.book`` message that takes a reader from ``prev`` to ``new`` (the top of the
    book as the feed reports it: 50 levels for synthetic feeds, the file's levels for LOBSTER,
    level 1 for quote feeds). With ``prev`` (what this process sent last for the symbol):
    ``LEVEL`` rows, one per price whose size changed, size 0 when the price left the top;
    None when nothing changed. Without: ``LEVEL_SNAPSHOT`` rows, every level of ``new``
    (None if it is empty). Rows carry the sequence and exchange time of the book's last tick,
    bids then asks, best first."""
    rows: list[tuple[int, int, int]] = []
    for side in (1, -1):
        cur = _side_levels(new, side)
        if prev is None:
            rows += [(side, p, q) for p, q in cur.items()]
            continue
        old = _side_levels(prev, side)
        changed = [(p, q) for p, q in cur.items() if old.get(p) != q]
        changed += [(p, 0) for p in old if p not in cur]
        changed.sort(key=lambda r: -side * r[0])
        rows += [(side, p, q) for p, q in changed]
    if not rows:
        return None
    side_, price, size = zip(*rows, strict=True)
    n = len(rows)
    return make_batch(
        venue,
        symbol,
        "",
        seq=np.full(n, new.sequence, dtype=np.uint64),
        ts=np.full(n, new.exchange_time_ns, dtype=np.int64),
        recv_ts=recv_ns,
        type=np.full(n, LEVEL if prev is not None else LEVEL_SNAPSHOT, dtype=np.uint8),
        side=side_,
        price=price,
        size=size,
    )


class Books:
    """Latest top-of-book levels per (venue, symbol) and the subscribers to their changes.

    With ``path``, :meth:`save` writes the books there (atomically; only when they changed)
    and the constructor reads them back: the service saves when a feed ends, every few
    seconds while feeds run and when it stops, so a book is kept across a restart (even a
    SIGKILL, as of the last save; a running feed refreshes it with its next batch)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.levels: dict[Key, Levels] = {}
        self._quote_subs: dict[Key, set[asyncio.Queue[market_pb2.Quote]]] = defaultdict(set)
        self._book_subs: dict[Key, set[asyncio.Queue[Levels]]] = defaultdict(set)
        self._version = 0  # bumped by every update
        self._saved = 0  # the version last saved
        self._save_lock = threading.Lock()
        # Set (on the event loop) to have the service's saver write the books now rather than
        # at its next period, e.g. when a feed ends: saves stay off the feeds' path.
        self.save_soon = asyncio.Event()
        if path is not None and path.exists():
            try:
                self.levels = _read_books(path)
            except Exception as exc:  # truncated, foreign, older layout: start without them
                log.warning("ignoring unreadable saved books %s: %s", path, exc)

    def save(self) -> None:
        """Write the books to ``path`` if they changed since the last save. Safe to call from
        another thread (it writes a copy of the table taken at the start)."""
        with self._save_lock:
            version = self._version
            if self.path is None or version == self._saved:
                return
            _write_books(self.path, dict(self.levels))
            self._saved = version

    def keys_for(self, symbol: str) -> list[Key]:
        return sorted(k for k in self.levels if k[1] == symbol)

    def update(self, key: Key, levels: Levels | None, quotes: list[market_pb2.Quote]) -> None:
        if levels is not None:
            self.levels[key] = levels
            self._version += 1
            for book_q in self._book_subs.get(key, ()):
                _offer(book_q, levels)
        subs = self._quote_subs.get(key)
        if subs:
            for quote in quotes:
                for q in subs:
                    _offer(q, quote)

    async def quotes(self, key: Key) -> AsyncIterator[market_pb2.Quote]:
        q: asyncio.Queue[market_pb2.Quote] = asyncio.Queue(_QUEUE)
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


def _write_books(path: Path, levels: dict[Key, Levels]) -> None:
    meta = []
    arrays: dict[str, Any] = {}
    for i, ((venue, symbol), lv) in enumerate(levels.items()):
        meta.append([venue, symbol, lv.bid_levels, lv.ask_levels, lv.sequence, lv.exchange_time_ns])
        for name in _ARRAYS:
            arrays[f"{i}.{name}"] = np.asarray(getattr(lv, name), dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _read_books(path: Path) -> dict[Key, Levels]:
    out: dict[Key, Levels] = {}
    with np.load(path, allow_pickle=False) as z:
        for i, (venue, symbol, nb, na, seq, ts) in enumerate(json.loads(str(z["meta"]))):
            bp, bs, ap, as_ = (np.array(z[f"{i}.{name}"], dtype=np.int64) for name in _ARRAYS)
            out[(str(venue), str(symbol))] = Levels(
                bp, bs, ap, as_, int(nb), int(na), int(seq), int(ts)
            )
    return out
