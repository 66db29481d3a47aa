"""The exchange boundary: the Venue protocol, the simulated exchange and the Binance adapter."""
