"""Orphans: what to do with venue orders and positions the ledger does not know.

Theory of operation
-------------------

An *orphan* is an open venue order whose client order id the ledger has no record of, or a
venue position the ledger does not hold. Orphans appear after a crash between a send and its
journal record, after a lost acknowledgement, when another program trades on the same
account, and when the venue itself acts (liquidation, auto-deleveraging, settlement). They
are never ignored (reliability note E9): each one gets exactly one decision,

* ``ADOPT``: take the venue's record into the ledger as ours and manage it from now on;
* ``CANCEL``: cancel the order at the venue (orders only: a position cannot be cancelled);
* ``FREEZE``: touch nothing, record it, and stop new entries on the symbol until an operator
  or a later clean reconcile clears it.

:func:`classify_order`, :func:`classify_orders`, :func:`classify_position` and
:func:`classify_snapshot` decide, deterministically, from the record, our id prefix, what the
ledger knows about the intent the id points to (:class:`IntentStanding`, keyed by
:func:`~scalper.core.ids.intent_digest`), the venue's positions and an
:class:`OrphansConfig`. Restart rebuild and the reconciler both use them, so a given orphan
is treated the same way whenever it is found (I5).

The rules, in the order they are tried (first match wins; the reason tag names the rule):

==============================  ===================================================  =======
situation                       reason tag                                           default
==============================  ===================================================  =======
``autoclose-`` id               ``venue_liquidation_order``                          FREEZE
``adl_autoclose`` id            ``venue_adl_order``                                  FREEZE
``settlement_autoclose-`` id    ``venue_settlement_order``                           FREEZE
foreign id, position-reducing   ``foreign_exit_order``                               FREEZE
foreign id, risk-increasing     ``foreign_order``                                    FREEZE
ours, reducing, position open   ``protective_for_open_position``                     ADOPT
ours, reducing, wrong side      ``exit_order_wrong_side``                            CANCEL
ours, reducing, no position     ``protective_without_position``                      CANCEL
ours, increasing, unknown       ``ours_unknown_intent_entry``                        CANCEL
ours, increasing, intent done   ``ours_closed_intent_entry``                         CANCEL
ours, increasing, duplicate     ``duplicate_entry_for_intent``                       CANCEL
ours, increasing, intent open   ``ours_known_intent_entry``                          ADOPT
position, flat                  ``flat_position``                                    ADOPT
position, fully protected       ``protected_position``                               ADOPT
position, unprotected           ``unprotected_position`` (``requires_protection``)   ADOPT
==============================  ===================================================  =======

*Position-reducing* is judged from the venue's record, not from the id's role letter:
reduce-only or close-position orders, and in hedge mode a SELL on the LONG leg or a BUY on
the SHORT leg (Binance forbids ``reduceOnly`` in hedge mode; closing is implied by the leg).
Everything else can open or grow exposure and is *risk-increasing*.

Safety rules hold under every configuration, because they are what makes an orphan decision
safe to act on without a human:

* A risk-increasing order whose intent the ledger does not hold as open is never ADOPTed:
  adopting it would create exposure that nobody decided (I7).
* A foreign order is never CANCELed unless the operator configured exactly that for its
  reason tag; a per-symbol override cannot do it. Someone else's orders are not ours to touch.
* Liquidation, ADL and settlement orders belong to the venue: always FREEZE, record only.
* A position is never CANCELed; ADOPT or FREEZE only.

Policy: each reason has a default action; ``OrphansConfig.reason_actions`` overrides it per
reason (validated against the allowed set above at construction), ``symbol_actions`` per
symbol (an override the safety rules forbid degrades to FREEZE, the action that changes
nothing at the venue), and ``freeze_instead_of_cancel`` turns every CANCEL into a FREEZE for
operators who want to look before anything is removed. Every decision records where its
action came from (``policy_source``) so the journal shows why.
"""

import enum
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import DEFAULT_PREFIX, parse_client_order_id
from scalper.core.model import AccountSnapshot, VenueOrder, VenuePosition
from scalper.core.protection import CoverageStatus, assess_coverage
from scalper.core.types import ZERO, PositionSide, Side

__all__ = [
    "Coverage",
    "IntentStanding",
    "OrderShape",
    "OrphanAction",
    "OrphanContext",
    "OrphanDecision",
    "OrphanReason",
    "OrphansConfig",
    "allowed_actions",
    "classify_order",
    "classify_orders",
    "classify_position",
    "classify_snapshot",
    "default_action",
    "is_position_reducing",
    "is_risk_increasing_reason",
    "stop_coverage",
    "venue_generated_reason",
]


class OrphanAction(enum.StrEnum):
    """What to do with one orphan."""

    #: Take the venue's record into the ledger and manage it from now on.
    ADOPT = "ADOPT"
    #: Cancel the order at the venue (orders only).
    CANCEL = "CANCEL"
    #: Touch nothing, record it, block new entries on the symbol until cleared.
    FREEZE = "FREEZE"


class OrphanReason(enum.StrEnum):
    """The situation an orphan was found in; the decision's reason tag and the override key."""

    VENUE_LIQUIDATION_ORDER = "venue_liquidation_order"
    VENUE_ADL_ORDER = "venue_adl_order"
    VENUE_SETTLEMENT_ORDER = "venue_settlement_order"
    FOREIGN_EXIT_ORDER = "foreign_exit_order"
    FOREIGN_ORDER = "foreign_order"
    PROTECTIVE_FOR_OPEN_POSITION = "protective_for_open_position"
    EXIT_ORDER_WRONG_SIDE = "exit_order_wrong_side"
    PROTECTIVE_WITHOUT_POSITION = "protective_without_position"
    OURS_UNKNOWN_INTENT_ENTRY = "ours_unknown_intent_entry"
    OURS_CLOSED_INTENT_ENTRY = "ours_closed_intent_entry"
    DUPLICATE_ENTRY_FOR_INTENT = "duplicate_entry_for_intent"
    OURS_KNOWN_INTENT_ENTRY = "ours_known_intent_entry"
    FLAT_POSITION = "flat_position"
    PROTECTED_POSITION = "protected_position"
    UNPROTECTED_POSITION = "unprotected_position"


class IntentStanding(enum.StrEnum):
    """What the ledger knows about the intent an order id points to."""

    #: The intent still wants its order and the ledger tracks no live order for it.
    OPEN = "OPEN"
    #: The ledger already tracks a live risk-increasing order for the intent (I7).
    HAS_LIVE_ORDER = "HAS_LIVE_ORDER"
    #: The intent is finished (filled, cancelled, expired, rejected): it wants nothing more.
    CLOSED = "CLOSED"


_A, _C, _F = OrphanAction.ADOPT, OrphanAction.CANCEL, OrphanAction.FREEZE
_R = OrphanReason

_DEFAULTS: dict[OrphanReason, OrphanAction] = {
    _R.VENUE_LIQUIDATION_ORDER: _F,
    _R.VENUE_ADL_ORDER: _F,
    _R.VENUE_SETTLEMENT_ORDER: _F,
    _R.FOREIGN_EXIT_ORDER: _F,
    _R.FOREIGN_ORDER: _F,
    _R.PROTECTIVE_FOR_OPEN_POSITION: _A,
    _R.EXIT_ORDER_WRONG_SIDE: _C,
    _R.PROTECTIVE_WITHOUT_POSITION: _C,
    _R.OURS_UNKNOWN_INTENT_ENTRY: _C,
    _R.OURS_CLOSED_INTENT_ENTRY: _C,
    _R.DUPLICATE_ENTRY_FOR_INTENT: _C,
    _R.OURS_KNOWN_INTENT_ENTRY: _A,
    _R.FLAT_POSITION: _A,
    _R.PROTECTED_POSITION: _A,
    _R.UNPROTECTED_POSITION: _A,
}

# What an operator may configure per reason. Everything outside these sets would break one of
# the safety rules in the module docstring, so the config refuses it.
_ALLOWED: dict[OrphanReason, frozenset[OrphanAction]] = {
    _R.VENUE_LIQUIDATION_ORDER: frozenset({_F}),
    _R.VENUE_ADL_ORDER: frozenset({_F}),
    _R.VENUE_SETTLEMENT_ORDER: frozenset({_F}),
    _R.FOREIGN_EXIT_ORDER: frozenset({_F, _C}),
    _R.FOREIGN_ORDER: frozenset({_F, _C}),
    _R.PROTECTIVE_FOR_OPEN_POSITION: frozenset({_A, _C, _F}),
    _R.EXIT_ORDER_WRONG_SIDE: frozenset({_C, _F}),
    _R.PROTECTIVE_WITHOUT_POSITION: frozenset({_C, _F}),
    _R.OURS_UNKNOWN_INTENT_ENTRY: frozenset({_C, _F}),
    _R.OURS_CLOSED_INTENT_ENTRY: frozenset({_C, _F}),
    _R.DUPLICATE_ENTRY_FOR_INTENT: frozenset({_C, _F}),
    _R.OURS_KNOWN_INTENT_ENTRY: frozenset({_A, _C, _F}),
    _R.FLAT_POSITION: frozenset({_A}),
    _R.PROTECTED_POSITION: frozenset({_A, _F}),
    _R.UNPROTECTED_POSITION: frozenset({_A, _F}),
}

_FOREIGN = frozenset({_R.FOREIGN_EXIT_ORDER, _R.FOREIGN_ORDER})
_RISK_INCREASING_UNDECIDED = frozenset(
    {
        _R.FOREIGN_ORDER,
        _R.OURS_UNKNOWN_INTENT_ENTRY,
        _R.OURS_CLOSED_INTENT_ENTRY,
        _R.DUPLICATE_ENTRY_FOR_INTENT,
    }
)
_RISK_INCREASING = _RISK_INCREASING_UNDECIDED | {_R.OURS_KNOWN_INTENT_ENTRY}


def default_action(reason: OrphanReason) -> OrphanAction:
    """The action a reason gets when nothing is configured."""
    return _DEFAULTS[reason]


def allowed_actions(reason: OrphanReason) -> frozenset[OrphanAction]:
    """The actions the safety rules permit for a reason (what ``reason_actions`` may set)."""
    return _ALLOWED[reason]


def is_risk_increasing_reason(reason: OrphanReason) -> bool:
    """True for reasons that describe an open order able to open or grow exposure."""
    return reason in _RISK_INCREASING


def venue_generated_reason(client_order_id: str) -> OrphanReason | None:
    """Recognise the ids Binance gives its own liquidation, ADL and settlement orders."""
    if client_order_id.startswith("settlement_autoclose"):
        return _R.VENUE_SETTLEMENT_ORDER
    if client_order_id.startswith("adl_autoclose"):
        return _R.VENUE_ADL_ORDER
    if client_order_id.startswith("autoclose-"):
        return _R.VENUE_LIQUIDATION_ORDER
    return None


class OrderShape(Protocol):
    """The fields that decide whether an order can only reduce a position."""

    @property
    def side(self) -> Side:
        """Order side."""

    @property
    def position_side(self) -> PositionSide:
        """Position leg."""

    @property
    def reduce_only(self) -> bool:
        """Reduce-only flag."""

    @property
    def close_position(self) -> bool:
        """Close-position flag."""


def is_position_reducing(order: OrderShape) -> bool:
    """True if ``order`` can only reduce a position, judged from its flags and leg.

    Reduce-only and close-position orders reduce; in hedge mode an order on the LONG leg
    that sells, or on the SHORT leg that buys, closes that leg (Binance rejects ``reduceOnly``
    there, so the leg is the only signal).
    """
    if order.reduce_only or order.close_position:
        return True
    if order.position_side is PositionSide.LONG:
        return order.side is Side.SELL
    if order.position_side is PositionSide.SHORT:
        return order.side is Side.BUY
    return False


def _reducing_side(position_qty: Decimal) -> Side:
    return Side.SELL if position_qty > ZERO else Side.BUY


@attrs.frozen
class Coverage:
    """How much of one position leg open protective stops cover.

    Attributes:
        required: the absolute position size.
        covered: the summed remaining quantity of matching stops, or ``required`` when a
            close-position stop exists (it closes whatever is open).
        close_position: a close-position stop covers the leg.
        stops: the matching stop orders, sorted by client order id.
    """

    required: Decimal
    covered: Decimal
    close_position: bool = False
    stops: tuple[VenueOrder, ...] = ()

    @property
    def ratio(self) -> Decimal:
        """The covered fraction, ``covered / required`` (1 for a flat leg: nothing to protect)."""
        if self.required == ZERO:
            return Decimal(1)
        return self.covered / self.required

    @property
    def is_full(self) -> bool:
        """True if every unit of the position is covered."""
        return self.covered >= self.required


def stop_coverage(
    symbol: str,
    position_side: PositionSide,
    position_qty: Decimal,
    orders: Iterable[VenueOrder],
    *,
    prefix: str | None = None,
) -> Coverage:
    """Measure how much of a position leg the venue's open stops protect.

    A protective stop is an open STOP, STOP_MARKET or TRAILING_STOP_MARKET order on the same
    symbol and leg that can only reduce the position and sells a long or buys a short.
    Take-profits do not count: they do not limit a loss.

    Args:
        symbol: the position's symbol.
        position_side: the position's leg.
        position_qty: signed position size (negative is short).
        orders: the venue's open orders (any symbols; others are ignored).
        prefix: if given, only stops with our client order ids (this prefix) count; a
            foreign stop can be cancelled by its owner at any time.

    Returns:
        The coverage of the leg.
    """
    # One rule for "protected", shared with the ProtectionManager: reconcile and protection
    # must never disagree about whether a leg is covered (a disagreement would have one
    # place a stop the other then calls an orphan).
    candidates = [
        o for o in orders if prefix is None or parse_client_order_id(o.client_order_id, prefix).ours
    ]
    assessed = assess_coverage(
        VenuePosition(symbol=symbol, quantity=position_qty, position_side=position_side),
        candidates,
    )
    if assessed.status is CoverageStatus.FLAT:
        return Coverage(required=ZERO, covered=ZERO)
    covering = set(assessed.covered_by)
    stops = tuple(
        sorted(
            (o for o in candidates if o.order_id in covering),
            key=lambda o: (o.client_order_id, o.order_id),
        )
    )
    return Coverage(
        required=assessed.size,
        covered=assessed.covered_qty,
        close_position=assessed.close_position,
        stops=stops,
    )


def _check_reason_map(_inst: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    for reason, action in value.items():
        if action not in _ALLOWED[reason]:
            allowed = ", ".join(sorted(_ALLOWED[reason]))
            raise CoreValueError(
                attribute.name, f"{action} is not allowed for {reason} (allowed: {allowed})"
            )


def _to_reason_map(value: Any) -> dict[OrphanReason, OrphanAction]:
    if not isinstance(value, Mapping):
        raise CoreValueError("reason_actions", f"must be a mapping, got {type(value).__name__}")
    out: dict[OrphanReason, OrphanAction] = {}
    for key, action in value.items():
        try:
            out[OrphanReason(key)] = OrphanAction(action)
        except ValueError:
            raise CoreValueError(
                "reason_actions", f"unknown reason or action {key!r}={action!r}"
            ) from None
    return out


def _to_symbol_map(value: Any) -> dict[str, OrphanAction]:
    if not isinstance(value, Mapping):
        raise CoreValueError("symbol_actions", f"must be a mapping, got {type(value).__name__}")
    out: dict[str, OrphanAction] = {}
    for symbol, action in value.items():
        if not isinstance(symbol, str) or not symbol:
            raise CoreValueError("symbol_actions", f"symbols must be non-empty, got {symbol!r}")
        try:
            out[symbol] = OrphanAction(action)
        except ValueError:
            raise CoreValueError(
                "symbol_actions", f"unknown action {action!r} for {symbol}"
            ) from None
    return out


@attrs.frozen
class OrphansConfig:
    """The orphan policy: default actions per reason, with operator overrides.

    Attributes:
        reason_actions: per-reason overrides of the default action, e.g.
            ``{"unprotected_position": "FREEZE"}``. Each must be in :func:`allowed_actions`.
        symbol_actions: per-symbol overrides applied to every orphan on that symbol, e.g.
            ``{"BTCUSDT": "FREEZE"}``; an override the safety rules forbid for a given orphan
            degrades to FREEZE.
        freeze_instead_of_cancel: turn every CANCEL into FREEZE (look before removing).
    """

    reason_actions: dict[OrphanReason, OrphanAction] = attrs.field(
        factory=dict, converter=_to_reason_map, validator=_check_reason_map
    )
    symbol_actions: dict[str, OrphanAction] = attrs.field(factory=dict, converter=_to_symbol_map)
    freeze_instead_of_cancel: bool = attrs.field(default=False)

    @freeze_instead_of_cancel.validator
    def _check_flag(self, attribute: "attrs.Attribute[bool]", value: Any) -> None:
        if not isinstance(value, bool):
            raise CoreValueError(attribute.name, f"must be a bool, got {value!r}")


def _to_intents(value: Any) -> dict[str, IntentStanding]:
    if not isinstance(value, Mapping):
        raise CoreValueError("intents", f"must be a mapping, got {type(value).__name__}")
    try:
        return {str(k): IntentStanding(v) for k, v in value.items()}
    except ValueError:
        raise CoreValueError("intents", "values must be IntentStanding") from None


def _to_positions(value: Iterable[VenuePosition]) -> tuple[VenuePosition, ...]:
    return tuple(value)


def _check_prefix(_inst: Any, _attribute: "attrs.Attribute[str]", value: str) -> None:
    # parse_client_order_id validates the prefix and names the field.
    parse_client_order_id("", value)


@attrs.frozen
class OrphanContext:
    """What the ledger and the venue say around an orphan.

    Attributes:
        prefix: our client-order-id prefix; ids without it are foreign.
        intents: what the ledger knows per intent, keyed by
            :func:`~scalper.core.ids.intent_digest` (an absent digest is an unknown intent).
        positions: the venue's positions (signed quantities); orders are judged against them.
    """

    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_check_prefix)
    intents: dict[str, IntentStanding] = attrs.field(factory=dict, converter=_to_intents)
    positions: tuple[VenuePosition, ...] = attrs.field(default=(), converter=_to_positions)

    def position_qty(self, symbol: str, position_side: PositionSide) -> Decimal:
        """Signed venue position of one leg (summed if the venue listed it twice)."""
        return sum(
            (
                p.quantity
                for p in self.positions
                if p.symbol == symbol and p.position_side is position_side
            ),
            ZERO,
        )


@attrs.frozen
class OrphanDecision:
    """One orphan classification.

    Attributes:
        action: ADOPT, CANCEL or FREEZE.
        reason: the situation tag (see the module table); never empty.
        subject: the venue order or position the decision is about.
        details: sorted ``(key, value)`` facts that led to the decision, for the journal.
        policy_source: where the action came from: ``default``, ``reason_override``,
            ``symbol_override``, ``symbol_override_degraded`` or ``freeze_instead_of_cancel``.
        requires_protection: an adopted position with no full stop: protect it now (I9).
    """

    action: OrphanAction
    reason: OrphanReason
    subject: VenueOrder | VenuePosition
    details: tuple[tuple[str, str], ...] = ()
    policy_source: str = "default"
    requires_protection: bool = False

    @property
    def symbol(self) -> str:
        """The symbol of the subject."""
        return self.subject.symbol

    @property
    def is_order(self) -> bool:
        """True if the subject is an order (else a position)."""
        return isinstance(self.subject, VenueOrder)

    def detail(self, key: str) -> str | None:
        """Look up one detail by key."""
        for k, v in self.details:
            if k == key:
                return v
        return None


def _decide(
    reason: OrphanReason,
    subject: VenueOrder | VenuePosition,
    details: dict[str, str],
    config: OrphansConfig,
) -> OrphanDecision:
    allowed = _ALLOWED[reason]
    action = _DEFAULTS[reason]
    source = "default"
    if reason in config.reason_actions:
        action = config.reason_actions[reason]
        source = "reason_override"
    wanted = config.symbol_actions.get(subject.symbol)
    if wanted is not None and wanted is not action:
        # A symbol-wide setting is too blunt to touch someone else's orders.
        permitted = allowed - {_C} if reason in _FOREIGN else allowed
        if wanted in permitted:
            action, source = wanted, "symbol_override"
        elif _F in allowed and action is not _F:
            action, source = _F, "symbol_override_degraded"
            details["symbol_override_refused"] = str(wanted)
        else:
            details["symbol_override_refused"] = str(wanted)
    if config.freeze_instead_of_cancel and action is _C:
        action, source = _F, "freeze_instead_of_cancel"
    # The safety rules of the module docstring, checked once more where the action is chosen.
    assert action in allowed, (reason, action)
    requires_protection = reason is _R.UNPROTECTED_POSITION and action is _A
    return OrphanDecision(
        action=action,
        reason=reason,
        subject=subject,
        details=tuple(sorted(details.items())),
        policy_source=source,
        requires_protection=requires_protection,
    )


def _order_situation(order: VenueOrder, ctx: OrphanContext) -> tuple[OrphanReason, dict[str, str]]:
    coid = order.client_order_id
    details = {"client_order_id": coid, "order_id": order.order_id}
    venue_reason = venue_generated_reason(coid)
    if venue_reason is not None:
        details["owner"] = "venue"
        return venue_reason, details
    reducing = is_position_reducing(order)
    details["reducing"] = "true" if reducing else "false"
    info = parse_client_order_id(coid, ctx.prefix)
    if not info.ours:
        details["owner"] = "foreign"
        return (_R.FOREIGN_EXIT_ORDER if reducing else _R.FOREIGN_ORDER), details
    assert info.role is not None
    assert info.intent_digest is not None
    details["owner"] = "ours"
    details["role"] = str(info.role)
    details["intent_digest"] = info.intent_digest
    details["generation"] = str(info.generation)
    if reducing:
        qty = ctx.position_qty(order.symbol, order.position_side)
        details["position_qty"] = str(qty)
        if qty == ZERO:
            return _R.PROTECTIVE_WITHOUT_POSITION, details
        if order.side is _reducing_side(qty):
            return _R.PROTECTIVE_FOR_OPEN_POSITION, details
        # A reduce-only order pointing the wrong way (e.g. left over from a flipped
        # position) can never fill; it protects nothing.
        return _R.EXIT_ORDER_WRONG_SIDE, details
    standing = ctx.intents.get(info.intent_digest)
    details["intent_standing"] = "UNKNOWN" if standing is None else str(standing)
    if standing is None:
        return _R.OURS_UNKNOWN_INTENT_ENTRY, details
    if standing is IntentStanding.CLOSED:
        return _R.OURS_CLOSED_INTENT_ENTRY, details
    if standing is IntentStanding.HAS_LIVE_ORDER:
        return _R.DUPLICATE_ENTRY_FOR_INTENT, details
    return _R.OURS_KNOWN_INTENT_ENTRY, details


def classify_order(
    order: VenueOrder, ctx: OrphanContext, config: OrphansConfig | None = None
) -> OrphanDecision:
    """Decide what to do with one open venue order the ledger does not know.

    Args:
        order: the venue's record of the order; must be open.
        ctx: our prefix, what the ledger knows about intents, the venue's positions.
        config: the orphan policy (defaults if omitted).

    Returns:
        The decision, with its reason tag and the facts behind it.

    Raises:
        CoreValueError: if the order is not open (a closed order is evidence for fills and
            positions, not an orphan to act on).
    """
    if not order.status.is_open:
        raise CoreValueError(
            "order", f"status {order.status} is not open; only open orders are orphans"
        )
    reason, details = _order_situation(order, ctx)
    return _decide(reason, order, details, config or OrphansConfig())


def _order_sort_key(order: VenueOrder, prefix: str) -> tuple[str, int, str, str]:
    info = parse_client_order_id(order.client_order_id, prefix)
    generation = -1 if info.generation is None else info.generation
    return (order.symbol, generation, order.client_order_id, order.order_id)


def classify_orders(
    orders: Iterable[VenueOrder], ctx: OrphanContext, config: OrphansConfig | None = None
) -> tuple[OrphanDecision, ...]:
    """Classify several orphan orders together, so one intent never gets two live entries.

    Orders are taken in a fixed order (symbol, generation, client order id, order id). When an
    order of an OPEN intent is adopted, the intent is treated as having a live order from then
    on, so a second order of the same intent is a ``duplicate_entry_for_intent`` (I7).

    Returns:
        One decision per order, in that fixed order.
    """
    cfg = config or OrphansConfig()
    intents = dict(ctx.intents)
    decisions: list[OrphanDecision] = []
    for order in sorted(orders, key=lambda o: _order_sort_key(o, ctx.prefix)):
        decision = classify_order(order, attrs.evolve(ctx, intents=intents), cfg)
        digest = decision.detail("intent_digest")
        if decision.reason is _R.OURS_KNOWN_INTENT_ENTRY and digest is not None:
            # Whatever the action, this order now stands for the intent's one entry.
            intents[digest] = IntentStanding.HAS_LIVE_ORDER
        decisions.append(decision)
    return tuple(decisions)


def classify_position(
    position: VenuePosition, *, protected: bool, config: OrphansConfig | None = None
) -> OrphanDecision:
    """Decide what to do with a venue position the ledger does not hold.

    Args:
        position: the venue's record (signed quantity).
        protected: whether open stops on the venue fully cover it (see :func:`stop_coverage`).
        config: the orphan policy (defaults if omitted).

    Returns:
        ADOPT (with ``requires_protection`` if unprotected) or FREEZE, never CANCEL.
    """
    details = {"position_qty": str(position.quantity), "position_side": str(position.position_side)}
    if position.quantity == ZERO:
        reason = _R.FLAT_POSITION
    elif protected:
        reason = _R.PROTECTED_POSITION
    else:
        reason = _R.UNPROTECTED_POSITION
    details["protected"] = "true" if protected else "false"
    return _decide(reason, position, details, config or OrphansConfig())


def classify_snapshot(
    snapshot: AccountSnapshot,
    ctx: OrphanContext,
    config: OrphansConfig | None = None,
    *,
    known_client_order_ids: frozenset[str] = frozenset(),
    known_positions: frozenset[tuple[str, PositionSide]] = frozenset(),
    ignored_order_ids: frozenset[str] = frozenset(),
) -> tuple[OrphanDecision, ...]:
    """Classify every orphan in a snapshot: the startup-rebuild entry point.

    Orders whose client order id the ledger knows, orders already recorded as frozen
    (``ignored_order_ids``, venue order ids) and positions the ledger holds are skipped. Flat
    positions are not orphans. A position counts as protected only if our own stops cover
    it fully. The snapshot's positions replace ``ctx.positions``.

    Returns:
        Order decisions (see :func:`classify_orders`), then position decisions sorted by
        (symbol, position side).
    """
    cfg = config or OrphansConfig()
    ctx = attrs.evolve(ctx, positions=snapshot.positions)
    orphan_orders = [
        o
        for o in snapshot.open_orders
        if o.status.is_open
        and o.client_order_id not in known_client_order_ids
        and o.order_id not in ignored_order_ids
    ]
    decisions = list(classify_orders(orphan_orders, ctx, cfg))
    legs: dict[tuple[str, PositionSide], list[VenuePosition]] = {}
    for p in snapshot.positions:
        legs.setdefault((p.symbol, p.position_side), []).append(p)
    for (symbol, side), records in sorted(legs.items()):
        qty = ctx.position_qty(symbol, side)
        if qty == ZERO or (symbol, side) in known_positions:
            continue
        # Keep the venue's own record (entry price, leverage) unless it listed the leg twice.
        position = records[0] if len(records) == 1 else attrs.evolve(records[0], quantity=qty)
        coverage = stop_coverage(symbol, side, qty, snapshot.open_orders, prefix=ctx.prefix)
        decisions.append(classify_position(position, protected=coverage.is_full, config=cfg))
    return tuple(decisions)
