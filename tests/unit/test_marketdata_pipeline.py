"""How the publisher cuts a chunk into JetStream messages (no NATS needed for this part)."""

from __future__ import annotations

import numpy as np
from tradecore import ticks
from tradecore_services.marketdata.pipeline import (
    MAX_MESSAGE_BYTES,
    MAX_TICKS_PER_MESSAGE,
    packed_parts,
)

START = 1_700_000_000_000_000_000


def _batch(n: int, noisy: bool) -> ticks.TickBatch:
    rng = np.random.default_rng(5)
    wide = (
        (lambda lo, hi: rng.integers(lo, hi, n))
        if noisy
        else (lambda lo, hi: lo + np.arange(n) % 7)
    )
    return ticks.make_batch(
        "venue",
        "SYM",
        "feed-1",
        seq=np.arange(1, n + 1),
        ts=START + np.sort(rng.integers(0, 10**15, n)) if noisy else START + np.arange(n),
        recv_ts=START + 5,
        type=rng.integers(1, 6, n),
        order_id=rng.integers(0, 2**63, n, dtype=np.uint64) if noisy else np.arange(n) + 1,
        side=rng.choice([-1, 1], n),
        price=wide(1, 2**40),
        size=wide(1, 2**40),
    )


def _check(b: ticks.TickBatch) -> list[tuple[ticks.TickBatch, bytes]]:
    parts = packed_parts(b)
    for part, data in parts:
        assert len(data) <= MAX_MESSAGE_BYTES
        assert len(part) <= MAX_TICKS_PER_MESSAGE
        back = ticks.unpack(data)
        for name, _ in ticks.COLUMNS:
            np.testing.assert_array_equal(back.column(name), part.column(name))
    whole = ticks.concat([ticks.unpack(d) for _, d in parts])
    for name, _ in ticks.COLUMNS:
        np.testing.assert_array_equal(whole.column(name), b.column(name))
    return parts


def test_a_compact_chunk_is_one_message() -> None:
    b = _batch(MAX_TICKS_PER_MESSAGE, noisy=False)
    assert len(_check(b)) == 1


def test_a_chunk_too_large_packed_is_split_under_the_payload_limit() -> None:
    # Random 8-byte columns do not narrow: ≈ 58 bytes per tick, ≈ 1.9 MB for the chunk.
    b = _batch(MAX_TICKS_PER_MESSAGE, noisy=True)
    assert len(ticks.pack(b)) > MAX_MESSAGE_BYTES
    assert len(_check(b)) >= 2


def test_more_ticks_than_a_message_holds_are_split_by_count() -> None:
    b = _batch(2 * MAX_TICKS_PER_MESSAGE + 5, noisy=False)
    parts = _check(b)
    assert [len(p) for p, _ in parts] == [MAX_TICKS_PER_MESSAGE, MAX_TICKS_PER_MESSAGE, 5]
