"""LOBSTER parsing, replay and verification: the real GOOG day, hand-made files with every
quirk, malformed input and the CLI."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from tradecore import lobster
from tradecore.orderbook import FeatureConfig

GOOG = "GOOG_2012-06-21_34200000_57600000_{}_1.csv"


# The real sample (3 MB) is committed under tests/data/lobster; TRADECORE_LOBSTER_DIR overrides.
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "lobster"
MISSING = (
    "LOBSTER GOOG sample not found: it is committed under tests/data/lobster (restore it with "
    "`git checkout -- tests/data/lobster`), or set TRADECORE_LOBSTER_DIR to a directory with it"
)


def lobster_dir() -> Path | None:
    env = os.environ.get("TRADECORE_LOBSTER_DIR")
    if env:
        return Path(env)
    return SAMPLE_DIR if SAMPLE_DIR.is_dir() else None


@pytest.fixture(scope="module")
def goog() -> tuple[Path, Path]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return d / GOOG.format("message"), d / GOOG.format("orderbook")


def test_goog_day_replays_with_no_bad_rows(goog: tuple[Path, Path]) -> None:
    msg_path, book_path = goog
    msgs = lobster.parse_messages(msg_path)
    rows = lobster.parse_book(book_path, 1)
    assert len(msgs) == 49_482 and rows.shape == (49_482, 4)
    res = lobster.replay(msgs, rows, 1, features=FeatureConfig(depth=1))
    assert res.rows_bad == 0 and res.first_bad_row is None
    assert res.rows_checked == 49_482
    assert res.rows_exact + res.rows_edge == 49_482
    assert res.rows_exact > 40_000  # edges only where a level comes from beyond depth 1
    assert res.trades == int(np.isin(msgs.type, (4, 5, 6)).sum())
    assert res.row_status is not None and int((res.row_status == lobster.ROW_EDGE).sum()) == (
        res.rows_edge
    )
    # the final book is the last orderbook row
    last = rows[-1]
    assert res.book.best_ask() == (int(last[0]), int(last[1]))
    assert res.book.best_bid() == (int(last[2]), int(last[3]))
    # features come from the reconstructed book: the spread is the file's spread on every row
    assert res.features is not None
    np.testing.assert_array_equal(res.features["spread"], (rows[:, 0] - rows[:, 2]).astype(float))
    assert np.all(np.abs(res.features["imbalance"]) <= 1.0)


def test_goog_timestamps_are_utc(goog: tuple[Path, Path]) -> None:
    msgs = lobster.parse_messages(goog[0])
    assert msgs.date == date(2012, 6, 21)
    assert int(msgs.time_ns[0]) == 34_200_015_105_074
    ts = msgs.timestamps()
    assert str(ts[0]) == "2012-06-21T13:30:00.015105074"  # 09:30 EDT = 13:30 UTC
    assert msgs.datetime_at(0) == datetime(2012, 6, 21, 13, 30, 0, 15105, tzinfo=UTC)
    assert np.all(np.diff(msgs.time_ns) >= 0)


def test_cli_json(goog: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--messages", str(goog[0]), "--book", str(goog[1]), "--levels", "1"]
    assert lobster.replay_main([*argv, "--verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_bad"] == 0 and out["messages"] == 49_482
    assert out["messages_per_second"] > 0
    assert lobster.replay_main(argv) == 0
    text = capsys.readouterr().out
    assert "messages per second" in text and "rows bad" not in text


# ------------------------------------------------------------------ hand-made files

A, B = 9_999_999_999, -9_999_999_999
# Depth 2. True book before: asks 101x10 (unknown ids), 102x5, 103x7 (beyond depth);
# bids 100x10, 99x4.
MESSAGES = [
    "1.0,1,1,5,101,-1",  # add sell 101x5 (known id 1)
    "2.5,4,7,10,101,-1",  # execution of an unknown order at 101
    "2.5,3,1,5,101,-1",  # same timestamp: delete id 1 -> 103 enters from beyond depth
    "3.0,5,0,3,10050,1",  # hidden execution: book unchanged
    "3.1,2,8,2,99,1",  # partial cancel of an unknown bid at 99
    "3.2,7,0,0,-1,-1",  # halt
    "4.000000001,1,2,1,100,1",  # add buy 100x1
]
BOOK = [
    [101, 15, 100, 10, 102, 5, 99, 4],
    [101, 5, 100, 10, 102, 5, 99, 4],
    [102, 5, 100, 10, 103, 7, 99, 4],
    [102, 5, 100, 10, 103, 7, 99, 4],
    [102, 5, 100, 10, 103, 7, 99, 2],
    [102, 5, 100, 10, 103, 7, 99, 2],
    [102, 5, 100, 11, 103, 7, 99, 2],
]


def write(tmp: Path, messages: list[str], book: list[list[int]]) -> tuple[Path, Path]:
    m = tmp / "XYZ_2020-03-09_0_0_message_2.csv"
    b = tmp / "XYZ_2020-03-09_0_0_orderbook_2.csv"
    m.write_text("\n".join(messages) + "\n")
    b.write_text("\n".join(",".join(map(str, r)) for r in book) + "\n")
    return m, b


def test_quirks_exact_and_edge(tmp_path: Path) -> None:
    m, b = write(tmp_path, MESSAGES, BOOK)
    res = lobster.replay_files(m, b)  # depth from the file
    assert res.levels == 2
    assert (res.rows_exact, res.rows_edge, res.rows_bad) == (6, 1, 0)
    assert res.row_status is not None and res.row_status.tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert res.trades == 2 and res.halts == 1
    order = res.book.order(2)
    assert order is not None and order.size == 1 and order.ts == 4_000_000_001
    # 2020-03-09 is after the DST change (EDT): midnight is 04:00 UTC
    msgs = lobster.parse_messages(m)
    assert str(msgs.timestamps()[0]) == "2020-03-09T04:00:01.000000000"


def test_bad_row_is_reported(tmp_path: Path) -> None:
    book = [r[:] for r in BOOK]
    book[4][7] = 3  # the file disagrees with the message (2 of 4 cancelled)
    book[5][7] = 3
    book[6][7] = 3
    m, b = write(tmp_path, MESSAGES, book)
    res = lobster.replay_files(m, b, 2)
    assert res.rows_bad == 1 and res.first_bad_row == 4  # resynchronised afterwards
    assert res.rows_exact == 5


def test_empty_sentinels_and_book_emptying(tmp_path: Path) -> None:
    messages = ["1.0,3,5,10,100,1", "2.0,1,6,3,98,1"]
    book = [[101, 4, B, 0, A, 0, B, 0], [101, 4, 98, 3, A, 0, B, 0]]
    m, b = write(tmp_path, messages, book)
    res = lobster.replay_files(m, b, 2)
    assert (res.rows_exact, res.rows_edge, res.rows_bad) == (2, 0, 0)
    assert res.book.best_bid() == (98, 3)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        (["1.0,1,1,5,101"], "line 1: expected ','"),
        (["1.0,1,1,5,101,-1", "x,1,1,5,101,-1"], "line 2: field 'time'"),
        (["1.0,9,1,5,101,-1"], "event type 9"),
        (["1.0,1,1,5,101,0"], "direction 0"),
        (["1.0,1,1,five,101,-1"], "field 'size'"),
        (["1.0,1,1,0,101,-1"], "zero size"),
        (["1.0,1,1,5,101,-1,7"], "trailing"),
        (
            ["1.0,1,1,5,101,-1", "1.5,1,2,5,-5794000,-1"],
            "line 2: field 'price' -5794000 is not > 0",
        ),
        (["1.0,4,1,5,0,-1"], "line 1: field 'price' 0 is not > 0"),
        (["1.0,7,0,0,5,-1"], "line 1: field 'price' 5 is not -1, 0 or 1 for a halt"),
        (
            ["2.0,1,1,5,101,-1", "2.0,1,2,5,101,-1", "1.999,1,3,5,101,-1"],
            r"line 3: field 'time' goes backwards \(1999000000 ns",
        ),
    ],
)
def test_malformed_messages(tmp_path: Path, messages: list[str], match: str) -> None:
    m, b = write(tmp_path, messages, [[101, 5, 100, 5, 102, 1, 99, 1]] * len(messages))
    with pytest.raises(ValueError, match=match):
        lobster.replay_files(m, b, 2)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ([100, 5, 100, 5, 102, 1, 99, 1], "line 2: crossed book: field 'ask price 1' 100 is not "),
        ([101, 5, 102, 5, 103, 1, 99, 1], "line 2: crossed book"),
        ([-101, 5, B, 0, A, 0, B, 0], "line 2: field 'ask price 1' -101 is not > 0"),
        ([A, 0, 0, 5, A, 0, B, 0], "line 2: field 'bid price 1' 0 is not > 0"),
        ([102, 5, 100, 5, 101, 1, 99, 1], "line 2: field 'ask price 2' 101 is not above"),
        ([102, 5, 100, 5, 103, 1, 100, 1], "line 2: field 'bid price 2' 100 is not below"),
    ],
)
def test_invalid_book_rows(tmp_path: Path, row: list[int], match: str) -> None:
    _, b = write(tmp_path, ["1.0,1,1,5,101,-1", "1.1,1,2,5,101,-1"], [BOOK[0], row])
    with pytest.raises(ValueError, match=match):
        lobster.parse_book(b, 2)


def test_unreadable_paths_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="message file cannot be read"):
        lobster.parse_messages("/" + "x" * 100_000)
    with pytest.raises(ValueError, match="orderbook file cannot be read"):
        lobster.book_depth(tmp_path)  # a directory


def test_malformed_books_and_arguments(tmp_path: Path) -> None:
    m, b = write(tmp_path, MESSAGES, BOOK)
    with pytest.raises(ValueError, match="levels must be >= 1"):
        lobster.replay_files(m, b, 0)
    with pytest.raises(ValueError, match="not 12 for levels=3"):
        lobster.replay_files(m, b, 3)
    with pytest.raises(ValueError, match="not found"):
        lobster.replay_files(tmp_path / "missing.csv", b, 2)
    m2, b2 = write(tmp_path, MESSAGES, BOOK[:-1])
    with pytest.raises(ValueError, match="7 rows but the orderbook file 6"):
        lobster.replay_files(m2, b2, 2)
    bad = [r[:] for r in BOOK]
    bad[3] = bad[3][:6]
    m3, b3 = write(tmp_path, MESSAGES, bad)
    with pytest.raises(ValueError, match="orderbook file line 4: expected 8 fields"):
        lobster.replay_files(m3, b3, 2)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        lobster.parse_messages(empty)


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, b = write(tmp_path, MESSAGES, BOOK)
    assert lobster.replay_main(["--messages", str(m), "--book", str(b), "--levels", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    missing = str(tmp_path / "nope.csv")
    assert lobster.replay_main(["--messages", missing, "--book", str(b)]) == 2
    err = capsys.readouterr().err
    assert "message file not found" in err and "Traceback" not in err
    assert lobster.replay_main(["--messages", str(m), "--book", str(b), "--verify"]) == 0
    assert "rows exact" in capsys.readouterr().out
