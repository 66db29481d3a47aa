"""Binance USD-M user-data stream events into typed records.

Theory of operation
-------------------

The user-data stream (``wss://fstream.binance.com/private/...``) is the lowest-latency
evidence the layer gets about its orders, fills and positions (I4: evidence, not truth;
reconciliation over REST remains the authority). Each message is one JSON object with an
event type ``e``; combined-stream connections wrap it as ``{"stream": ..., "data": ...}``.

:func:`parse_user_event` turns one message into exactly one record:

* ``ORDER_TRADE_UPDATE`` → :class:`OrderTradeUpdate`: the order snapshot *after* the event
  as a core ``VenueOrder``, plus a core ``Fill`` when the execution type is ``TRADE``
  (or a liquidation ``CALCULATED`` execution that carries a trade id). A ``TRADE`` without a
  positive quantity, price and trade id is malformed, because a fill we cannot key is a
  fill we could lose or double-count (I10).
* ``ACCOUNT_UPDATE`` → :class:`AccountUpdate` (changed balances and positions only).
* ``ALGO_UPDATE`` → :class:`AlgoUpdate` (conditional orders since 2025-12-09).
* ``TRADE_LITE`` → :class:`TradeLite` (early, fee-less trade evidence; the full fill
  arrives in ``ORDER_TRADE_UPDATE`` with the same trade id).
* ``listenKeyExpired`` → :class:`ListenKeyExpired`: a user-data *gap starts now*.
* ``MARGIN_CALL`` → :class:`MarginCall`; ``ACCOUNT_CONFIG_UPDATE`` →
  :class:`AccountConfigUpdate`.
* anything else with a string ``e`` → :class:`UnknownEvent`, carrying the raw object:
  surfaced for the journal, never a crash, never silently dropped.

A message whose ``e`` names a known event but whose body is wrong raises
:class:`~scalper.venues.binance.parse.MalformedMessage` (the only exception), with the path
of the bad field. Numeric rules (Decimal, no NaN/Infinity, bounded ids) are those of
:mod:`scalper.venues.binance.parse`.

Special client order ids mark orders the venue placed on its own: ``autoclose-...``
(liquidation), ``adl_autoclose`` (auto-deleveraging) and ``settlement_autoclose-...``
(delisting or delivery). They are flagged as :class:`SpecialOrigin` so orphan logic can
tell them from foreign bots' orders.
"""

import enum
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final

import attrs

from scalper.core.model import Fill, VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce
from scalper.venues.binance.parse import (
    ORDER_TYPE_ALIASES,
    STATUS_ALIASES,
    TIF_ALIASES,
    AlgoOrder,
    AlgoStatus,
    JsonValue,
    Reader,
    algo_to_order_status,
    check_fill_bounds,
    excerpt,
    loads,
    wrap_malformed,
)

__all__ = [
    "EXPIRY_REASONS",
    "AccountConfigUpdate",
    "AccountUpdate",
    "AlgoUpdate",
    "BalanceUpdate",
    "ExecutionType",
    "ListenKeyExpired",
    "MarginCall",
    "MarginCallPosition",
    "OrderTradeUpdate",
    "SpecialOrigin",
    "TradeLite",
    "UnknownEvent",
    "UserEvent",
    "parse_user_event",
    "parse_user_message",
    "special_origin",
]


class ExecutionType(enum.StrEnum):
    """What happened to an order in one ORDER_TRADE_UPDATE (Binance ``o.x``)."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    CALCULATED = "CALCULATED"
    EXPIRED = "EXPIRED"
    TRADE = "TRADE"
    AMENDMENT = "AMENDMENT"


class SpecialOrigin(enum.StrEnum):
    """Orders the venue placed itself, recognised by their client order id."""

    LIQUIDATION = "LIQUIDATION"
    ADL = "ADL"
    SETTLEMENT = "SETTLEMENT"


def special_origin(client_order_id: str, wire_order_type: str = "") -> SpecialOrigin | None:
    """Classify a venue-originated order by its client id (or ``LIQUIDATION`` type)."""
    if client_order_id.startswith("settlement_autoclose"):
        return SpecialOrigin.SETTLEMENT
    if client_order_id == "adl_autoclose":
        return SpecialOrigin.ADL
    if client_order_id.startswith("autoclose-") or wire_order_type == "LIQUIDATION":
        return SpecialOrigin.LIQUIDATION
    return None


#: Binance ``o.er`` expiry-reason codes as journal tags ("0" means none).
EXPIRY_REASONS: Final[Mapping[str, str]] = {
    "1": "self_trade_prevention",
    "2": "ioc_remainder",
    "3": "ioc_remainder_stp",
    "4": "reduce_only_knocked_out",
    "5": "liquidation",
    "6": "gte_condition_unsatisfied",
    "7": "symbol_delisted",
    "8": "stop_triggered_original_expired",
    "9": "market_remainder",
}


@attrs.frozen
class OrderTradeUpdate:
    """``ORDER_TRADE_UPDATE``: one order's state after one execution event.

    ``fill`` is set for executions (``TRADE``, or ``CALCULATED`` with a trade id);
    ``wire_order_type`` keeps Binance's own type string (``LIQUIDATION`` maps to
    ``OrderType.LIMIT`` in ``order``); ``expiry_reason`` is a tag from
    :data:`EXPIRY_REASONS` (``code_<n>`` for codes Binance adds later).
    """

    event_time_ms: int
    transaction_time_ms: int
    execution_type: ExecutionType
    order: VenueOrder
    fill: Fill | None = None
    wire_order_type: str = ""
    original_order_type: str | None = None
    expiry_reason: str | None = None
    special_origin: SpecialOrigin | None = None


@attrs.frozen
class BalanceUpdate:
    """One asset in ``ACCOUNT_UPDATE.a.B``."""

    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    balance_change: Decimal = ZERO


@attrs.frozen
class AccountUpdate:
    """``ACCOUNT_UPDATE``: balances and positions that changed, and why (``reason``).

    ``reason`` is Binance's ``a.m`` (``ORDER``, ``FUNDING_FEE``, ...), kept as text because
    the list grows. Position leverage is not in this event; ``VenuePosition.leverage`` keeps
    its default.
    """

    event_time_ms: int
    transaction_time_ms: int
    reason: str
    balances: tuple[BalanceUpdate, ...] = ()
    positions: tuple[VenuePosition, ...] = ()


@attrs.frozen
class AlgoUpdate:
    """``ALGO_UPDATE``: a conditional order's state in the algo service."""

    event_time_ms: int
    transaction_time_ms: int
    algo: AlgoOrder


@attrs.frozen
class TradeLite:
    """``TRADE_LITE``: low-latency trade evidence without commission or position side."""

    event_time_ms: int
    transaction_time_ms: int
    symbol: str
    client_order_id: str
    order_id: str
    side: Side
    trade_id: str
    last_qty: Decimal
    last_price: Decimal
    maker: bool
    orig_qty: Decimal
    orig_price: Decimal | None = None


@attrs.frozen
class ListenKeyExpired:
    """``listenKeyExpired``: no more user events arrive until a valid key is in use."""

    event_time_ms: int
    listen_key: str = attrs.field(repr=False)


@attrs.frozen
class MarginCallPosition:
    """One position in ``MARGIN_CALL.p``."""

    symbol: str
    position_side: PositionSide
    quantity: Decimal
    margin_type: str
    mark_price: Decimal
    unrealized_pnl: Decimal
    maint_margin: Decimal
    isolated_wallet: Decimal = ZERO


@attrs.frozen
class MarginCall:
    """``MARGIN_CALL``: informational; the position may already be liquidated."""

    event_time_ms: int
    cross_wallet_balance: Decimal | None
    positions: tuple[MarginCallPosition, ...] = ()


@attrs.frozen
class AccountConfigUpdate:
    """``ACCOUNT_CONFIG_UPDATE``: a leverage change or a multi-assets mode change.

    A leverage change sets ``symbol`` and ``leverage``; a mode change sets ``multi_assets``.
    """

    event_time_ms: int
    transaction_time_ms: int
    symbol: str | None = None
    leverage: int | None = None
    multi_assets: bool | None = None


@attrs.frozen
class UnknownEvent:
    """An event type this module does not model, surfaced with its raw object."""

    event_type: str
    event_time_ms: int | None
    raw: Mapping[str, JsonValue] = attrs.field(eq=False, repr=False)

    @property
    def excerpt(self) -> str:
        """A short, redacted rendering of the raw event for logs."""
        return excerpt(self.raw)


UserEvent = (
    OrderTradeUpdate
    | AccountUpdate
    | AlgoUpdate
    | TradeLite
    | ListenKeyExpired
    | MarginCall
    | AccountConfigUpdate
    | UnknownEvent
)


def _order_trade_update(r: Reader) -> OrderTradeUpdate:
    o = r.sub("o")
    execution = o.enum("x", ExecutionType)
    close_position = o.boolean("cp", default=False)
    qty = o.dec("q")
    filled = o.dec("z")
    check_fill_bounds(o, "q", "z", qty, filled, close_position)
    wire_type = o.string("o")
    order_type = o.enum("o", OrderType, ORDER_TYPE_ALIASES)
    client_order_id = o.string("c")
    position_side = o.opt_enum("ps", PositionSide) or PositionSide.BOTH
    trade_time = o.opt_integer("T") or r.integer("T")
    order = VenueOrder(
        symbol=o.string("s"),
        order_id=o.ident("i"),
        client_order_id=client_order_id,
        side=o.enum("S", Side),
        order_type=order_type,
        status=o.enum("X", VenueOrderStatus, STATUS_ALIASES),
        quantity=qty,
        filled_qty=filled,
        price=o.nonzero_dec("p"),
        # Binance: "ignore sp for TRAILING_STOP_MARKET".
        stop_price=None if order_type is OrderType.TRAILING_STOP_MARKET else o.nonzero_dec("sp"),
        avg_price=o.nonzero_dec("ap"),
        time_in_force=o.opt_enum("f", TimeInForce, TIF_ALIASES),
        reduce_only=o.boolean("R", default=False),
        close_position=close_position,
        position_side=position_side,
        venue_time_ms=trade_time,
    )
    fill = _fill(o, order, execution, trade_time)
    er = o.opt_string("er")
    if er is not None and not er.isdigit():
        raise o.error("er", f"expected a numeric reason code, got {excerpt(er, 16)!r}")
    return OrderTradeUpdate(
        event_time_ms=r.integer("E"),
        transaction_time_ms=r.integer("T"),
        execution_type=execution,
        order=order,
        fill=fill,
        wire_order_type=wire_type,
        original_order_type=o.opt_string("ot"),
        expiry_reason=None if er in (None, "0") else EXPIRY_REASONS.get(er, f"code_{er}"),
        special_origin=special_origin(client_order_id, wire_type),
    )


def _fill(o: Reader, order: VenueOrder, execution: ExecutionType, trade_time: int) -> Fill | None:
    if execution is ExecutionType.CALCULATED:
        # Liquidation executions: a fill only if they carry a trade to key it by.
        last = o.opt_dec("l")
        if last is None or last == ZERO or not o.opt_integer("t"):
            return None
    elif execution is not ExecutionType.TRADE:
        return None
    last_qty = o.dec("l")
    if last_qty == ZERO:
        raise o.error("l", "a trade must have a positive last filled quantity")
    if last_qty > order.filled_qty:
        raise o.error("l", f"last fill {last_qty} exceeds cumulative filled {order.filled_qty}")
    last_price = o.dec("L")
    if last_price == ZERO:
        raise o.error("L", "a trade must have a positive price")
    return Fill(
        symbol=order.symbol,
        trade_id=str(o.integer("t", minimum=1)),
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=order.side,
        quantity=last_qty,
        price=last_price,
        fee=o.opt_dec("n", signed=True) or ZERO,
        fee_asset=o.opt_string("N") or "USDT",
        realized_pnl=o.opt_dec("rp", signed=True) or ZERO,
        position_side=order.position_side,
        maker=o.boolean("m", default=False),
        venue_time_ms=trade_time,
    )


def _account_update(r: Reader) -> AccountUpdate:
    a = r.sub("a")
    event_time = r.integer("E")
    tx_time = r.opt_integer("T") or event_time
    balances = tuple(
        BalanceUpdate(
            asset=b.string("a"),
            wallet_balance=b.dec("wb", signed=True),
            cross_wallet_balance=b.opt_dec("cw", signed=True) or ZERO,
            balance_change=b.opt_dec("bc", signed=True) or ZERO,
        )
        for b in a.items("B", optional=True)
    )
    positions = tuple(
        VenuePosition(
            symbol=p.string("s"),
            quantity=p.dec("pa", signed=True),
            entry_price=p.opt_dec("ep") or ZERO,
            position_side=p.opt_enum("ps", PositionSide) or PositionSide.BOTH,
            unrealized_pnl=p.opt_dec("up", signed=True) or ZERO,
            venue_time_ms=tx_time,
        )
        for p in a.items("P", optional=True)
    )
    return AccountUpdate(
        event_time_ms=event_time,
        transaction_time_ms=tx_time,
        reason=a.string("m"),
        balances=balances,
        positions=positions,
    )


def _algo_update(r: Reader) -> AlgoUpdate:
    o = r.sub("o")
    status = o.enum("X", AlgoStatus)
    close_position = o.boolean("cp", default=False)
    qty = o.opt_dec("q") or ZERO
    reported = o.opt_dec("aq")
    executed = reported or ZERO
    check_fill_bounds(o, "q", "aq", qty, executed, close_position)
    order_type = o.enum("o", OrderType)
    if not order_type.is_conditional:
        raise o.error("o", f"{order_type} is not a conditional type")
    event_time = r.integer("E")
    tx_time = r.opt_integer("T") or event_time
    order = VenueOrder(
        symbol=o.string("s"),
        order_id=o.ident("aid"),
        client_order_id=o.string("caid"),
        side=o.enum("S", Side),
        order_type=order_type,
        status=algo_to_order_status(status, qty, executed, close_position),
        quantity=qty,
        filled_qty=executed,
        price=o.nonzero_dec("p"),
        stop_price=o.nonzero_dec("tp"),
        avg_price=o.nonzero_dec("ap"),
        time_in_force=o.opt_enum("f", TimeInForce, TIF_ALIASES),
        reduce_only=o.boolean("R", default=False),
        close_position=close_position,
        position_side=o.opt_enum("ps", PositionSide) or PositionSide.BOTH,
        venue_time_ms=tx_time,
    )
    actual = o.opt_integer("ai")
    algo = AlgoOrder(
        order=order,
        algo_status=status,
        execution_known=reported is not None,
        actual_order_id=None if actual is None else str(actual),
        trigger_time_ms=o.opt_integer("tt") or 0,
        reject_reason=o.opt_string("rm"),
        working_type=o.opt_string("wt"),
    )
    return AlgoUpdate(event_time_ms=event_time, transaction_time_ms=tx_time, algo=algo)


def _trade_lite(r: Reader) -> TradeLite:
    qty = r.dec("l")
    price = r.dec("L")
    if qty == ZERO or price == ZERO:
        raise r.error("l" if qty == ZERO else "L", "a trade must have positive size and price")
    event_time = r.integer("E")
    return TradeLite(
        event_time_ms=event_time,
        transaction_time_ms=r.opt_integer("T") or event_time,
        symbol=r.string("s"),
        client_order_id=r.string("c"),
        order_id=r.ident("i"),
        side=r.enum("S", Side),
        trade_id=str(r.integer("t", minimum=1)),
        last_qty=qty,
        last_price=price,
        maker=r.boolean("m", default=False),
        orig_qty=r.dec("q"),
        orig_price=r.nonzero_dec("p"),
    )


def _listen_key_expired(r: Reader) -> ListenKeyExpired:
    return ListenKeyExpired(
        event_time_ms=r.integer("E"),
        listen_key=r.opt_string("listenKey") or "",
    )


def _margin_call(r: Reader) -> MarginCall:
    positions = tuple(
        MarginCallPosition(
            symbol=p.string("s"),
            position_side=p.opt_enum("ps", PositionSide) or PositionSide.BOTH,
            quantity=p.dec("pa", signed=True),
            margin_type=p.string("mt"),
            mark_price=p.dec("mp"),
            unrealized_pnl=p.dec("up", signed=True),
            maint_margin=p.dec("mm"),
            isolated_wallet=p.opt_dec("iw", signed=True) or ZERO,
        )
        for p in r.items("p", optional=True)
    )
    return MarginCall(
        event_time_ms=r.integer("E"),
        cross_wallet_balance=r.opt_dec("cw", signed=True),
        positions=positions,
    )


def _account_config_update(r: Reader) -> AccountConfigUpdate:
    event_time = r.integer("E")
    symbol: str | None = None
    leverage: int | None = None
    multi_assets: bool | None = None
    if r.has("ac"):
        ac = r.sub("ac")
        symbol = ac.string("s")
        leverage = ac.integer("l", minimum=1)
    if r.has("ai"):
        multi_assets = r.sub("ai").boolean("j")
    if symbol is None and multi_assets is None:
        raise r.error("ac", "neither 'ac' (leverage) nor 'ai' (multi-assets) present")
    return AccountConfigUpdate(
        event_time_ms=event_time,
        transaction_time_ms=r.opt_integer("T") or event_time,
        symbol=symbol,
        leverage=leverage,
        multi_assets=multi_assets,
    )


_PARSERS: Final[Mapping[str, Callable[[Reader], UserEvent]]] = {
    "ORDER_TRADE_UPDATE": _order_trade_update,
    "ACCOUNT_UPDATE": _account_update,
    "ALGO_UPDATE": _algo_update,
    "TRADE_LITE": _trade_lite,
    "listenKeyExpired": _listen_key_expired,
    "MARGIN_CALL": _margin_call,
    "ACCOUNT_CONFIG_UPDATE": _account_config_update,
}


def _lenient_time(value: JsonValue) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


@wrap_malformed
def parse_user_event(raw: JsonValue) -> UserEvent:
    """Parse one decoded user-data message (bare or combined-stream wrapped).

    Raises:
        MalformedMessage: if the message is not an object with a string ``e``, or a known
            event's body is malformed. Unknown event types are returned as
            :class:`UnknownEvent`, never raised.
    """
    if isinstance(raw, Mapping) and "data" in raw and "e" not in raw:
        r = Reader(raw).sub("data")
    else:
        r = Reader(raw)
    event_type = r.mapping.get("e")
    if not isinstance(event_type, str) or not event_type:
        raise r.error("e", "missing or not a non-empty string event type")
    parser = _PARSERS.get(event_type)
    if parser is None:
        return UnknownEvent(
            event_type=event_type,
            event_time_ms=_lenient_time(r.mapping.get("E")),
            raw=dict(r.mapping),
        )
    return parser(r)


def parse_user_message(data: str | bytes) -> UserEvent:
    """Decode one WebSocket text frame and parse it (see :func:`parse_user_event`).

    Raises:
        MalformedMessage: on non-JSON input or a malformed known event.
    """
    return parse_user_event(loads(data))
