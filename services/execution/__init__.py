"""ExecutionService: orders through the pre-trade controls to venues, fills into positions,
every command and event journaled in JetStream before the call answers."""
