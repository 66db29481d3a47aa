"""Every message that crosses an actor boundary, and the one strict converter for them.

Theory of operation
-------------------

Actors share no mutable state: they exchange frozen attrs records over trio memory
channels. Two families live here.

* **Commands** ask an actor to do something: :class:`SubmitIntent` and
  :class:`CancelIntent` to the Router, :class:`RepairRequest` from the Reconciler to the
  Router, :class:`Halt` and :class:`Resume` to the BeliefController. They are validated
  where they enter (the operator API decodes them with :data:`converter`).
* **Events** are facts, journaled before anyone acts on them. Each event class has a
  ``snake_case`` journal type (:func:`event_type`), and every event that concerns an
  intent carries ``intent_id`` and ``correlation_id`` so one intent's story can be read
  out of the journal. :func:`encode_event` turns an event into its canonical JSON payload
  and :func:`decode_event` turns it back; ``decode(encode(e)) == e`` for every event
  (property-tested), which is what makes a replayed journal rebuild the same state (I5).

The converter is strict: unknown keys are an error (``forbid_extra_keys``), Decimals travel
as strings and NaN or Infinity is refused, so a corrupted or hand-edited payload fails
loudly with the field named instead of turning into a wrong number.

Canonical JSON means sorted keys, no whitespace, UTF-8 and no NaN: the same event always
encodes to the same bytes, so two runs with the same seed produce byte-identical journals.
"""

import enum
import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import attrs
import cattrs

from scalper.core.intents import Intent
from scalper.core.model import Fill, OrderRequest, VenueOrder
from scalper.core.posture import GuardKnobs
from scalper.core.reconcile import RepairAction
from scalper.core.strict_json import loads_strict
from scalper.core.types import PositionSide

__all__ = [
    "ActorCrashed",
    "ActorRestarted",
    "BackfillCompleted",
    "CancelFailed",
    "CancelIntent",
    "CancelRequested",
    "CancelResolved",
    "DayStartEquity",
    "DeadmanChanged",
    "DeadmanFailed",
    "Event",
    "FillApplied",
    "Halt",
    "HaltChanged",
    "IntentAccepted",
    "IntentRejected",
    "InvalidInput",
    "Lane",
    "MessageError",
    "OrderAcked",
    "OrderAdopted",
    "OrderMissing",
    "OrderObserved",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderResolved",
    "OrderSending",
    "PositionSynced",
    "PostureChanged",
    "PressureRaised",
    "ProtectionRepair",
    "ProtectionRepairDone",
    "ReconcileCompleted",
    "RepairDeferred",
    "RepairRequest",
    "ReplaceAdmitted",
    "ReplaceFinished",
    "ReplaceOrder",
    "ReplaceStepped",
    "Resolution",
    "Resume",
    "RetryScheduled",
    "StartupPhase",
    "StreamDown",
    "StreamGapObserved",
    "SubmitIntent",
    "SupervisorEscalated",
    "SymbolFrozen",
    "SystemStarted",
    "SystemStopped",
    "canonical_json",
    "converter",
    "decode_event",
    "encode_event",
    "event_type",
]


class MessageError(ValueError):
    """A payload could not be decoded into a message; the text names the field."""


# --------------------------------------------------------------------------- converter


def _structure_decimal(value: Any, _type: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        # Floats are refused: a float in a payload has already lost precision.
        raise ValueError(f"expected a decimal string, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"not finite: {value!r}")
    return out


# cattrs' default scalar hooks call the type on the value (``bool("false") is True``,
# ``int(1.7) == 1``, ``float("nan")``, ``str(5)``): a wrong value would turn into a wrong
# flag or number instead of an error, so every scalar is checked for its JSON kind.


def _structure_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _structure_int(value: Any, type_: type[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value if type_ is int else type_(value)


def _structure_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"not finite: {value!r}")
    return out


def _structure_str(value: Any, type_: type[str]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    # The hook also serves str subclasses (the StrEnums): those are looked up by value.
    return value if type_ is str else type_(value)


def _structure_str_tuple(value: Any, _type: type) -> tuple[str, ...]:
    # A bare string or an object would otherwise be iterated into characters or keys.
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(_structure_str(v, str) for v in value)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    return conv


#: The one strict converter, shared by the journal and the operator API.
converter: Final[cattrs.Converter] = _make_converter()


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no NaN: the same value always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


_T = TypeVar("_T")


def structure(data: Any, cls: type[_T]) -> _T:
    """Structure ``data`` into ``cls`` with the strict converter.

    Raises:
        MessageError: naming the first offending field.
    """
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - cattrs raises groups of many kinds
        raise MessageError(f"invalid {cls.__name__}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        notes = list(getattr(exc, "__notes__", ()))
        parts = []
        for sub in exc.exceptions:
            sub_notes = getattr(sub, "__notes__", ())
            where = "; ".join(sub_notes)
            parts.append(f"{_describe(sub)}" + (f" [{where}]" if where else ""))
        return "; ".join(parts) or "; ".join(notes) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- vocabulary


class Lane(enum.StrEnum):
    """Which Router path handles an intent: entries are gated, exits never are (I1)."""

    ENTRY = "entry"
    EXIT = "exit"


class Resolution(enum.StrEnum):
    """How an unresolved order was resolved.

    ``PRESENT``: the order exists (with the venue's view, or -4116 without one). ``ABSENT``:
    it never reached the book (licenses the next client-id generation, I7). ``CLOSED``: it
    existed and is gone with nothing more executed (the venue forgot a canceled or expired
    order); terminal, and never a licence for another generation.
    """

    PRESENT = "present"
    ABSENT = "absent"
    CLOSED = "closed"


# --------------------------------------------------------------------------- commands


@attrs.frozen
class SubmitIntent:
    """Strategy to Router: please make this intent happen.

    Attributes:
        intent: the validated intent.
        confidence: the strategy's confidence in [0, 1]; entries below the posture's
            ``min_entry_conf`` are rejected.
        reference_price: price used for the notional cap of market entries.
        source: who submitted it (``strategy``, ``operator``, ``protection``, ...).
    """

    intent: Intent
    confidence: float = 1.0
    reference_price: Decimal | None = None
    source: str = "strategy"


@attrs.frozen
class CancelIntent:
    """Cancel every live order of an intent (idempotent, I3)."""

    intent_id: str
    reason: str = "requested"


@attrs.frozen
class RepairRequest:
    """Reconciler to Router: perform one bounded repair."""

    action: RepairAction
    correlation_id: str


@attrs.frozen
class ReplaceOrder:
    """Strategy to ReplaceManager: replace the live order of ``intent_id`` with ``new_intent``.

    The new intent must be for the same symbol, side and position side; it gets its own
    intent id (a replace is a cancel plus a create, and the create is a new intent, I7).

    Attributes:
        intent_id: the intent whose live order is replaced.
        new_intent: what should rest instead (new price and/or quantity).
        reason: why (journaled).
        reference_price: price used to value a market replacement for the envelope.
    """

    intent_id: str
    new_intent: Intent
    reason: str = "strategy"
    reference_price: Decimal | None = None


@attrs.frozen
class Halt:
    """Operator: stop new entries now; durable across restarts."""

    reason: str


@attrs.frozen
class Resume:
    """Operator: allow entries again, if the last reconcile was clean."""

    reason: str = "operator"


# --------------------------------------------------------------------------- events


@attrs.frozen
class SystemStarted:
    """A process started trading on this journal."""

    incarnation: int
    version: str
    venue: str
    restart_reason: str
    seed: int | None = None


@attrs.frozen
class SystemStopped:
    """The system stopped; ``clean`` is False after an escalation."""

    reason: str
    clean: bool


@attrs.frozen
class IntentAccepted:
    """The Router took an intent through its gates (entries) or straight in (exits)."""

    intent: Intent
    lane: Lane
    source: str
    intent_id: str
    correlation_id: str
    reference_price: Decimal | None = None


@attrs.frozen
class IntentRejected:
    """An intent was refused before any order was sent; ``reason`` is a tag."""

    intent_id: str
    correlation_id: str
    reason: str
    detail: str = ""


@attrs.frozen
class OrderSending:
    """Write-ahead: this exact order is about to be sent (durable before the send, I7)."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    generation: int
    request: OrderRequest
    risk_increasing: bool
    recv_window_ms: int
    sent_wall_ms: int


@attrs.frozen
class OrderAcked:
    """The venue acknowledged the order (evidence, I4)."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    order: VenueOrder


@attrs.frozen
class OrderRejected:
    """The venue definitively refused the order: it was never placed."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    error_class: str
    code: int | None
    reason: str


@attrs.frozen
class OrderOutcomeUnknown:
    """The create may or may not have taken effect: resolved by query, never by resend."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    error_class: str
    code: int | None
    reason: str


@attrs.frozen
class RetryScheduled:
    """One structured event per retry attempt (I2)."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    operation: str
    attempt: int
    delay_s: float
    error_class: str
    reason: str


@attrs.frozen
class OrderResolved:
    """An unresolved order was resolved by evidence: present, absent, or closed.

    ``evidence`` says how: ``query``, ``stream``, ``duplicate_client_id`` (-4116),
    ``not_found_after_recv_window`` (two not-found answers past the request's window),
    ``vanished_after_existing`` (CLOSED: an order proven to exist is no longer known to the
    venue, not on the book, and a trade backfill after it vanished explains every fill).
    """

    intent_id: str
    correlation_id: str
    client_order_id: str
    resolution: Resolution
    evidence: str
    order: VenueOrder | None = None


@attrs.frozen
class CancelRequested:
    """A cancel is about to be sent."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    reason: str


@attrs.frozen
class CancelResolved:
    """The order is no longer open; ``order`` is the fetched final status when known."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    evidence: str
    order: VenueOrder | None = None


@attrs.frozen
class CancelFailed:
    """The cancel did not take: the order is (or may be) still open."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    reason: str
    still_open: bool


@attrs.frozen
class OrderObserved:
    """Order status evidence from the stream, a query or a snapshot."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    order: VenueOrder
    source: str
    observed_wall_ms: int


@attrs.frozen
class FillApplied:
    """A venue execution, journaled exactly once by (symbol, trade id) (I10)."""

    intent_id: str
    correlation_id: str
    fill: Fill
    source: str


@attrs.frozen
class PositionSynced:
    """Reconcile adopted the venue's size for a leg (the venue is the authority, I4)."""

    symbol: str
    position_side: PositionSide
    quantity: Decimal
    previous: Decimal
    reason: str
    correlation_id: str


@attrs.frozen
class StreamDown:
    """The user stream lost its connection; the reconnect's gap closes the outage.

    ``detected_at`` is when the adapter reported it; events from ``since`` on may be missing.
    """

    since: float
    detected_at: float
    reason: str


@attrs.frozen
class StreamGapObserved:
    """The user stream may have missed events in this window; a backfill follows."""

    started_at: float
    ended_at: float
    reason: str


@attrs.frozen
class BackfillCompleted:
    """REST trade backfill for one symbol after a gap or on a schedule."""

    symbol: str
    from_trade_id: str | None
    fetched: int
    new_fills: int
    correlation_id: str
    cursor: str | None = None


@attrs.frozen
class OrderMissing:
    """A snapshot no longer lists an order we believed live (reconcile's MARK_ORDER_GONE).

    Not proof of anything: the order may have filled or been cancelled. It moves the order
    to "status unknown", which the Router resolves by query; it never licenses a resend.
    """

    intent_id: str
    correlation_id: str
    client_order_id: str
    observed_wall_ms: int


@attrs.frozen
class OrderAdopted:
    """A venue order with our prefix that the ledger did not know, taken into the ledger."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    order: VenueOrder
    reason: str


@attrs.frozen
class SymbolFrozen:
    """Entries on a symbol stop until an operator clears it (unknown exposure there)."""

    symbol: str
    frozen: bool
    reason: str


@attrs.frozen
class RepairDeferred:
    """A planned repair this process cannot perform (yet); the reason says why."""

    kind: str
    symbol: str
    reason: str
    correlation_id: str


@attrs.frozen
class ReconcileCompleted:
    """One reconcile pass: the summary line and what it found and asked for.

    ``deferred`` lists what could not be judged yet, as ``reason:symbol:subject`` (the order's
    client id, or the leg's position side), so a mismatch that never appeared is explained.
    """

    summary: str
    clean: bool
    streak: int
    mismatches: tuple[str, ...]
    repairs: tuple[str, ...]
    skipped: tuple[str, ...]
    correlation_id: str
    deferred: tuple[str, ...] = ()


@attrs.frozen
class PostureChanged:
    """The posture mode changed, with its causes and what would unlock the next level."""

    mode: str
    previous: str
    score: float
    causes: tuple[str, ...]
    unlock: tuple[str, ...]
    knobs: GuardKnobs


@attrs.frozen
class HaltChanged:
    """Entries halted or resumed (operator or kill switch); durable across restarts."""

    halted: bool
    reason: str
    source: str


@attrs.frozen
class DayStartEquity:
    """The account equity at the start of a UTC day: the kill switch's daily-loss base.

    Journaled by the BeliefController for the first equity it reads at or after each UTC
    midnight of the injected wall clock, and read back by a restarted controller, so the
    day's loss is measured from the same start across restarts. ``utc_day`` counts days
    since 1970-01-01 (``date`` is the same day, ISO, for people); ``peak_equity`` is the
    highest equity known at that moment (the drawdown trigger's base).
    """

    utc_day: int
    date: str
    equity: Decimal
    peak_equity: Decimal


@attrs.frozen
class ActorCrashed:
    """A supervised actor raised; the supervisor restarts it after ``restart_in_s``."""

    actor: str
    error_type: str
    error: str
    restart_in_s: float


@attrs.frozen
class ActorRestarted:
    """A supervised actor started again and rebuilt its state from the journal."""

    actor: str
    restart_count: int


@attrs.frozen
class SupervisorEscalated:
    """Restart intensity exceeded: entries frozen, the system stops."""

    supervisor: str
    reason: str


@attrs.frozen
class InvalidInput:
    """Bad input (malformed venue message, invalid intent): journaled, never lost."""

    source: str
    error: str
    raw: str
    intent_id: str = ""
    correlation_id: str = ""


@attrs.frozen
class ProtectionRepair:
    """The ProtectionManager started repairing a leg's stop coverage (I9).

    Attributes:
        symbol: the leg's symbol.
        position_side: the leg.
        reason: the repair plan's reason tag (``resize_stop``, ``stop_unplaceable_exit``...).
        trigger: what prompted it (``fill``, ``stop_gone``, ``reconcile``, ``tick``...).
        status: the coverage status that was repaired.
        position_qty: the signed position being protected.
        covered_qty: what the live stops covered before the repair.
        actions: the plan, one ``KIND:detail`` string per action, in order.
        correlation_id: links the repair's intents (``protect:<symbol>:<n>``).
    """

    symbol: str
    position_side: PositionSide
    reason: str
    trigger: str
    status: str
    position_qty: Decimal
    covered_qty: Decimal
    actions: tuple[str, ...]
    correlation_id: str


@attrs.frozen
class ProtectionRepairDone:
    """A protection repair ended: ``outcome`` is ``covered``, ``failed`` or ``superseded``."""

    symbol: str
    position_side: PositionSide
    outcome: str
    detail: str
    correlation_id: str


@attrs.frozen
class PressureRaised:
    """An actor asks the posture to tighten for ``hold_s`` seconds (a cause tag and severity).

    Raised by the ProtectionManager (``protection_gap_ttl_breach``) and the ReplaceManager
    (``replace_storm``, ``replace_envelope``, ``replace_race``); the BeliefController folds
    the active ones into the belief debt's extra pressure.
    """

    source: str
    symbol: str
    cause: str
    severity: float
    reason: str
    hold_s: float
    correlation_id: str = ""


@attrs.frozen
class ReplaceAdmitted:
    """A replace request was judged: ``decision`` is ``replace``, ``degrade_cancel_reconcile_create`` or ``give_up``."""

    intent_id: str
    correlation_id: str
    replace_id: str
    symbol: str
    new_intent_id: str
    decision: str
    reason: str
    worst_case_notional: Decimal


@attrs.frozen
class ReplaceStepped:
    """One step of a replace's cancel-then-create machine (core.replace)."""

    intent_id: str
    correlation_id: str
    replace_id: str
    state: str
    actions: tuple[str, ...]
    reason: str
    fill_qty: Decimal
    #: The step met an unknown outcome (it counts against the symbol's ambiguity budget).
    ambiguous: bool = False


@attrs.frozen
class ReplaceFinished:
    """A replace ended: ``outcome`` is ``replaced``, ``degraded``, ``filled_after_cancel``, ``gave_up`` or ``refused``."""

    intent_id: str
    correlation_id: str
    replace_id: str
    outcome: str
    reason: str
    new_intent_id: str


@attrs.frozen
class DeadmanChanged:
    """The exchange dead-man switch (countdown cancel-all) was armed or disarmed for a symbol."""

    symbol: str
    armed: bool
    countdown_ms: int
    reason: str


@attrs.frozen
class DeadmanFailed:
    """A dead-man heartbeat failed; ``consecutive`` failures so far."""

    symbol: str
    error: str
    consecutive: int


@attrs.frozen
class StartupPhase:
    """One step of the startup sequence finished (replay, resolve, reconcile, orphans, trading)."""

    phase: str
    detail: str


Event = (
    SystemStarted
    | SystemStopped
    | IntentAccepted
    | IntentRejected
    | OrderSending
    | OrderAcked
    | OrderRejected
    | OrderOutcomeUnknown
    | RetryScheduled
    | OrderResolved
    | CancelRequested
    | CancelResolved
    | CancelFailed
    | OrderObserved
    | FillApplied
    | PositionSynced
    | StreamDown
    | StreamGapObserved
    | BackfillCompleted
    | OrderMissing
    | OrderAdopted
    | SymbolFrozen
    | RepairDeferred
    | ReconcileCompleted
    | PostureChanged
    | HaltChanged
    | ActorCrashed
    | ActorRestarted
    | SupervisorEscalated
    | InvalidInput
    | ProtectionRepair
    | ProtectionRepairDone
    | PressureRaised
    | ReplaceAdmitted
    | ReplaceStepped
    | ReplaceFinished
    | DeadmanChanged
    | DeadmanFailed
    | StartupPhase
    | DayStartEquity
)

_EVENT_CLASSES: Final[tuple[type[Any], ...]] = (
    SystemStarted,
    SystemStopped,
    IntentAccepted,
    IntentRejected,
    OrderSending,
    OrderAcked,
    OrderRejected,
    OrderOutcomeUnknown,
    RetryScheduled,
    OrderResolved,
    CancelRequested,
    CancelResolved,
    CancelFailed,
    OrderObserved,
    FillApplied,
    PositionSynced,
    StreamDown,
    StreamGapObserved,
    BackfillCompleted,
    OrderMissing,
    OrderAdopted,
    SymbolFrozen,
    RepairDeferred,
    ReconcileCompleted,
    PostureChanged,
    HaltChanged,
    ActorCrashed,
    ActorRestarted,
    SupervisorEscalated,
    InvalidInput,
    ProtectionRepair,
    ProtectionRepairDone,
    PressureRaised,
    ReplaceAdmitted,
    ReplaceStepped,
    ReplaceFinished,
    DeadmanChanged,
    DeadmanFailed,
    StartupPhase,
    DayStartEquity,
)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


_TYPE_OF: Final[dict[type[Any], str]] = {cls: _snake(cls.__name__) for cls in _EVENT_CLASSES}
_CLASS_OF: Final[dict[str, type[Any]]] = {name: cls for cls, name in _TYPE_OF.items()}

#: Every journal type, in declaration order.
EVENT_TYPES: Final[tuple[str, ...]] = tuple(_TYPE_OF.values())


def event_type(event: Event) -> str:
    """The journal type of an event, e.g. ``order_sending``."""
    return _TYPE_OF[type(event)]


def encode_event(event: Event) -> str:
    """The canonical JSON payload of an event."""
    return canonical_json(converter.unstructure(event))


def decode_event(type_: str, payload: str) -> Event:
    """Decode a journal payload back into its event.

    Raises:
        MessageError: an unknown type, invalid JSON, NaN/Infinity, an extra or missing
            key, or a bad value, naming what is wrong.
    """
    cls = _CLASS_OF.get(type_)
    if cls is None:
        raise MessageError(f"unknown event type {type_!r}")
    try:
        data = loads_strict(payload)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"invalid {type_} payload: {exc}") from None
    event: Event = structure(data, cls)
    return event


def intent_of(event: Event) -> tuple[str, str]:
    """The (intent_id, correlation_id) an event belongs to, or empty strings."""
    return (getattr(event, "intent_id", ""), getattr(event, "correlation_id", ""))
