"""services/execution/codec.py: the library's dataclasses through JSON and back, exactly."""

from __future__ import annotations

import math

import pytest
from tradecore.oms.types import (
    Liquidity,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore_services.execution.codec import Codec

CODEC = Codec([VenueEvent, VenueOrder])


def test_values_come_back_equal() -> None:
    order = VenueOrder(
        order_id="O1", account="A1", symbol="", side=Side.BUY, quantity=3,
        type=OrderType.LIMIT, time_in_force=TimeInForce.IOC, limit_price=0.1 + 0.2,
        legs=(("AAPL240621C00190000", Side.BUY, 1), ("AAPL240621C00200000", Side.SELL, 2)),
    )  # fmt: skip
    event = VenueEvent(
        kind=VenueEventKind.FILL, order_id="O1", time_ns=2**62, fill_id="F1", fill_quantity=3,
        fill_price=1e-300, liquidity=Liquidity.MAKER, new_limit_price=None,
        extra={"a": "b"},
    )  # fmt: skip
    for obj in (order, event):
        name, data = CODEC.encode(obj)
        assert name == type(obj).__name__
        back = CODEC.decode(name, data)
        assert back == obj and type(back) is type(obj)
    odd = VenueEvent(kind=VenueEventKind.FILL, order_id="O", time_ns=1, fill_price=math.inf)
    assert CODEC.decode(*CODEC.encode(odd)).fill_price == math.inf


@pytest.mark.parametrize(
    "data, needle",
    [
        (b'{"kind":"FILL","order_id":"O"}', r"VenueEvent.time_ns: missing"),
        (b'{"kind":"NOPE","order_id":"O","time_ns":1}', r"VenueEvent.kind: 'NOPE'"),
        (b'{"kind":"FILL","order_id":"O","time_ns":1.5}', r"VenueEvent.time_ns: expected an int"),
        (b'{"kind":"FILL","order_id":"O","time_ns":1,"x":1}', r"unknown fields \['x'\]"),
        (b"[", r"VenueEvent: not JSON"),
    ],
)
def test_unreadable_records_name_the_field(data: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        CODEC.decode("VenueEvent", data)
    with pytest.raises(ValueError, match="unknown journaled class"):
        CODEC.decode("Nope", b"{}")
