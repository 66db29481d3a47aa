"""The Binance USD-M futures adapter: a sans-I/O wire module and a thin httpx/websocket client."""
