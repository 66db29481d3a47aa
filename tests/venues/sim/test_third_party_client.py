"""A third-party Binance client trades against the loopback server, unmodified.

The client is Binance's own ``binance-futures-connector`` (``UMFutures``): it builds, signs
and parses every request itself (parameters in the query string even for POST and DELETE,
``Content-Type: application/json`` on every call, its own wall clock for ``timestamp``),
so these tests catch wire incompatibilities that the project's own adapter, sharing the
project's assumptions, could not. Every answer is checked against the engine's history,
the ground truth (I4).

The client is synchronous: its calls run in a worker thread (``trio.to_thread``) while the
server runs in the test's trio loop. The server's venue clock starts at the client's own
clock (``epoch_at_start``), as the ``sim-exchange`` command does with the wall clock.

Book arithmetic (the still BTCUSDT of ``test_server``): mid 60000, bid 59997.0, ask 60003.0.
"""

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
from binance.error import ClientError  # type: ignore[import-untyped]
from binance.lib.utils import get_timestamp  # type: ignore[import-untyped]
from binance.um_futures import UMFutures  # type: ignore[import-untyped]

from scalper.core.model import VenueOrderStatus
from scalper.venues.sim.records import RequestRejected
from scalper.venues.sim.server import DEMO_API_KEY, DEMO_API_SECRET
from tests.venues.sim.test_server import BTC, Client, server_config, start

D = Decimal


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one blocking client call in a worker thread while the server keeps serving."""
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


async def refused(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ClientError:
    """Run a call that must fail with the client's own error type; return that error."""
    with pytest.raises(ClientError) as caught:
        await call(fn, *args, **kwargs)
    error: ClientError = caught.value
    return error


@pytest.fixture
async def venue(nursery: trio.Nursery) -> AsyncIterator[tuple[Client, UMFutures]]:
    # The venue clock starts at the client's clock, so its signatures are on time.
    c = await start(nursery, server_config(epoch_at_start=get_timestamp() / 1000))
    um = UMFutures(key=DEMO_API_KEY, secret=DEMO_API_SECRET, base_url=c.handle.rest_url, timeout=5)
    yield c, um
    await call(um.session.close)
    c.handle.stop()


async def test_orders_are_created_queried_listed_and_canceled(venue: tuple[Client, UMFutures]):
    c, um = venue
    engine = c.handle.engine

    created = await call(
        um.new_order,
        symbol=BTC,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="59000",
        timeInForce="GTC",
        newClientOrderId="tp-limit-1",
    )

    (accepted,) = engine.history.accepted()
    assert created["orderId"] == int(accepted.order_id)
    assert (created["clientOrderId"], created["status"]) == ("tp-limit-1", "NEW")
    assert (D(created["price"]), D(created["origQty"])) == (D("59000"), D("0.010"))
    assert accepted.request.price == D("59000")

    by_id = await call(um.query_order, symbol=BTC, orderId=created["orderId"])
    by_client_id = await call(um.query_order, symbol=BTC, origClientOrderId="tp-limit-1")
    assert by_id == by_client_id
    assert (by_id["orderId"], by_id["status"], by_id["type"]) == (
        created["orderId"],
        "NEW",
        "LIMIT",
    )
    assert D(by_id["executedQty"]) == 0

    listed = await call(um.get_orders, symbol=BTC)
    assert [o["orderId"] for o in listed] == [created["orderId"]]
    (one,) = await call(um.get_orders)  # every symbol
    assert one == listed[0]
    open_one = await call(um.get_open_orders, symbol=BTC, origClientOrderId="tp-limit-1")
    assert open_one == by_id

    duplicate = await refused(
        um.new_order,
        symbol=BTC,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="58000",
        timeInForce="GTC",
        newClientOrderId="tp-limit-1",
    )
    assert (duplicate.status_code, duplicate.error_code) == (400, -4116)
    assert duplicate.error_message == "ClientOrderId is duplicated."
    assert len(engine.history.accepted()) == 1  # the duplicate never entered the book

    canceled = await call(um.cancel_order, symbol=BTC, orderId=created["orderId"])
    assert (canceled["orderId"], canceled["status"]) == (created["orderId"], "CANCELED")
    assert engine.order_detail(BTC, order_id=accepted.order_id).status is (
        VenueOrderStatus.CANCELED
    )
    assert [r.order_id for r in engine.history.closures()] == [accepted.order_id]
    assert await call(um.get_orders, symbol=BTC) == []

    unknown = await refused(um.cancel_order, symbol=BTC, orderId=created["orderId"] + 1000)
    assert (unknown.status_code, unknown.error_code) == (400, -2011)
    assert unknown.error_message == "Unknown order sent."
    rejected = [r for r in engine.history.records if isinstance(r, RequestRejected)]
    assert [r.code for r in rejected] == [-4116, -2011]


async def test_a_market_fill_shows_in_positions_balance_account_and_trades(
    venue: tuple[Client, UMFutures],
):
    c, um = venue
    engine = c.handle.engine

    filled = await call(
        um.new_order,
        symbol=BTC,
        side="BUY",
        type="MARKET",
        quantity="0.010",
        newClientOrderId="tp-market-1",
        newOrderRespType="RESULT",
    )

    (fill,) = engine.history.fills(BTC)
    assert (filled["status"], filled["orderId"]) == ("FILLED", int(fill.order_id))
    assert D(filled["executedQty"]) == fill.quantity == D("0.010")
    assert D(filled["avgPrice"]) == fill.price == D("60003")  # the ask: a taker buy

    (position,) = await call(um.get_position_risk, symbol=BTC)
    assert position["symbol"] == BTC
    assert D(position["positionAmt"]) == D(filled["executedQty"]) == engine.position_qty(BTC)
    assert D(position["entryPrice"]) == fill.price

    (trade,) = await call(um.get_account_trades, symbol=BTC)
    assert (str(trade["id"]), str(trade["orderId"])) == (fill.trade_id, fill.order_id)
    assert (D(trade["qty"]), D(trade["price"]), D(trade["commission"])) == (
        fill.quantity,
        fill.price,
        fill.fee,
    )
    assert fill.fee > 0  # the taker fee came out of the wallet

    (truth,) = engine.balances()
    balances = await call(um.balance)
    usdt = next(b for b in balances if b["asset"] == "USDT")
    assert D(usdt["balance"]) == truth.wallet_balance
    assert D(usdt["availableBalance"]) == truth.available_balance
    assert truth.wallet_balance == engine.config.initial_balance - fill.fee

    account = await call(um.account)
    (asset,) = [a for a in account["assets"] if a["asset"] == "USDT"]
    assert D(asset["walletBalance"]) == truth.wallet_balance
    assert [(p["symbol"], D(p["positionAmt"])) for p in account["positions"]] == [
        (BTC, fill.quantity)
    ]


async def test_a_wrong_secret_is_refused_with_1022_and_nothing_executes(
    venue: tuple[Client, UMFutures],
):
    c, um = venue
    forger = UMFutures(
        key=DEMO_API_KEY, secret="not-the-secret", base_url=c.handle.rest_url, timeout=5
    )
    try:
        error = await refused(
            forger.new_order, symbol=BTC, side="BUY", type="MARKET", quantity="0.010"
        )
        reads = await refused(forger.get_position_risk)
    finally:
        await call(forger.session.close)

    assert (error.status_code, error.error_code) == (400, -1022)
    assert error.error_message == "Signature for this request is not valid."
    assert reads.error_code == -1022
    assert c.handle.engine.history.records == ()  # refused before the engine saw it
    assert [p["symbol"] for p in await call(um.get_position_risk)] == []  # the right key works
