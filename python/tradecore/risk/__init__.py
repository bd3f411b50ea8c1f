"""Risk: the book and market model, the Philox random stream and the risk methods.

:mod:`tradecore.risk.book` is the contract every method reads (positions, market, their
validated columnar form); :mod:`tradecore.risk.normals` the counter-based random stream.
"""

from __future__ import annotations

from tradecore.risk.backtest import BacktestResult, LikelihoodRatioTest, backtest_var
from tradecore.risk.book import (
    Book,
    Instrument,
    Market,
    Position,
    Underlying,
    book_arrays,
    cholesky_factor,
)
from tradecore.risk.covariance import (
    CorrelationBreakdown,
    CovarianceEstimate,
    correlation_breakdown,
    estimate_covariance,
    ewma_covariance,
    garch11,
    ledoit_wolf,
    rolling_correlation,
)
from tradecore.risk.historical import evt_var, historical_var
from tradecore.risk.history import bar_returns
from tradecore.risk.normals import MAX_NORMALS, normals
from tradecore.risk.parametric import cornish_fisher_var, parametric_var

__all__ = [
    "MAX_NORMALS",
    "BacktestResult",
    "Book",
    "CorrelationBreakdown",
    "CovarianceEstimate",
    "Instrument",
    "LikelihoodRatioTest",
    "Market",
    "Position",
    "Underlying",
    "backtest_var",
    "bar_returns",
    "book_arrays",
    "cholesky_factor",
    "cornish_fisher_var",
    "correlation_breakdown",
    "estimate_covariance",
    "evt_var",
    "ewma_covariance",
    "garch11",
    "historical_var",
    "ledoit_wolf",
    "normals",
    "parametric_var",
    "rolling_correlation",
]
