"""RiskService: VaR, stress, Greeks and attribution of books, and real-time accounts."""
