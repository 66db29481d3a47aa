"""Trade against scalper's simulated exchange through the real Binance adapter.

Starts the loopback simulator in-process, then uses ``BinanceVenue`` (the same code that
talks to Binance) to place orders over HTTP and watch the user-data stream over WebSocket.

    python examples/trade_against_sim.py
"""

import time
from decimal import Decimal

import trio

from scalper.core.ids import IdFactory, Role, client_order_id
from scalper.core.model import OrderRequest
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.venues.base import OrderUpdate
from scalper.venues.binance.client import BinanceVenue
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.signing import ApiCredentials
from scalper.venues.sim import server as sim


def wall_clock_ms() -> int:
    """A real bot signs with the real clock; so does this example."""
    return int(time.time() * 1000)  # noqa: TID251 - an example client, outside scalper/


async def main() -> None:
    """Start the simulator, trade through the adapter, stop."""
    config = sim.SimServerConfig(port=0, symbols=("BTCUSDT",), seed=7, epoch_at_start=time.time())  # noqa: TID251
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(sim.serve_sim_exchange, config)
        venue = BinanceVenue(
            BinanceConfig.custom(handle.rest_url, handle.private_ws_url),
            ApiCredentials(config.api_key, config.api_secret.encode()),
            wall_clock_ms=wall_clock_ms,
        )
        ids = IdFactory()
        async with venue, venue.user_stream() as stream:
            intent_id = ids.new_intent_id()
            coid = client_order_id("sc", intent_id, Role.ENTRY)
            print("placing a market buy, client order id", coid)
            order = await venue.create_order(
                OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, coid, Decimal("0.010"))
            )
            print("ack:", order.status, "filled", order.filled_qty)
            async for event in stream:
                if isinstance(event, OrderUpdate) and event.fill is not None:
                    print(
                        "stream fill: trade",
                        event.fill.trade_id,
                        event.fill.quantity,
                        "@",
                        event.fill.price,
                    )
                    break
            for p in await venue.positions():
                if p.quantity:
                    print("position:", p.symbol, p.quantity, "entry", p.entry_price)
            rest = client_order_id("sc", ids.new_intent_id(), Role.ENTRY)
            limit = await venue.create_order(
                OrderRequest(
                    "BTCUSDT",
                    Side.BUY,
                    OrderType.LIMIT,
                    rest,
                    Decimal("0.010"),
                    price=Decimal("55000"),
                    time_in_force=TimeInForce.GTC,
                )
            )
            print("resting limit:", limit.order_id, limit.status)
            canceled = await venue.cancel_order("BTCUSDT", client_order_id=rest)
            print("canceled:", canceled.status)
        handle.stop()


if __name__ == "__main__":
    trio.run(main)
