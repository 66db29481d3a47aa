"""Engine records rendered as Binance USD-M JSON: what the loopback server puts on the wire.

Theory of operation
-------------------

The simulated exchange's engine speaks records (:mod:`scalper.venues.sim.records`,
:mod:`scalper.core.model`); the loopback server must speak Binance, byte-compatible enough
that the project's own parsers (:mod:`scalper.venues.binance.wire`) *and* third-party
clients (ccxt, python-binance) read it without knowing it is a simulator. This module is
that translation and nothing else: pure functions of records, no clock, no I/O, so the
shapes can be unit-tested against the reference's example responses
(``reference/binance_usdm.md`` §3, §5).

Rules, from the reference and the live wire:

* **Field names and types exactly as Binance sends them.** Ids and times are JSON integers
  (``orderId``, ``updateTime``), except where Binance itself sends strings (algo
  ``actualOrderId``, ``countdownTime``); prices, quantities and money are *strings*;
  flags are booleans.
* **Decimals are rendered at the symbol's precision**, the way Binance pads them:
  prices at ``pricePrecision`` (``"60000.10"``), quantities at ``quantityPrecision``
  (``"0.010"``), money (balances, PnL, commissions) at 8 places, average prices at
  ``max(5, pricePrecision)``. The engine only produces values on those grids (filters
  enforce it), so rendering never rounds a quantity or a limit price; average prices
  are rounded half-even, as they are informational.
* **Zero means unset** for ``price``, ``stopPrice`` and ``avgPrice`` (a MARKET order's
  price is ``"0"``), matching what the parsers expect.
* **Each endpoint has its own order shape**: the new-order reply carries ``cumQty`` and no
  ``time``; a query carries ``time`` and no ``cumQty``; a cancel carries ``cumQty`` and no
  ``time`` (:class:`OrderShape`).
* **Algo (conditional) orders** are rendered in the Algo Service shape (``algoId``,
  ``clientAlgoId``, ``algoStatus``, ``triggerPrice``, ...) and their events as
  ``ALGO_UPDATE``. ``workingType`` and ``priceProtect`` are not engine state (triggers use
  the mid, which is also the mark); the server remembers what the client sent and passes
  it in as :class:`AlgoSettings`, so replies echo the request.
* Fields the simulator does not model are rendered with Binance's neutral values
  (``marginType`` ``cross``, ``liquidationPrice`` ``"0"``, ``selfTradePreventionMode``
  ``NONE``, ...), never omitted, so strict clients that index them do not fail.

Maintenance margin is modelled as a flat :data:`MAINT_MARGIN_RATE` of notional (Binance's
first BTCUSDT bracket); no liquidation is simulated, so it is informational only.

Invariants served: I10 (a fill is rendered with the same ``(symbol, trade id)`` key, size,
price and fee on the stream and in ``userTrades``, so the client can journal it exactly
once whichever source it sees first) and I4 (what the wire says is a faithful rendering of
the engine's state at that instant, never an embellishment of it).
"""

import enum
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import attrs

from scalper.core.model import Fill, VenuePosition
from scalper.core.types import ZERO, OrderType, Side
from scalper.venues.sim.engine import ExchangeInfo, SymbolConfig
from scalper.venues.sim.records import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
    SimBalance,
    SimEvent,
    SimOrder,
)

__all__ = [
    "FUNDING_INTERVAL_MS",
    "INTEREST_RATE",
    "MAINT_MARGIN_RATE",
    "MONEY_PLACES",
    "AlgoSettings",
    "JsonObject",
    "OrderShape",
    "PositionView",
    "WireFormat",
    "error_body",
    "listen_key_expired",
    "money",
]

#: A JSON object as the server serializes it.
JsonObject = dict[str, Any]

#: Decimal places of money fields (balances, PnL, commission), as Binance pads them.
MONEY_PLACES: Final = 8
#: Maintenance margin as a fraction of notional (Binance's first BTCUSDT bracket).
MAINT_MARGIN_RATE: Final = Decimal("0.004")
#: Binance's funding cadence on the majors: 00:00, 08:00 and 16:00 UTC.
FUNDING_INTERVAL_MS: Final = 8 * 3600 * 1000
#: The interest component ``premiumIndex`` reports (Binance's standard 0.01% per interval).
INTEREST_RATE: Final = Decimal("0.0001")

_MIN_AVG_PLACES: Final = 5
#: Binance's "perpetual" delivery date (2100-12-25) and a fixed onboard date.
_PERPETUAL_DELIVERY_MS: Final = 4_133_404_800_000
_ONBOARD_MS: Final = 1_569_398_400_000
_ORDER_TYPES: Final = (
    OrderType.LIMIT,
    OrderType.MARKET,
    OrderType.STOP,
    OrderType.STOP_MARKET,
    OrderType.TAKE_PROFIT,
    OrderType.TAKE_PROFIT_MARKET,
)
_TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTX")


class OrderShape(enum.StrEnum):
    """Which endpoint an order object answers (their field sets differ slightly)."""

    NEW = "NEW"
    QUERY = "QUERY"
    CANCEL = "CANCEL"


@attrs.frozen
class AlgoSettings:
    """What a client sent with an algo order that the engine does not model (echoed back)."""

    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False


_DEFAULT_ALGO_SETTINGS: Final = AlgoSettings()


@attrs.frozen
class PositionView:
    """One position leg with what ``positionRisk`` and ``account`` render around it.

    Attributes:
        position: the engine's leg (signed quantity, entry, unrealized PnL, leverage).
        mark_price: the symbol's current mark (= mid) price.
        max_notional: the symbol's maximum position notional at any leverage.
        update_time_ms: the leg's last change (its last fill), 0 if never traded.
    """

    position: VenuePosition
    mark_price: Decimal
    max_notional: Decimal
    update_time_ms: int

    @property
    def notional(self) -> Decimal:
        """Signed notional at the mark price (negative for a short)."""
        return self.position.quantity * self.mark_price

    @property
    def initial_margin(self) -> Decimal:
        """Margin the leg ties up: |notional| / leverage."""
        return abs(self.notional) / self.position.leverage

    @property
    def maint_margin(self) -> Decimal:
        """Maintenance margin at :data:`MAINT_MARGIN_RATE`."""
        return abs(self.notional) * MAINT_MARGIN_RATE


def _quantize(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _plain(value: Decimal, places: int) -> str:
    """``value`` at exactly ``places`` decimals, plain notation, no negative zero."""
    text = format(_quantize(value, places), "f")
    return text[1:] if text.startswith("-") and _quantize(value, places) == 0 else text


def money(value: Decimal) -> str:
    """A money amount as Binance renders it (8 decimals)."""
    return _plain(value, MONEY_PLACES)


def error_body(code: int, msg: str) -> JsonObject:
    """Binance's error object, ``{"code": -1121, "msg": "Invalid symbol."}``."""
    return {"code": code, "msg": msg}


def listen_key_expired(listen_key: str, event_time_ms: int) -> JsonObject:
    """The ``listenKeyExpired`` user-data event."""
    return {"e": "listenKeyExpired", "E": event_time_ms, "listenKey": listen_key}


class WireFormat:
    """Renders records of one simulated exchange (its symbols fix the precisions).

    Args:
        symbols: the exchange's symbols (precisions come from their filters).
        asset: the margin asset (commission and balance asset).
    """

    def __init__(self, symbols: Iterable[SymbolConfig], asset: str = "USDT") -> None:
        self._specs: dict[str, SymbolConfig] = {s.symbol: s for s in symbols}
        self._asset = asset

    # ------------------------------------------------------------------ numbers

    def _price_places(self, symbol: str) -> int:
        spec = self._specs.get(symbol)
        return spec.filters.price_precision if spec is not None else MONEY_PLACES

    def _qty_places(self, symbol: str) -> int:
        spec = self._specs.get(symbol)
        return spec.filters.quantity_precision if spec is not None else MONEY_PLACES

    def price(self, symbol: str, value: Decimal | None) -> str:
        """A price at the symbol's precision (``None`` renders as zero: unset)."""
        return _plain(value if value is not None else ZERO, self._price_places(symbol))

    def qty(self, symbol: str, value: Decimal) -> str:
        """A quantity at the symbol's precision (signed for position amounts)."""
        return _plain(value, self._qty_places(symbol))

    def avg_price(self, symbol: str, value: Decimal | None) -> str:
        """An average fill price (at least 5 decimals, as Binance pads it)."""
        places = max(_MIN_AVG_PLACES, self._price_places(symbol))
        return _plain(value if value is not None else ZERO, places)

    def quote_amount(self, symbol: str, value: Decimal) -> str:
        """A quote-asset amount such as ``cumQuote`` (exact: price places + qty places)."""
        return _plain(value, self._price_places(symbol) + self._qty_places(symbol))

    # ------------------------------------------------------------------ orders

    def order(self, o: SimOrder, shape: OrderShape) -> JsonObject:
        """A plain order object as ``/fapi/v1/order`` (and friends) return it."""
        s = o.symbol
        executed = self.qty(s, o.filled_qty)
        out: JsonObject = {
            "orderId": int(o.order_id),
            "symbol": s,
            "status": o.status.value,
            "clientOrderId": o.client_order_id,
            "price": self.price(s, o.price),
            "avgPrice": self.avg_price(s, o.avg_price),
            "origQty": self.qty(s, o.quantity),
            "executedQty": executed,
        }
        if shape is not OrderShape.QUERY:
            out["cumQty"] = executed
        out.update(
            {
                "cumQuote": self.quote_amount(s, o.cum_quote),
                # Binance reports GTC for types that take no time in force.
                "timeInForce": (o.time_in_force.value if o.time_in_force else "GTC"),
                "type": o.order_type.value,
                "reduceOnly": o.reduce_only,
                "closePosition": o.close_position,
                "side": o.side.value,
                "positionSide": o.position_side.value,
                "stopPrice": self.price(s, o.stop_price),
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "origType": o.orig_type.value,
                "priceMatch": "NONE",
                "selfTradePreventionMode": "NONE",
                "goodTillDate": 0,
            }
        )
        if shape is OrderShape.QUERY:
            out["time"] = o.create_time_ms
        out["updateTime"] = o.update_time_ms
        return out

    def algo_order(
        self, o: SimOrder, settings: AlgoSettings = _DEFAULT_ALGO_SETTINGS
    ) -> JsonObject:
        """A conditional order as ``/fapi/v1/algoOrder`` and ``openAlgoOrders`` return it."""
        s = o.symbol
        status = o.algo_status.value if o.algo_status is not None else "NEW"
        return {
            "algoId": int(o.order_id),
            "clientAlgoId": o.client_order_id,
            "algoType": "CONDITIONAL",
            "orderType": o.orig_type.value,
            "symbol": s,
            "side": o.side.value,
            "positionSide": o.position_side.value,
            "timeInForce": o.time_in_force.value if o.time_in_force else "GTC",
            "quantity": self.qty(s, o.quantity),
            "algoStatus": status,
            "actualOrderId": o.actual_order_id or "",
            "actualPrice": self.avg_price(s, o.avg_price),
            "triggerPrice": self.price(s, o.stop_price),
            "price": self.price(s, o.price),
            "icebergQuantity": None,
            "tpTriggerPrice": self.price(s, ZERO),
            "tpPrice": self.price(s, ZERO),
            "slTriggerPrice": self.price(s, ZERO),
            "slPrice": self.price(s, ZERO),
            "tpOrderType": "",
            "selfTradePreventionMode": "NONE",
            "workingType": settings.working_type,
            "priceMatch": "NONE",
            "closePosition": o.close_position,
            "priceProtect": settings.price_protect,
            "reduceOnly": o.reduce_only,
            "activatePrice": "",
            "callbackRate": "",
            "createTime": o.create_time_ms,
            "updateTime": o.update_time_ms,
            "triggerTime": o.trigger_time_ms or 0,
            "goodTillDate": 0,
        }

    @staticmethod
    def algo_cancel(o: SimOrder) -> JsonObject:
        """The reply to a successful ``DELETE /fapi/v1/algoOrder``."""
        return {
            "algoId": int(o.order_id),
            "clientAlgoId": o.client_order_id,
            "code": "200",
            "msg": "success",
        }

    # ------------------------------------------------------------------ trades, account

    def user_trade(self, f: Fill) -> JsonObject:
        """One ``GET /fapi/v1/userTrades`` element."""
        s = f.symbol
        return {
            "buyer": f.side is Side.BUY,
            "commission": money(f.fee),
            "commissionAsset": f.fee_asset,
            "id": int(f.trade_id),
            "maker": f.maker,
            "orderId": int(f.order_id),
            "price": self.price(s, f.price),
            "qty": self.qty(s, f.quantity),
            "quoteQty": self.quote_amount(s, f.price * f.quantity),
            "realizedPnl": money(f.realized_pnl),
            "side": f.side.value,
            "positionSide": f.position_side.value,
            "symbol": s,
            "time": f.venue_time_ms,
        }

    def position_v2(self, v: PositionView) -> JsonObject:
        """One ``GET /fapi/v2/positionRisk`` element."""
        p = v.position
        s = p.symbol
        return {
            "symbol": s,
            "positionAmt": self.qty(s, p.quantity),
            "entryPrice": self.avg_price(s, p.entry_price),
            "breakEvenPrice": self.avg_price(s, p.entry_price),
            "markPrice": self.avg_price(s, v.mark_price),
            "unRealizedProfit": money(p.unrealized_pnl),
            "liquidationPrice": "0",
            "leverage": str(p.leverage),
            "maxNotionalValue": _plain(v.max_notional, 0),
            "marginType": "cross",
            "isolatedMargin": money(ZERO),
            "isAutoAddMargin": "false",
            "positionSide": p.position_side.value,
            "notional": money(v.notional),
            "isolatedWallet": "0",
            "updateTime": v.update_time_ms,
        }

    def position_v3(self, v: PositionView) -> JsonObject:
        """One ``GET /fapi/v3/positionRisk`` element (``adl`` is a number there)."""
        p = v.position
        s = p.symbol
        return {
            "symbol": s,
            "positionSide": p.position_side.value,
            "positionAmt": self.qty(s, p.quantity),
            "entryPrice": self.avg_price(s, p.entry_price),
            "breakEvenPrice": self.avg_price(s, p.entry_price),
            "markPrice": self.avg_price(s, v.mark_price),
            "unRealizedProfit": money(p.unrealized_pnl),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": money(v.notional),
            "marginAsset": self._asset,
            "isolatedWallet": "0",
            "initialMargin": money(v.initial_margin),
            "maintMargin": money(v.maint_margin),
            "positionInitialMargin": money(v.initial_margin),
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": v.update_time_ms,
        }

    @staticmethod
    def balance(b: SimBalance, update_time_ms: int) -> JsonObject:
        """One ``GET /fapi/v2|v3/balance`` element."""
        return {
            "accountAlias": "SimSgAc",
            "asset": b.asset,
            "balance": money(b.wallet_balance),
            "crossWalletBalance": money(b.wallet_balance),
            "crossUnPnl": money(b.unrealized_pnl),
            "availableBalance": money(b.available_balance),
            "maxWithdrawAmount": money(max(b.available_balance, ZERO)),
            "marginAvailable": True,
            "updateTime": update_time_ms,
        }

    def account(
        self,
        b: SimBalance,
        positions: Iterable[PositionView],
        update_time_ms: int,
        *,
        version: int = 3,
    ) -> JsonObject:
        """``GET /fapi/v3/account`` (or the v2 shape, with its extra per-position fields).

        ``positions`` should already be filtered to what the version lists (v3: legs with
        a position or open orders; v2: every leg).
        """
        views = list(positions)
        position_margin = sum((v.initial_margin for v in views), start=ZERO)
        maint = sum((v.maint_margin for v in views), start=ZERO)
        order_margin = max(b.initial_margin - position_margin, ZERO)
        max_withdraw = max(b.available_balance, ZERO)
        asset: JsonObject = {
            "asset": b.asset,
            "walletBalance": money(b.wallet_balance),
            "unrealizedProfit": money(b.unrealized_pnl),
            "marginBalance": money(b.margin_balance),
            "maintMargin": money(maint),
            "initialMargin": money(b.initial_margin),
            "positionInitialMargin": money(position_margin),
            "openOrderInitialMargin": money(order_margin),
            "crossWalletBalance": money(b.wallet_balance),
            "crossUnPnl": money(b.unrealized_pnl),
            "availableBalance": money(b.available_balance),
            "maxWithdrawAmount": money(max_withdraw),
            "updateTime": update_time_ms,
        }
        out: JsonObject = {}
        if version == 2:
            out.update(
                {
                    "feeTier": 0,
                    "feeBurn": False,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "updateTime": 0,
                    "multiAssetsMargin": False,
                    "tradeGroupId": -1,
                }
            )
            asset["marginAvailable"] = True
        out.update(
            {
                "totalInitialMargin": money(b.initial_margin),
                "totalMaintMargin": money(maint),
                "totalWalletBalance": money(b.wallet_balance),
                "totalUnrealizedProfit": money(b.unrealized_pnl),
                "totalMarginBalance": money(b.margin_balance),
                "totalPositionInitialMargin": money(position_margin),
                "totalOpenOrderInitialMargin": money(order_margin),
                "totalCrossWalletBalance": money(b.wallet_balance),
                "totalCrossUnPnl": money(b.unrealized_pnl),
                "availableBalance": money(b.available_balance),
                "maxWithdrawAmount": money(max_withdraw),
                "assets": [asset],
                "positions": [
                    self._account_position_v2(v) if version == 2 else self._account_position_v3(v)
                    for v in views
                ],
            }
        )
        return out

    def _account_position_v3(self, v: PositionView) -> JsonObject:
        p = v.position
        return {
            "symbol": p.symbol,
            "positionSide": p.position_side.value,
            "positionAmt": self.qty(p.symbol, p.quantity),
            "unrealizedProfit": money(p.unrealized_pnl),
            "isolatedMargin": "0",
            "notional": money(v.notional),
            "isolatedWallet": "0",
            "initialMargin": money(v.initial_margin),
            "maintMargin": money(v.maint_margin),
            "updateTime": v.update_time_ms,
        }

    def _account_position_v2(self, v: PositionView) -> JsonObject:
        p = v.position
        out = self._account_position_v3(v)
        out.update(
            {
                "positionInitialMargin": money(v.initial_margin),
                "openOrderInitialMargin": "0",
                "leverage": str(p.leverage),
                "isolated": False,
                "entryPrice": self.avg_price(p.symbol, p.entry_price),
                "breakEvenPrice": self.avg_price(p.symbol, p.entry_price),
                "maxNotional": _plain(v.max_notional, 0),
                "bidNotional": "0",
                "askNotional": "0",
            }
        )
        return out

    # ------------------------------------------------------------------ market data

    @staticmethod
    def premium_index(symbol: str, mark_price: Decimal, time_ms: int) -> JsonObject:
        """One ``GET /fapi/v1/premiumIndex`` object (the array element without a symbol).

        The engine has one price per symbol (mid = last = mark) and no funding, so the
        index and estimated settle price equal the mark, the last funding rate is zero and
        the interest rate is Binance's standard 0.01% per interval; the next funding
        instant is the next 8-hour UTC boundary after ``time_ms``, as on Binance.
        """
        next_funding = (time_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
        return {
            "symbol": symbol,
            "markPrice": money(mark_price),
            "indexPrice": money(mark_price),
            "estimatedSettlePrice": money(mark_price),
            "lastFundingRate": money(ZERO),
            "interestRate": money(INTEREST_RATE),
            "nextFundingTime": next_funding,
            "time": time_ms,
        }

    # ------------------------------------------------------------------ exchange info

    def exchange_info(self, info: ExchangeInfo) -> JsonObject:
        """``GET /fapi/v1/exchangeInfo``: rate limits, assets and symbol filters."""
        limits = info.rate_limits
        return {
            "timezone": "UTC",
            "serverTime": info.server_time_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limits.request_weight_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limits.orders_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": limits.orders_per_10s,
                },
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": self._asset, "marginAvailable": True, "autoAssetExchange": "-10000"}
            ],
            "symbols": [self._symbol_info(s) for s in info.symbols],
        }

    @staticmethod
    def _symbol_info(spec: SymbolConfig) -> JsonObject:
        f = spec.filters

        def plain(value: Decimal) -> str:
            return format(value.normalize(), "f")

        return {
            "symbol": spec.symbol,
            "pair": spec.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": _PERPETUAL_DELIVERY_MS,
            "onboardDate": _ONBOARD_MS,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": spec.base_asset,
            "quoteAsset": spec.quote_asset,
            "marginAsset": spec.quote_asset,
            "pricePrecision": f.price_precision,
            "quantityPrecision": f.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": plain(f.min_price),
                    "maxPrice": plain(f.max_price),
                    "tickSize": plain(f.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": plain(f.min_qty),
                    "maxQty": plain(f.max_qty),
                    "stepSize": plain(f.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": plain(f.market_min_qty),
                    "maxQty": plain(f.market_max_qty),
                    "stepSize": plain(f.market_step_size),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": f.max_num_orders},
                {"filterType": "MIN_NOTIONAL", "notional": plain(f.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": plain(f.multiplier_up),
                    "multiplierDown": plain(f.multiplier_down),
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [t.value for t in _ORDER_TYPES],
            "timeInForce": list(_TIME_IN_FORCE),
        }

    # ------------------------------------------------------------------ user-data events

    def event(
        self,
        ev: SimEvent,
        algo_settings: Callable[[str], AlgoSettings] | Mapping[str, AlgoSettings] | None = None,
    ) -> JsonObject:
        """One user-data stream message for an engine event.

        ``algo_settings`` looks up what was sent with an algo order (by algo id).
        """
        if isinstance(ev, OrderTradeUpdate):
            return self._order_trade_update(ev)
        if isinstance(ev, AccountUpdate):
            return self._account_update(ev)
        if isinstance(ev, AlgoUpdate):
            settings = _DEFAULT_ALGO_SETTINGS
            if callable(algo_settings):
                settings = algo_settings(ev.order.order_id)
            elif algo_settings is not None:
                settings = algo_settings.get(ev.order.order_id, _DEFAULT_ALGO_SETTINGS)
            return self._algo_update(ev, settings)
        return self._account_config_update(ev)

    def _order_trade_update(self, ev: OrderTradeUpdate) -> JsonObject:
        o = ev.order
        s = o.symbol
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": ev.event_time_ms,
            "T": ev.transaction_time_ms,
            "o": {
                "s": s,
                "c": o.client_order_id,
                "S": o.side.value,
                "o": o.order_type.value,
                "f": o.time_in_force.value if o.time_in_force else "GTC",
                "q": self.qty(s, o.quantity),
                "p": self.price(s, o.price),
                "ap": self.avg_price(s, o.avg_price),
                "sp": self.price(s, o.stop_price),
                "x": ev.execution_type.value,
                "X": o.status.value,
                "i": int(o.order_id),
                "l": self.qty(s, ev.last_filled_qty),
                "z": self.qty(s, o.filled_qty),
                "L": self.price(s, ev.last_filled_price),
                "N": ev.commission_asset,
                "n": money(ev.commission),
                "T": ev.transaction_time_ms,
                "t": int(ev.trade_id) if ev.trade_id is not None else 0,
                "b": "0",
                "a": "0",
                "m": ev.maker,
                "R": o.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": o.orig_type.value,
                "ps": o.position_side.value,
                "cp": o.close_position,
                "rp": money(ev.realized_pnl),
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "NONE",
                "pm": "NONE",
                "gtd": 0,
                "er": str(ev.expire_reason.code),
            },
        }

    def _account_update(self, ev: AccountUpdate) -> JsonObject:
        return {
            "e": "ACCOUNT_UPDATE",
            "E": ev.event_time_ms,
            "T": ev.transaction_time_ms,
            "a": {
                "m": ev.reason,
                "B": [
                    {
                        "a": b.asset,
                        "wb": money(b.wallet_balance),
                        "cw": money(b.cross_wallet_balance),
                        "bc": money(b.balance_change),
                    }
                    for b in ev.balances
                ],
                "P": [
                    {
                        "s": p.symbol,
                        "pa": self.qty(p.symbol, p.quantity),
                        "ep": self.avg_price(p.symbol, p.entry_price),
                        "bep": self.avg_price(p.symbol, p.entry_price),
                        "cr": money(p.accumulated_realized),
                        "up": money(p.unrealized_pnl),
                        "mt": "cross",
                        "iw": "0",
                        "ps": p.position_side.value,
                    }
                    for p in ev.positions
                ],
            },
        }

    def _algo_update(self, ev: AlgoUpdate, settings: AlgoSettings) -> JsonObject:
        o = ev.order
        s = o.symbol
        return {
            "e": "ALGO_UPDATE",
            "T": ev.transaction_time_ms,
            "E": ev.event_time_ms,
            "o": {
                "caid": o.client_order_id,
                "aid": int(o.order_id),
                "at": "CONDITIONAL",
                "o": o.orig_type.value,
                "s": s,
                "S": o.side.value,
                "ps": o.position_side.value,
                "f": o.time_in_force.value if o.time_in_force else "GTC",
                "q": self.qty(s, o.quantity),
                "X": ev.algo_status.value,
                "ai": o.actual_order_id or "",
                "ap": self.avg_price(s, o.avg_price),
                "aq": self.qty(s, o.filled_qty),
                "act": "0",
                "tp": self.price(s, o.stop_price),
                "p": self.price(s, o.price),
                "V": "NONE",
                "wt": settings.working_type,
                "pm": "NONE",
                "cp": o.close_position,
                "pP": settings.price_protect,
                "R": o.reduce_only,
                "tt": o.trigger_time_ms or 0,
                "gtd": 0,
                "rm": ev.reject_message,
            },
        }

    @staticmethod
    def _account_config_update(ev: AccountConfigUpdate) -> JsonObject:
        return {
            "e": "ACCOUNT_CONFIG_UPDATE",
            "E": ev.event_time_ms,
            "T": ev.transaction_time_ms,
            "ac": {"s": ev.symbol, "l": ev.leverage},
        }
