"""Risk: the book and market model, the Philox random stream and the risk methods.

:mod:`tradecore.risk.book` is the contract every method reads (positions, market, their
validated columnar form); :mod:`tradecore.risk.normals` the counter-based random stream.
"""

from __future__ import annotations

from tradecore.risk.attribution import Attribution, attribute_pnl
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
from tradecore.risk.greeks import DollarGreeks, PortfolioGreeks, portfolio_greeks
from tradecore.risk.hedge import HedgeProposal, propose_hedge
from tradecore.risk.historical import evt_var, historical_var
from tradecore.risk.history import bar_returns
from tradecore.risk.montecarlo import monte_carlo_var, monte_carlo_var_batch, simulate_losses
from tradecore.risk.normals import MAX_NORMALS, normals
from tradecore.risk.parametric import cornish_fisher_var, parametric_var
from tradecore.risk.stress import (
    ReverseStress,
    StressResult,
    StressScenario,
    historical_stress,
    reverse_stress,
    spot_vol_grid,
    stress_test,
)

__all__ = [
    "MAX_NORMALS",
    "Attribution",
    "BacktestResult",
    "Book",
    "CorrelationBreakdown",
    "CovarianceEstimate",
    "DollarGreeks",
    "HedgeProposal",
    "Instrument",
    "LikelihoodRatioTest",
    "Market",
    "PortfolioGreeks",
    "Position",
    "ReverseStress",
    "StressResult",
    "StressScenario",
    "Underlying",
    "attribute_pnl",
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
    "historical_stress",
    "historical_var",
    "ledoit_wolf",
    "monte_carlo_var",
    "monte_carlo_var_batch",
    "normals",
    "parametric_var",
    "portfolio_greeks",
    "propose_hedge",
    "reverse_stress",
    "rolling_correlation",
    "simulate_losses",
    "spot_vol_grid",
    "stress_test",
]
