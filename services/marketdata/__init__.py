"""MarketDataService: feeds, books, NATS publishing and the ClickHouse tick store."""
