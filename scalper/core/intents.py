"""Intents: what a strategy wants, validated once, classified once.

Theory of operation
-------------------

An :class:`Intent` is the unit of idempotency (I7) and of accountability: one intent id, one
decision, at most one risk-increasing exchange order. Strategies, the operator API and the
ProtectionManager all speak intents; only the Router turns them into orders.

Construction validates everything that can be checked without the venue (quantities are
finite and positive Decimals, LIMIT has a price, stops have a stop price, close-position is
only for stop-market types, hedge mode needs LONG/SHORT, ...). A bad intent raises
:class:`IntentError`, which names the field: the caller learns *what* is wrong, and the
journal records it. Venue filters (tick size, min notional) are checked later by the venue.

Whether an intent is risk-increasing is decided exactly once, here, by
:attr:`Intent.is_exit`: an exit is a reduce-only or close-position order, *whatever its
type*. A STOP_MARKET without reduce-only is an entry (it can open a position when it
triggers), and a reduce-only LIMIT is an exit. Exits take a separate path in the Router and
are never gated by posture, guard knobs or the kill switch (I1); everything else is an entry.
The intent kind (ENTRY, EXIT, PROTECT, TAKE_PROFIT) must agree with that classification, so a
strategy cannot label an order an exit and have it bypass the entry gates.
"""

import enum
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role, check_text_id
from scalper.core.model import OrderRequest
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce

__all__ = [
    "Intent",
    "IntentError",
    "IntentKind",
    "to_decimal",
]


class IntentError(CoreValueError):
    """An intent failed validation. ``field`` names the offending field."""


class IntentKind(enum.StrEnum):
    """Why the strategy wants this order. Must agree with the entry/exit classification."""

    #: Opens or increases a position: gated by posture and the kill switch.
    ENTRY = "ENTRY"
    #: Reduces or closes a position (market or limit): never gated.
    EXIT = "EXIT"
    #: A protective stop for filled exposure (reduce-only or close-position): never gated.
    PROTECT = "PROTECT"
    #: A take-profit for filled exposure (reduce-only or close-position): never gated.
    TAKE_PROFIT = "TAKE_PROFIT"

    @property
    def role(self) -> Role:
        """The client-order-id role this kind uses."""
        return _ROLE_BY_KIND[self]


_ROLE_BY_KIND = {
    IntentKind.ENTRY: Role.ENTRY,
    IntentKind.EXIT: Role.EXIT,
    IntentKind.PROTECT: Role.SL,
    IntentKind.TAKE_PROFIT: Role.TP,
}

_CLOSE_POSITION_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
_SYMBOL_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def to_decimal(value: Any, field: str) -> Decimal:
    """Convert ``value`` to a finite Decimal, or raise :class:`IntentError` naming ``field``.

    Floats are accepted by their shortest repr (``0.1`` becomes ``Decimal("0.1")``, not the
    binary expansion); bools, NaN and infinities are rejected.
    """
    if isinstance(value, bool):
        raise IntentError(field, f"must be a number, got {value!r}")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise IntentError(field, f"must be finite, got {value!r}")
            d = Decimal(repr(value))
        elif isinstance(value, (int, str, Decimal)):
            d = Decimal(value)
        else:
            raise IntentError(field, f"must be a number, got {type(value).__name__} {value!r}")
    except InvalidOperation:
        raise IntentError(field, f"must be a decimal number, got {value!r}") from None
    if not d.is_finite():
        raise IntentError(field, f"must be finite, got {value!r}")
    return d


def _quantity(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value, "quantity")


def _price(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value, "price")


def _stop_price(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value, "stop_price")


@attrs.frozen
class Intent:
    """One validated trading intent.

    Args:
        intent_id: the idempotency key (see :mod:`scalper.core.ids`).
        symbol: venue symbol, upper case, e.g. ``"BTCUSDT"``.
        side: BUY or SELL.
        quantity: base-asset quantity, a positive finite Decimal; ``None`` only with
            ``close_position``.
        kind: ENTRY, EXIT, PROTECT or TAKE_PROFIT; must agree with reduce-only/close-position.
        order_type: MARKET by default.
        price: limit price (required for LIMIT, STOP and TAKE_PROFIT).
        stop_price: trigger price (required for the stop and take-profit types).
        time_in_force: defaults to GTC for types that rest with a limit price.
        reduce_only: the order may only reduce a position.
        close_position: a stop-market that closes the whole position when it triggers.
        position_side: BOTH in one-way mode, LONG or SHORT in hedge mode.
        correlation_id: ties the events this intent causes together; defaults to intent_id.

    Raises:
        IntentError: naming the first invalid field.
    """

    intent_id: str
    symbol: str
    side: Side = attrs.field(converter=Side)
    quantity: Decimal | None = attrs.field(converter=_quantity)
    kind: IntentKind = attrs.field(default=IntentKind.ENTRY, converter=IntentKind)
    order_type: OrderType = attrs.field(default=OrderType.MARKET, converter=OrderType)
    price: Decimal | None = attrs.field(default=None, converter=_price)
    stop_price: Decimal | None = attrs.field(default=None, converter=_stop_price)
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    position_side: PositionSide = attrs.field(default=PositionSide.BOTH, converter=PositionSide)
    correlation_id: str = ""

    def __attrs_post_init__(self) -> None:
        self._validate()
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", self.intent_id)
        if self.time_in_force is None and self.order_type.needs_price:
            object.__setattr__(self, "time_in_force", TimeInForce.GTC)

    def _validate(self) -> None:
        for name in ("intent_id", "correlation_id"):
            value = getattr(self, name)
            if name == "correlation_id" and not value:
                continue  # defaults to the intent id
            try:
                check_text_id(name, value)
            except CoreValueError as exc:
                raise IntentError(exc.field, exc.reason) from None
        if not self.symbol or not set(self.symbol) <= _SYMBOL_OK:
            raise IntentError(
                "symbol", f"must be upper-case letters and digits, got {self.symbol!r}"
            )
        if self.close_position:
            if self.order_type not in _CLOSE_POSITION_TYPES:
                raise IntentError(
                    "close_position",
                    f"only valid for STOP_MARKET or TAKE_PROFIT_MARKET, not {self.order_type}",
                )
            if self.quantity is not None:
                raise IntentError(
                    "quantity", "must be omitted with close_position (it closes everything)"
                )
            if self.reduce_only:
                raise IntentError("reduce_only", "cannot be combined with close_position")
        elif self.quantity is None:
            raise IntentError("quantity", "is required unless close_position is set")
        elif self.quantity <= 0:
            raise IntentError("quantity", f"must be positive, got {self.quantity}")
        if self.order_type.needs_price:
            if self.price is None:
                raise IntentError("price", f"is required for {self.order_type}")
        elif self.price is not None:
            raise IntentError("price", f"must be omitted for {self.order_type}")
        if self.price is not None and self.price <= 0:
            raise IntentError("price", f"must be positive, got {self.price}")
        if self.order_type.needs_stop_price:
            if self.stop_price is None:
                raise IntentError("stop_price", f"is required for {self.order_type}")
        elif self.stop_price is not None:
            raise IntentError("stop_price", f"must be omitted for {self.order_type}")
        if self.stop_price is not None and self.stop_price <= 0:
            raise IntentError("stop_price", f"must be positive, got {self.stop_price}")
        if self.order_type is OrderType.TRAILING_STOP_MARKET:
            raise IntentError("order_type", "TRAILING_STOP_MARKET is not supported yet")
        if self.order_type is OrderType.MARKET and self.time_in_force is not None:
            raise IntentError("time_in_force", "must be omitted for MARKET")
        if self.kind is IntentKind.ENTRY and self.is_exit:
            raise IntentError("kind", "ENTRY cannot be reduce-only or close-position")
        if self.kind is not IntentKind.ENTRY and not self.is_exit:
            # An "exit" that could open a position would bypass the entry gates (I1 is for
            # exits only), so the label must be backed by reduce-only or close-position.
            raise IntentError("kind", f"{self.kind} must be reduce-only or close-position")
        if (
            self.kind in (IntentKind.PROTECT, IntentKind.TAKE_PROFIT)
            and not self.order_type.is_conditional
        ):
            raise IntentError(
                "order_type", f"{self.kind} needs a conditional type, got {self.order_type}"
            )

    @property
    def is_exit(self) -> bool:
        """True if this intent can only reduce a position (reduce-only or close-position).

        This is the single place where "exit" is decided (see the module docstring).
        """
        return self.reduce_only or self.close_position

    @property
    def is_risk_increasing(self) -> bool:
        """True for entries: anything that is not an exit may increase exposure."""
        return not self.is_exit

    @property
    def role(self) -> Role:
        """The client-order-id role of this intent's orders."""
        return self.kind.role

    def check_position_mode(self, mode: PositionMode) -> None:
        """Check ``position_side`` against the account's position mode.

        In hedge mode Binance rejects the ``reduceOnly`` flag; the leg named by
        ``position_side`` already says what is reduced. The intent keeps ``reduce_only`` as
        its *meaning* (the wire adapter drops the flag), and this check makes sure the
        meaning and the leg agree: an exit SELLs a LONG leg or BUYs a SHORT leg, an entry
        does the opposite.

        Raises:
            IntentError: BOTH in hedge mode, LONG/SHORT in one-way mode, or a side that
                contradicts the leg.
        """
        if mode is PositionMode.ONE_WAY:
            if self.position_side is not PositionSide.BOTH:
                raise IntentError("position_side", "must be BOTH in one-way mode")
            return
        if self.position_side is PositionSide.BOTH:
            raise IntentError("position_side", "must be LONG or SHORT in hedge mode")
        opening_side = Side.BUY if self.position_side is PositionSide.LONG else Side.SELL
        if self.is_exit and self.side is opening_side:
            raise IntentError(
                "side", f"an exit of the {self.position_side} leg must be {opening_side.opposite}"
            )
        if not self.is_exit and self.side is not opening_side:
            raise IntentError(
                "side", f"an entry on the {self.position_side} leg must be {opening_side}"
            )

    def to_order_request(self, client_order_id: str) -> OrderRequest:
        """The venue order for this intent, under the given client order id."""
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            client_order_id=client_order_id,
            quantity=self.quantity,
            price=self.price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            reduce_only=self.reduce_only,
            close_position=self.close_position,
            position_side=self.position_side,
        )

    def notional(self, reference_price: Decimal) -> Decimal:
        """Quantity times the limit price, or ``reference_price`` for market types.

        Returns zero for close-position intents, whose size is whatever is open.
        """
        if self.quantity is None:
            return Decimal(0)
        return self.quantity * (self.price if self.price is not None else reference_price)
