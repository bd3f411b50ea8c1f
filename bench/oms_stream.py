"""The order stream of the OMS throughput benchmark, shared by our run and the NautilusTrader peer.

The market is the LOBSTER GOOG sample (2012-06-21): messages ``0:WARMUP`` make the book live,
then one of our requests follows each further market message. Prices are absolute ticks
(1/10,000 USD) taken from the LOBSTER orderbook file's inside after that message, so both
engines see the same orders at the same point of the same market:

* 50 % resting DAY limit orders 1-5 cents behind the inside (a buy under the bid, a sell over
  the ask), 1-100 shares;
* 25 % marketable IOC limit orders 2 cents through the far side, 1-50 shares;
* 25 % cancels of the oldest of our orders still working (skipped when none is).

Sides alternate, so the position stays near flat. The stream is fixed by ``SEED``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tradecore import lobster

from tests.unit.test_lobster import GOOG, lobster_dir

WARMUP = 20_000
N_REQUESTS = 20_000
SEED = 12
TICK = 100  # one cent in LOBSTER price units
SYMBOL = "GOOG"
SCALE = 10_000


@dataclass(frozen=True, slots=True)
class Request:
    """One of our requests, made right after market message ``after``."""

    after: int
    kind: str  # "rest" | "ioc" | "cancel"
    buy: bool
    quantity: int
    price: int  # ticks; 0 for a cancel


def load() -> tuple[lobster.Messages, np.ndarray] | None:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        return None
    return lobster.parse_messages(d / GOOG.format("message")), lobster.parse_book(
        d / GOOG.format("orderbook"), 1
    )


def stream(rows: np.ndarray, n: int = N_REQUESTS, warmup: int = WARMUP) -> list[Request]:
    """The requests, one after each market message from ``warmup`` on (rows: orderbook rows)."""
    rng = np.random.default_rng(SEED)
    kinds = rng.choice(np.array(["rest", "rest", "ioc", "cancel"]), size=n)
    out = []
    for i in range(n):
        after = warmup + i
        ask, bid = int(rows[after, 0]), int(rows[after, 2])
        buy = i % 2 == 0
        kind = str(kinds[i])
        if kind == "rest":
            k = int(rng.integers(1, 6)) * TICK
            out.append(
                Request(after, kind, buy, int(rng.integers(1, 101)), bid - k if buy else ask + k)
            )
        elif kind == "ioc":
            price = ask + 2 * TICK if buy else bid - 2 * TICK
            out.append(Request(after, kind, buy, int(rng.integers(1, 51)), price))
        else:
            out.append(Request(after, kind, buy, 0, 0))
    return out
