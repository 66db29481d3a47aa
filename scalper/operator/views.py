"""The operator's picture of a running system, as one JSON-ready document.

Theory of operation
-------------------

:func:`status_document` reads a running system between two awaits (trio runs one task at
a time, so the journal's :class:`~scalper.state.AccountState` is never seen half-updated)
and returns plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` values:
Decimals travel as strings so no quantity is rounded through a float, and the document can
be served as JSON, rendered on the console or asserted on in a test. Reading it has no
effect on the system.

Everything in it comes from the journal's state (I5: the journal is the state), the
BeliefController's last posture decision and the supervisor; nothing is read from the
venue. It is a belief, so it says how old each uncertainty is.

**Position envelopes.** For every leg with a position or a possibly-live order the
document shows:

* ``quantity`` (signed) and ``entry_price`` (the journal's average entry, if known);
* ``stops``: our protective exit stops on the leg (STOP, STOP_MARKET, TRAILING_STOP_MARKET,
  reduce-only or close-position) with their ledger state, and ``coverage``: core's
  :func:`~scalper.core.protection.assess_coverage` over the stops the venue acknowledged
  (a stop still SENDING or UNKNOWN protects nothing we can count on, I9);
* ``entry_orders`` / ``exit_orders``: the client order ids of the possibly-live orders of
  each lane (unresolved orders included: they may be live);
* the **worst case**: ``worst_case_long`` is the position if every possibly-live buy
  *entry* filled and no exit did, ``worst_case_short`` the same for sell entries, and
  ``worst_case_qty`` the larger magnitude of the two. Exits only reduce exposure (I1), so
  assuming they never fill is the worst case; entries that are still unresolved count as
  live. ``worst_case_notional`` values that quantity at the last fill price (else the
  entry price), when one is known.
* ``unprotected_s``: how long the symbol's position has been uncovered by stops, from
  ``System.unprotected_seconds()``.

**Unknown intents** are intents with an order in SENDING or UNKNOWN (existence or outcome
not settled; the Router resolves them by evidence, never by resending, I7), with the age
of the oldest such order measured from its send, on the clock's wall time like the
journal's stamps.
"""

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.posture import PostureMode
from scalper.core.protection import PROTECTIVE_STOP_TYPES, assess_coverage
from scalper.core.types import ZERO, PositionSide, Side
from scalper.messages import converter
from scalper.operator.target import OperatedSystem
from scalper.state import AccountState, IntentStatus, LegRecord, OrderRecord
from scalper.store.records import LedgerState

__all__ = [
    "UnknownIntent",
    "order_remaining_qty",
    "status_document",
    "unknown_intents",
]

#: Ledger states in which the venue has acknowledged the order and it is still open.
_ACKNOWLEDGED_OPEN = frozenset({LedgerState.ACKED, LedgerState.PARTIALLY_FILLED})


@attrs.frozen
class UnknownIntent:
    """An intent whose order's existence or outcome is not settled yet.

    Attributes:
        intent_id: the intent.
        symbol: its symbol.
        client_order_ids: its unresolved orders, sorted.
        states: their ledger states (``SENDING`` or ``UNKNOWN``), in the same order.
        age_s: seconds since the oldest of them was sent (never negative).
    """

    intent_id: str
    symbol: str
    client_order_ids: tuple[str, ...]
    states: tuple[str, ...]
    age_s: float


def unknown_intents(state: AccountState, wall_ms: int) -> list[UnknownIntent]:
    """The intents with unresolved orders, oldest first (ties by intent id).

    Args:
        state: the journal's account state.
        wall_ms: now, on the clock's wall time (the journal's stamps are wall time).
    """
    grouped: dict[str, list[OrderRecord]] = {}
    for order in state.unresolved_orders():
        grouped.setdefault(order.intent_id, []).append(order)
    out = []
    for intent_id, orders in grouped.items():
        orders.sort(key=lambda o: o.client_order_id)
        out.append(
            UnknownIntent(
                intent_id=intent_id,
                symbol=orders[0].request.symbol,
                client_order_ids=tuple(o.client_order_id for o in orders),
                states=tuple(o.ledger_state.value for o in orders),
                age_s=max(_age_s(wall_ms, o.sent_wall_ms) for o in orders),
            )
        )
    out.sort(key=lambda u: (-u.age_s, u.intent_id))
    return out


def order_remaining_qty(order: OrderRecord) -> Decimal:
    """What may still execute of a possibly-live order (zero for close-position stops).

    Uses the most the order is known to have executed (journaled trades or the venue's
    reported count), so a fill the backfill has not explained yet is not counted twice.
    """
    qty = order.request.quantity
    if qty is None:
        return ZERO
    filled = order.tracker.known_filled_qty if order.tracker is not None else order.filled_qty
    return max(qty - filled, ZERO)


def status_document(system: OperatedSystem) -> dict[str, Any]:
    """The operator's picture of ``system`` right now, JSON-ready (Decimals as strings).

    Keys: ``generated_wall_ms``, ``running``, ``stop_reason``, ``incarnation``,
    ``journal_entries``, ``posture`` (mode, level, score, causes, unlock, knobs,
    entries_allowed), ``halted``, ``halts``, ``frozen_symbols``, ``positions`` (envelopes,
    see the module docstring), ``open_orders``, ``open_intents``, ``unknown_intents``,
    ``unprotected_s``, ``last_reconcile``, ``restarts``, ``journal_lag``, ``counters``.
    """
    status = system.status()
    state = system.journal.state
    wall_ms = system.clock.wall_ms()
    unprotected = {s: max(0.0, float(v)) for s, v in system.unprotected_seconds().items()}
    live = state.live_orders()
    knobs = system.knobs
    decision = system.belief.last_decision
    mode = PostureMode(status.posture)
    return {
        "generated_wall_ms": wall_ms,
        "running": not system.stopped.is_set(),
        "stop_reason": system.stop_reason,
        "incarnation": status.incarnation,
        "journal_entries": status.journal_entries,
        "posture": {
            "mode": mode.value,
            "level": mode.level,
            "score": None if decision is None else round(decision.score, 6),
            "causes": list(status.causes),
            "unlock": list(status.unlock),
            "knobs": converter.unstructure(knobs),
            "entries_allowed": knobs.allow_entries and not status.halted,
        },
        "halted": status.halted,
        "halts": dict(sorted(status.halts.items())),
        "frozen_symbols": dict(sorted(status.frozen_symbols.items())),
        "positions": _positions(state, live, unprotected),
        "open_orders": [_order_view(o, wall_ms) for o in live],
        "open_intents": _open_intents(state, wall_ms),
        "unknown_intents": [
            {
                "intent_id": u.intent_id,
                "symbol": u.symbol,
                "client_order_ids": list(u.client_order_ids),
                "states": list(u.states),
                "age_s": round(u.age_s, 3),
            }
            for u in unknown_intents(state, wall_ms)
        ],
        "unprotected_s": {s: round(v, 3) for s, v in sorted(unprotected.items())},
        "last_reconcile": _last_reconcile(state),
        "restarts": dict(sorted(status.restarts.items())),
        "journal_lag": dict(sorted(system.journal.subscriber_lag().items())),
        "counters": dict(sorted(state.counters.items())),
    }


# --------------------------------------------------------------------------- helpers


def _age_s(wall_ms: int, since_ms: int) -> float:
    # The journal's wall stamps are non-decreasing; a clock read earlier than a stamp (a
    # wall clock stepped back) must not show a negative age.
    return max(0.0, (wall_ms - since_ms) / 1000.0)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _order_view(order: OrderRecord, wall_ms: int) -> dict[str, Any]:
    req = order.request
    return {
        "client_order_id": order.client_order_id,
        "intent_id": order.intent_id,
        "symbol": req.symbol,
        "position_side": req.position_side.value,
        "side": req.side.value,
        "order_type": req.order_type.value,
        "lane": "entry" if order.risk_increasing else "exit",
        "quantity": _dec(req.quantity),
        "filled_qty": str(order.filled_qty),
        "remaining_qty": str(order_remaining_qty(order)),
        "price": _dec(req.price),
        "stop_price": _dec(req.stop_price),
        "reduce_only": req.reduce_only,
        "close_position": req.close_position,
        "state": order.ledger_state.value,
        "cancel_requested": order.cancel_requested,
        "age_s": round(_age_s(wall_ms, order.sent_wall_ms), 3),
    }


def _is_protective_stop(order: OrderRecord) -> bool:
    # The Router's lane decided "exit" once (reduce-only or close-position); a stop that
    # could open a position is an entry and protects nothing.
    return not order.risk_increasing and order.request.order_type in PROTECTIVE_STOP_TYPES


def _as_venue_order(order: OrderRecord) -> VenueOrder:
    """The order as the venue acknowledged it, for core's coverage rules."""
    req = order.request
    qty = req.quantity if req.quantity is not None else ZERO
    status = (
        VenueOrderStatus.PARTIALLY_FILLED
        if order.ledger_state is LedgerState.PARTIALLY_FILLED
        else VenueOrderStatus.NEW
    )
    return VenueOrder(
        symbol=req.symbol,
        # Coverage reports the ids it counted; ours are the ones an operator can look up.
        order_id=order.client_order_id,
        client_order_id=order.client_order_id,
        side=req.side,
        order_type=req.order_type,
        status=status,
        quantity=qty,
        filled_qty=min(order.filled_qty, qty),
        price=req.price,
        stop_price=req.stop_price,
        time_in_force=req.time_in_force,
        reduce_only=req.reduce_only,
        close_position=req.close_position,
        position_side=req.position_side,
    )


def _coverage_view(
    symbol: str,
    position_side: PositionSide,
    qty: Decimal,
    entry: Decimal | None,
    stops: list[OrderRecord],
) -> dict[str, Any]:
    acknowledged = [_as_venue_order(o) for o in stops if o.ledger_state in _ACKNOWLEDGED_OPEN]
    position = VenuePosition(
        symbol=symbol, quantity=qty, entry_price=entry or ZERO, position_side=position_side
    )
    try:
        cov = assess_coverage(position, acknowledged)
    except CoreValueError as exc:
        # A leg whose sign contradicts its hedge side: show the contradiction, do not guess.
        return {"status": "invalid", "detail": str(exc)}
    return {
        "status": cov.status.value,
        "covered_qty": str(cov.covered_qty),
        "uncovered_qty": str(cov.uncovered_qty),
        "ratio": str(cov.ratio),
        "covered_by": list(cov.covered_by),
    }


def _positions(
    state: AccountState, live: list[OrderRecord], unprotected: Mapping[str, float]
) -> list[dict[str, Any]]:
    legs: dict[tuple[str, PositionSide], LegRecord | None] = {
        key: leg for key, leg in state.legs.items() if leg.quantity != ZERO
    }
    by_leg: dict[tuple[str, PositionSide], list[OrderRecord]] = {}
    for order in live:
        key = (order.request.symbol, order.request.position_side)
        by_leg.setdefault(key, []).append(order)
        legs.setdefault(key, state.legs.get(key))
    return [
        _envelope(state, symbol, side, leg, by_leg.get((symbol, side), []), unprotected)
        for (symbol, side), leg in sorted(legs.items())
    ]


def _envelope(
    state: AccountState,
    symbol: str,
    position_side: PositionSide,
    leg: LegRecord | None,
    orders: list[OrderRecord],
    unprotected: Mapping[str, float],
) -> dict[str, Any]:
    qty = ZERO if leg is None else leg.quantity
    entry = None if leg is None else leg.entry_price
    entries = [o for o in orders if o.risk_increasing]
    exits = [o for o in orders if not o.risk_increasing]
    stops = [o for o in exits if _is_protective_stop(o)]
    buys = _open_qty(o for o in entries if o.request.side is Side.BUY)
    sells = _open_qty(o for o in entries if o.request.side is Side.SELL)
    worst_long = qty + buys
    worst_short = qty - sells
    worst = max(abs(worst_long), abs(worst_short))
    reference = state.last_price.get(symbol) or entry
    return {
        "symbol": symbol,
        "position_side": position_side.value,
        "quantity": str(qty),
        "entry_price": _dec(entry),
        "stops": [
            {
                "client_order_id": o.client_order_id,
                "side": o.request.side.value,
                "order_type": o.request.order_type.value,
                "stop_price": _dec(o.request.stop_price),
                "quantity": _dec(o.request.quantity),
                "close_position": o.request.close_position,
                "state": o.ledger_state.value,
            }
            for o in stops
        ],
        "coverage": _coverage_view(symbol, position_side, qty, entry, stops),
        "entry_orders": [o.client_order_id for o in entries],
        "exit_orders": [o.client_order_id for o in exits],
        "open_buy_entry_qty": str(buys),
        "open_sell_entry_qty": str(sells),
        "worst_case_long": str(worst_long),
        "worst_case_short": str(worst_short),
        "worst_case_qty": str(worst),
        "worst_case_notional": None if reference is None else str(worst * reference),
        "unprotected_s": round(unprotected.get(symbol, 0.0), 3),
    }


def _open_qty(orders: Iterable[OrderRecord]) -> Decimal:
    return sum((order_remaining_qty(o) for o in orders), ZERO)


def _open_intents(state: AccountState, wall_ms: int) -> list[dict[str, Any]]:
    out = []
    for intent_id, rec in sorted(state.intents.items()):
        if rec.status is not IntentStatus.OPEN:
            continue
        intent = rec.intent
        out.append(
            {
                "intent_id": intent_id,
                "correlation_id": rec.correlation_id,
                "lane": None if rec.lane is None else rec.lane.value,
                "symbol": None if intent is None else intent.symbol,
                "side": None if intent is None else intent.side.value,
                "kind": None if intent is None else intent.kind.value,
                "order_type": None if intent is None else intent.order_type.value,
                "quantity": None if intent is None else _dec(intent.quantity),
                "price": None if intent is None else _dec(intent.price),
                "client_order_ids": list(rec.client_order_ids),
                "age_s": round(_age_s(wall_ms, rec.accepted_wall_ms), 3),
            }
        )
    return out


def _last_reconcile(state: AccountState) -> dict[str, Any] | None:
    last = state.last_reconcile
    if last is None:
        return None
    return {
        "summary": last.summary,
        "clean": last.clean,
        "streak": last.streak,
        "mismatches": list(last.mismatches),
        "repairs": list(last.repairs),
        "skipped": list(last.skipped),
        "correlation_id": last.correlation_id,
    }
