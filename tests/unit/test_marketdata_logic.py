"""MarketDataService request checks and proto conversions."""

from __future__ import annotations

import numpy as np
import pytest
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_services.marketdata import logic


def _cols(n: int, big_from: int) -> dict[str, np.ndarray]:
    """Ticks whose rows from ``big_from`` on take the widest varints (≈ 96 bytes a tick)."""
    big = np.arange(n) >= big_from
    wide = np.where(big, 2**63 - 1, 1).astype(np.int64)
    return {
        "venue": np.array(["a"] * (n - n // 3) + ["b"] * (n // 3), dtype=object),
        "seq": np.where(big, 2**64 - 1, np.arange(1, n + 1)).astype(np.uint64),
        "ts": wide,
        "recv_ts": wide,
        "order_id": np.where(big, 2**64 - 1, 1).astype(np.uint64),
        "type": np.full(n, 4, dtype=np.uint8),
        "side": np.where(big, -1, 1).astype(np.int8),
        "price": wide,
        "size": wide,
        "ask_price": wide,
        "ask_size": wide,
    }


@pytest.mark.parametrize("big_from", [0, 5_000, 100_000])
def test_tick_messages_stay_under_the_byte_limit(big_from: int) -> None:
    n = 100_000
    cols = _cols(n, big_from)
    out = logic.tick_batches("S", cols)
    assert max(b.ByteSize() for b in out) <= logic.MAX_TICKS_MESSAGE_BYTES
    for venue in ("a", "b"):
        got = [b for b in out if b.venue == venue]
        seq = [q for b in got for q in b.sequence]
        assert seq == cols["seq"][cols["venue"] == venue].tolist()  # every row, in order
    assert len(out) > 2


def test_interval_bounds() -> None:
    req = pb.GetBarsRequest(symbol="S")
    req.interval.seconds = 315_576_000_000
    with pytest.raises(ValueError, match="interval must be at most 9223372036854775807 ns"):
        logic.interval_ns(req, 0, 10**18)
    req.interval.seconds = 9_223_372_036
    assert logic.interval_ns(req, 0, 10**18) == 9_223_372_036 * 10**9


def test_times_beyond_int64_nanoseconds_are_clamped() -> None:
    req = pb.GetVWAPRequest(symbol="S")
    req.start.seconds = -62_135_596_800  # 0001-01-01
    req.end.seconds = 253_402_300_799  # 9999-12-31
    assert logic.time_range(req) == (-(2**63), 2**63 - 1)
