"""Risk: the book and market model, the Philox random stream and the risk methods.

:mod:`tradecore.risk.book` is the contract every method reads (positions, market, their
validated columnar form); :mod:`tradecore.risk.normals` the counter-based random stream.
"""

from __future__ import annotations

from tradecore.risk.book import (
    Book,
    Instrument,
    Market,
    Position,
    Underlying,
    book_arrays,
    cholesky_factor,
)
from tradecore.risk.montecarlo import monte_carlo_var, monte_carlo_var_batch, simulate_losses
from tradecore.risk.normals import MAX_NORMALS, normals

__all__ = [
    "MAX_NORMALS",
    "Book",
    "Instrument",
    "Market",
    "Position",
    "Underlying",
    "book_arrays",
    "cholesky_factor",
    "monte_carlo_var",
    "monte_carlo_var_batch",
    "normals",
    "simulate_losses",
]
