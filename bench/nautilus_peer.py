"""The peer of the OMS throughput benchmark: NautilusTrader's ``BacktestEngine`` (its RiskEngine on,
defaults, and its simulated exchange) running the stream of :mod:`bench.oms_stream`.

Market data: the LOBSTER orderbook file's inside after every message as a ``QuoteTick`` (level 1,
as our paper venue's book is re-synchronised to the level-1 file) and every visible or hidden
execution as a ``TradeTick``; ``trade_execution=True`` lets trades fill resting orders. A
``Strategy`` makes request ``i`` on the quote of message ``WARMUP + i``: the same orders, prices
and cancels as our run. The order cost is the engine's run time with the stream minus its run
time on the same data without it (the exchange matches queued commands at the next data point,
so timing the strategy's calls alone would miss the matching).

Imported only when ``nautilus_trader`` is installed (``pip install -e ".[dev,bench]"``).
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal
from typing import Any

import numpy as np
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, RiskEngineConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick, TradeTick
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    BookType,
    OmsType,
    OrderSide,
    TimeInForce,
)
from nautilus_trader.model.identifiers import TradeId, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy
from tradecore import lobster

from bench import oms_stream


class StreamConfig(StrategyConfig, frozen=True):
    warmup: int = oms_stream.WARMUP


class StreamStrategy(Strategy):  # type: ignore[misc]  # a Cython class, untyped
    """Makes the stream's request ``i`` on the quote of message ``warmup + i``."""

    def __init__(
        self, config: StreamConfig, requests: list[oms_stream.Request], instrument: Equity
    ) -> None:
        super().__init__(config)
        self.requests = requests
        self.instrument = instrument
        self.quotes = 0
        self.working: deque[Any] = deque()
        self.submits = 0
        self.cancels = 0

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.instrument.id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        i = self.quotes - self.config.warmup
        self.quotes += 1
        if i < 0 or i >= len(self.requests):
            return
        r = self.requests[i]
        if r.kind == "cancel":
            while self.working and not self.working[0].is_open:
                self.working.popleft()
            if self.working:
                self.cancel_order(self.working.popleft())
                self.cancels += 1
            return
        order = self.order_factory.limit(
            instrument_id=self.instrument.id,
            order_side=OrderSide.BUY if r.buy else OrderSide.SELL,
            quantity=Quantity.from_int(r.quantity),
            price=Price(r.price / oms_stream.SCALE, 2),
            time_in_force=TimeInForce.IOC if r.kind == "ioc" else TimeInForce.DAY,
        )
        self.submit_order(order)
        self.submits += 1
        if r.kind == "rest":
            self.working.append(order)


def market_data(
    messages: lobster.Messages, rows: np.ndarray, instrument: Equity, end: int
) -> list[QuoteTick | TradeTick]:
    """Quotes after each of messages ``0:end`` and trades for their executions."""
    assert messages.date is not None  # from the sample's file name
    iid = instrument.id
    ts = (messages.time_ns + lobster.midnight_utc_ns(messages.date)).tolist()
    kind = messages.type.tolist()
    size = messages.size.tolist()
    price = messages.price.tolist()
    direction = messages.direction.tolist()
    asks, asz, bids, bsz = (rows[:, k].tolist() for k in range(4))
    data: list[QuoteTick | TradeTick] = []
    for j in range(end):
        if kind[j] in (4, 5):
            data.append(
                TradeTick(
                    iid,
                    Price(price[j] / oms_stream.SCALE, 2),
                    Quantity.from_int(size[j]),
                    # the resting side is direction: a buy rests, so a seller aggressed
                    AggressorSide.SELLER if direction[j] == 1 else AggressorSide.BUYER,
                    TradeId(str(j)),
                    ts[j],
                    ts[j],
                )
            )
        if bsz[j] > 0 and asz[j] > 0:
            data.append(
                QuoteTick(
                    iid,
                    Price(bids[j] / oms_stream.SCALE, 2),
                    Price(asks[j] / oms_stream.SCALE, 2),
                    Quantity.from_int(bsz[j]),
                    Quantity.from_int(asz[j]),
                    ts[j],
                    ts[j],
                )
            )
    return data


def run(
    messages: lobster.Messages,
    rows: np.ndarray,
    requests: list[oms_stream.Request],
    end: int,
) -> dict[str, float]:
    """One engine run of messages ``0:end`` with ``requests`` (none: the baseline); returns its
    seconds, the requests made and order counts."""
    instrument = TestInstrumentProvider.equity(symbol=oms_stream.SYMBOL, venue="XNAS")
    data = market_data(messages, rows, instrument, end)
    engine = BacktestEngine(
        BacktestEngineConfig(
            logging=LoggingConfig(log_level="ERROR"),
            risk_engine=RiskEngineConfig(bypass=False),
        )
    )
    engine.add_venue(
        venue=Venue("XNAS"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(1_000_000_000, USD)],
        base_currency=USD,
        default_leverage=Decimal(1),
        book_type=BookType.L1_MBP,
        trade_execution=True,
    )
    engine.add_instrument(instrument)
    engine.add_data(data)
    strategy = StreamStrategy(StreamConfig(), requests, instrument)
    engine.add_strategy(strategy)
    t = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - t
    orders = engine.cache.orders()
    out = {
        "seconds": seconds,
        "submits": strategy.submits,
        "cancels": strategy.cancels,
        "filled": sum(o.is_closed and o.filled_qty > 0 for o in orders),
        "denied": sum(o.status_string() == "DENIED" for o in orders),
        "rejected": sum(o.status_string() == "REJECTED" for o in orders),
        "canceled": sum(o.status_string() == "CANCELED" for o in orders),
    }
    engine.dispose()
    return out
