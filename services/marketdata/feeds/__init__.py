"""Market-data feeds: LOBSTER replay, synthetic, and external adapters (Alpaca)."""
