"""RiskService (tradecore.risk.v1): VaR, stress, Greeks, hedges, attribution, backtests and
covariance over books given in the request (``analytics.py``), and accounts watched in real
time (``accounts.py``)."""
