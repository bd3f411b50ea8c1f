"""Dedup-aware counting in the tick table: which skipped rows the same feed had stored (a
re-sent or redelivered message, never counted twice), copies of a range inside one insert,
and the point a feed numbered 1..n resumes from (its contiguous stored prefix)."""

from __future__ import annotations

from pathlib import Path

from tradecore.store import default_dsn
from tradecore_services.marketdata.store import TickStore

from tests.unit.test_marketdata_store import _batch


def test_duplicates_say_which_the_same_feed_stored(tmp_path: Path) -> None:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        r = s.insert([_batch(1, 100, feed="f1")])
        assert r.inserted == {"f1": 100} and r.resent == {}
        # The same feed sends 51..150 again: 50 of its own rows, 50 new.
        r = s.insert([_batch(51, 100, feed="f1")])
        assert r.inserted == {"f1": 50} and r.duplicates == {"f1": 50} and r.resent == {"f1": 50}
        # Another feed replays 1..150: all stored, none by it.
        r = s.insert([_batch(1, 150, feed="f2")])
        assert r.inserted == {} and r.duplicates == {"f2": 150} and r.resent == {"f2": 0}
    finally:
        s.close()


def test_copies_of_a_range_in_one_insert_are_stored_once(tmp_path: Path) -> None:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        s.insert([_batch(1, 10)])
        # A redelivered message (11..40) and the same ticks chunked differently (21..60).
        r = s.insert([_batch(11, 30), _batch(21, 40)])
        assert r.inserted == {"f1": 50} and r.resent == {"f1": 20}
        assert s.count() == (60, 60)
        assert s.resume_points("f1", "test", ["AAA"]) == {"AAA": 60}
    finally:
        s.close()


def test_resume_points_stop_at_the_first_gap(tmp_path: Path) -> None:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        s.insert([_batch(1, 100), _batch(151, 50), _batch(2, 30, symbol="BBB")])
        s.insert([_batch(1, 20, symbol="CCC", feed="other")])
        assert s.resume_points("f1", "test", ["AAA", "BBB", "CCC", "DDD"]) == {
            "AAA": 100,  # 1..100 stored, 101..150 missing
            "BBB": 0,  # 1 missing
            "CCC": 0,  # stored by another feed
            "DDD": 0,
        }
    finally:
        s.close()
