"""LOBSTER (lobsterdata.com) message and orderbook files: parsing, replay into an
:class:`~tradecore.orderbook.OrderBook` and verification against the orderbook file.

Parsing and replay run in C++ with the GIL released. The replay copes with the format's quirks:
the book before the first message is the first orderbook row with that message undone; orders
whose ids are unknown (resting before the file starts or entered beyond the recorded depth) act
on their price level; hidden (5) and cross (6) executions and halts (7) leave the visible book
alone; a level entering from beyond the recorded depth is taken from the orderbook file. Every
reconstructed top-N row is compared with the file and classified as exact, edge (differs only
in levels that entered from beyond the recorded depth) or bad.

Times in the files are seconds after midnight, New York time, of the date in the file name.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore.orderbook import FEATURE_NAMES, FeatureConfig, OrderBook

EXCHANGE_TZ = ZoneInfo("America/New_York")
EMPTY_ASK: int = _core.LOBSTER_EMPTY_ASK
EMPTY_BID: int = _core.LOBSTER_EMPTY_BID
ROW_EXACT, ROW_EDGE, ROW_BAD = 0, 1, 2
_DATE_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})_")


@dataclass(frozen=True, slots=True)
class Messages:
    """Message file columns (one element per row)."""

    time_ns: npt.NDArray[np.int64]  # nanoseconds after midnight, exchange time
    type: npt.NDArray[np.int8]  # 1 add, 2 partial cancel, 3 delete, 4/5/6 executions, 7 halt
    order_id: npt.NDArray[np.int64]
    size: npt.NDArray[np.int64]
    price: npt.NDArray[np.int64]  # dollars x 10000
    direction: npt.NDArray[np.int8]  # +1 buy, -1 sell (executions: the resting order's side)
    date: date | None = None  # trading day, from the file name

    def __len__(self) -> int:
        return len(self.type)

    def timestamps(self) -> npt.NDArray[np.datetime64]:
        """UTC timestamps as datetime64[ns] (needs the trading day)."""
        if self.date is None:
            raise ValueError("the trading day is unknown (no YYYY-MM-DD in the file name)")
        return (self.time_ns + midnight_utc_ns(self.date)).astype("datetime64[ns]")

    def datetime_at(self, row: int) -> datetime:
        """One row's time as a timezone-aware UTC datetime (microsecond resolution)."""
        if self.date is None:
            raise ValueError("the trading day is unknown (no YYYY-MM-DD in the file name)")
        ns = int(self.time_ns[row]) + midnight_utc_ns(self.date)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def midnight_utc_ns(day: date) -> int:
    """Midnight of ``day`` in New York as nanoseconds since the Unix epoch."""
    local = datetime(day.year, day.month, day.day, tzinfo=EXCHANGE_TZ)
    return int(local.timestamp()) * 1_000_000_000


def date_from_name(path: str | Path) -> date | None:
    m = _DATE_IN_NAME.search(Path(path).name)
    return date.fromisoformat(m.group(1)) if m else None


def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        if not p.exists():
            raise ValueError(f"{what} file not found: {p}")
        data = p.read_bytes()
    except OSError as exc:  # too long a name, a directory, no permission, ...
        shown = str(p) if len(str(p)) <= 200 else f"{str(p)[:200]}... ({len(str(p))} characters)"
        raise ValueError(f"{what} file cannot be read ({exc.strerror}): {shown}") from None
    if not data.strip():
        raise ValueError(f"{what} file is empty: {p}")
    return data


def parse_messages(path: str | Path) -> Messages:
    """Parse a message file; ``ValueError`` names the file, the first malformed or invalid
    line and its field. Checked: six fields per line, event type 1..7, direction ±1, sizes
    >= 0 (> 0 for types 1-4), prices > 0 (a halt's -1, 0 or 1), times never going backwards."""
    data = _read(path, "message")
    try:
        cols = _core.lobster_parse_messages(data)
    except ValueError as exc:
        raise ValueError(f"{exc} ({path})") from None
    return Messages(
        cols["time"],
        cols["type"],
        cols["order_id"],
        cols["size"],
        cols["price"],
        cols["direction"],
        date_from_name(path),
    )


def book_depth(path: str | Path) -> int:
    """The number of levels an orderbook file records (its column count / 4)."""
    fields = _core.lobster_count_fields(_read(path, "orderbook"))
    if fields % 4:
        raise ValueError(f"orderbook file has {fields} columns, not a multiple of 4: {path}")
    return fields // 4


def parse_book(path: str | Path, levels: int) -> npt.NDArray[np.int64]:
    """Parse an orderbook file of ``levels`` levels into an int64 array (rows, 4 * levels):
    ask price, ask size, bid price, bid size per level. ``ValueError`` names the file, line and
    field of the first invalid row: sizes >= 0; prices > 0 (or the empty-level sentinels),
    asks rising and bids falling level by level, the best ask above the best bid (not
    crossed or locked)."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    data = _read(path, "orderbook")
    fields = _core.lobster_count_fields(data)
    if fields != 4 * levels:
        raise ValueError(
            f"orderbook file has {fields} columns ({fields / 4:g} levels), not {4 * levels} "
            f"for levels={levels}: {path}"
        )
    try:
        return _core.lobster_parse_book(data, levels)
    except ValueError as exc:
        raise ValueError(f"{exc} ({path})") from None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    messages: int
    rows_checked: int
    rows_exact: int
    rows_edge: int
    rows_bad: int
    first_bad_row: int | None
    trades: int
    halts: int
    levels: int
    seconds: float  # replay (and verification) only, parsing excluded
    messages_per_second: float
    book: OrderBook = field(repr=False)
    row_status: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    features: dict[str, npt.NDArray[np.float64]] | None = field(default=None, repr=False)

    def figures(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "levels": self.levels,
            "rows_checked": self.rows_checked,
            "rows_exact": self.rows_exact,
            "rows_edge": self.rows_edge,
            "rows_bad": self.rows_bad,
            "first_bad_row": self.first_bad_row,
            "trades": self.trades,
            "halts": self.halts,
            "seconds": self.seconds,
            "messages_per_second": self.messages_per_second,
        }


def replay(
    messages: Messages,
    book_rows: npt.NDArray[np.int64],
    levels: int,
    *,
    verify: bool = True,
    features: FeatureConfig | None = None,
    book: OrderBook | None = None,
) -> ReplayResult:
    """Rebuild the book message by message. ``verify`` keeps the per-row status
    (:data:`ROW_EXACT`/``ROW_EDGE``/``ROW_BAD``); ``features`` adds one feature row per message.
    The final book is ``result.book`` (``book`` when given; it is cleared first)."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if book_rows.ndim != 2 or book_rows.shape[1] != 4 * levels:
        raise ValueError(f"book rows must have shape (n, {4 * levels}), got {book_rows.shape}")
    if len(book_rows) != len(messages):
        raise ValueError(
            f"the message file has {len(messages)} rows but the orderbook file {len(book_rows)}"
        )
    target = book if book is not None else OrderBook(max(1024, len(messages) // 8))
    engine = features.engine() if features is not None else None
    t0 = time.perf_counter()
    res, status, feats = _core.lobster_replay(
        messages.time_ns,
        messages.type,
        messages.order_id,
        messages.size,
        messages.price,
        messages.direction,
        np.ascontiguousarray(book_rows, dtype=np.int64),
        levels,
        target.core,
        verify,
        engine,
    )
    seconds = time.perf_counter() - t0
    n = len(messages)
    first_bad = res["first_bad_row"]
    return ReplayResult(
        messages=n,
        rows_checked=int(res["rows_checked"] or 0),
        rows_exact=int(res["rows_exact"] or 0),
        rows_edge=int(res["rows_edge"] or 0),
        rows_bad=int(res["rows_bad"] or 0),
        first_bad_row=None if first_bad is None else int(first_bad),
        trades=int(res["trades"] or 0),
        halts=int(res["halts"] or 0),
        levels=levels,
        seconds=seconds,
        messages_per_second=n / seconds if seconds > 0 else float("inf"),
        book=target,
        row_status=status,
        features=None if feats is None else {k: feats[:, i] for i, k in enumerate(FEATURE_NAMES)},
    )


def replay_files(
    messages_path: str | Path,
    book_path: str | Path,
    levels: int | None = None,
    *,
    verify: bool = True,
    features: FeatureConfig | None = None,
) -> ReplayResult:
    """Parse both files (``levels`` defaults to the orderbook file's depth) and replay."""
    depth = book_depth(book_path) if levels is None else levels
    if depth < 1:
        raise ValueError(f"levels must be >= 1, got {depth}")
    msgs = parse_messages(messages_path)
    rows = parse_book(book_path, depth)
    return replay(msgs, rows, depth, verify=verify, features=features)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def replay_main(argv: Sequence[str]) -> int:
    """``tradecore replay lobster --messages FILE --book FILE --levels N [--verify] [--json]``.

    Prints the replay figures (one JSON object with ``--json``). Exit status: 0 on success,
    1 when ``--verify`` found bad rows, 2 on bad input (the message on stderr)."""
    parser = argparse.ArgumentParser(
        prog="tradecore replay lobster",
        description="Replay a LOBSTER message file into the order book, checked against its "
        "orderbook file.",
    )
    parser.add_argument("--messages", required=True, help="the *_message_N.csv file")
    parser.add_argument("--book", required=True, help="the *_orderbook_N.csv file")
    parser.add_argument(
        "--levels", type=_positive, default=None, help="depth N (default: from the book file)"
    )
    parser.add_argument("--verify", action="store_true", help="report exact/edge/bad rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        t0 = time.perf_counter()
        result = replay_files(args.messages, args.book, args.levels, verify=args.verify)
        total = time.perf_counter() - t0
    except ValueError as e:
        print(f"tradecore replay lobster: error: {e}", file=sys.stderr)
        return 2
    figures = result.figures()
    figures["total_seconds"] = total
    if not args.verify:
        for key in ("rows_checked", "rows_exact", "rows_edge", "rows_bad", "first_bad_row"):
            figures.pop(key)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            if isinstance(value, float):
                text = f"{value:,.0f}" if key == "messages_per_second" else f"{value:.6f}"
            elif isinstance(value, int):
                text = f"{value:,}"
            else:
                text = "-" if value is None else str(value)
            print(f"{key.replace('_', ' '):<22}{text:>16}")
    return 1 if args.verify and result.rows_bad else 0


__all__ = [
    "EMPTY_ASK",
    "EMPTY_BID",
    "EXCHANGE_TZ",
    "ROW_BAD",
    "ROW_EDGE",
    "ROW_EXACT",
    "Messages",
    "ReplayResult",
    "book_depth",
    "date_from_name",
    "midnight_utc_ns",
    "parse_book",
    "parse_messages",
    "replay",
    "replay_files",
    "replay_main",
]
