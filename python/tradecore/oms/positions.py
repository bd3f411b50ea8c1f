"""Positions from fills: netting or hedging, average cost, realised and unrealised P&L.

* **Netting**: one signed position per account x instrument; every fill of the instrument moves
  it.
* **Hedging**: one position per position id (an order names the position it opens or reduces;
  by default each order opens its own), so a long and a short of one instrument can coexist.

A fill that increases a position moves the average cost to the quantity-weighted average of the
old cost and the fill price. A fill that reduces it realises ``(price - average_cost) x closed x
multiplier`` for a long (the opposite sign for a short) and leaves the average cost unchanged;
one that flips it closes the whole position, realising as above, and opens the rest at the fill
price. Unrealised P&L is ``(mark - average_cost) x quantity x multiplier`` at the last mark (the
quote mid the caller passes to :meth:`PositionBook.mark`); 0 before the first mark. Prices are per
unit before the multiplier (100 for an OCC option symbol, see :func:`multiplier_of`). Fees are
summed apart (:attr:`Position.fees`) and not deducted from the realised P&L.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradecore.oms.order import multiplier_of
from tradecore.oms.types import Side

__all__ = ["Position", "PositionBook", "PositionMode"]


class PositionMode(StrEnum):
    NETTING = "NETTING"
    HEDGING = "HEDGING"


@dataclass(slots=True)
class Position:
    account: str
    symbol: str
    #: NETTING: the symbol; HEDGING: the position id.
    position_id: str
    multiplier: int
    #: Signed: > 0 long, < 0 short.
    quantity: int = 0
    #: Average open price per unit (before the multiplier); 0 when flat.
    average_cost: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    mark_price: float = 0.0
    mark_ns: int = 0
    updated_ns: int = 0

    @property
    def unrealized_pnl(self) -> float:
        if self.mark_ns == 0 or self.quantity == 0:
            return 0.0
        return (self.mark_price - self.average_cost) * self.quantity * self.multiplier

    def apply(self, side: Side, quantity: int, price: float, fee: float, time_ns: int) -> None:
        signed = quantity if side is Side.BUY else -quantity
        held = self.quantity
        self.fees += fee
        self.updated_ns = time_ns
        if held == 0 or (held > 0) == (signed > 0):
            total = held + signed
            self.average_cost = (self.average_cost * abs(held) + price * quantity) / abs(total)
            self.quantity = total
            return
        closed = min(quantity, abs(held))
        direction = 1 if held > 0 else -1
        self.realized_pnl += (price - self.average_cost) * closed * direction * self.multiplier
        self.quantity = held + signed
        if self.quantity == 0:
            self.average_cost = 0.0
        elif (self.quantity > 0) != (held > 0):  # flipped: the rest opens at the fill price
            self.average_cost = price


class PositionBook:
    """Every account's positions in one mode."""

    def __init__(self, mode: PositionMode = PositionMode.NETTING) -> None:
        self.mode = PositionMode(mode)
        self._positions: dict[tuple[str, str], Position] = {}
        #: account -> symbol -> net signed quantity over the account's positions.
        self._net: dict[str, dict[str, int]] = {}
        self._marks: dict[str, tuple[float, int]] = {}

    def apply_fill(
        self,
        account: str,
        symbol: str,
        side: Side,
        quantity: int,
        price: float,
        *,
        position_id: str = "",
        fee: float = 0.0,
        time_ns: int = 0,
    ) -> Position:
        """Book one fill; return the position it moved. In HEDGING mode ``position_id`` names
        the position (required)."""
        if self.mode is PositionMode.HEDGING:
            if not position_id:
                raise ValueError("position_id is required in HEDGING mode")
            key = (account, position_id)
        else:
            key = (account, symbol)
        pos = self._positions.get(key)
        if pos is None:
            pos = Position(account, symbol, key[1], multiplier_of(symbol))
            mark = self._marks.get(symbol)
            if mark is not None:
                pos.mark_price, pos.mark_ns = mark
            self._positions[key] = pos
        elif pos.symbol != symbol:
            raise ValueError(f"position_id {position_id!r} holds {pos.symbol}, not {symbol}")
        pos.apply(side, quantity, price, fee, time_ns)
        net = self._net.setdefault(account, {})
        net[symbol] = net.get(symbol, 0) + (quantity if side is Side.BUY else -quantity)
        return pos

    def mark(self, symbol: str, price: float, time_ns: int) -> list[Position]:
        """Mark every position in ``symbol`` at ``price`` (the quote mid); return them."""
        self._marks[symbol] = (price, time_ns)
        marked = []
        for pos in self._positions.values():
            if pos.symbol == symbol:
                pos.mark_price = price
                pos.mark_ns = time_ns
                marked.append(pos)
        return marked

    def net_quantity(self, account: str, symbol: str) -> int:
        """The account's signed quantity of ``symbol`` over all its positions."""
        return self._net.get(account, {}).get(symbol, 0)

    def net(self, account: str) -> dict[str, int]:
        """symbol -> signed quantity of the account (a live view: do not modify)."""
        return self._net.setdefault(account, {})

    def positions(self, account: str | None = None) -> list[Position]:
        return [p for p in self._positions.values() if account is None or p.account == account]

    def get(self, account: str, key: str) -> Position | None:
        """The position of ``account`` keyed by symbol (NETTING) or position id (HEDGING)."""
        return self._positions.get((account, key))
