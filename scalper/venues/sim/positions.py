"""Position accounting of the simulated exchange: signed quantity, entry price, realized PnL.

Theory of operation
-------------------

One :class:`PositionState` per (symbol, position side): ``BOTH`` in one-way mode, ``LONG``
and ``SHORT`` in hedge mode. Its ``quantity`` is signed (negative is short, as Binance's
``positionAmt``) and is, by construction, the sum of the signed quantities of every fill
applied to it: the property tests check exactly that against the engine's history.

Rules (Binance's, for a linear USDT-margined contract):

* A fill that *increases* |quantity| moves the entry price to the quantity-weighted average
  of the old entry and the fill price.
* A fill that *reduces* realizes ``(fill price - entry) * closed qty`` for a long
  (``(entry - fill price) * closed qty`` for a short); the entry price stays.
* A fill that *crosses zero* (one-way mode only) closes the old side at the entry price and
  opens the remainder at the fill price.
* A flat position has entry price zero.

Entry prices are kept to 10 decimal places, money (PnL, fees, balances) to 8, both
half-even: enough for any listed contract and still exact ``Decimal`` arithmetic.
"""

from decimal import ROUND_HALF_EVEN, Decimal

import attrs

from scalper.core.types import ZERO, PositionSide, Side, signed_qty

__all__ = [
    "MONEY_QUANTUM",
    "PRICE_QUANTUM",
    "FillEffect",
    "PositionState",
    "money",
]

PRICE_QUANTUM = Decimal("1E-10")
MONEY_QUANTUM = Decimal("1E-8")


def money(value: Decimal) -> Decimal:
    """Round an amount of quote currency to the engine's money precision."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


@attrs.frozen
class FillEffect:
    """What one fill did to a position."""

    realized_pnl: Decimal
    closed_qty: Decimal
    opened_qty: Decimal


@attrs.define
class PositionState:
    """One position leg. Mutable: only the engine applies fills to it."""

    symbol: str
    position_side: PositionSide
    quantity: Decimal = ZERO
    entry_price: Decimal = ZERO
    accumulated_realized: Decimal = ZERO

    def apply_fill(self, side: Side, qty: Decimal, price: Decimal) -> FillEffect:
        """Apply one fill of ``side`` and return its effect (realized PnL before fees)."""
        delta = signed_qty(side, qty)
        old = self.quantity
        new = old + delta
        if old == 0 or (old > 0) == (delta > 0):
            # Opening or adding: weighted-average entry.
            total_cost = abs(old) * self.entry_price + qty * price
            self.entry_price = (total_cost / abs(new)).quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)
            self.quantity = new
            return FillEffect(realized_pnl=ZERO, closed_qty=ZERO, opened_qty=qty)
        closed = min(qty, abs(old))
        direction = 1 if old > 0 else -1
        realized = money((price - self.entry_price) * closed * direction)
        opened = qty - closed
        self.quantity = new
        self.accumulated_realized += realized
        if new == 0:
            self.entry_price = ZERO
        elif opened > 0:
            self.entry_price = price
        return FillEffect(realized_pnl=realized, closed_qty=closed, opened_qty=opened)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """Unrealized PnL at ``mark`` (zero when flat)."""
        if self.quantity == 0:
            return ZERO
        return money((mark - self.entry_price) * self.quantity)
